"""How every ``lepton-ledger`` command reports a failure: one scheme for all of them.

A failure is one line, ``error: <what was wrong>``, on stderr; nothing else is printed and, since commands check
what they can before their first put or transaction, nothing was sent. The exit code says the kind:

====  ========================================================================================================
code  meaning
====  ========================================================================================================
0     done (``audit``: every check holds)
1     refused or failed: the project's errors (``LeptonError``: bad input, unknown agreement, wrong password,
      missing deployment file, an RPC URL that does not answer...), a contract revert (its custom error and
      arguments in human units: dates, tokens, status names), a file that cannot be read or written.
      ``audit``: a check failed
2     usage: an unknown flag or a malformed value (typer's own message). ``audit``: the audit could not run
      (its 1 says that a check failed, so its refusals take 2)
130   interrupted (Ctrl-C); what was recorded is kept, the same command resumes
====  ========================================================================================================
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar

import typer

from ..errors import CommandError, ContractReverted, LeptonError

__all__ = [
    "EXIT_INTERRUPTED",
    "EXIT_REFUSED",
    "EXIT_USAGE",
    "CommandError",
    "error_line",
    "fail",
    "reports_errors",
]

EXIT_REFUSED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130

# Every put and transaction is recorded before it happens (the outbox): rerunning picks up where it stopped.
INTERRUPTED = "interrupted; what was recorded is kept: run the same command again to resume"

F = TypeVar("F", bound=Callable[..., Any])


def fail(message: str, code: int = EXIT_REFUSED) -> typer.Exit:
    """Prints ``error: message`` on stderr; the caller raises the returned Exit."""
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(code)


def error_line(exc: BaseException) -> str | None:
    """What one line says of `exc`, or None when it is not a failure this scheme reports (a bug: traceback)."""
    from web3.exceptions import ContractCustomError, ContractLogicError

    if isinstance(exc, ContractReverted):
        from ..chain.transactions import human_revert

        return f"the contract refused: {human_revert(exc)}"
    if isinstance(exc, LeptonError):
        return str(exc)
    if isinstance(exc, (ContractCustomError, ContractLogicError)):  # a call outside the Transactor
        from ..chain.transactions import decode_revert, human_revert

        decoded = decode_revert(getattr(exc, "data", None))
        return f"the contract refused: {human_revert(decoded) if decoded else exc}"
    if isinstance(exc, OSError):  # a --csv, --terms-file, key or output file that cannot be read or written
        return f"{exc.strerror or exc}: {exc.filename}" if exc.filename else str(exc.strerror or exc)
    return None


def reports_errors(command: F | None = None, *, code: int = EXIT_REFUSED, prefix: str = "") -> Any:
    """Decorates a command so that its failures follow the scheme above (`code`: the exit code of a refusal,
    `prefix`: what the line starts with). Usable bare (``@reports_errors``) or with arguments."""

    def decorate(function: F) -> F:
        @wraps(function)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            try:
                return function(*args, **kwargs)
            except KeyboardInterrupt:
                raise fail(INTERRUPTED, EXIT_INTERRUPTED) from None
            except Exception as exc:
                line = error_line(exc)
                if line is None:
                    raise
                raise fail(f"{prefix}{line}", code) from None

        wrapper.reports_errors = True  # type: ignore[attr-defined]  # the mark a test looks for on every command
        return wrapper  # type: ignore[return-value]

    return decorate(command) if command is not None else decorate
