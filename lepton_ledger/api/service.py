"""What one running service holds: the chain connection, the bound deployment, the store, its database, the
read model and the authenticator. Built once at start-up (``open_service``), closed at shutdown. On a chain the
service runs itself, a miner too (anvil mines only on transactions: without it no deadline would ever pass)."""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..settings import Settings
from .auth import Authenticator
from .db import Database
from .readmodel import ReadModel


@dataclass
class Service:
    settings: Settings
    w3: Any
    deployment: Any
    document: dict[str, Any]
    store: Any
    db: Database
    reads: ReadModel
    auth: Authenticator
    chain_id: int
    coordinator: Any = None  # keys.UnlockedIdentity of the coordinator, when configured (opens envelopes)
    auditor: Any = None  # keys.UnlockedIdentity of an auditor, when configured (the audit job)
    jobs: Any = None  # jobs.JobRunner: the threads that run close, anchor and audit jobs
    metrics: dict[tuple[str, str, int], int] = field(default_factory=dict)
    mining: float | None = None  # seconds without a block before the service mines one; None: it does not mine
    # writer.Writer: the one thread that sends every coordinator transaction, through the coordinator's outbox
    writer: Any = None
    # This process's name in the rows it owns (idempotency.py): a row of another instance is of a dead process,
    # since one service at a time holds the data directory (``_exclusive``).
    instance: str = field(default_factory=lambda: secrets.token_hex(8))

    def coordinator_session(self) -> Any:
        """A command Session signing with the coordinator's key, on the service's chain and store, so that the
        service takes the coordinator's steps through the same library calls as its commands (use it inside a
        step of `writer`: its transactions go through the coordinator's outbox)."""
        from ..rounds.session import Session

        return Session(
            w3=self.w3,
            deployment=self.deployment,
            document=self.document,
            deployment_path=self.settings.deployment,
            identity=self.coordinator,
            tx=self.writer.tx,
            _store=self.store,
        )


class Miner:
    """Mines an empty block when no new block came for `after` seconds of wall time, so that the chain's clock,
    which every deadline and dispute window is read against, moves in real time while nobody transacts. Counted
    in wall time since the block was first seen, not against its timestamp: a test chain's clock may run ahead."""

    def __init__(self, w3: Any, after: float) -> None:
        self.w3, self.after = w3, after
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="lepton-miner", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        seen, since = -1, time.monotonic()
        while not self._stop.wait(min(self.after / 4, 1.0)):
            try:
                block = int(self.w3.eth.block_number)
                if block != seen:
                    seen, since = block, time.monotonic()
                elif time.monotonic() - since >= self.after:
                    self.w3.provider.make_request("evm_mine", [])
            except Exception:  # noqa: BLE001 -- the chain gone for a moment: the read model reports it (503)
                continue


def check_service(settings: Settings) -> None:
    """What :func:`open_service` checks (deployment, chain, coordinator key), without starting anything.

    Raises: as :func:`open_service`.
    """
    with open_service(settings, start=False):
        pass


@contextmanager
def open_service(settings: Settings, *, start: bool = True) -> Iterator[Service]:
    """Connects to the configured chain (or the data directory's shared local node, started if none runs),
    binds the deployment file's contracts after checking they are there, and starts the read model.

    Raises:
        CommandError: no deployment file, or one that does not match the chain.
        ChainError: the RPC URL does not answer.
        ConfigurationError: the configured coordinator (auditor) key holds no coordinator (auditor) role in this
            deployment, or another service runs on this data directory (two would both run its jobs).
        KeystoreError: a configured key cannot be unlocked (unknown, wrong or missing password).
    """
    from ..chain.connection import connect
    from ..rounds.session import bind_deployment, load_deployment_document
    from ..storage import open_store

    document = load_deployment_document(settings.deployment)
    with _exclusive(settings.data_dir / "api"), connect(settings.rpc_url) as w3:
        deployment = bind_deployment(w3, document, settings.deployment)
        chain_id = int(w3.eth.chain_id)
        db = Database(settings.data_dir / "api" / "service.sqlite")
        reads = ReadModel(w3, deployment, poll=settings.block_poll)
        auth = Authenticator(
            db,
            domain=settings.domain,
            uri=settings.uri,
            chain_id=chain_id,
            nonce_ttl=settings.nonce_ttl,
            token_ttl=settings.token_ttl,
            provider=w3.provider,
        )
        service = Service(
            settings=settings,
            w3=w3,
            deployment=deployment,
            document=document,
            store=open_store(settings.ipfs),
            db=db,
            reads=reads,
            auth=auth,
            chain_id=chain_id,
            coordinator=_identity(settings.coordinator_key, reads, "coordinator"),
            auditor=_identity(settings.auditor_key, reads, "auditor"),
        )
        from .jobs import JobRunner
        from .writer import Writer

        service.jobs = JobRunner(service)
        if service.coordinator is not None:
            service.writer = Writer(
                w3, service.coordinator.account, service.store, deployment.ledger.address, wait=settings.writer_wait
            )
        if not start:
            yield service
            return
        miner = Miner(w3, settings.mine_after) if settings.owns_chain and settings.mine_after > 0 else None
        service.mining = miner.after if miner else None
        reads.start()
        if service.writer is not None:
            service.writer.start()
        service.jobs.start()
        if miner:
            miner.start()
        try:
            yield service
        finally:
            if miner:
                miner.stop()
            service.jobs.stop()
            if service.writer is not None:
                service.writer.stop()
            reads.stop()


@contextmanager
def _exclusive(folder: Path) -> Iterator[None]:
    import fcntl

    from ..errors import ConfigurationError

    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / "service.lock", "a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)  # released when this process ends, however it ends
        except BlockingIOError:
            raise ConfigurationError(f"another lepton-ledger serve runs on {folder.parent}") from None
        yield


def _identity(key: str | None, reads: ReadModel, role: str) -> Any:
    """The unlocked keystore identity `key`, once it holds `role` ("coordinator" or "auditor") in the deployment."""
    if key is None:
        return None
    from ..errors import ConfigurationError
    from ..keys import Keystore

    identity = Keystore().unlock(key)
    if not getattr(reads.roles(identity.address), role):
        raise ConfigurationError(f"key {identity.name!r} ({identity.address}) holds no {role} role in this deployment")
    return identity
