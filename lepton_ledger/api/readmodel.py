"""What the service reads from the chain, refreshed once per block instead of once per request.

A poller thread watches the block number; every view is computed at most once per block (the first request
after a new block pays for it, the next ones read the cache; requests that come while it computes wait for its
value rather than each reading the chain again). Roles come from here too, so a suspension or a
revoked role acts from the next block on.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from web3 import Web3

from ..chain.deployment import AUDITOR_ROLE, COORDINATOR_ROLE
from ..chain.state import AgreementState, Partner, Pool, Round, RoundConfig, Terms
from ..errors import ChainError

T = TypeVar("T")

ADMIN_ROLE = b"\x00" * 32  # AccessControl's DEFAULT_ADMIN_ROLE


@dataclass(frozen=True)
class Roles:
    """What the chain says an address is, at one block."""

    address: str
    status: str  # in the partner registry: none, pending, approved, suspended
    coordinator: bool
    auditor: bool
    admin: bool

    def names(self) -> list[str]:
        flags = (("coordinator", self.coordinator), ("auditor", self.auditor), ("admin", self.admin))
        return [f"partner:{self.status}"] + [name for name, held in flags if held]


class ReadModel:
    """Per-block views of one deployment (see the module docstring)."""

    def __init__(self, w3: Web3, deployment: Any, *, poll: float) -> None:
        self.w3, self.deployment, self.poll = w3, deployment, poll
        self.block = int(w3.eth.block_number)
        self.chain_ok = True
        self._cache: dict[Any, Any] = {}
        self._computing: dict[Any, threading.Lock] = {}  # one lock per view being computed at this block
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="lepton-read-model", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _watch(self) -> None:
        while not self._stop.wait(self.poll):
            self.catch_up()

    def catch_up(self) -> bool:
        """Moves the views to the node's latest block now; whether it had moved. The poller does this every
        ``poll`` seconds; a request about to answer "no such thing" does it first, so that what a caller's own
        transaction just created is never a 404 for lack of a poll."""
        try:
            block = int(self.w3.eth.block_number)
        except Exception:  # noqa: BLE001 -- any transport failure: the chain is down until it answers again
            self.chain_ok = False
            return False
        self.chain_ok = True
        with self._lock:
            if block == self.block:
                return False
            self._cache, self._computing, self.block = {}, {}, block
            return True

    def require_chain(self) -> None:
        """Raises ChainError while the poller cannot reach the node (a 503)."""
        if not self.chain_ok:
            raise ChainError("the chain does not answer")

    def cached(self, key: Any, compute: Callable[[], T]) -> T:
        """`compute()`'s value at the current block, computed once per block per `key`."""
        self.require_chain()
        with self._lock:
            if key in self._cache:
                return self._cache[key]
            gate = self._computing.setdefault(key, threading.Lock())
        # One computation per view at a time: after each block, every request in flight misses at once, and
        # each reading the chain itself made the service several times slower under load (bench/api.py).
        with gate:
            with self._lock:
                cache, block = self._cache, self.block
                if key in cache:
                    return cache[key]
            value = compute()
            with self._lock:
                if self.block == block:
                    cache[key] = value
        return value

    # -- views ------------------------------------------------------------------------------------------------

    def roles(self, address: str) -> Roles:
        def compute() -> Roles:
            partners = self.deployment.partners.functions
            status = Partner.read(partners.partnerOf(address)).status
            return Roles(
                address=address,
                status=status.name.lower(),
                coordinator=bool(partners.hasRole(COORDINATOR_ROLE, address).call()),
                auditor=bool(partners.hasRole(AUDITOR_ROLE, address).call()),
                admin=bool(partners.hasRole(ADMIN_ROLE, address).call()),
            )

        return self.cached(("roles", address), compute)

    def partner(self, address: str) -> Partner:
        """``PartnerRegistry.partnerOf``."""
        return self.cached(
            ("partner", address), lambda: Partner.read(self.deployment.partners.functions.partnerOf(address))
        )

    def agreement_count(self) -> int:
        return self.cached(("agreements",), lambda: int(self.deployment.agreements.functions.agreementCount().call()))

    def agreement(self, agreement_id: int) -> dict[str, Any] | None:
        """The agreement's state and terms, or None when there is no such agreement (at the latest block)."""
        if not 0 < agreement_id <= self.agreement_count():
            if not (self.catch_up() and 0 < agreement_id <= self.agreement_count()):
                return None

        def compute() -> dict[str, Any]:
            functions = self.deployment.agreements.functions
            state = AgreementState.read(functions.agreementState(agreement_id))
            terms = Terms.read(functions.terms(agreement_id))
            config = RoundConfig.read(functions.roundConfig(agreement_id))
            signed = {p: bool(functions.hasSigned(agreement_id, state.version, p).call()) for p in terms.parties}
            return {
                "state": state,
                "terms": terms,
                "arbiter": config.arbiter,
                "signed": signed,
                "rounds": int(self.deployment.ledger.functions.roundCount(agreement_id).call()),
                "pool": Pool.read(self.deployment.vault.functions.pool(agreement_id)),
            }

        return self.cached(("agreement", agreement_id), compute)

    def round(self, agreement_id: int, round_id: int) -> dict[str, Any] | None:
        """The round's on-chain record and who submitted, or None when there is no such round."""
        agreement = self.agreement(agreement_id)
        if agreement is not None and not 0 < round_id <= agreement["rounds"] and self.catch_up():
            agreement = self.agreement(agreement_id)
        if agreement is None or not 0 < round_id <= agreement["rounds"]:
            return None

        def compute() -> dict[str, Any]:
            ledger = self.deployment.ledger.functions
            record = Round.read(ledger.round(agreement_id, round_id))
            submitted = {
                p: bool(ledger.hasSubmitted(agreement_id, round_id, p).call()) for p in agreement["terms"].parties
            }
            return {"record": record, "submitted": submitted}

        return self.cached(("round", agreement_id, round_id), compute)

    def artifacts(self, agreement_id: int) -> frozenset[bytes]:
        """The digests of the artifacts `agreement_id` names on-chain: its terms document and each round's model,
        aggregate and report (empty for no such agreement)."""
        agreement = self.agreement(agreement_id)
        if agreement is None:
            return frozenset()

        def compute() -> frozenset[bytes]:
            digests = {bytes(agreement["terms"].terms_digest)}
            for round_id in range(1, agreement["rounds"] + 1):
                found = self.round(agreement_id, round_id)
                assert found is not None
                r = found["record"]
                digests.update((r.model_digest, r.aggregate_digest, r.report_digest))
            return frozenset(digests - {b"\0" * 32})

        return self.cached(("artifacts", agreement_id), compute)

    def agreement_roles(self, address: str) -> dict[str, list[str]]:
        """``{agreement id: ["party", "coordinator", "arbiter"]}``: what `address` is in each agreement."""

        def compute() -> dict[str, list[str]]:
            found: dict[str, list[str]] = {}
            for agreement_id in range(1, self.agreement_count() + 1):
                agreement = self.agreement(agreement_id)
                assert agreement is not None
                held = [
                    name
                    for name, holds in (
                        ("party", address in agreement["terms"].parties),
                        ("coordinator", agreement["state"].coordinator == address),
                        ("arbiter", agreement["arbiter"] == address),
                    )
                    if holds
                ]
                if held:
                    found[str(agreement_id)] = held
            return found

        return self.cached(("agreement_roles", address), compute)

    def now(self) -> int:
        """The chain time of the latest block."""
        return self.cached(("now",), lambda: int(self.w3.eth.get_block("latest")["timestamp"]))
