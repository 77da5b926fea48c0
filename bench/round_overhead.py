"""Cost of the ledger: one DP federated round with the full ledger vs the same round with the ML work alone.

Both sides run the same round, in the same run, on the same machine (issue 5, "Speed"):

- **ledger**: the public round calls, as ``make demo`` makes them, the partners at the same time (one thread
  each, as if on their own machines; ``workers.concurrent.run_each``), training in ``--workers`` worker processes
  (default one per core, as the demo). ``Coordinator.publish_model`` (safetensors,
  artifact put) and ``open_round`` (``openRound``); each partner's ``Partner.run_round`` (fetch the model by its
  on-chain digest, check the budget, train in the worker executor, seal the envelope to the coordinator and the
  auditor, put it, ``submitUpdate``) or, with ``--mode batched``, ``run_round_batched`` (the same, then sign the
  ``UpdateCommitment``) followed by ``Coordinator.anchor_batch`` (``commitBatch``); then
  ``Coordinator.close_round`` (index the events, fetch and open every envelope, validate, aggregate, score,
  split, publish the aggregate and the report, ``finalizeRound``).
- **bare**: the ML work any federated round must do, and nothing else: each partner's ``fl.train_local``
  (DP-SGD, the same settings and seeds) in the same executor, all submitted at once as the ledger side's
  partners run at once, on the global model shipped to the worker by pickling; then ``fl.validate_updates`` (norm bound, shapes,
  NaN/Inf), ``fl.aggregate`` + ``fl.apply_delta_to_state`` (the new global model), leave-one-out scores over
  ``fl.aggregate_utility`` (accuracy on the evaluation set, as the coordinator scores), ``fl.split_reward``
  (the payout split), and the new model's accuracy.

  Not bare, i.e. counted as ledger overhead: serialization to safetensors, every store put/get and digest
  check, the partner's budget check against its own accountant and its recording of the round (composition
  across rounds exists to enforce the agreement's cap), envelope sealing/opening and signatures, every
  JSON-RPC call and transaction, the event index, the crash-safety records (outbox, accountant file), the
  round report, and the report's "accuracy before" (a bare loop already knows it: the previous "after").

Both sides keep their own global model, starting from the same initial weights; training is seeded (batches
and noise; the bare side takes each partner's seed for the round from ``Partner.round_seed``), so each timed
pair does the same ML work, and the benchmark checks it: the two sides' aggregates must be equal and their
payouts identical, round by round (``"same_result"`` in the JSON line; aggregates equal up to the order of
floating-point sums, since the ledger aggregates in the order concurrent partners committed). Everything the ledger side writes
(store, event index, and through ``LEPTON_DATA_DIR`` the outboxes and accountant files) lives in a temporary
folder removed at the end.

Torch threads: this process, where both sides' coordinators evaluate, runs ``EVALUATION_THREADS`` (one) as
the demo and the coordinator's commands set them (``workers.use_evaluation_threads``; ``--torch-threads``
otherwise): with torch's default of one per core, each of a round's dozen evaluations of a small model waited
10-25 ms on a busy machine instead of 0.2 ms, on both sides.

Timing: set-up (anvil, deployment, registrations, agreement, signatures, stakes, funding) is not timed, nor are
``--warmup`` rounds per side (default 1: the first round also starts the worker process); then ``--rounds``
timed rounds per side, interleaved (the order alternates every pair). Figures are the fastest round of each
side (as ``timeit`` does: on a machine shared with other jobs the slower rounds measure the neighbours) and, for
context, the medians. Per-phase figures are means per
timed round of each phase's *own* time (time inside a nested phase is the nested phase's), so they add up to
the round (with partners at the same time, their phases add up across threads, so ``other`` may be negative):
``rpc`` is every HTTP request to anvil (timed where the provider posts it, as RequestCounter counts), ``tx`` the
transactor's own work (building and signing, receipt polling), ``put``/``get`` the block store, ``train``
waiting for the worker, ``outbox`` and ``accountant`` every method of the parties' outboxes and accountant
files (SQLite and JSON files, synced to disk), and the named steps of Partner and Coordinator their own code
(``close`` is the coordinator's glue: aggregation, the report, serialization); "ledger calls" is how many times
each ran per round. A step the round no longer has is skipped and its time shows in its caller's phase; ``rpc``,
``tx``, the store, the executor and the files are measured where every call goes, so they stay right when the
round's internals move. Wrapping costs a few microseconds per call.

    python bench/round_overhead.py                               # 10 partners, 5 timed rounds, single submissions
    python bench/round_overhead.py --partners 10 --rounds 5 --mode batched
    python bench/round_overhead.py --partners 100 --rounds 2 --mode batched   # close per partner, anchored/s
    python bench/round_overhead.py --model mlp --epochs 5

Last line, JSON: ``{"partners", "mode", "model", "epochs", "rounds", "warmup", "ratio" (fastest ledger / fastest bare), "ratio_median",
"ledger_s", "bare_s", "same_result", "setup_s" (deployment to funding, not in the ratio), "workers" (training processes), "close_ms_per_partner" (the fastest ``close_round`` over partners),
"ledger_cpu_ms" and "bare_cpu_ms" (this process's CPU time in a round, all its threads, fastest round: the
ledger's own work, which a busy machine inflates less than the wall clock; the workers' training and the node
are other processes); on Linux also "ledger_all_cpu_ms" and "bare_all_cpu_ms" (the CPU time of this process and
every process under it, the node and the workers, all their threads, in the round that took least), "cores" (those
this process may run on) and "ratio_floor" (``ledger_all_cpu_ms`` over the cores, over the fastest bare round: the
ratio no spreading of the ledger round's work over this machine's cores could get under);
batched mode also "anchor_s" (``anchor_batch``: the signed commitments checked, the batch document put,
``commitBatch`` sent and its receipt), "anchored_per_s" (partners over it) and "first_signed_to_anchored_s"
(from the first partner's signed commitment: the partners' updates are made first, then every partner signs at
once, as partners who trained at the same time on their own machines; the other signatures are made on this
machine within it) and "anchored_per_s_from_first_signed" (partners over it),
"rpc_requests" (HTTP
requests to the node in a ledger round, the most of any timed round: a JSON-RPC batch counts once),
"rpc_requests_per_partner" (the partners' rounds' requests over partners), "rpc_requests_close"
(``close_round``'s), in batched mode "rpc_requests_anchor" (``anchor_batch``'s), "receipt_polls_pending"
(receipt requests answered "not mined yet", the most of any timed round: counted apart, they depend on when the
node mines)}``.

Measured (issue 15: the receipt asked for at 1, 2, 4 ... ms instead of every 100 ms; close_round's round, reward
and terms in one batch, the auditors' roles and keys in one), 10 partners, single, 3 timed rounds, the code
before and after back to back on the 2-core machine shared with six other jobs (load average ~11: the ratios
measure the neighbours more than the ledger): requests per ledger round 65 -> 62 (6.5 -> 6.2 per partner; a
partner's own round is 4: its reads, its transaction's preparation, the send, the receipt); logreg x 1 ledger
1.42 -> 1.49 s (bare 0.10 / 0.18 s), mlp x 5 4.13 -> 3.62 s (bare 1.99 / 1.71 s), close 81 -> 71 and 77 -> 64 ms
per partner. Anvil mines as it is sent, so the first ask almost always finds the receipt (0-2 'not mined yet'
answers a round on either side): the faster polling saves little here, and matters on a node that mines later.

Measured (issue 15, later: a partner's submitUpdate nonce, gas and fees read with its other reads before it
trains; one sync of the event index per close, its block hashes batched), 10 partners, single, 3 timed rounds,
the code before and after back to back on the same loaded 2-core machine (eight agents): requests per ledger
round 62 -> 45, per partner 4 -> 3, per close 15 -> 8; logreg x 1 ratio 1.47 -> 1.25 (ledger 0.65 / 0.72 s, bare
0.44 / 0.57 s), mlp x 5 ratio 2.67 -> 2.34 (ledger 2.96 / 2.55 s, bare 1.11 / 1.09 s). The requests are
deterministic; the times measure the neighbours as much as the ledger.

Measured (issue 15, the round's fixed cost: reads and a transaction's preparation as one plain JSON-RPC batch
instead of web3's batch, ~10 ms of Python a partner; an outbox put's bytes stored once beside its row instead of
base64 in the JSON payload every claim, transition and read rewrote or parsed; the event index on one connection
per thread, synchronous=NORMAL; this process on one torch thread, as the demo), 10 partners, single, the code
before (``--torch-threads 1``, the same threads) and after back to back on the 2-core machine shared with other
jobs (load average ~6): logreg x 1, 5 timed rounds: ledger 341 -> 247 ms (bare 34 / 40 ms), ratio 10.2 -> 6.2,
the ledger process's CPU per round 238 -> 160 ms, close 10.3 -> 7.7 ms per partner; mlp x 5, 4 timed rounds:
ledger 1.72 -> 1.02 s (bare 0.66 / 0.75 s), ratio 2.62 -> 1.37, CPU 899 -> 377 ms, close 41 -> 23 ms per
partner. Requests unchanged: 45 a round, 3 per partner, 8 to close. Before this, with torch's default threads
(one per core) in this process, the same runs gave ratios 10-12 (logreg) and 2.5-2.9 (mlp). What is left is
mostly waiting: the node's three answers per partner, two fsyncs of the accountant file per partner (its
record must be durable before the envelope leaves), the worker pipes; partners run as threads of this one
process, sharing its interpreter lock, where on their own machines they would not.

On a quiet machine (load average 1.1-1.4, nothing else running), the merged main of that stop against the main
it started from (measured the same way at load < 1 that morning): logreg x 1, ``--rounds 5``, ledger 448 ->
197-208 ms, bare 43 -> 29-32 ms, ratio 9.5 -> 6.4-6.9 (target 2.5: not met); ``--model mlp --epochs 5 --rounds
5``, ledger 1311 -> 561-609 ms, bare 405 -> 321-332 ms, ratio 3.24 -> 1.75-1.84 (target 1.5: not met). The
ratios an earlier stop printed at load ~11 (1.25 and 2.34) were the load's: the bare side ran ten times slower.
``--partners 100 --mode batched --rounds 2`` (load ~2.4): anchor_batch 32 ms = 3098 anchored updates/s, from
the first signed commitment 117 ms = 853/s (target 500: met); close per partner 3.9 / 2.5 / 2.9 ms at 10 / 50 /
100 partners (flat).

Measured (issue 15, the next stop: the node's requests through ``chain/transport.py``, a kept-alive HTTP/1.1
exchange instead of web3's ``requests`` session, without web3's ENS middleware; receipts, broadcasts and the
close's dry run asked of the provider directly; contract reads decoded with web3's codec and web3's conventions,
not its formatting path; the outbox's transitions one statement each; party threads kept between rounds), the
main the stop started from and its end alternated back to back on a quiet machine (load average 0.5-1.1, nothing
else running): logreg x 1, ``--rounds 10``: ledger 184 / 190 -> 114 / 121 ms, bare 27 / 28 ms, ratio 6.7 / 6.9
-> 4.2 / 4.3 (target 2.5: not met), this process's CPU per round 174 / 184 -> 104 / 104 ms, requests 45 -> 44,
close 3.5 -> 2.6 ms per partner; mlp x 5, ``--rounds 5``: ledger 538 / 538 -> 501 / 479 ms, bare 316 / 308 ->
310 / 306 ms, ratio 1.70 / 1.75 -> 1.62 / 1.56 (target 1.5: not met), CPU 390 / 395 -> 332 / 323 ms;
``--partners 100 --mode batched --rounds 2``: ledger 1.28 -> 1.06 s, from the first signed commitment 153 -> 111
ms = 655 -> 898 anchored updates/s (anchor_batch alone 32 ms = 3157/s on both), close 2.7 / 2.2 / 2.7 ms per
partner at 10 / 50 / 100. The ledger process is busy ~90% of a logreg round: what is left is its CPU, spread thin
(per round, by thread CPU time: the outboxes' SQLite ~21 ms, sealing ~15 ms, signing and receipts ~14 ms, the
partners' reconcile ~12 ms, puts ~7 ms, opening the envelopes ~8 ms), with ten partners' threads sharing one
interpreter lock where on their own machines they would not. The stop's final main (an operation's bytes in a
file beside the outbox, the review's fixes to the transport) against the start, alternated again (load average
0.5-2.3, a slower hour for both): logreg 222 / 211 -> 137 / 145 ms, ratio 7.1 / 6.6 -> 4.5 / 4.2; mlp 584 / 545
-> 480 / 486 ms, ratio 1.76 / 1.72 -> 1.57 / 1.58; 100 partners batched, 887 anchored updates/s from the first
signed commitment.

Measured (issue 15, the stop after: a training result back from its worker as arrays, not torch's shared-memory
descriptors; manifests, commitments and EIP-1559 transactions signed with libsecp256k1 directly
(``chain/signing.py``); keccak from pysha3's C extension; the block store's pins connection kept; the outbox's
claim one statement; the event index reading logs and blocks unformatted; envelopes opened on a thread per core;
a sealed envelope's SHA-256 only when asked), the stop's start and its end alternated on a quiet machine (load
average 0.7-1.6): logreg x 1, ``--rounds 10``: ledger 117-121 -> 90-98 ms, this process's CPU per round 102-109
-> 79-82 ms; the bare side gained too (26-28 -> 22.5-24 ms: its results came back the same way), so the ratio
moved less, 4.2-4.6 -> 4.0-4.1 (target 2.5: not met); mlp x 5, ``--rounds 5``: ledger 485-520 -> 455-460 ms,
bare 311-317 / 305-316 ms, ratio 1.55-1.67 -> 1.45 / 1.49 / 1.51 (medians 1.42-1.50; target 1.5: met in two runs
of three), CPU 330-353 -> 296-298 ms; ``--partners 100 --mode batched --rounds 2``: ledger 1.03 -> 0.87 s, 935 ->
1220 anchored updates/s from the first signed commitment, close 2.4 / 2.1 / 2.6 ms per partner at 10 / 50 / 100.
The final main (after a review's fixes: a claim reads first, two envelopes opened at a time) against the start,
alternated again in a slower hour (load 0.3-0.9): logreg 127 / 132 -> 104 / 105 ms, ratio 4.10 / 4.24 -> 3.86 /
3.87, CPU 113 / 118 -> 88 / 89 ms; mlp ratio 1.61 / 1.60 -> 1.45 / 1.49 (medians 1.47 / 1.47).
Tried and left: the partners as processes of their own (forked, training in-process), prototyped in this
benchmark: logreg 98 ms against ~120 ms with threads in the same hour, mlp no faster (the machine is saturated
by the training): not worth a second way to run a round.

Measured (issue 15, the next stop: the rounds' own contract calls reuse web3's first lookup of each function,
``chain/calls.py``; a read's answer decoded once per distinct answer; a sealed manifest hashed once), that stop's
start and its end alternated six times (load average 1.2): logreg x 1, ``--rounds 10``: ledger 93.7-99.9 ->
86.2-90.5 ms, this process's CPU per round 78-87 -> 72-78 ms, bare 23-25 ms on both, ratio 3.91-4.07 ->
3.44-3.72 (target 2.5: not met); mlp x 5 unchanged within noise (ratio 1.45-1.53 on both); ``--partners 100
--mode batched --rounds 2``: CPU 1080-1097 -> 1020-1053 ms, 1000-1050 anchored updates/s from the first signed
commitment on both.

Measured (issue 15, the stop after, on another 2-core machine, an AMD EPYC: an outbox's bytes up to 64 KiB in its
table instead of a new file; the report serialized once; this benchmark's ``ratio_floor``), load average ~1:
logreg x 1, ``--rounds 10``, four runs: ledger 92-107 ms, bare 22-25 ms, ratio 3.84-4.54 (target 2.5: not met),
this process's CPU 83-96 ms, every process's 134-151 ms (the node ~25 ms, the workers ~35 ms), ratio_floor
2.88-3.21: on two cores no spreading of the ledger round's work could bring it to 2.5. mlp x 5, ``--rounds 5``:
ratio 1.44-1.73 (target 1.5: met in some runs), ratio_floor 1.19-1.44. Making a new file costs 0.2-1 ms of CPU on
this machine's file system, more after many recent deletions (in the system's temporary folder after other runs:
0.4-1 ms; in a fresh folder elsewhere on the same disk: 0.04-0.2 ms), and a ledger round makes new files and
folders (block files, shard folders, staged bytes, accountant files), ~45 for logreg and ~170 for mlp: much of the
spread between runs. The outbox's staged files were 13 of them a round: ``Outbox.enqueue_many`` 20 -> 11.6 ms of
thread CPU a round under the profiler.
"""

