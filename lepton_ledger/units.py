"""The numbers the contracts and every layer above them share, declared once: the contracts' enums (statuses,
payout rules, challenge kinds), the fixed-point scales of epsilon, delta and the reward token, and the conversions
between floats and the chain's fixed point.

Each enum matches its Solidity declaration member for member (tests/test_units.py compares them with the
interfaces); ``str()`` of a member is its Solidity name (``Finalized``, ``BySampleCount``), how refusals print it.
This module imports nothing of the package beyond ``errors``, so every layer may import it.
"""

from __future__ import annotations

import math
from enum import Enum, IntEnum
from fractions import Fraction

from .errors import ConfigurationError

__all__ = [
    "DELTA_SCALE",
    "EPSILON_DECIMALS",
    "EPSILON_SCALE",
    "TOKEN",
    "TOKEN_DECIMALS",
    "UINT32_MAX",
    "AccountantKind",
    "AgreementStatus",
    "ChainEnum",
    "ChallengeStatus",
    "DisputeStatus",
    "PartnerStatus",
    "PayoutRule",
    "ResultsChallengeStatus",
    "ResultsKind",
    "RoundStatus",
    "cap_to_fixed",
    "epsilon_to_fixed",
    "fixed_to_epsilon",
]

TOKEN_DECIMALS = 18  # the reward token is an 18-decimals ERC-20
TOKEN: int = 10**TOKEN_DECIMALS  # one whole token
EPSILON_DECIMALS = 6  # on-chain epsilon fixed point (uint32): 1e6 = 1.0
EPSILON_SCALE: int = 10**EPSILON_DECIMALS
DELTA_SCALE = 10**18  # on-chain delta fixed point (uint64): 1e18 = 1.0
UINT32_MAX = 2**32 - 1  # the largest fixed-point epsilon (and cap) the chain stores


class ChainEnum(IntEnum):
    """An enum of the contracts, numbered as Solidity numbers it."""

    def __str__(self) -> str:
        return "".join(part.capitalize() for part in self.name.split("_"))


class PayoutRule(ChainEnum):
    """``IAgreementRegistry.PayoutRule``: how a round's reward is split (fl.payouts computes each)."""

    PROPORTIONAL = 0  # to positive contribution scores
    EQUAL = 1
    BY_SAMPLE_COUNT = 2


class AgreementStatus(ChainEnum):
    """``IAgreementRegistry.AgreementStatus``."""

    NONE = 0
    PROPOSED = 1
    ACTIVE = 2
    TERMINATED = 3


class PartnerStatus(ChainEnum):
    """``IPartnerRegistry.PartnerStatus``."""

    NONE = 0
    PENDING = 1
    APPROVED = 2
    SUSPENDED = 3


class RoundStatus(ChainEnum):
    """``IRoundLedger.RoundStatus``: an abandoned round is voided like a disproven one."""

    NONE = 0
    OPEN = 1
    FINALIZED = 2
    VOIDED = 3


class ChallengeStatus(ChainEnum):
    """``IRoundLedger.ChallengeStatus``: a challenge of one partner's update."""

    NONE = 0
    OPEN = 1
    UPHELD = 2
    DISMISSED = 3
    EXECUTED = 4


class DisputeStatus(ChainEnum):
    """``IRoundLedger.DisputeStatus``: a party's dispute of its entry in a batch."""

    NONE = 0
    OPEN = 1
    ANSWERED = 2
    VOIDED = 3


class ResultsKind(ChainEnum):
    """``IResultsCourt.ResultsKind``: what a results challenge disputes."""

    AGGREGATE = 0
    PAYOUTS = 1
    REJECTIONS = 2
    RULES = 3


class ResultsChallengeStatus(ChainEnum):
    """``IResultsCourt.ChallengeStatus``: a challenge of a round's published results."""

    NONE = 0
    OPEN = 1
    UPHELD = 2
    DISMISSED = 3


class AccountantKind(str, Enum):
    """The privacy accountant a manifest names (its epsilon is recomputed with it)."""

    RDP = "rdp"
    PRV = "prv"

    @classmethod
    def parse(cls, value: str | AccountantKind) -> AccountantKind:
        """Raises: ConfigurationError for anything but "rdp" or "prv"."""
        try:
            return cls(value)
        except ValueError:
            raise ConfigurationError(f"accountant must be 'rdp' or 'prv', got {value!r}") from None


def epsilon_to_fixed(epsilon: float) -> int:
    """`epsilon` in on-chain fixed point (1e6 = 1.0), rounded UP (from the float's exact binary value) so the
    chain never understates it: ``epsilon_to_fixed(0.1) == 100001``.

    Raises:
        ConfigurationError: negative, NaN or infinite.
    """
    if not (math.isfinite(epsilon) and epsilon >= 0):
        raise ConfigurationError(f"epsilon must be finite and >= 0, got {epsilon}")
    return math.ceil(Fraction(epsilon) * EPSILON_SCALE)


def cap_to_fixed(cap: float) -> int:
    """A cap in fixed point, rounded DOWN so it never allows more than stated.

    Raises:
        ConfigurationError: not positive and finite.
    """
    if not (math.isfinite(cap) and cap > 0):
        raise ConfigurationError(f"epsilon cap must be finite and > 0, got {cap}")
    return math.floor(Fraction(cap) * EPSILON_SCALE)


def fixed_to_epsilon(value: int) -> float:
    """The float an on-chain fixed-point epsilon stands for."""
    return value / EPSILON_SCALE
