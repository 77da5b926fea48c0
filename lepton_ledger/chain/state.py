"""Contract state as named, typed values: one frozen dataclass per struct the contracts return, named after the
Solidity struct, its fields in the struct's order under their snake_case names (a fixed-point field carries the
suffix ``_fixed``: ``epsilon_cap_fixed`` is ``epsilonCap``, 1e6 = 1.0). A change to a struct is made here and
nowhere else; tests/chain/test_state.py holds every class to its struct in the compiled ABI.

Read with the struct's class and the contract function that returns it::

    r = Round.read(deployment.ledger.functions.round(agreement_id, round_id))
    if r.status is RoundStatus.FINALIZED: ...

or decode a value read another way (a batched call, a call at a block) with ``Round.decode(values)``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import astuple, dataclass, fields
from typing import TYPE_CHECKING, Any, Self, get_type_hints

from ..errors import ChainError
from ..units import (
    DELTA_SCALE,
    EPSILON_SCALE,
    AgreementStatus,
    ChainEnum,
    ChallengeStatus,
    DisputeStatus,
    PartnerStatus,
    PayoutRule,
    ResultsChallengeStatus,
    ResultsKind,
    RoundStatus,
)

if TYPE_CHECKING:  # web3 is imported by whoever holds a contract function; decoding needs none of it
    from web3.contract.contract import ContractFunction
    from web3.types import BlockIdentifier

__all__ = [
    "AgreementState",
    "Allocation",
    "Bonds",
    "ChainStruct",
    "Challenge",
    "EntryDispute",
    "Partner",
    "Pool",
    "ResultsChallenge",
    "Round",
    "RoundConfig",
    "Terms",
]


def _as_bytes(value: bytes | str) -> bytes:
    """Bytes as web3 returns them, or as 0x-hex (how an event index stores them)."""
    return bytes.fromhex(value[2:]) if isinstance(value, str) else bytes(value)


def _abi_name(field_name: str) -> str:
    """The Solidity name of a field: ``epsilon_cap_fixed`` -> ``epsilonCap``."""
    head, *rest = field_name.removesuffix("_fixed").split("_")
    return head + "".join(part.capitalize() for part in rest)


def _as_strings(values: Sequence[Any]) -> tuple[str, ...]:
    return tuple(str(v) for v in values)


_Converters = tuple[tuple[str, Callable[[Any], Any]], ...]
_CONVERTERS: dict[type, _Converters] = {}


def _converters(cls: type) -> _Converters:
    """(field name, conversion of the ABI value) for each field of `cls`, in order (worked out once a class)."""
    if cls not in _CONVERTERS:
        _CONVERTERS[cls] = _work_out_converters(cls)
    return _CONVERTERS[cls]


def _work_out_converters(cls: type) -> _Converters:
    hints = get_type_hints(cls)
    out: list[tuple[str, Callable[[Any], Any]]] = []
    for f in fields(cls):
        kind = hints[f.name]
        if isinstance(kind, type) and issubclass(kind, ChainEnum):
            out.append((f.name, kind))  # an IntEnum takes the int web3 returns
        elif kind == tuple[str, ...]:
            out.append((f.name, _as_strings))
        elif kind is bytes:
            out.append((f.name, _as_bytes))
        elif kind in (int, str, bool):
            out.append((f.name, kind))
        else:  # a field type this module does not decode: a mistake in a class below
            raise TypeError(f"{cls.__name__}.{f.name}: cannot decode {kind}")
    return tuple(out)


class ChainStruct:
    """The decoding shared by the structs below (each a frozen dataclass)."""

    @classmethod
    def decode(cls, values: Sequence[Any]) -> Self:
        """The struct from the values web3 returns for it, in the struct's order.

        Raises:
            ChainError: not as many values as the struct has fields (the contract is not the one compiled).
        """
        converters = _converters(cls)
        if isinstance(values, (str, bytes)) or len(values) != len(converters):
            raise ChainError(
                f"{cls.__name__}: the contract returned {values!r}, not the struct's "
                f"{len(converters)} fields (is the deployment the build's?)"
            )
        return cls(*(convert(value) for (_, convert), value in zip(converters, values, strict=True)))

    @classmethod
    def from_event(cls, args: Mapping[str, object]) -> Self:
        """The struct from an event's argument, an object keyed by the Solidity names (``chain.events``).

        Raises:
            ChainError: a field is missing.
        """
        try:
            return cls.decode([args[_abi_name(name)] for name, _ in _converters(cls)])
        except KeyError as missing:
            raise ChainError(f"{cls.__name__}: the event has no {missing}") from None

    @classmethod
    def read(cls, function: ContractFunction, *, block: BlockIdentifier = "latest") -> Self:
        """Calls `function` (a view returning this struct) at `block` and decodes its answer."""
        from .batched import read_many  # web3 is imported by whoever holds a contract function

        return cls.decode(read_many(function.w3, [function], block=block)[0])

    def by_solidity_name(self) -> dict[str, Any]:
        """The fields under their Solidity names (``stakeSlashed``), as events and the contracts' errors name them."""
        return {_abi_name(name): getattr(self, name) for name, _ in _converters(type(self))}

    def as_tuple(self) -> tuple[Any, ...]:
        """The struct as web3 encodes it (an argument of a transaction)."""
        return tuple(list(v) if isinstance(v, tuple) else v for v in astuple(self))  # type: ignore[call-overload]