from __future__ import annotations

import argparse
import functools
import inspect
import json
import os
import statistics
import sys
import tempfile
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch

from lepton_ledger import fl
from lepton_ledger.chain import agreements
from lepton_ledger.chain.agreements import AgreementTerms
from lepton_ledger.chain.anvil import Anvil, dev_account
from lepton_ledger.chain.connection import RequestCounter
from lepton_ledger.chain.deployment import DevRoles
from lepton_ledger.chain.transactions import Transactor
from lepton_ledger.rounds import outcome as round_outcome_module
from lepton_ledger.rounds.coordinator import Coordinator
from lepton_ledger.rounds.partner import Partner, TrainingSettings
from lepton_ledger.rounds.roles import publish_document
from lepton_ledger.rounds.rules import RoundRules
from lepton_ledger.rounds.world import build_world
from lepton_ledger.storage.local import LocalStore
from lepton_ledger.units import TOKEN
from lepton_ledger.workers.concurrent import run_each
from lepton_ledger.workers.local import EVALUATION_THREADS, LocalExecutor

MODEL = "logreg"  # the demo's model; --model and --epochs make the training heavier
MAX_NORM = 50.0
AGGREGATION = "fedavg"
PAYOUT_RULE = fl.PayoutRule.BY_SAMPLE_COUNT
REWARD_PER_ROUND = 300 * TOKEN
STAKE = 100 * TOKEN
DELTA = 1e-5
EPSILON_CAP = 1000.0  # the benchmark measures cost, not privacy: the cap must not end the run early
ROUND_WINDOW = 3600
DISPUTE_WINDOW = 600
ML_PHASES = ("train", "validate", "aggregate", "score", "evaluate", "split")


