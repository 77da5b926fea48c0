"""SQLite connections kept per process and thread.

Opening a connection and setting its pragmas cost more than most of the statements the outbox, the event index
and the block store's pins run, so each keeps one open, opened on first use. One per process and thread: a
connection must cross neither a fork (a child opens its own, seen by the pid) nor a thread.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Sequence
from pathlib import Path


class KeptConnections:
    """The connection to `path` of the calling process and thread (:meth:`get`), opened with `timeout` (seconds
    to wait for a lock), in autocommit mode when `autocommit`, rows as ``sqlite3.Row`` when `named_rows`, and
    each of `pragmas` run once when it opens."""

    def __init__(
        self,
        path: Path,
        *,
        timeout: float,
        pragmas: Sequence[str] = (),
        autocommit: bool = False,
        named_rows: bool = False,
    ) -> None:
        self.path, self.timeout, self.pragmas = Path(path), timeout, tuple(pragmas)
        self.autocommit, self.named_rows = autocommit, named_rows
        self._local = threading.local()

    def get(self) -> sqlite3.Connection:
        held: tuple[int, sqlite3.Connection] | None = getattr(self._local, "connection", None)
        if held is not None and held[0] == os.getpid():
            return held[1]
        db = sqlite3.connect(self.path, timeout=self.timeout, isolation_level=None if self.autocommit else "DEFERRED")
        if self.named_rows:
            db.row_factory = sqlite3.Row
        for pragma in self.pragmas:
            db.execute(f"PRAGMA {pragma}")
        self._local.connection = (os.getpid(), db)
        return db
