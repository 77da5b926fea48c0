"""Builds a round's partner or coordinator from a picklable description, for test_crash.py, and runs one of their
steps in a child process that SIGKILLs itself at a named checkpoint.

Children are forked from a multiprocessing forkserver that has imported this module (and with it torch, Opacus,
web3 and lepton_ledger) but used none of them: each child starts in milliseconds, with no threads and no
connections inherited, instead of spending seconds on imports.

Training runs in a thread pool (a real executor; a process pool would pay torch's import again) that appends the
SHA-256 of every update it trains to `train_log`, so a test can compare what a killed child trained with what
its restart trained.
"""

from __future__ import annotations

import hashlib
import os
import signal
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from web3 import HTTPProvider, Web3

from lepton_ledger import fl
from lepton_ledger.chain.anvil import dev_account
from lepton_ledger.chain.deployment import Deployment
from lepton_ledger.chain.transactions import Transactor
from lepton_ledger.envelope.tensors import serialize_tensors
from lepton_ledger.rounds.coordinator import Coordinator
from lepton_ledger.rounds.outbox import Outbox
from lepton_ledger.rounds.partner import Partner, TrainingSettings
from lepton_ledger.rounds.rules import RoundRules
from lepton_ledger.storage.local import LocalStore

# What the forkserver imports once, so that children do not (lepton_ledger imports Opacus lazily; each child
# re-runs the main script, pytest's). Module names, not this file: the forkserver of Python 3.11 does not get the
# test's sys.path, and skips what it cannot import.
PRELOAD = [
    "torch",
    "opacus",
    "opacus.accountants.analysis.rdp",
    "web3",
    "lepton_ledger.rounds.partner",
    "lepton_ledger.rounds.coordinator",
    "lepton_ledger.storage.local",
    "lepton_ledger.fl",
    "pytest",
]
COORDINATOR_INDEX = 1  # DevRoles.from_dev_keys: admin 0, coordinator 1, auditor 2, treasury 7
PARTNER_INDICES = {"alpha": 5, "beta": 6}
DELTA = 1e-5
EPSILON_CAP = 8.0


@dataclass(frozen=True)
class World:
    """What a process needs to act in a test's world: the chain's URL and contracts, the shared block store,
    the data split, the coordinator's X25519 key, and this test's folder (outboxes, accountant files, logs)."""

    url: str
    addresses: dict[str, str]
    store_dir: Path
    split: Any
    coordinator_x25519: bytes
    folder: Path

    def connect(self, *account_indices: int) -> tuple[Web3, Transactor, Deployment]:
        w3 = Web3(HTTPProvider(self.url, request_kwargs={"timeout": 30}))
        tx = Transactor(w3, [dev_account(i) for i in account_indices], receipt_timeout=30)
        return w3, tx, Deployment.at(w3, self.addresses)


class LoggingExecutor:
    """A one-thread executor that logs a digest of each trained update to a file (appended, one per line)."""

    def __init__(self, log: Path) -> None:
        self.log, self.pool = log, ThreadPoolExecutor(max_workers=1)

    def submit(self, fn: Any, *args: Any, **kwargs: Any) -> Future:
        def run() -> Any:
            result = fn(*args, **kwargs)
            with open(self.log, "a") as out:
                out.write(hashlib.sha256(serialize_tensors(result.delta)).hexdigest() + "\n")
            return result

        return self.pool.submit(run)


def make_partner(world: World, name: str, agreement_id: int, *, checkpoint: Any = None) -> Partner:
    """Partner `name` of `agreement_id`, with its outbox and accountant file in the test's folder."""
    index = PARTNER_INDICES[name]
    _, tx, deployment = world.connect(index)
    account = dev_account(index)
    accountant = fl.PrivacyAccountant(
        partner=account.address, agreement=agreement_id, delta=DELTA, epsilon_cap=EPSILON_CAP
    )
    return Partner(
        account=account,
        tx=tx,
        deployment=deployment,
        store=LocalStore(world.store_dir, durable=False),
        accountant=accountant,
        data=world.split.partners[list(PARTNER_INDICES).index(name)],
        executor=LoggingExecutor(world.folder / f"{name}-trained.log"),
        settings=TrainingSettings(model="logreg", epochs=1, batch_size=64, noise_multiplier=2.0),
        outbox=Outbox(world.folder / f"{name}-outbox.sqlite"),
        checkpoint=checkpoint,
    )


def make_coordinator(world: World, *, checkpoint: Any = None) -> Coordinator:
    """The coordinator, with its outbox and event index in the test's folder."""
    _, tx, deployment = world.connect(COORDINATOR_INDEX)
    return Coordinator(
        account=dev_account(COORDINATOR_INDEX),
        tx=tx,
        deployment=deployment,
        store=LocalStore(world.store_dir, durable=False),
        x25519_private=world.coordinator_x25519,
        events_path=world.folder / "coordinator-events.sqlite",
        eval_set=world.split.eval_set,
        model_name="logreg",
        rules=RoundRules(max_norm=50.0),
        payout_rule=fl.PayoutRule.BY_SAMPLE_COUNT,
        outbox=Outbox(world.folder / "coordinator-outbox.sqlite"),
        checkpoint=checkpoint,
    )


def killer(point: str) -> Any:
    """A checkpoint callback that SIGKILLs this process at `point`, as a crash would: no cleanup runs."""

    def checkpoint(name: str, op: Any) -> None:
        if name == point:
            os.kill(os.getpid(), signal.SIGKILL)

    return checkpoint


def run_step(world: World, role: str, step: str, kwargs: dict[str, Any], kill_at: str) -> None:
    """Child entry point: builds `role` (``"coordinator"`` or a partner's name) and calls its method `step` with
    `kwargs`, dying at `kill_at`. Returning normally means the point was never reached."""
    checkpoint = killer(kill_at)
    if role == "coordinator":
        actor: Any = make_coordinator(world, checkpoint=checkpoint)
    else:
        actor = make_partner(world, role, kwargs["agreement_id"], checkpoint=checkpoint)
    if step == "open":  # the coordinator's step 1 as a driver runs it: publish, then open on the chain's clock
        w3 = actor.tx.w3
        _, digest = actor.publish_model(kwargs["state"])
        actor.open_round(kwargs["agreement_id"], digest, w3.eth.get_block("latest")["timestamp"] + 3600)
        return
    getattr(actor, step)(**kwargs)