def processes_cpu_s(pid: int | None = None) -> float | None:
    """CPU seconds so far of process `pid` (default this one) and every process under it (the node, the training
    workers), all their threads, from Linux's per-thread scheduler figures (nanoseconds); None where the system
    has no such figures. Threads that ended are not counted: the round's threads, the node's and the workers'
    live through the run."""
    pid = os.getpid() if pid is None else pid
    total = 0
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/schedstat") as f:
                total += int(f.read().split()[0])
            with open(f"/proc/{pid}/task/{task}/children") as f:
                children = [int(c) for c in f.read().split()]
            for child in children:
                below = processes_cpu_s(child)
                total += round((below or 0.0) * 1e9)
    except (OSError, ValueError, IndexError):  # no such figures, or the process ended meanwhile
        return None if pid == os.getpid() else 0.0
    return total / 1e9


class PhaseClock:
    """Own (exclusive) seconds and number of calls per named phase: a phase's time excludes the phases nested
    inside it."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)
        self.calls: dict[str, int] = defaultdict(int)
        self._local = threading.local()  # per thread (partners run at the same time), its open phases
        self._lock = threading.Lock()

    @contextmanager
    def phase(self, name: str) -> Iterator[None]:
        children = self._local.__dict__.setdefault("children", [])  # per open phase, its nested phases' time
        start = time.perf_counter()
        children.append(0.0)
        try:
            yield
        finally:
            elapsed = time.perf_counter() - start
            nested = children.pop()
            with self._lock:
                self.seconds[name] += elapsed - nested
                self.calls[name] += 1
            if children:
                children[-1] += elapsed

    def timed(self, name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            with self.phase(name):
                return fn(*args, **kwargs)

        return wrapper

    def wrap(self, obj: Any, phases: dict[str, str]) -> None:
        """Times the methods of `obj` named in `phases` ({method: phase}); methods it lacks are skipped, so a
        renamed internal step only moves its time to its caller's phase."""
        for method, name in phases.items():
            fn = getattr(obj, method, None)
            if callable(fn):
                setattr(obj, method, self.timed(name, fn))

    def wrap_all(self, obj: Any, name: str) -> None:
        """Times every public method of `obj` as phase `name` (for helpers whose method names may change)."""
        for method in dir(obj):
            fn = getattr(obj, method, None) if not method.startswith("_") else None
            if inspect.ismethod(fn):
                setattr(obj, method, self.timed(name, fn))

    def take(self) -> tuple[dict[str, float], dict[str, int]]:
        """The seconds and calls so far, and a fresh start."""
        taken = dict(self.seconds), dict(self.calls)
        self.seconds, self.calls = defaultdict(float), defaultdict(int)
        return taken


