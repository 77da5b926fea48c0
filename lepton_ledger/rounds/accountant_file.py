"""A partner's privacy accountant persisted to one JSON file, each of its rounds recorded exactly once.

A round is recorded under the key of the outbox operation that spent it (the confirmed ``submitUpdate``, or the
signature given away in batched mode), and the file says which keys it holds, so that a process restarted
after a crash records what it missed (partner.Partner.reconcile) and never records anything twice.

Where the file lives is derived in one place, :func:`accountant_path`:
``<folder>/<chain tag>-<RoundLedger address>/<agreement>-<partner>.json``, the folder the caller's (the CLI: the
data directory's ``accountants``; ``rounds.Partner`` by default: its outbox's folder).

Format (version 1), rewritten whole and atomically (temporary file, fsync, rename, fsync of the folder)::

    {"version": 1, "accountant": PrivacyAccountant.state_dict(), "recorded": ["<operation key>", ...],
     "epsilon": <the history's cumulative epsilon, for readers that need not recompute it (partner status)>}
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from web3 import Web3

from ..errors import ConfigurationError
from ..fl.accounting import PrivacyAccountant, Round
from .effects import chain_tag

__all__ = ["FILE_VERSION", "AccountantFile", "accountant_path"]

FILE_VERSION = 1


def accountant_path(folder: Path, w3: Web3, ledger: str, agreement_id: int | str, partner: str) -> Path:
    """The accountant file of `partner` under agreement `agreement_id` of the RoundLedger at `ledger`, in `folder`:
    ``<folder>/<chain tag>-<ledger>/<agreement>-<partner>.json``. The chain tag (``effects.chain_tag``) keeps two
    local chains apart that share a chain id and, deployed alike, the ledger's address: a fresh chain never loads
    the epsilon another one spent."""
    return Path(folder) / f"{chain_tag(w3)}-{ledger}" / f"{agreement_id}-{partner}.json"


class AccountantFile:
    """`accountant`, loaded from `path` when the file exists and saved to it after every recorded round.

    Raises (constructor):
        ConfigurationError: the file is not this format, or holds another partner's, agreement's or terms'
            accountant (``PrivacyAccountant.load_state_dict``).
    """

    def __init__(self, accountant: PrivacyAccountant, path: Path) -> None:
        self.accountant, self.path = accountant, Path(path)
        self.recorded: list[str] = []
        if self.path.exists():
            try:
                document = json.loads(self.path.read_text())
            except json.JSONDecodeError as exc:
                raise ConfigurationError(f"accountant file {self.path} is not JSON: {exc}") from None
            if not (
                isinstance(document, dict)
                and document.get("version") == FILE_VERSION
                and isinstance(document.get("accountant"), dict)
                and isinstance(document.get("recorded"), list)
            ):
                raise ConfigurationError(
                    f"{self.path} is not an accountant file of version {FILE_VERSION} "
                    '(keys "version", "accountant", "recorded")'
                )
            accountant.load_state_dict(document["accountant"])
            self.recorded = [str(k) for k in document["recorded"]]

    def has(self, key: str) -> bool:
        """Whether the round spent by operation `key` is recorded."""
        return key in self.recorded

    def record_once(self, key: str, round_: Round | Any) -> int:
        """Records `round_` under `key` unless that key is recorded already, then saves; returns the cumulative
        epsilon (fixed point).

        Raises:
            BudgetExceeded: the round takes the partner over its cap (nothing is recorded).
            OSError: the file cannot be written (nothing is recorded).
        """
        if key in self.recorded:
            return self.accountant.spent_fixed()
        history = list(self.accountant.history)
        after = self.accountant.record(round_)
        self.recorded.append(key)
        try:
            self.save()
        except BaseException:
            self.accountant.history, self.recorded = history, self.recorded[:-1]
            raise
        return after

    def save(self) -> None:
        """Writes the file atomically: a reader (or a restart) sees the old or the new content, never a mix."""
        document = {
            "version": FILE_VERSION,
            "accountant": self.accountant.state_dict(),
            "recorded": self.recorded,
            "epsilon": self.accountant.epsilon(),
        }
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        with open(tmp, "w") as out:
            out.write(json.dumps(document, sort_keys=True))
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, self.path)
        folder = os.open(self.path.parent, os.O_RDONLY)
        try:
            os.fsync(folder)  # the rename itself survives a power cut
        finally:
            os.close(folder)
