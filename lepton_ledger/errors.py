"""The project's exception tree: one root, and subclasses that also inherit the matching builtin so that
callers may catch either (`except BudgetExceeded` or `except ValueError`)."""

from __future__ import annotations


class LeptonError(Exception):
    """Root of every error lepton-ledger raises on purpose."""


class ConfigurationError(LeptonError, ValueError):
    """A setting or argument is missing or malformed."""


class CommandError(LeptonError, ValueError):
    """A party's request (a command's arguments, a service call's body) is wrong in a way found before anything
    was sent; the message names what."""


class ToolchainError(LeptonError, RuntimeError):
    """A build artifact or external tool (anvil, the compiler) is missing or failed."""


class ChainError(LeptonError, RuntimeError):
    """The chain could not be reached, or a transaction failed for a reason other than a contract error."""


class ContractReverted(ChainError):
    """A contract refused a call with one of its custom errors.

    Attributes:
        error: the custom error's name, e.g. ``RoundLedgerBudgetExceeded``.
        args: its decoded arguments, by name.
    """

    def __init__(self, error: str, args: dict[str, object], contract: str | None = None) -> None:
        self.error = error
        self.args_by_name = args
        self.contract = contract
        rendered = ", ".join(f"{k}={v}" for k, v in args.items())
        where = f"{contract}: " if contract else ""
        super().__init__(f"{where}{error}({rendered})")


class BudgetExceeded(LeptonError, ValueError):
    """A round would take a partner's cumulative epsilon over the agreement's cap (fixed point, 1e6 = 1.0).

    Attributes: partner, agreement, spent, would_spend, cap (all fixed-point integers but the first two).
    """

    def __init__(self, *, partner: str, agreement: str, spent: int, would_spend: int, cap: int) -> None:
        self.partner, self.agreement = partner, agreement
        self.spent, self.would_spend, self.cap = spent, would_spend, cap
        from .units import EPSILON_SCALE  # here: units imports this module

        super().__init__(
            f"privacy budget exceeded for partner {partner} under agreement {agreement}: spent "
            f"{spent / EPSILON_SCALE:.6f}, this round would take it to {would_spend / EPSILON_SCALE:.6f}, "
            f"cap {cap / EPSILON_SCALE:.6f}"
        )