class TimedExecutor:
    """Delegates to an executor; waiting for a task's result is the ``train`` phase."""

    def __init__(self, executor: Any, clock: PhaseClock) -> None:
        self._executor, self._clock = executor, clock

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
        future = self._executor.submit(fn, *args, **kwargs)
        future.result = self._clock.timed("train", future.result)
        return future

    def __getattr__(self, name: str) -> Any:
        return getattr(self._executor, name)


def time_requests(w3: Any, clock: PhaseClock) -> None:
    """Times every HTTP request `w3`'s provider sends to the node as the ``rpc`` phase, where RequestCounter
    counts them: web3's own requests and the plain batch requests of ``chain.batched`` alike."""
    session = w3.provider._request_session_manager
    session.make_post_request = clock.timed("rpc", session.make_post_request)


@dataclass
class Federation:
    """Everything both sides share: the data split, each partner's settings and address, the executor."""

    split: Any
    settings: list[TrainingSettings]
    addresses: list[str]
    executor: Any


@dataclass
class Ledger:
    """The ledger side, set up and ready for rounds."""

    w3: Any
    agreement_id: int
    coordinator: Coordinator
    partners: list[Partner]
    recipients: list[str]


def set_up_ledger(w3: Any, fed: Federation, n_rounds: int, workdir: Path, clock: PhaseClock) -> Ledger:
    """Deploys, registers every party with an X25519 key, proposes an agreement for `n_rounds`, has every partner
    sign and stake, funds the pool; then instruments the round's parts with `clock`. Not timed."""
    roles = DevRoles.from_dev_keys()
    coordinator_account = roles.coordinator
    accounts = [dev_account(10 + i) for i in range(len(fed.addresses))]
    tx = Transactor(w3, [*roles.accounts(), *accounts])
    world = build_world(tx, {a.address: a for a in accounts}, dispute_window=DISPUTE_WINDOW, roles=roles)
    deployment, token = world.deployment, world.token

    now = w3.eth.get_block("latest")["timestamp"]
    terms = AgreementTerms(
        parties=[a.address for a in accounts],
        reward_token=token.address,
        reward_per_round=REWARD_PER_ROUND,
        epsilon_cap=EPSILON_CAP,
        delta=DELTA,
        required_stake=STAKE,
        start=now - 1,
        end=now + 365 * 86400,
        max_rounds=n_rounds,
        coordinator=coordinator_account.address,
        arbiter=roles.admin.address,
        max_sample_count=100_000,
        payout_rule=PAYOUT_RULE,
        document={"task": "round overhead benchmark"},
    )
    store = LocalStore(workdir / "store", durable=False)  # as the demo's store
    publish_document(store, terms.document)  # the coordinator closes only by the rules of a document it produces
    agreement_id = agreements.propose(tx, deployment, coordinator_account.address, terms)
    world.join_and_fund(agreement_id, terms, funded_rounds=n_rounds)

    coordinator = Coordinator(
        account=coordinator_account,
        tx=tx,
        deployment=deployment,
        store=store,
        x25519_private=world.x25519["coordinator"],
        events_path=workdir / "events.sqlite",
        eval_set=fed.split.eval_set,
        model_name=fed.settings[0].model,
        rules=RoundRules(aggregation=AGGREGATION, max_norm=MAX_NORM),
        payout_rule=PAYOUT_RULE,
    )
    executor = TimedExecutor(fed.executor, clock)
    partners = [
        Partner(
            account=account,
            tx=tx,
            deployment=deployment,
            store=store,
            data=fed.split.partners[i],
            accountant=fl.PrivacyAccountant(
                partner=account.address, agreement=agreement_id, delta=DELTA, epsilon_cap=EPSILON_CAP
            ),
            executor=executor,
            settings=fed.settings[i],
        )
        for i, account in enumerate(accounts)
    ]

    time_requests(w3, clock)
    clock.wrap(tx, {m: "tx" for m in ("transact", "deploy", "sign", "send_raw", "wait")})
    clock.wrap(store, {"put": "put", "get": "get", "has": "get"})
    for p in partners:
        clock.wrap(
            p,
            {
                "reconcile": "reconcile",
                "fetch_model": "fetch",
                "check_budget": "budget",
                "seal_update": "seal",
                "commit": "commit",
                "sign_commitment": "sign",
            },
        )
    for owner in (*partners, coordinator):  # the crash-safety files, where the round's parts have them
        for attribute, name in (("outbox", "outbox"), ("accountant_file", "accountant")):
            if hasattr(owner, attribute):
                clock.wrap_all(getattr(owner, attribute), name)
    clock.wrap(
        coordinator,
        {
            "publish_model": "publish",
            "open_round": "open_round",
            "anchor_batch": "anchor",
            "commitments": "events",
            "open_updates": "open",
            "base_state": "fetch",
            "finalize": "finalize",
            "close_round": "close",
        },
    )
    # The round's arithmetic is rounds.outcome's (the functions the auditor re-runs): its steps, by their phases.
    clock.wrap(round_outcome_module, {"judge": "validate", "combine": "aggregate", "settle": "score"})
    clock.wrap(coordinator.evaluation, {"accuracy": "evaluate"})
    return Ledger(w3, agreement_id, coordinator, partners, world.recipients())


