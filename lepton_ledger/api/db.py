"""The service's own SQLite file (``<data dir>/api/service.sqlite``): sign-in nonces, bearer tokens (hashed),
idempotent responses, jobs, which agreement and round each uploaded blob belongs to and the partners' signed batch
commitments (what the anchor job anchors). The chain and the store stay the sources of truth; this holds only what
the service itself promised."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

SCHEMA = """
CREATE TABLE IF NOT EXISTS nonces (nonce TEXT PRIMARY KEY, address TEXT NOT NULL, message TEXT NOT NULL,
                                   expires_at REAL NOT NULL, used INTEGER NOT NULL DEFAULT 0,
                                   client TEXT NOT NULL DEFAULT '');
CREATE TABLE IF NOT EXISTS tokens (token_hash TEXT PRIMARY KEY, address TEXT NOT NULL, expires_at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS idempotency (caller TEXT NOT NULL, key TEXT NOT NULL, route TEXT NOT NULL,
                                        request_hash TEXT NOT NULL, status INTEGER, body TEXT,
                                        owner TEXT NOT NULL DEFAULT '', PRIMARY KEY (caller, key));
CREATE TABLE IF NOT EXISTS jobs (id INTEGER PRIMARY KEY AUTOINCREMENT, kind TEXT NOT NULL, agreement_id INTEGER NOT NULL,
                                 round_id INTEGER NOT NULL, params TEXT NOT NULL, status TEXT NOT NULL,
                                 progress TEXT NOT NULL DEFAULT '', result TEXT, error TEXT,
                                 created_at REAL NOT NULL, updated_at REAL NOT NULL, origin TEXT);
CREATE TABLE IF NOT EXISTS blobs (cid TEXT NOT NULL, agreement_id INTEGER NOT NULL, uploader TEXT NOT NULL,
                                  round_id INTEGER NOT NULL DEFAULT 0, PRIMARY KEY (cid, agreement_id, uploader));
CREATE TABLE IF NOT EXISTS commitments (agreement_id INTEGER NOT NULL, round_id INTEGER NOT NULL,
                                        partner TEXT NOT NULL, document TEXT NOT NULL, created_at REAL NOT NULL,
                                        PRIMARY KEY (agreement_id, round_id, partner));
"""
# Columns added after the first release: a database written by it gains them (their defaults fit its rows).
ADDED_COLUMNS = (
    ("nonces", "client", "TEXT NOT NULL DEFAULT ''"),
    ("idempotency", "owner", "TEXT NOT NULL DEFAULT ''"),
    ("jobs", "origin", "TEXT"),
    ("blobs", "round_id", "INTEGER NOT NULL DEFAULT 0"),  # the round an envelope was uploaded for (its limit)
)


class Database:
    """One connection per thread (SQLite's rule), WAL so that readers never wait for the writer."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._local = threading.local()
        connection = self.connection()
        connection.executescript(SCHEMA)
        for table, column, declaration in ADDED_COLUMNS:
            if column not in {row["name"] for row in connection.execute(f"PRAGMA table_info({table})")}:
                connection.execute(f"ALTER TABLE {table} ADD COLUMN {column} {declaration}")

    def connection(self) -> sqlite3.Connection:
        """This thread's connection (autocommit: a lone read or write needs no transaction)."""
        connection = getattr(self._local, "connection", None)
        if connection is None:
            connection = sqlite3.connect(self.path, timeout=30, isolation_level=None)
            connection.execute("PRAGMA journal_mode=WAL")
            connection.row_factory = sqlite3.Row
            self._local.connection = connection
        return connection

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """An immediate (write-locked) transaction, committed on exit and rolled back on an error."""
        connection = self.connection()
        connection.execute("BEGIN IMMEDIATE")
        try:
            yield connection
        except BaseException:
            connection.execute("ROLLBACK")
            raise
        connection.execute("COMMIT")
