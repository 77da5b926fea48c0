"""Opening the updates of the rounds an audit examines, in worker processes, a few rounds ahead of the audit.

Fetching an envelope, hashing it, decrypting it and checking its manifest's signature (``cids_resolve``,
``envelope_decrypts``, ``manifest_signature``) need nothing from other updates or rounds, and are most of the
cost of a round that is not training (done as the envelope's blocks are read, envelope.stream: an update is held
once, as plaintext, never whole beside it); the rest of the audit (the epsilon re-composition over earlier rounds,
the aggregate, scores and payouts, the chain's reads and the audit state) stays in the one process that records.
:class:`UpdateOpener` gives the audit each round's opened updates in the order it asks for them; with one worker
it opens them in the auditing process itself, through the same function, so the two audits agree check for check.

Workers are forked (the store, the key and what was imported are theirs at once) and talk to the node through
their own connection, never the parent's. A worker that dies ends the audit with :class:`AuditWorkerDied`:
the rounds recorded before it were verified in full; the round it was opening and the later ones are not.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
from collections import deque
from collections.abc import Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from typing import Any, Self

from web3 import HTTPProvider, Web3

from ..envelope import OpenedEnvelope
from ..envelope.format import DEFAULT_MAX_ENVELOPE_BYTES
from ..envelope.stream import EnvelopeStream
from ..envelope.tensors import deserialize_tensors
from ..errors import LeptonError
from ..storage.store import Store
from .chain_view import Commitment
from .checks.artifacts import open_commitment, resolve
from .model import CheckResult

__all__ = [
    "AuditWorkerDied",
    "OpenedUpdate",
    "UpdateOpener",
    "Where",
    "default_workers",
    "open_updates",
]

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

    def portable(self) -> OpenedUpdate:
        # An opened envelope's tensors share a memoryview of the payload, which does not pickle: bytes cross.
        if self.opened is not None:
            self.opened = _Portable(self.opened)  # type: ignore[assignment]
        return self

    def restored(self) -> OpenedUpdate:
        if isinstance(self.opened, _Portable):
            self.opened = self.opened.envelope()
        return self


class _Portable:
    def __init__(self, opened: OpenedEnvelope) -> None:
        self.tensor_bytes = bytes(opened.tensor_bytes)
        self.rest = (
            opened.manifest,
            opened.signature,
            opened.manifest_digest,
            opened.envelope_digest,
            opened.recipients,
        )

    def envelope(self) -> OpenedEnvelope:
        view = memoryview(self.tensor_bytes)
        manifest, signature, manifest_digest, envelope_digest, recipients = self.rest
        # Bounded already: the worker deserialized these bytes under the envelope's tensor bound.
        return OpenedEnvelope(
            deserialize_tensors(view), view, manifest, signature, manifest_digest, envelope_digest, recipients
        )


@dataclass(frozen=True)
class _RoundKey:
    """What opening a round's envelopes needs of the round (``Expected``'s base model)."""

    agreement_id: int
    round: int
    model_digest: bytes


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


_worker: dict[str, Any] = {}  # the worker process's store, key and view, set once by _start_worker


def _start_worker(store: Store, key: bytes, url: str, chain_id: int, ledger: str, block: int) -> None:
    # Ctrl-C reaches the whole process group: the auditing process stops the pool and says so in one line.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _worker.update(
        store=store,
        key=key,
        view=_WorkerView(Web3(HTTPProvider(url)), chain_id, ledger, block),
    )


def _open_in_worker(record: _RoundKey, commitments: list[Commitment]) -> list[OpenedUpdate]:
    return [u.portable() for u in open_updates(_worker["view"], _worker["store"], _worker["key"], record, commitments)]


class UpdateOpener:
    """Opens the updates of `rounds` (``(record, commitments)`` in the order the audit examines them) with
    `workers` processes, at most ``2 x workers`` rounds ahead of :meth:`take`; one worker: in this process."""

    def __init__(
        self,
        view: Any,
        store: Store,
        key: bytes,
        rounds: Sequence[tuple[Any, list[Commitment]]],
        workers: int,
    ) -> None:
        self.view, self.store, self.key = view, store, key
        self._waiting = deque(rounds)
        self._ahead: deque[tuple[tuple[int, int], Future[list[OpenedUpdate]]]] = deque()
        self._pool: ProcessPoolExecutor | None = None
        if workers > 1 and len(rounds) > 1:
            url = getattr(view.w3.provider, "endpoint_uri", None)
            if url:  # a node reached over HTTP: each worker opens its own connection to it
                self._pool = ProcessPoolExecutor(
                    min(workers, len(rounds)),
                    mp_context=multiprocessing.get_context("fork"),
                    initializer=_start_worker,
                    initargs=(store, key, url, view.chain_id, view.ledger_address, view.block),
                )
                self._depth = 2 * workers

    def take(self, record: Any, commitments: list[Commitment]) -> list[OpenedUpdate]:
        """The opened updates of `record` (the next round of the sequence, or any round when serial).

        Raises:
            AuditWorkerDied: a worker process died.
        """
        if self._pool is None:
            return open_updates(self.view, self.store, self.key, record, commitments)
        self._fill()
        if not self._ahead:  # the pool broke before this round could be handed to it
            self.close()
            raise AuditWorkerDied(
                f"an audit worker process died before agreement {record.agreement_id} round "
                f"{record.round} was opened; that round and the later ones were not recorded"
            )
        (a, r), future = self._ahead.popleft()
        assert (a, r) == (record.agreement_id, record.round), "rounds taken out of the order given"
        try:
            return [u.restored() for u in future.result()]
        except BrokenProcessPool:
            self.close()
            raise AuditWorkerDied(
                f"an audit worker process died while opening the updates of agreement {a} round "
                f"{r}; that round and the later ones were not recorded"
            ) from None

    def _fill(self) -> None:
        assert self._pool is not None
        while self._waiting and len(self._ahead) < self._depth:
            record, commitments = self._waiting.popleft()
            key = _RoundKey(record.agreement_id, record.round, record.model_digest)
            try:
                future = self._pool.submit(_open_in_worker, key, commitments)
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