def ledger_round(
    ledger: Ledger,
    state: dict[str, torch.Tensor],
    round_id: int,
    mode: str,
    marks: dict[str, float] | None = None,
    counter: RequestCounter | None = None,
) -> tuple[dict, dict]:
    """Round `round_id` through the public calls: ``(new global model, payouts)``. `marks`, when given, gets the
    seconds of the steps that scale with partners: ``close`` (``close_round``, whole), and in batched mode
    ``anchor`` (``anchor_batch``, whole) and ``first_signed_to_anchored`` (from the first partner's signed
    commitment to the anchoring transaction's receipt); with `counter`, the requests each step sent to the node:
    ``requests_open`` (publishing the model and opening the round), ``requests_partners`` (every partner's
    round), ``requests_anchor`` (batched) and ``requests_close``.

    Raises:
        RuntimeError: the ledger opened another round than `round_id` (the bare side's seeds would not match).
    """
    c, agreement_id = ledger.coordinator, ledger.agreement_id
    marks = {} if marks is None else marks
    _, model_digest = c.publish_model(state)
    deadline = ledger.w3.eth.get_block("latest")["timestamp"] + ROUND_WINDOW
    opened = c.open_round(agreement_id, model_digest, deadline)
    if opened != round_id:
        raise RuntimeError(f"openRound gave round {opened}, expected {round_id}")

    def count(step: str) -> None:
        if counter is not None:
            marks[f"requests_{step}"] = counter.take()

    count("open")
    if mode == "single":  # the partners at the same time, as on their own machines
        run_each(lambda p: p.run_round(agreement_id, round_id, ledger.recipients), ledger.partners)
    else:
        # ``run_round_batched`` in its two halves: every partner's update made (on its own machine, where the
        # partners train at once), then every partner's commitment signed. On one machine, the first signature
        # would otherwise come before the other partners' training, which their own machines do meanwhile.
        def prepared(p: Partner) -> Any:
            p.reconcile(agreement_id, round_id, ledger.recipients)
            return p.prepare_update(agreement_id, round_id, ledger.recipients)

        updates = run_each(prepared, ledger.partners)

        def signed_at(pair: tuple[Partner, Any]) -> tuple[Any, float]:
            return pair[0].sign_commitment(pair[1]), time.perf_counter()

        signed, times = zip(*run_each(signed_at, list(zip(ledger.partners, updates))))
        count("partners")
        start = time.perf_counter()
        c.anchor_batch(agreement_id, round_id, list(signed))
        end = time.perf_counter()
        marks["anchor"], marks["first_signed_to_anchored"] = end - start, end - min(times)
        count("anchor")
    if mode == "single":
        count("partners")
    start = time.perf_counter()
    outcome = c.close_round(agreement_id, round_id)
    marks["close"] = time.perf_counter() - start
    count("close")
    return outcome.aggregate, dict(outcome.report.payouts)


