"""The main job: ``lepton-ledger demo`` (``make demo``), the whole story on a fresh local anvil.

Deploys the system and a reward token, registers the partners (and the coordinator and an auditor) with
X25519 keys, proposes an agreement, has the partners sign it (every second one by a relayed EIP-712
signature), stake, funds the pool, then runs R differentially private federated rounds on the digits data
through :class:`~lepton_ledger.rounds.Partner` and :class:`~lepton_ledger.rounds.Coordinator` (single
submissions or one anchored batch per round), finalizes each round and, after the dispute window (local
time travel), has every partner claim its payout.

Everything needed to audit the run later is left in ``out_dir``:

- ``deployment.json``: chain id, contract addresses, the reward token, and how to restart the chain;
- ``summary.json``: per round accuracy, each partner's cumulative epsilon and payout, the CIDs of the model,
  the envelopes, the batch document (batched mode), the aggregate and the report, and the gas used;
- ``chain-state.json``: anvil's ``--state`` file (``Anvil(state_file=...)`` restarts the same chain);
- ``store/``: the block store (a :class:`~lepton_ledger.storage.local.LocalStore`) holding every artifact;
- ``keys/``: the development keys (Ethereum and X25519) of every party, for local use only.
"""

from __future__ import annotations

import json
import os
import shutil
import threading
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
from eth_account.signers.local import LocalAccount
from rich.console import Console
from web3 import Web3
from web3.types import TxReceipt

from .. import fl
from ..chain import agreements
from ..chain.agreements import AgreementTerms
from ..chain.anvil import Anvil, advance_time, dev_account
from ..chain.deployment import DevRoles
from ..chain.transactions import Transactor
from ..errors import ConfigurationError
from ..fl.aggregation import default_params
from ..storage.local import LocalStore
from ..units import TOKEN
from ..workers import Executor, open_executor
from .coordinator import Coordinator
from .driver import ROUND_WINDOW, OnEvent, drive_round
from .outbox import Outbox
from .partner import Partner, TrainingSettings
from .roles import publish_document
from .rules import DEFAULT_MAX_NORM, RoundRules
from .world import build_world

__all__ = ["DemoResult", "GasMeter", "RoundRules", "run_demo"]

STATE_FILE = "chain-state.json"
STORE_DIR = "store"
KEYS_DIR = "keys"
OUTBOX_DIR = "outbox"  # one SQLite outbox per role: every put and transaction of a round, crash-safe
REWARD_PER_ROUND = 300 * TOKEN
REQUIRED_STAKE = 100 * TOKEN
COORDINATOR_BOND = 100 * TOKEN  # slashed to the parties when a challenge of the coordinator's results is upheld
COORDINATOR_SPARE = 1000 * TOKEN  # left in the coordinator's account after the demo, to fund a new agreement
EPSILON_CAP = 10.0
MAX_SAMPLE_COUNT = 100_000  # bound on each update's sample count, signed in the terms
DELTA = 1e-5
DISPUTE_WINDOW = 600
MAX_NORM = DEFAULT_MAX_NORM  # L2 bound on an update (logreg on digits: honest updates stay well below it)
ALPHA = 0.5  # Dirichlet label skew of the partners' data: each partner's own class mix (fl.make_federated)
FREE_RIDER_LR = 1e-6  # the free-rider "trains" with a step so small that its update is next to zero
MODELS = ("logreg", "mlp", "fusion")
KEYS_NOTE = (
    "development keys from anvil's public test mnemonic and freshly generated X25519 keys, stored in "
    "plain text: for local use only, never for a real chain"
)


