"""Deriving the rounds an audit examines in worker processes, a few rounds ahead of the audit, and opening their
updates (:func:`open_updates`).

A round's derivation (``derive.RoundDeriver``: fetching and hashing its artifacts and envelopes, decrypting them,
checking their signatures, re-deriving the rejections, the aggregate, the scores and payouts) needs nothing from
other rounds and is most of the audit's cost (an envelope is opened as its blocks are read, envelope.stream: an
update is held once, as plaintext, never whole beside it); the rest (the epsilon re-composition over earlier
rounds, the chain's reads, the audit state) stays in the one process that records. :class:`RoundWorkers` gives
the audit each round's derivation in the order it asks for them; with one worker it derives them in the auditing
process itself, through the same function, so the two audits agree check for check. Only checks, manifests and
figures cross between processes, never an update's tensors.

Workers are forked (the store, the key, the evaluation set and what was imported are theirs at once), evaluate
on one torch thread each, and talk to the node through their own connection, never the parent's. A worker that
dies ends the audit with :class:`AuditWorkerDied`: the rounds recorded before it were verified in full; the
round it was deriving and the later ones are not.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from typing import Any, Generic, Self, TypeVar

from web3 import Web3

from ..chain.transport import node_web3
from ..envelope import OpenedEnvelope
from ..envelope.format import DEFAULT_MAX_ENVELOPE_BYTES
from ..envelope.stream import EnvelopeStream
from ..errors import LeptonError
from ..storage.store import Store
from ..workers import use_evaluation_threads
from .chain_view import Commitment
from .checks.artifacts import open_commitment, resolve
from .model import CheckResult

__all__ = [
    "AuditWorkerDied",
    "OpenedUpdate",
    "RoundWorkers",
    "Where",
    "default_workers",
    "open_updates",
]

Task = TypeVar("Task")
Result = TypeVar("Result")

MAX_WORKERS = 8  # past this, the recording process is the bottleneck


class AuditWorkerDied(LeptonError, RuntimeError):
    """A worker process that opened updates died before it answered."""


def default_workers() -> int:
    """One worker a core, up to :data:`MAX_WORKERS`; one (no worker process) where fork is unavailable."""
    if "fork" not in multiprocessing.get_all_start_methods():
        return 1
    return max(
        1,
        min(
            MAX_WORKERS,
            len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 1,
        ),
    )


@dataclass
class OpenedUpdate:
    """One commitment's envelope, fetched and opened: ``cids_resolve``'s result and CID, whether the bytes
    resolved, then (when they did) ``open_commitment``'s results, opened envelope and rejection code."""

    fetch_check: CheckResult
    cid: str
    resolved: bool
    results: list[CheckResult]
    opened: OpenedEnvelope | None
    code: str | None


@dataclass(frozen=True)
class _WorkerView:
    """The part of ``ChainView`` that opening an envelope reads, on the worker's own connection."""

    w3: Web3
    chain_id: int
    ledger_address: str
    block: int


class Where:
    """The tx hash and block of a commitment, where ``resolve`` expects an event."""

    def __init__(self, tx_hash: str, block: int) -> None:
        self.tx_hash, self.block_number = tx_hash, block


def open_updates(
    view: Any, store: Store, key: bytes, record: Any, commitments: Sequence[Commitment]
) -> list[OpenedUpdate]:
    """Fetches and opens each commitment's envelope, in order (in the auditing process or a worker)."""
    out = []
    for c in commitments:
        envelope = EnvelopeStream(key, max_envelope_bytes=DEFAULT_MAX_ENVELOPE_BYTES)  # opened as it is read
        fetched = resolve(
            store,
            c.envelope_digest,
            what="envelope",
            agreement_id=c.agreement_id,
            round_id=c.round,
            partner=c.partner,
            event=Where(c.tx_hash, c.block),
            max_bytes=DEFAULT_MAX_ENVELOPE_BYTES,
            sink=envelope.feed,
        )
        if not fetched.check.ok:
            out.append(OpenedUpdate(fetched.check, fetched.cid, False, [], None, None))
            continue
        results, opened, code = open_commitment(view, record, c, fetched, envelope)
        out.append(OpenedUpdate(fetched.check, fetched.cid, True, results, opened, code))
    return out


_worker: dict[str, Any] = {}  # the worker process's derivation and view, set once by _start_worker


def _start_worker(work: Callable[[Any, Any], Any], url: str, chain_id: int, ledger: str, block: int) -> None:
    # Ctrl-C reaches the whole process group: the auditing process stops the pool and says so in one line.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    use_evaluation_threads()  # one a worker: the workers are one a core
    _worker.update(work=work, view=_WorkerView(node_web3(url), chain_id, ledger, block))


def _work_in_worker(task: Any) -> Any:
    return _worker["work"](_worker["view"], task)


class RoundWorkers(Generic[Task, Result]):
    """Derives `tasks` (each with the ``record`` of its round, in the order the audit examines them) with
    ``work(view, task)`` in `workers` processes, at most ``2 x workers`` rounds ahead of :meth:`take`; one
    worker: in this process, on `view`. ``work``'s answers cross between processes: they must pickle."""

    def __init__(self, view: Any, tasks: Sequence[Task], workers: int, work: Callable[[Any, Task], Result]) -> None:
        self.view, self.work = view, work
        self._waiting = deque(tasks)
        self._ahead: deque[tuple[tuple[int, int], Future[Result]]] = deque()
        self._pool: ProcessPoolExecutor | None = None
        if workers > 1 and len(tasks) > 1:
            url = getattr(view.w3.provider, "endpoint_uri", None)
            if url:  # a node reached over HTTP: each worker opens its own connection to it
                self._pool = ProcessPoolExecutor(
                    min(workers, len(tasks)),
                    mp_context=multiprocessing.get_context("fork"),
                    initializer=_start_worker,
                    initargs=(work, url, view.chain_id, view.ledger_address, view.block),
                )
                self._depth = 2 * workers

    def take(self, task: Task) -> Result:
        """The derivation of `task` (the next of the sequence, or any task when serial).

        Raises:
            AuditWorkerDied: a worker process died.
        """
        record = task.record  # type: ignore[attr-defined]
        if self._pool is None:
            return self.work(self.view, task)
        self._fill()
        if not self._ahead:  # the pool broke before this round could be handed to it
            self.close()
            raise AuditWorkerDied(
                f"an audit worker process died before agreement {record.agreement_id} round "
                f"{record.round} was derived; that round and the later ones were not recorded"
            )
        (a, r), future = self._ahead.popleft()
        assert (a, r) == (record.agreement_id, record.round), "rounds taken out of the order given"
        try:
            return future.result()
        except BrokenProcessPool:
            self.close()
            raise AuditWorkerDied(
                f"an audit worker process died while deriving agreement {a} round "
                f"{r}; that round and the later ones were not recorded"
            ) from None

    def _fill(self) -> None:
        assert self._pool is not None
        while self._waiting and len(self._ahead) < self._depth:
            task = self._waiting.popleft()
            record = task.record  # type: ignore[attr-defined]
            try:
                future = self._pool.submit(_work_in_worker, task)
            except BrokenProcessPool:  # a worker died already: take() reports it for the round it was on
                break
            self._ahead.append(((record.agreement_id, record.round), future))

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