def round_seeds(ledger: Ledger, round_id: int) -> list[int]:
    """The training seed each partner uses in `round_id` (``Partner.round_seed`` where partners derive one per
    round, else their fixed ``settings.seed``), so that the bare side trains with the same seeds."""
    return [
        p.round_seed(ledger.agreement_id, round_id) if hasattr(p, "round_seed") else p.settings.seed
        for p in ledger.partners
    ]


def bare_round(
    fed: Federation, state: dict[str, torch.Tensor], seeds: list[int], clock: PhaseClock
) -> tuple[dict, dict[str, int]]:
    """The same round's ML work alone, each partner training with its seed in `seeds`: ``(new global model,
    payouts)``."""
    split = fed.split
    model = fl.build_model(fed.settings[0].model, split.input_dim, split.num_classes, seed=0)
    model.load_state_dict(state)
    with clock.phase("train"):  # every partner's training submitted at once, as the ledger side's partners do
        futures = [
            fed.executor.submit(
                fl.train_local,
                model=model,
                data=data,
                epochs=s.epochs,
                batch_size=s.batch_size,
                lr=s.lr,
                max_grad_norm=s.max_grad_norm,
                noise_multiplier=s.noise_multiplier,
                delta=DELTA,
                accountant="rdp",
                seed=seed,
                device="cpu",
            )
            for data, s, seed in zip(split.partners, fed.settings, seeds)
        ]
        results = [f.result() for f in futures]
    updates = {address: (r.delta, r.sample_count) for address, r in zip(fed.addresses, results)}

    def accuracy(candidate: dict[str, torch.Tensor]) -> float:
        with clock.phase("evaluate"):
            m = fl.build_model(fed.settings[0].model, split.input_dim, split.num_classes, seed=0)
            m.load_state_dict(candidate)
            return fl.evaluate(m, split.eval_set, device="cpu")["accuracy"]

    with clock.phase("validate"):
        checked = fl.validate_updates(updates, state, max_norm=MAX_NORM)
    with clock.phase("aggregate"):
        aggregate = fl.apply_delta_to_state(state, fl.aggregate(AGGREGATION, checked.accepted.values()))
    with clock.phase("score"):
        scores = fl.leave_one_out(
            list(checked.accepted), fl.aggregate_utility(state, checked.accepted, accuracy, rule=AGGREGATION)
        )
    with clock.phase("split"):
        payouts = fl.split_reward(
            PAYOUT_RULE,
            REWARD_PER_ROUND,
            scores=scores,
            partners=list(checked.accepted),
            sample_counts={p: int(w) for p, (_, w) in checked.accepted.items()},
        )
    accuracy(aggregate)  # the new model's accuracy, which a round reports
    return aggregate, payouts


@contextmanager
def data_dir_at(path: Path) -> Iterator[None]:
    """``LEPTON_DATA_DIR`` = `path` for the run: the outboxes and accountant files that partners and coordinator
    keep there by default belong to this throwaway chain, not to the user's data directory."""
    before = os.environ.get("LEPTON_DATA_DIR")
    os.environ["LEPTON_DATA_DIR"] = str(path)
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("LEPTON_DATA_DIR", None)
        else:
            os.environ["LEPTON_DATA_DIR"] = before


