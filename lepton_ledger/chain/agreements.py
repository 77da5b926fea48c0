"""The agreement's life before its rounds, as library calls: register a party, propose terms, sign (by
transaction or by a relayed EIP-712 signature), stake, fund. The demo, the role CLIs and the brownie scripts all
go through these, so each step is written once.

Terms on-chain are ``AgreementRegistry.Terms`` (read back as ``chain.state.Terms``, the one shape every reader
gets); :class:`AgreementTerms` is what a coordinator writes: the same terms in Python units (epsilon as a float,
delta as a float, amounts in the token's smallest unit) with the terms document, checked on construction, and
turned into the chain's shape by :meth:`AgreementTerms.to_chain`.
The terms name their coordinator (the only account that acts on the agreement, and its proposer), their arbiter
(the only account that rules on its challenges), the largest sample count an update may claim, and the bond the
coordinator must hold posted in the results court before it opens a round (slashed to the parties when a
challenge of its results is upheld).
The off-chain terms document (task, model, evaluation set...) is hashed into ``termsDigest``: canonical JSON
(sorted keys, no spaces), SHA-256.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from eth_account.signers.local import LocalAccount
from web3.contract import Contract
from web3.logs import DISCARD
from web3.types import TxReceipt

from ..errors import ConfigurationError
from ..units import DELTA_SCALE, EPSILON_SCALE, PayoutRule
from .deployment import Deployment, relay_signature
from .state import Terms
from .transactions import Transactor

__all__ = [
    "AgreementTerms",
    "approve",
    "document_digest",
    "fund",
    "post_bond",
    "propose",
    "register",
    "sign",
    "stake",
]


def document_digest(document: Mapping[str, Any]) -> bytes:
    """The artifact digest (``protocol.addressing``) of a JSON document in canonical form (sorted keys, no
    spaces): a profile or terms digest, so that the chain's digest finds the document in any store."""
    from ..protocol.addressing import content_digest

    return content_digest(json.dumps(document, sort_keys=True, separators=(",", ":")).encode())


@dataclass(frozen=True)
class AgreementTerms:
    """An agreement's terms in Python units (see the module docstring)."""

    parties: Sequence[str]
    reward_token: str
    reward_per_round: int
    epsilon_cap: float
    delta: float
    required_stake: int
    start: int
    end: int
    max_rounds: int
    coordinator: str
    arbiter: str
    max_sample_count: int
    payout_rule: PayoutRule = PayoutRule.BY_SAMPLE_COUNT
    coordinator_bond: int = 0
    document: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.parties:
            raise ConfigurationError("an agreement needs at least one party")
        if not 0 < self.epsilon_cap < 2**32 / EPSILON_SCALE:
            raise ConfigurationError(f"epsilon cap must be in (0, {2**32 / EPSILON_SCALE:g}), not {self.epsilon_cap}")
        if not 0 < self.delta < 1:
            raise ConfigurationError(f"delta must be in (0, 1), not {self.delta}")
        if not 1 <= self.max_rounds < 2**32:
            raise ConfigurationError(f"max rounds must be in [1, 2^32), not {self.max_rounds}")
        if self.end <= self.start:
            raise ConfigurationError(f"the agreement must end after it starts ({self.start} >= {self.end})")
        if not 0 <= self.start < self.end < 2**64:
            raise ConfigurationError(f"start and end must be times in [0, 2^64), not {self.start} and {self.end}")
        amounts = (self.reward_per_round, self.required_stake, self.coordinator_bond)
        if not all(0 <= amount < 2**256 for amount in amounts):
            raise ConfigurationError("amounts must be in [0, 2^256)")
        if not 0 < self.max_sample_count < 2**64:
            raise ConfigurationError(f"max sample count must be in [1, 2^64), not {self.max_sample_count}")

    def to_chain(self) -> Terms:
        """The terms as the chain holds them (``chain.state.Terms``), the document reduced to its digest."""
        return Terms(
            terms_digest=document_digest(self.document),
            parties=tuple(self.parties),
            reward_token=self.reward_token,
            reward_per_round=self.reward_per_round,
            payout_rule=PayoutRule(self.payout_rule),
            epsilon_cap_fixed=round(self.epsilon_cap * EPSILON_SCALE),
            delta_fixed=round(self.delta * DELTA_SCALE),
            required_stake=self.required_stake,
            start=self.start,
            end=self.end,
            max_rounds=self.max_rounds,
            coordinator=self.coordinator,
            arbiter=self.arbiter,
            max_sample_count=self.max_sample_count,
            coordinator_bond=self.coordinator_bond,
        )

    def as_tuple(self) -> tuple[Any, ...]:
        """The ``Terms`` struct as web3 encodes it."""
        return self.to_chain().as_tuple()


