"""The auditor's local state, in one SQLite file, so that a second audit re-checks only new rounds.

A deployment is keyed by ``chain id : RoundLedger address : hash of block 1`` (the hash tells apart two local
chains that reuse anvil's deterministic addresses; not the genesis hash, which anvil does not keep stable across
restarts from a state file). Tables, all keyed by that key:

- ``verified_rounds(deployment, agreement_id, round, block, audited_at_block, summary)``: a finalized round
  every check of which passed, the block it was finalized in, the audit block it was verified at, and its
  round summary (JSON of ``RoundSummary.to_dict``). Rounds that failed are not recorded: they are re-checked
  (and fail again) until fixed or forced.
- ``dp_history(deployment, agreement_id, partner, round, entry)``: the DP parameters of every opened manifest
  (JSON), which later rounds' epsilon re-composition needs without re-opening old envelopes.

The event index of each deployment lives beside the file (``<stem>.events-<key hash>.sqlite``).
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from .model import RoundSummary

__all__ = ["AuditState", "deployment_key"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS verified_rounds (
    deployment TEXT NOT NULL, agreement_id INTEGER NOT NULL, round INTEGER NOT NULL, block INTEGER NOT NULL,
    audited_at_block INTEGER NOT NULL, summary TEXT NOT NULL, PRIMARY KEY (deployment, agreement_id, round)
);
CREATE TABLE IF NOT EXISTS dp_history (
    deployment TEXT NOT NULL, agreement_id INTEGER NOT NULL, partner TEXT NOT NULL, round INTEGER NOT NULL,
    entry TEXT NOT NULL, PRIMARY KEY (deployment, agreement_id, partner, round)
);
"""


def deployment_key(chain_id: int, ledger: str, first_block_hash: str) -> str:
    return f"{chain_id}:{ledger}:{first_block_hash}"


class AuditState:
    """The state of one deployment's audits in the SQLite file `path` (created when missing)."""

    def __init__(self, path: Path, key: str) -> None:
        self.path, self.key = Path(path), key
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._connection: sqlite3.Connection | None = None
        self._lock = threading.Lock()
        with self._db() as db:
            db.executescript(_SCHEMA)

    @property
    def events_path(self) -> Path:
        digest = hashlib.sha256(self.key.encode()).hexdigest()[:16]
        return self.path.with_name(f"{self.path.stem}.events-{digest}.sqlite")

    def reset(self) -> None:
        """Forgets every verified round and DP history entry of this deployment (``full`` audits)."""
        with self._db() as db:
            db.execute("DELETE FROM verified_rounds WHERE deployment = ?", (self.key,))
            db.execute("DELETE FROM dp_history WHERE deployment = ?", (self.key,))

    def verified(self) -> dict[tuple[int, int], RoundSummary]:
        with self._db() as db:
            rows = db.execute(
                "SELECT agreement_id, round, summary FROM verified_rounds WHERE deployment = ? "
                "ORDER BY agreement_id, round",
                (self.key,),
            ).fetchall()
        return {(a, r): RoundSummary.from_dict(json.loads(s)) for a, r, s in rows}

    def record_round(self, summary: RoundSummary, audited_at_block: int) -> None:
        with self._db() as db:
            db.execute(
                "INSERT OR REPLACE INTO verified_rounds VALUES (?, ?, ?, ?, ?, ?)",
                (
                    self.key,
                    summary.agreement_id,
                    summary.round,
                    summary.block,
                    audited_at_block,
                    json.dumps(summary.to_dict(), sort_keys=True),
                ),
            )

    def forget_round(self, agreement_id: int, round_id: int) -> None:
        """Drops one verified round (its artifacts no longer check out): the next audit examines it in full."""
        with self._db() as db:
            db.execute(
                "DELETE FROM verified_rounds WHERE deployment = ? AND agreement_id = ? AND round = ?",
                (self.key, agreement_id, round_id),
            )

    def dp_history(self, agreement_id: int) -> dict[str, dict[int, dict[str, Any]]]:
        """``{partner: {round: DP entry}}`` recorded so far."""
        with self._db() as db:
            rows = db.execute(
                "SELECT partner, round, entry FROM dp_history WHERE deployment = ? AND agreement_id = ?",
                (self.key, agreement_id),
            ).fetchall()
        history: dict[str, dict[int, dict[str, Any]]] = {}
        for partner, r, entry in rows:
            history.setdefault(partner, {})[r] = json.loads(entry)
        return history

    def record_dp(self, agreement_id: int, partner: str, round_id: int, entry: dict[str, Any]) -> None:
        with self._db() as db:
            db.execute(
                "INSERT OR REPLACE INTO dp_history VALUES (?, ?, ?, ?, ?)",
                (self.key, agreement_id, partner, round_id, json.dumps(entry, sort_keys=True)),
            )

    @contextmanager
    def _db(self) -> Iterator[sqlite3.Connection]:
        # One connection for the state's life, in WAL mode without a sync per commit: the file is a cache of what
        # was verified, so a power cut that loses the last commits only makes the next audit examine those rounds
        # again; a sync per recorded DP entry made up a third of a full audit's time.
        if self._connection is None:
            self._connection = sqlite3.connect(self.path, timeout=30, check_same_thread=False)
            self._connection.execute("PRAGMA journal_mode=WAL")
            self._connection.execute("PRAGMA synchronous=NORMAL")
            weakref.finalize(self, self._connection.close)  # closed with the state object
        with self._lock, self._connection as db:
            yield db