def same_model(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    """Equal up to the order of floating-point sums: the ledger aggregates in chain order, i.e. the order in
    which concurrent partners happened to commit; the bare side in partner order."""
    return a.keys() == b.keys() and all(torch.allclose(a[k], b[k], rtol=1e-5, atol=1e-7) for k in a)


def run(
    *,
    partners: int,
    rounds: int,
    mode: str,
    warmup: int = 1,
    model: str = MODEL,
    epochs: int = 1,
    workers: int | None = None,
) -> dict[str, Any]:
    """Sets up both sides, runs `warmup` + `rounds` interleaved pairs, prints the figures; returns the summary.

    Raises:
        ValueError: fewer than 1 partner or timed round, a negative warm-up, or an unknown `mode`.
    """
    if partners < 1 or rounds < 1 or warmup < 0 or epochs < 1 or (workers is not None and workers < 0):
        raise ValueError(
            f"need partners >= 1, rounds >= 1, warmup >= 0, epochs >= 1, workers >= 0; got {partners}, "
            f"{rounds}, {warmup}, {epochs}, {workers}"
        )
    if mode not in ("single", "batched"):
        raise ValueError(f"mode must be 'single' or 'batched', not {mode!r}")
    workers = workers or min(partners, os.cpu_count() or 1)  # the demo's: one worker process per core
    split = fl.make_federated("digits", num_partners=partners, seed=0, alpha=None, eval_fraction=0.2)
    settings = [
        TrainingSettings(model=model, epochs=epochs, batch_size=64, noise_multiplier=1.0, seed=i)
        for i in range(partners)
    ]  # batch 64 and the class's learning rate, as every figure of issue 15 was measured (the demo's logreg
    # now trains with batch 32 and lr 1, partner.MODEL_TRAINING: more steps, the same ledger)
    addresses = [dev_account(10 + i).address for i in range(partners)]
    ledger_clock, bare_clock = PhaseClock(), PhaseClock()
    timings: dict[str, list[float]] = {"ledger": [], "bare": []}
    cpu: dict[str, list[float]] = {"ledger": [], "bare": []}  # this process's CPU seconds (all its threads)
    all_cpu: dict[str, list[float]] = {"ledger": [], "bare": []}  # and its node's and workers' (processes_cpu_s)
    phases: dict[str, list[dict[str, float]]] = {"ledger": [], "bare": []}
    ledger_calls: list[dict[str, int]] = []
    same = True
    with (
        tempfile.TemporaryDirectory(prefix="round-overhead-") as tmp,
        data_dir_at(Path(tmp) / "data"),
        Anvil(accounts=10 + partners) as w3,
        LocalExecutor(max_workers=workers, gpus=[], threads_per_worker=1) as executor,  # as the demo's
    ):
        fed = Federation(split, settings, addresses, executor)
        started = time.perf_counter()
        ledger = set_up_ledger(w3, fed, warmup + rounds, Path(tmp), ledger_clock)
        setup_s = time.perf_counter() - started
        counter = RequestCounter(w3)
        requests: list[int] = []
        polls: list[int] = []
        scaling: list[dict[str, float]] = []
        initial = fl.build_model(model, split.input_dim, split.num_classes, seed=0).state_dict()
        state = {"ledger": initial, "bare": dict(initial)}
        for i in range(warmup + rounds):
            results = {}
            for side in ("ledger", "bare") if i % 2 == 0 else ("bare", "ledger"):
                clock = ledger_clock if side == "ledger" else bare_clock
                clock.take()
                counter.take()
                counter.pending_polls = 0
                all_start = processes_cpu_s()
                start, cpu_start = time.perf_counter(), time.process_time()
                if side == "ledger":
                    marks: dict[str, float] = {}
                    results[side] = ledger_round(ledger, state[side], i + 1, mode, marks, counter)
                else:
                    results[side] = bare_round(fed, state[side], round_seeds(ledger, i + 1), clock)
                elapsed, cpu_elapsed = time.perf_counter() - start, time.process_time() - cpu_start
                all_end = processes_cpu_s()
                own, calls = clock.take()
                own["other"] = elapsed - sum(own.values())
                if i >= warmup:
                    timings[side].append(elapsed)
                    cpu[side].append(cpu_elapsed)
                    if all_start is not None and all_end is not None:
                        all_cpu[side].append(all_end - all_start)
                    phases[side].append(own)
                    if side == "ledger":
                        ledger_calls.append(calls)
                        requests.append(sum(int(v) for k, v in marks.items() if k.startswith("requests_")))
                        polls.append(counter.pending_polls)
                        scaling.append(marks)
                state[side] = results[side][0]
            same = (
                same
                and same_model(results["ledger"][0], results["bare"][0])
                and results["ledger"][1] == results["bare"][1]
            )

    ledger_s, bare_s = min(timings["ledger"]), min(timings["bare"])
    summary = {
        "partners": partners,
        "mode": mode,
        "model": model,
        "epochs": epochs,
        "rounds": rounds,
        "warmup": warmup,
        "ratio": round(ledger_s / bare_s, 3),
        "ratio_median": round(statistics.median(timings["ledger"]) / statistics.median(timings["bare"]), 3),
        "ledger_s": round(ledger_s, 4),
        "bare_s": round(bare_s, 4),
        "same_result": same,
        "setup_s": round(setup_s, 2),
        "rpc_requests": max(requests),
        "rpc_requests_per_partner": round(max(m["requests_partners"] for m in scaling) / partners, 2),
        "rpc_requests_close": max(int(m["requests_close"]) for m in scaling),
        "workers": workers,
        "receipt_polls_pending": max(polls),
        "close_ms_per_partner": round(min(m["close"] for m in scaling) / partners * 1e3, 3),
        "ledger_cpu_ms": round(min(cpu["ledger"]) * 1e3, 1),
        "bare_cpu_ms": round(min(cpu["bare"]) * 1e3, 1),
    }
    if all_cpu["ledger"] and all_cpu["bare"]:
        cores = len(os.sched_getaffinity(0))
        summary["cores"] = cores
        summary["ledger_all_cpu_ms"] = round(min(all_cpu["ledger"]) * 1e3, 1)
        summary["bare_all_cpu_ms"] = round(min(all_cpu["bare"]) * 1e3, 1)
        summary["ratio_floor"] = round(summary["ledger_all_cpu_ms"] / 1e3 / cores / bare_s, 3)
    if mode == "batched":
        anchor_s = min(m["anchor"] for m in scaling)
        summary["anchor_s"] = round(anchor_s, 4)
        summary["first_signed_to_anchored_s"] = round(min(m["first_signed_to_anchored"] for m in scaling), 4)
        summary["anchored_per_s"] = round(partners / anchor_s, 1)
        summary["anchored_per_s_from_first_signed"] = round(partners / summary["first_signed_to_anchored_s"], 1)
        summary["rpc_requests_anchor"] = max(int(m["requests_anchor"]) for m in scaling)
    print_report(summary, timings, phases, ledger_calls)
    return summary


def print_report(
    summary: dict[str, Any],
    timings: dict[str, list[float]],
    phases: dict[str, list[dict]],
    ledger_calls: list[dict[str, int]],
) -> None:
    s = summary
    print(
        f"one DP round, {s['partners']} partners, digits, {s['model']} x {s['epochs']} epoch(s), {s['mode']} "
        f"commits, partners at the same time, {s['workers']} worker process(es), torch threads "
        f"{torch.get_num_threads()}; {s['rounds']} timed rounds per side, interleaved, after {s['warmup']} warm-up "
        f"round(s); "
        f"set-up (not timed) {s['setup_s']:.1f} s"
    )
    for side in ("ledger", "bare"):
        t = timings[side]
        print(f"  {side:6s} fastest {min(t) * 1e3:8.1f} ms   median {statistics.median(t) * 1e3:8.1f} ms")
    print("own time per phase, mean per timed round (ms):")
    names = sorted(
        {n for side in phases.values() for p in side for n in p}, key=lambda n: (n not in ML_PHASES, n == "other", n)
    )
    mean = {side: {n: statistics.fmean(p.get(n, 0.0) for p in phases[side]) for n in names} for side in phases}
    calls = {n: statistics.fmean(c.get(n, 0) for c in ledger_calls) for n in names}
    print(f"  {'phase':12s} {'ledger':>9s} {'bare':>9s} {'extra':>9s} {'ledger calls':>13s}")
    for n in names:
        extra = mean["ledger"][n] - mean["bare"][n]
        tag = "  (ML work)" if n in ML_PHASES else ""
        count = f"{calls[n]:13.0f}" if n != "other" else " " * 13
        print(f"  {n:12s} {mean['ledger'][n] * 1e3:9.1f} {mean['bare'][n] * 1e3:9.1f} {extra * 1e3:9.1f} {count}{tag}")
    total = {side: sum(mean[side].values()) for side in mean}
    print(
        f"  {'total':12s} {total['ledger'] * 1e3:9.1f} {total['bare'] * 1e3:9.1f} "
        f"{(total['ledger'] - total['bare']) * 1e3:9.1f}"
    )
    print(
        f"CPU of this process per round (all its threads; not the workers' training, not the node), fastest: "
        f"ledger {s['ledger_cpu_ms']:.1f} ms, bare {s['bare_cpu_ms']:.1f} ms (a busy machine slows it less than the "
        f"wall clock)"
    )
    if "ratio_floor" in s:
        print(
            f"CPU of every process of a round (this one, the node, the training workers), least: ledger "
            f"{s['ledger_all_cpu_ms']:.1f} ms, bare {s['bare_all_cpu_ms']:.1f} ms; on {s['cores']} core(s) a ledger "
            f"round cannot take less than {s['ledger_all_cpu_ms'] / s['cores']:.1f} ms, {s['ratio_floor']:.2f} x the "
            f"fastest bare round, however its work were spread"
        )
    print(f"coordinator's close_round: {s['close_ms_per_partner']:.2f} ms per partner (fastest timed round)")
    if s["mode"] == "batched":
        print(
            f"batched commitments: every signed commitment collected to the anchoring receipt (anchor_batch) "
            f"{s['anchor_s'] * 1e3:.1f} ms = {s['anchored_per_s']:.0f} anchored updates/s; from the first signed "
            f"commitment {s['first_signed_to_anchored_s'] * 1e3:.1f} ms = {s['anchored_per_s_from_first_signed']:.0f} "
            f"anchored updates/s (every update made first, as on the partners' own machines; the other partners' "
            f"signatures made on this machine meanwhile)"
        )
    print(
        f"JSON-RPC requests per ledger round (HTTP requests to the node, most of any timed round): "
        f"{s['rpc_requests']} = {s['rpc_requests'] / s['partners']:.1f} per partner, besides "
        f"{s['receipt_polls_pending']} receipt polls answered 'not mined yet' (they depend on when the node mines)"
    )
    anchor = f", anchoring the batch {s['rpc_requests_anchor']}" if s["mode"] == "batched" else ""
    print(
        f"  of which: {s['rpc_requests_per_partner']:.1f} per partner (its own round){anchor}, closing the round "
        f"{s['rpc_requests_close']}; the rest publishing the model and opening the round"
    )
    print(f"same aggregate and payouts on both sides, every round: {s['same_result']}")
    print(json.dumps(summary))


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--partners", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=5, help="timed rounds per side")
    parser.add_argument("--mode", choices=("single", "batched"), default="single")
    parser.add_argument("--warmup", type=int, default=1, help="untimed rounds per side first")
    parser.add_argument("--model", choices=("logreg", "mlp", "cnn"), default=MODEL, help="the partners' model")
    parser.add_argument("--epochs", type=int, default=1, help="local DP-SGD epochs per round")
    parser.add_argument(
        "--workers",
        type=int,
        default=0,
        help="training worker processes, both sides (0: one per core, at most one per partner)",
    )
    parser.add_argument(
        "--torch-threads",
        type=int,
        default=0,
        help="torch threads of this process, where both coordinators evaluate (0: EVALUATION_THREADS, as the "
        "demo and the coordinator's commands set them; workers have one each, as in the demo)",
    )
    args = parser.parse_args(argv)
    if args.torch_threads < 0:
        parser.error(f"--torch-threads must be >= 0, not {args.torch_threads}")
    before = torch.get_num_threads()
    torch.set_num_threads(args.torch_threads or EVALUATION_THREADS)
    try:
        return run(
            partners=args.partners,
            rounds=args.rounds,
            mode=args.mode,
            warmup=args.warmup,
            model=args.model,
            epochs=args.epochs,
            workers=args.workers,
        )
    finally:
        torch.set_num_threads(before)  # a caller's process (a test) keeps its own


if __name__ == "__main__":
    main()