def post_bond(
    tx: Transactor, deployment: Deployment, token: Contract, agreement_id: int, coordinator: str, amount: int
) -> TxReceipt:
    """Approves the results court for `amount` of `token` and posts it as `coordinator`'s bond in the agreement
    (``ResultsCourt.postBond``): rounds open only while the coordinator holds the bond its terms require."""
    tx.transact(token.functions.approve(deployment.court.address, amount), coordinator)
    return tx.transact(deployment.court.functions.postBond(agreement_id, amount), coordinator)


def register(
    tx: Transactor, deployment: Deployment, account: str, profile: Mapping[str, Any], x25519_public: bytes
) -> TxReceipt:
    """``PartnerRegistry.register(profile digest, X25519 public key)`` from `account`."""
    if len(x25519_public) != 32:
        raise ConfigurationError(f"an X25519 public key has 32 bytes, not {len(x25519_public)}")
    return tx.transact(deployment.partners.functions.register(document_digest(profile), x25519_public), account)


def approve(tx: Transactor, deployment: Deployment, partner: str, coordinator: str) -> TxReceipt:
    """``PartnerRegistry.approve(partner)`` by a coordinator."""
    return tx.transact(deployment.partners.functions.approve(partner), coordinator)


def propose(tx: Transactor, deployment: Deployment, coordinator: str, terms: AgreementTerms) -> int:
    """``AgreementRegistry.propose(terms)`` by `coordinator`, who must be the terms' coordinator; returns the new
    agreement's id."""
    receipt = tx.transact(deployment.agreements.functions.propose(terms.as_tuple()), coordinator)
    (event,) = deployment.agreements.events.AgreementProposed().process_receipt(receipt, errors=DISCARD)
    return int(event["args"]["agreementId"])


def sign(
    tx: Transactor, deployment: Deployment, agreement_id: int, party: LocalAccount, *, relayer: str | None = None
) -> TxReceipt:
    """`party` signs the agreement's current version: by its own transaction, or off-chain (EIP-712) with
    `relayer` sending ``signBySig`` and paying the gas."""
    if relayer is None:
        return tx.transact(deployment.agreements.functions.sign(agreement_id), party.address)
    return relay_signature(tx, deployment.agreements, agreement_id, party, relayer)


def stake(tx: Transactor, deployment: Deployment, token: Contract, agreement_id: int, party: str, amount: int) -> bool:
    """Approves the vault for `amount` of `token` and stakes it; True when this stake activated the agreement."""
    tx.transact(token.functions.approve(deployment.vault.address, amount), party)
    receipt = tx.transact(deployment.vault.functions.stake(agreement_id, amount), party)
    return bool(deployment.agreements.events.AgreementActivated().process_receipt(receipt, errors=DISCARD))


def fund(
    tx: Transactor, deployment: Deployment, token: Contract, agreement_id: int, funder: str, amount: int
) -> TxReceipt:
    """Approves the vault for `amount` of `token` and funds the agreement's reward pool with it."""
    tx.transact(token.functions.approve(deployment.vault.address, amount), funder)
    return tx.transact(deployment.vault.functions.fund(agreement_id, amount), funder)