@dataclass(frozen=True)
class Terms(ChainStruct):
    """``IAgreementRegistry.Terms``: what the parties sign. ``chain.agreements.AgreementTerms`` writes them."""

    terms_digest: bytes
    parties: tuple[str, ...]
    reward_token: str
    reward_per_round: int
    payout_rule: PayoutRule
    epsilon_cap_fixed: int
    delta_fixed: int
    required_stake: int
    start: int
    end: int
    max_rounds: int
    coordinator: str
    arbiter: str
    max_sample_count: int
    coordinator_bond: int

    @property
    def epsilon_cap(self) -> float:
        return self.epsilon_cap_fixed / EPSILON_SCALE

    @property
    def delta(self) -> float:
        return self.delta_fixed / DELTA_SCALE


@dataclass(frozen=True)
class AgreementState(ChainStruct):
    """``IAgreementRegistry.AgreementState``: `version` is the latest, `active_version` the one in force;
    `epsilon_cap_fixed` and `party_count` are the terms in force's, `epsilon_lane_bits` the width of each
    party's lane in the ledger's packed epsilon words (24 or 32, fixed at the proposal)."""

    status: AgreementStatus
    version: int
    signatures: int
    active_version: int
    proposed_at: int
    coordinator: str
    epsilon_cap_fixed: int
    party_count: int
    epsilon_lane_bits: int
    terms_hash: bytes


@dataclass(frozen=True)
class RoundConfig(ChainStruct):
    """``IAgreementRegistry.RoundConfig``: the terms in force a round needs, without the party list."""

    status: AgreementStatus
    version: int
    party_count: int
    epsilon_cap_fixed: int
    max_rounds: int
    start: int
    end: int
    reward_per_round: int
    reward_token: str
    coordinator: str
    arbiter: str
    max_sample_count: int
    epsilon_lane_bits: int


@dataclass(frozen=True)
class Partner(ChainStruct):
    """``IPartnerRegistry.Partner``: `encryption_key` is the X25519 public key updates are sealed to."""

    status: PartnerStatus
    registered_at: int
    profile_digest: bytes
    encryption_key: bytes


@dataclass(frozen=True)
class Round(ChainStruct):
    """``IRoundLedger.Round``."""

    status: RoundStatus
    agreement_version: int
    submissions: int
    opened_at: int
    deadline: int
    finalized_at: int
    model_digest: bytes
    eval_commitment: bytes
    aggregate_digest: bytes
    report_digest: bytes
    payout_root: bytes
    payout_total: int


@dataclass(frozen=True)
class Challenge(ChainStruct):
    """``IRoundLedger.Challenge``: a challenge of one partner's update."""

    status: ChallengeStatus
    round: int
    raised_at: int
    agreement_id: int
    partner: str
    challenger: str
    evidence_digest: bytes
    ruling_digest: bytes


@dataclass(frozen=True)
class EntryDispute(ChainStruct):
    """``IRoundLedger.EntryDispute``: a party's dispute of its entry in an anchored batch."""

    status: DisputeStatus
    position: int
    epsilon_fixed: int
    answer_by: int
    batch_index: int


@dataclass(frozen=True)
class ResultsChallenge(ChainStruct):
    """``IResultsCourt.ResultsChallenge``: a challenge of a round's published results."""

    status: ResultsChallengeStatus
    kind: ResultsKind
    round: int
    raised_at: int
    agreement_id: int
    challenger: str
    evidence_digest: bytes
    ruling_digest: bytes


@dataclass(frozen=True)
class Bonds(ChainStruct):
    """``IResultsCourt.Bonds``: the books of one agreement's coordinator bonds."""

    posted: int
    withdrawn: int
    slashed: int
    shares_paid: int


@dataclass(frozen=True)
class Pool(ChainStruct):
    """``IRewardVault.Pool``: the books of one agreement's reward pool and stakes."""

    funded: int
    allocated: int
    paid: int
    slashed: int
    reclaimed: int
    staked: int
    unstaked: int
    stake_slashed: int


@dataclass(frozen=True)
class Allocation(ChainStruct):
    """``IRewardVault.Allocation``: one round's payouts, claimable from `claimable_at`."""

    root: bytes
    total: int
    claimed: int
    claimable_at: int
    revoked: bool
    expired: bool