class GasMeter(Transactor):
    """A Transactor that adds up the gas of every receipt it waits for."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.gas_used = 0
        self._lock = threading.Lock()  # partners wait for their receipts at the same time

    def wait(self, tx_hash: bytes, *, timeout: float | None = None) -> TxReceipt:
        # Every receipt passes here: direct transactions and the outbox's alike.
        receipt = super().wait(tx_hash, timeout=timeout)
        with self._lock:
            self.gas_used += int(receipt["gasUsed"])
        return receipt


@dataclass
class DemoResult:
    out_dir: Path
    chain_id: int
    addresses: dict[str, str]
    agreement_id: int
    summary: dict[str, Any]


def _step(console: Console, text: str) -> None:
    console.print(f"[bold cyan]>[/] {text}")


def _short(value: str, n: int = 14) -> str:
    return value if len(value) <= n + 3 else value[:n] + "..."


@dataclass(frozen=True)
class Story:
    """What the demo shows: the model, whether a free-rider, non-IID partners, and the payout rule."""

    model: str
    free_rider: bool
    non_iid: bool
    payout_rule: fl.PayoutRule


MAX_PARTNERS = 40  # digits keeps 1437 training samples: the skewed split gives each of 40 at least 10


def run_demo(
    out_dir: Path,
    *,
    partners: int = 3,
    rounds: int = 5,
    mode: str = "single",
    dispute_window: int = DISPUTE_WINDOW,
    rules: RoundRules | None = None,
    model: str = "logreg",
    free_rider: bool = True,
    non_iid: bool = True,
    payout_rule: fl.PayoutRule = fl.PayoutRule.PROPORTIONAL,
    console: Console | None = None,
) -> DemoResult:
    """Runs the whole story on a fresh anvil whose state is saved to ``out_dir/chain-state.json``.

    The partners differ: a non-IID split of digits (Dirichlet label skew ``ALPHA``, so unequal sizes and class
    mixes) and, with `free_rider` and at least two partners, a last partner that sends a near-zero update. The
    agreement pays by measured contribution (the proportional rule over the round's contribution scores), so
    payouts differ between partners and the free-rider earns next to nothing. `model` is ``logreg``, ``mlp`` (two
    hidden layers of 512, ~300k parameters, 1.2 MB: every artifact spans several blocks) or
    ``fusion`` (late fusion of three modality encoders, alpha f(x) + beta f(y) + gamma f(z)). `non_iid`,
    `free_rider` and `payout_rule` turn the story back into equal IID partners paid as the rule says.

    Raises:
        ConfigurationError: fewer than one partner or round or more than ``MAX_PARTNERS``, an unknown mode,
            aggregation rule or scoring method, `out_dir` a file.
    """
    if partners < 1 or rounds < 1:
        raise ConfigurationError("the demo needs at least one partner and one round")
    out_dir = Path(out_dir)
    if partners > MAX_PARTNERS:
        raise ConfigurationError(
            f"the demo runs at most {MAX_PARTNERS} partners (each needs a share of the digits "
            f"data set and a funded development account), not {partners}"
        )
    if out_dir.exists() and not out_dir.is_dir():
        raise ConfigurationError(f"--out {out_dir} is a file, not a folder: name a folder for the demo's output")
    if mode not in ("single", "batched"):
        raise ConfigurationError(f"mode must be 'single' or 'batched', not {mode!r}")
    if model not in MODELS:
        raise ConfigurationError(f"the demo's model is one of {', '.join(MODELS)}, not {model!r}")
    rules = rules if rules is not None else RoundRules()
    rules.check_partners(partners)
    console = console or Console()
    out_dir.mkdir(parents=True, exist_ok=True)
    state_file = out_dir / STATE_FILE
    # A fresh chain (and a fresh event index, with its WAL files, and outboxes) every run.
    for stale in (state_file, *(out_dir / f"events.sqlite{suffix}" for suffix in ("", "-wal", "-shm"))):
        stale.unlink(missing_ok=True)
    shutil.rmtree(out_dir / OUTBOX_DIR, ignore_errors=True)
    started = time.monotonic()
    anvil = Anvil(accounts=10 + partners, state_file=state_file)
    # Ray when $LEPTON_RAY_ADDRESS is set (settings.ray_address), else one local worker process
    workers = min(partners, os.cpu_count() or 1)  # partners train at the same time, one worker process each
    with anvil as w3, open_executor(max_workers=workers, gpus=[], threads_per_worker=1) as executor:
        story = Story(model, free_rider and partners >= 2, non_iid, fl.PayoutRule(payout_rule))
        result = _story(w3, anvil, executor, out_dir, partners, rounds, mode, dispute_window, rules, story, console)
    result.summary["wall_seconds"] = round(time.monotonic() - started, 2)
    (out_dir / "summary.json").write_text(json.dumps(result.summary, indent=2) + "\n")
    _step(console, f"chain state saved to {state_file} (restart: Anvil(state_file=...) or anvil --state {state_file})")
    return result


def _story(
    w3: Web3,
    anvil: Anvil,
    executor: Executor,
    out_dir: Path,
    n_partners: int,
    n_rounds: int,
    mode: str,
    dispute_window: int,
    rules: RoundRules,
    story: Story,
    console: Console,
) -> DemoResult:
    model = story.model
    alpha, sizes = (ALPHA, _sizes(n_partners)) if story.non_iid else (None, None)
    rule_name = story.payout_rule.name.lower()
    if not rules.aggregation_params:  # the rule's defaults for the party count
        rules = replace(rules, aggregation_params=default_params(rules.aggregation, n_partners))
    aggregation_params = rules.aggregation_params
    roles = DevRoles.from_dev_keys()
    admin, coord_account = roles.admin, roles.coordinator
    names = [f"partner{i + 1}" for i in range(n_partners)]
    accounts = {name: dev_account(10 + i) for i, name in enumerate(names)}
    tx = GasMeter(w3, [*roles.accounts(), *accounts.values()])
    chain_id = w3.eth.chain_id
    _step(console, f"anvil up at {anvil.url}, chain id {chain_id}")

    # -- deploy, register (with X25519 keys) ----------------------------------------------------------
    world = build_world(
        tx,
        accounts,
        dispute_window=dispute_window,
        roles=roles,
        profile=lambda who: {"name": who, "contact": f"ml@{who}.example"},
        on_step=lambda line: _step(console, line),
    )
    deployment, token, x25519 = world.deployment, world.token, world.x25519
    addresses = {**deployment.addresses(), "LeptonToken": token.address}
    deployment.write(
        out_dir / "deployment.json",
        rpc_url=anvil.url,
        chain_id=chain_id,
        extra={
            "reward_token": token.address,
            "state_file": STATE_FILE,
            "store": STORE_DIR,
            "keys": KEYS_DIR,
            "restart": f"anvil --chain-id {chain_id} --state {STATE_FILE} (or Anvil(state_file=...)); "
            "the rpc_url above is only live while the demo runs",
            "dispute_window": dispute_window,
            "model": model,
            "max_norm": rules.max_norm,
            "aggregation": rules.aggregation,
            "aggregation_params": aggregation_params,
            "scoring": rules.scoring,
            # how to rebuild the held-out evaluation set whose commitment each round carries (fl.make_federated)
            "eval_set": {
                "dataset": "digits",
                "num_partners": n_partners,
                "seed": 0,
                "alpha": alpha,
                **({"sizes": sizes} if sizes else {}),
                "eval_fraction": 0.2,
            },
        },
    )
    _write_keys(out_dir / KEYS_DIR, roles, accounts, x25519)

    # -- propose, sign, stake, fund -------------------------------------------------------------------
    now = w3.eth.get_block("latest")["timestamp"]
    terms_doc = {
        "task": "digits classification",
        "model": model,
        "rounds": n_rounds,
        "epsilon_cap": EPSILON_CAP,
        "delta": DELTA,
        "required_stake": REQUIRED_STAKE,
        "reward_per_round": REWARD_PER_ROUND,
        "payout_rule": rule_name,
        "rules": rules.report_fields(),
    }  # the round rules the parties sign
    terms = AgreementTerms(
        parties=[a.address for a in accounts.values()],
        reward_token=token.address,
        reward_per_round=REWARD_PER_ROUND,
        epsilon_cap=EPSILON_CAP,
        delta=DELTA,
        required_stake=REQUIRED_STAKE,
        start=now - 1,
        end=now + 365 * 86400,
        max_rounds=n_rounds,
        coordinator=coord_account.address,
        arbiter=admin.address,
        max_sample_count=MAX_SAMPLE_COUNT,
        payout_rule=story.payout_rule,
        document=terms_doc,
        coordinator_bond=COORDINATOR_BOND,
    )
    agreement_id = agreements.propose(tx, deployment, coord_account.address, terms)
    _step(
        console,
        f"agreement {agreement_id} proposed: {n_rounds} rounds, epsilon cap {EPSILON_CAP}, "
        f"{REWARD_PER_ROUND / TOKEN:g} LRW per round, paid by the {rule_name} rule"
        + (f" (measured contribution: {rules.scoring} scores)" if rule_name == "proportional" else ""),
    )
    world.join_and_fund(
        agreement_id,
        terms,
        relayed=lambda i: i % 2 == 1 or n_partners == 1,
        funded_rounds=n_rounds,
        on_step=lambda line: _step(console, line),
    )
    world.mint(coord_account.address, COORDINATOR_SPARE)  # to fund another agreement (examples/walkthrough.py)
    setup_gas = tx.gas_used

    # -- rounds ---------------------------------------------------------------------------------------
    store = LocalStore(out_dir / STORE_DIR, durable=False)
    publish_document(store, terms_doc)  # the coordinator closes by its rules, the audit checks the reports' by them
    split = fl.make_federated("digits", num_partners=n_partners, seed=0, alpha=alpha, eval_fraction=0.2, sizes=sizes)
    riders = {names[-1]} if story.free_rider else set()
    for i, name in enumerate(names):
        labels = split.partners[i].labels
        top = int(np.bincount(labels).argmax())
        _step(
            console,
            f"{name}: {len(labels)} samples, {len(set(labels.tolist()))} classes, "
            f"{(labels == top).mean():.0%} of them digit {top}"
            + (" -- a free-rider: it sends a near-zero update" if name in riders else ""),
        )
    coordinator = Coordinator(
        account=coord_account,
        tx=tx,
        deployment=deployment,
        store=store,
        x25519_private=x25519["coordinator"],
        events_path=out_dir / "events.sqlite",
        eval_set=split.eval_set,
        model_name=model,
        rules=rules,
        outbox=Outbox(out_dir / OUTBOX_DIR / "coordinator.sqlite"),
    )
    partners = {
        name: Partner(
            account=account,
            tx=tx,
            deployment=deployment,
            store=store,
            accountant=fl.PrivacyAccountant(
                partner=account.address, agreement=agreement_id, delta=DELTA, epsilon_cap=EPSILON_CAP
            ),
            data=split.partners[i],
            executor=executor,
            outbox=Outbox(out_dir / OUTBOX_DIR / f"{name}.sqlite"),
            settings=_training(model, seed=i, free_rider=name in riders),
        )
        for i, (name, account) in enumerate(accounts.items())
    }
    sizes_by_name = {name: len(split.partners[i]) for i, name in enumerate(accounts)}
    recipients = world.recipients()
    state = fl.build_model(model, split.input_dim, split.num_classes, seed=0).state_dict()
    summary_rounds = []
    names_of = {p.address: name for name, p in partners.items()}
    for r in range(n_rounds):
        gas_before = tx.gas_used
        driven = drive_round(
            coordinator,
            list(partners.values()),
            agreement_id,
            state,
            recipients=recipients,
            mode=mode,
            window=ROUND_WINDOW,
            on_event=_narrator(console, names_of, mode, f"{r + 1}/{n_rounds}"),
        )
        round_id, model_cid, envelopes, batch_cid = (
            driven.round_id,
            driven.model_cid,
            driven.envelopes,
            driven.batch_cid,
        )
        outcome = driven.outcome
        report = outcome.report
        accuracy = float(report.metrics["accuracy_after"])
        _step(
            console,
            f"  finalized: accuracy {report.metrics['accuracy_before']:.3f} -> {accuracy:.3f}, "
            f"aggregate {_short(outcome.aggregate_cid)}, report {_short(outcome.report_cid)}",
        )
        advance_time(w3, ROUND_WINDOW + dispute_window + 1)
        claimed = {}
        for name, p in partners.items():
            amount = report.payouts.get(p.address, 0)
            if amount > 0 and outcome.tree is not None:
                p.claim(agreement_id, round_id, amount, outcome.tree.proof(p.address))
            claimed[p.address] = amount
        gas = tx.gas_used - gas_before
        scores = {line.partner: line.score for line in report.partners}
        _step(
            console,
            f"  after the dispute window ({dispute_window}s, local time travel), claimed: "
            + ", ".join(
                f"{n} {claimed[p.address] / TOKEN:.2f} LRW (score {_score(scores.get(p.address))})"
                for n, p in partners.items()
            )
            + f"; round gas {gas:,}",
        )
        summary_rounds.append(
            {
                "round": round_id,
                "accuracy": accuracy,
                "accuracy_before": float(report.metrics["accuracy_before"]),
                "partners": {
                    p.address: {
                        "name": name,
                        "free_rider": name in riders,
                        "samples": sizes_by_name[name],
                        "score": scores.get(p.address),
                        "epsilon": p.accountant.epsilon(),
                        "epsilon_fixed": p.accountant.spent_fixed(),
                        "payout": str(report.payouts.get(p.address, 0)),
                        "claimed": str(claimed[p.address]),
                        "accepted": p.address in report.accepted,
                    }
                    for name, p in partners.items()
                },
                "rejected": report.rejected,
                "cids": {
                    "model": model_cid,
                    "envelopes": envelopes,
                    "aggregate": outcome.aggregate_cid,
                    "report": outcome.report_cid,
                    **({"batch": batch_cid} if batch_cid else {}),
                },
                "gas_used": gas,
            }
        )
        state = outcome.aggregate

    summary = {
        "chain_id": chain_id,
        "agreement_id": agreement_id,
        "mode": mode,
        "partners": n_partners,
        "rounds": n_rounds,
        "reward_per_round": str(REWARD_PER_ROUND),
        "epsilon_cap": EPSILON_CAP,
        "delta": DELTA,
        "data": "sklearn digits, "
        + (f"non-IID split (Dirichlet label skew, alpha {alpha}; sizes {sizes})" if alpha else "IID split")
        + ", 20% held-out evaluation set",
        "model": model,
        "payout_rule": rule_name,
        "free_riders": sorted(riders),
        "aggregation": rules.aggregation,
        "aggregation_params": aggregation_params,
        "scoring": rules.scoring,
        "max_norm": rules.max_norm,
        "setup_gas_used": setup_gas,
        "total_gas_used": tx.gas_used,
        "keys_note": KEYS_NOTE,
        "keys": KEYS_DIR,
        "store": STORE_DIR,
        "state_file": STATE_FILE,
        "per_round": summary_rounds,
    }
    _step(
        console,
        f"[green]done[/]: {n_rounds} round(s), final accuracy {summary_rounds[-1]['accuracy']:.3f}, "
        f"total gas {tx.gas_used:,}",
    )
    return DemoResult(out_dir, chain_id, addresses, agreement_id, summary)


def _narrator(console: Console, names: dict[str, str], mode: str, position: str) -> OnEvent:
    """Tells a driven round's events (rounds.driver) as the demo's steps; `position` is "k/R"."""

    def narrate(event: str, detail: dict[str, Any]) -> None:
        if event == "opened":
            _step(
                console, f"[bold]round {detail['round']}[/] ({position}) opened on model {_short(detail['model_cid'])}"
            )
        elif event == "committed":
            p, cid = detail["partner"], _short(detail["result"].envelope_cid)
            what = "committed:" if mode == "single" else "signed its commitment (EIP-712):"
            _step(
                console,
                f"  {names[p.address]} trained (DP-SGD), sealed {cid}, {what} epsilon {p.accountant.epsilon():.3f}",
            )
        elif event == "anchored":
            _step(console, f"  coordinator anchored the batch {_short(detail['batch_cid'])}")
        elif event == "dispute":
            _step(console, f"  dispute {detail['line']}")

    return narrate


def _training(model: str, *, seed: int, free_rider: bool) -> TrainingSettings:
    """A partner's local training in the demo: the model's settings (``partner.MODEL_TRAINING``), a fixed noise,
    one epoch a round."""
    settings = TrainingSettings.for_model(model, epochs=1, noise_multiplier=1.0, seed=seed)
    return replace(settings, lr=FREE_RIDER_LR) if free_rider else settings


def _sizes(n_partners: int) -> list[int]:
    """Relative data sizes of the partners: 1, 2, 3, 1, 2, 3... (fl.make_federated's `sizes`)."""
    return [1 + i % 3 for i in range(n_partners)]


def _score(score: float | None) -> str:
    return "-" if score is None else f"{score:+.3f}"


def _write_keys(folder: Path, roles: DevRoles, accounts: dict[str, LocalAccount], x25519: dict[str, bytes]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    folder.chmod(0o700)
    parties = {
        "admin": roles.admin,
        "coordinator": roles.coordinator,
        "auditor": roles.auditor,
        "treasury": roles.treasury,
        **accounts,
    }
    document = {
        "note": KEYS_NOTE,
        "parties": {
            who: {
                "address": a.address,
                "ethereum_private_key": "0x" + bytes(a.key).hex(),
                **({"x25519_private_key": x25519[who].hex()} if who in x25519 else {}),
            }
            for who, a in parties.items()
        },
    }
    path = folder / "dev-keys.json"
    path.write_text(json.dumps(document, indent=2) + "\n")
    path.chmod(0o600)
