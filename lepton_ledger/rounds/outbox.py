"""A durable outbox: every side effect of a round (an IPFS put, a transaction) is recorded before it happens,
so that a process killed at any point can be restarted and finish the work with nothing lost and nothing done
twice.

An operation has a stable idempotency key chosen by the caller (``f"submit:{agreement}:{round}:{partner}"``),
a kind that selects its handler, a JSON payload, a status and, once done, a JSON result::

    pending --(handler)--> sent --(receipt)--> confirmed
       \\______________________\\____________--> failed

Storage is SQLite in WAL mode, one connection per process and thread, so several processes may share the file;
claims are taken inside ``BEGIN IMMEDIATE`` and carry the claimer's host and pid, so that an operation held by a
process that died is taken over at once instead of after its lease runs out.

Transactions recover without double-spending: the signed raw transaction and its nonce are stored *before*
broadcasting. A restarted runner that finds one looks at the sender's mined nonce: past it, the transaction
either was mined (found by hash) or lost its nonce to another transaction (so it can never be mined, and is
signed afresh); not past it, the *same* raw bytes are broadcast again, which the nonce makes harmless.
Handlers of other kinds must be idempotent themselves (an IPFS put of the same bytes gives the same CID).

A transaction payload is :func:`transaction_payload`'s (sender, to, data, value, gas) plus any keys of the
caller's own; a refused transaction fails with the contract's decoded error as its result (:func:`revert_result`).
Operations that must exist together are recorded in one SQLite transaction (:meth:`Outbox.enqueue_many`); a
failed operation, which had no effect, may be made pending again (:meth:`Outbox.retry`). How the round steps
use all this: effects.py.

An operation's bytes (what a put publishes: a sealed envelope, a model) are stored once, apart from its JSON
payload (:meth:`Outbox.data`): every claim and transition rewrites the row and every read parses its payload,
which for a model of a megabyte cost tens of milliseconds each. Bytes up to ``INLINE_BYTES`` go in the ``blobs``
table, in the row's own transaction; larger ones in a file of their own beside the SQLite file. Measured here:
making a new file costs ~0.2-0.6 ms of CPU whatever its size, a 3 kB row ~0.03 ms, a megabyte ~2.7 ms in the table
against ~0.5 ms in a file. A file is in place before its row commits (a crash between the two leaves a file no row
names, which the next enqueue of that key replaces, or removes when it records smaller bytes or none).
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import sqlite3
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, cast

from eth_typing import ChecksumAddress
from hexbytes import HexBytes
from web3.contract.contract import ContractFunction
from web3.exceptions import ContractCustomError, ContractLogicError
from web3.types import TxParams, TxReceipt

from ..chain.batched import calldata, prepare_transaction
from ..chain.transactions import SignedTx, Transactor, decode_revert
from ..errors import ChainError, ContractReverted, LeptonError
from ..storage.connections import KeptConnections

# Bytes up to this size are kept in the table: below it a row costs less than a new file (see above).
INLINE_BYTES = 64 * 1024

Status = Literal["pending", "sent", "confirmed", "failed"]
OPEN: tuple[Status, ...] = ("pending", "sent")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS operations (
    seq           INTEGER PRIMARY KEY AUTOINCREMENT,
    key           TEXT    NOT NULL UNIQUE,
    kind          TEXT    NOT NULL,
    payload       TEXT    NOT NULL,
    status        TEXT    NOT NULL DEFAULT 'pending',
    result        TEXT,
    error         TEXT,
    attempts      INTEGER NOT NULL DEFAULT 0,
    tx_sender     TEXT,
    tx_nonce      INTEGER,
    tx_hash       TEXT,
    tx_raw        BLOB,
    claimed_by    TEXT,
    claimed_until REAL,
    created_at    REAL    NOT NULL,
    updated_at    REAL    NOT NULL
);
CREATE INDEX IF NOT EXISTS operations_open ON operations (status, seq);
CREATE TABLE IF NOT EXISTS blobs (
    key  TEXT PRIMARY KEY,
    data BLOB NOT NULL
);
"""


class OutboxError(LeptonError, RuntimeError):
    """An outbox operation is unknown, asked for a transition its status does not allow, or its file is damaged."""


class PermanentFailure(LeptonError, RuntimeError):
    """Raised by a handler when retrying cannot help: the runner marks the operation failed.

    Attributes:
        result: what to record with the failure (e.g. the reverted transaction's receipt summary), or None.
    """

    def __init__(self, message: str, result: Any = None) -> None:
        super().__init__(message)
        self.result = result


@dataclass(frozen=True)
class Operation:
    """One recorded side effect."""

    seq: int
    key: str
    kind: str
    payload: dict[str, Any]
    status: Status
    result: Any
    error: str | None
    attempts: int
    tx_sender: str | None
    tx_nonce: int | None
    tx_hash: str | None
    tx_raw: bytes | None


class Outbox:
    """The operations table in one SQLite file.

    Args:
        path: the SQLite file, created when missing.
        lease_seconds: how long a claim keeps other live processes off an operation.
    """

    def __init__(self, path: Path, *, lease_seconds: float = 300.0) -> None:
        self.path = Path(path)
        self.lease_seconds = lease_seconds
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # host:pid:instance, so that a claim of a dead process on this host can be recognised and taken over.
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        # One connection per process and thread: opening one cost ~20 ms here, more than the write itself.
        # synchronous=NORMAL in WAL mode: a commit survives the death of the process (what the outbox is for); a
        # power cut may lose the last commits, which the recovery by nonce and idempotent keys also covers.
        self._connections = KeptConnections(
            self.path, timeout=30, pragmas=("synchronous=NORMAL",), autocommit=True, named_rows=True
        )
        self._blobs = self.path.with_name(self.path.name + ".blobs")
        self._blobs.mkdir(exist_ok=True)
        db = sqlite3.connect(self.path, timeout=30)
        try:
            db.execute("PRAGMA journal_mode=WAL")  # persistent in the file: readers never block the writer
            db.executescript(_SCHEMA)
        except sqlite3.DatabaseError as exc:
            raise self._damaged(exc) from None
        finally:
            db.close()

    # ------------------------------------------------------------------ records

    def enqueue(self, key: str, kind: str, payload: Mapping[str, Any], data: bytes | None = None) -> Operation:
        """Records an operation to perform, with its bytes `data` if it has some (:meth:`data`); returns it. A key
        seen before returns the existing record unchanged (whatever `kind`, `payload` and `data` say now): the
        key, not the call, identifies the side effect.

        Raises:
            TypeError: `payload` is not JSON-serializable.
        """
        return self.enqueue_many([(key, kind, payload, data)])[0]

    def enqueue_many(self, operations: Sequence[tuple[Any, ...]]) -> list[Operation]:
        """Records several ``(key, kind, payload)`` or ``(key, kind, payload, data)`` operations in one
        transaction: after a crash either all of them exist or none does (keys seen before are left unchanged, as
        in :meth:`enqueue`). Returns them.

        Raises:
            TypeError: a payload is not JSON-serializable (nothing is recorded).
        """
        rows = [
            (key, kind, json.dumps(dict(payload), sort_keys=True), *data) for key, kind, payload, *data in operations
        ]
        blobs = {key: bytes(data[0]) for key, _, _, *data in rows if data and data[0] is not None}
        # Large bytes written before the write lock is taken, and moved in place only for a key recorded now.
        staged = {key: self._stage(data) for key, data in blobs.items() if len(data) > INLINE_BYTES}
        now = time.time()
        try:
            with self._write_transaction() as db:
                recorded = []
                for key, kind, document, *_ in rows:
                    inserted = db.execute(
                        "INSERT OR IGNORE INTO operations (key, kind, payload, created_at, updated_at) "
                        "VALUES (?, ?, ?, ?, ?)",
                        (key, kind, document, now, now),
                    ).rowcount
                    if inserted and key in staged:
                        os.replace(staged.pop(key), self._blob_path(key))
                    elif inserted:
                        # A file of a key recorded only now is a crashed enqueue's, which recorded nothing.
                        self._blob_path(key).unlink(missing_ok=True)
                        if key in blobs:
                            db.execute("INSERT INTO blobs (key, data) VALUES (?, ?)", (key, blobs[key]))
                    recorded.append(db.execute("SELECT * FROM operations WHERE key = ?", (key,)).fetchone())
        finally:
            for path in staged.values():  # the bytes of keys seen before: the key, not the call, wins
                path.unlink(missing_ok=True)
        return [_operation(row) for row in recorded]

    def data(self, key: str) -> bytes | None:
        """The bytes recorded with operation `key` (:meth:`enqueue`'s `data`), or None."""
        rows = self._execute("SELECT data FROM blobs WHERE key = ?", (key,))
        if rows:
            return bytes(rows[0]["data"])
        try:
            return self._blob_path(key).read_bytes()
        except FileNotFoundError:
            return None

    def _blob_path(self, key: str) -> Path:
        return self._blobs / hashlib.sha256(key.encode()).hexdigest()

    def _stage(self, data: bytes) -> Path:
        path = self._blobs / f"{uuid.uuid4().hex}.staged"
        path.write_bytes(data)
        return path

    def get(self, key: str) -> Operation:
        """The operation with `key`.

        Raises:
            OutboxError: no operation has that key.
        """
        rows = self._execute("SELECT * FROM operations WHERE key = ?", (key,))
        if not rows:
            raise OutboxError(f"no outbox operation with key {key!r}")
        return _operation(rows[0])

    def find(self, key: str) -> Operation | None:
        """The operation with `key`, or None."""
        try:
            return self.get(key)
        except OutboxError:
            return None

    def operations(self, status: Status | None = None, *, prefix: str = "") -> list[Operation]:
        """Operations in the order they were enqueued, optionally only those with `status` and whose key starts
        with `prefix`."""
        rows = self._execute(
            "SELECT * FROM operations WHERE (? IS NULL OR status = ?) AND substr(key, 1, ?) = ? ORDER BY seq",
            (status, status, len(prefix), prefix),
        )
        return [_operation(r) for r in rows]

    def keys(self, *, prefix: str = "") -> list[str]:
        """The keys of the operations whose key starts with `prefix`, in the order they were enqueued (nothing
        of them is parsed: a party's every round is in its outbox)."""
        rows = self._execute(
            "SELECT key FROM operations WHERE substr(key, 1, ?) = ? ORDER BY seq", (len(prefix), prefix)
        )
        return [row["key"] for row in rows]

    # ------------------------------------------------------------------ claims and transitions

    def claim_next(self, kinds: set[str] | None = None) -> Operation | None:
        """Claims the oldest pending or sent operation that nobody alive holds; None when there is none.

        A claim lasts `lease_seconds`, or until :meth:`release` or a final mark; a claim whose holder is a dead
        process on this host is taken over at once.
        """
        if not self._execute("SELECT 1 FROM operations WHERE status IN ('pending', 'sent') LIMIT 1"):
            return None  # nothing open, as most of the time: no write lock taken for it (an UPDATE takes it)
        now = time.time()
        of_kinds, kind_list = (
            ("", []) if kinds is None else (f"AND kind IN ({', '.join('?' * len(kinds))})", sorted(kinds))
        )
        claim = "UPDATE operations SET claimed_by = ?, claimed_until = ?, attempts = attempts + 1, updated_at = ?"
        # The oldest open operation, when nobody holds it (as in a round, where each operation is claimed as soon
        # as it is recorded): claimed in one statement, so in one transaction, instead of four.
        rows = self._execute(
            f"{claim} WHERE key = (SELECT key FROM operations WHERE status IN ('pending', 'sent') {of_kinds} "
            "ORDER BY seq LIMIT 1) AND (claimed_by IS NULL OR COALESCE(claimed_until, 0) < ?) RETURNING *",
            (self.owner, now + self.lease_seconds, now, *kind_list, now),
        )
        if rows:
            return _operation(rows[0])
        # The oldest is held: the oldest one that nobody alive holds (whether a holder lives is asked of the host).
        with self._write_transaction() as db:
            rows = db.execute("SELECT * FROM operations WHERE status IN ('pending', 'sent') ORDER BY seq").fetchall()
            for row in rows:
                if kinds is not None and row["kind"] not in kinds:
                    continue
                if not self._claimable(row["claimed_by"], row["claimed_until"], now):
                    continue
                claimed = db.execute(
                    f"{claim} WHERE key = ? RETURNING *", (self.owner, now + self.lease_seconds, now, row["key"])
                ).fetchone()
                return _operation(claimed)
        return None

    def release(self, key: str) -> None:
        """Gives up this process's claim on `key`, leaving its status as it is (for a later retry)."""
        self._execute(
            "UPDATE operations SET claimed_by = NULL, claimed_until = NULL WHERE key = ? AND claimed_by = ?",
            (key, self.owner),
        )

    def record_signed(self, key: str, signed: SignedTx) -> Operation:
        """Stores a signed transaction before it is broadcast, so that a restart can find or resend it.

        Raises:
            OutboxError: unknown key, or the operation is no longer pending.
        """
        return self._transition(
            key,
            ("pending",),
            "pending",
            tx_sender=signed.sender,
            tx_nonce=signed.nonce,
            tx_hash=signed.tx_hash.to_0x_hex(),
            tx_raw=bytes(signed.raw),
        )

    def clear_signed(self, key: str) -> Operation:
        """Forgets a signed transaction that can never be mined (its nonce went to another transaction).

        Raises:
            OutboxError: unknown key, or the operation is already confirmed or failed.
        """
        return self._transition(key, OPEN, "pending", tx_sender=None, tx_nonce=None, tx_hash=None, tx_raw=None)

    def mark_sent(self, key: str, tx_hash: str | bytes) -> Operation:
        """Records that the transaction `tx_hash` of `key` was broadcast.

        Raises:
            OutboxError: unknown key, or the operation is already confirmed or failed.
        """
        return self._transition(key, OPEN, "sent", tx_hash=HexBytes(tx_hash).to_0x_hex())

    def mark_confirmed(self, key: str, result: Any) -> Operation:
        """Records the operation's JSON `result` (a receipt summary, a CID) and ends it. Confirming an operation
        already confirmed returns it unchanged, since a resumed runner may confirm what a dead one finished.

        Raises:
            OutboxError: unknown key, or the operation failed.
        """
        try:
            return self._transition(key, OPEN, "confirmed", result=json.dumps(result, sort_keys=True), release=True)
        except OutboxError:
            current = self.get(key)  # unknown: raises
            if current.status == "confirmed":
                return current
            raise

    def mark_failed(self, key: str, error: str, result: Any = None) -> Operation:
        """Ends the operation as failed with `error` (and an optional JSON `result`, e.g. a reverted receipt).

        Raises:
            OutboxError: unknown key, or the operation is already confirmed or failed.
        """
        document = None if result is None else json.dumps(result, sort_keys=True)
        return self._transition(key, OPEN, "failed", error=error, result=document, release=True)

    def retry(self, key: str, payload: Mapping[str, Any] | None = None) -> Operation:
        """Makes a failed operation pending again, optionally with a new `payload`, forgetting its error, result
        and signed transaction. Safe because a failed operation had no effect: refused before signing, or
        reverted on-chain (its nonce spent, nothing else).

        Raises:
            OutboxError: unknown key, or the operation has not failed.
            TypeError: `payload` is not JSON-serializable.
        """
        columns: dict[str, Any] = {}
        if payload is not None:
            columns["payload"] = json.dumps(dict(payload), sort_keys=True)
        return self._transition(
            key,
            ("failed",),
            "pending",
            error=None,
            result=None,
            tx_sender=None,
            tx_nonce=None,
            tx_hash=None,
            tx_raw=None,
            **columns,
        )

    def _transition(
        self, key: str, allowed: tuple[Status, ...], status: Status, *, release: bool = False, **columns: Any
    ) -> Operation:
        assignments = {"status": status, "updated_at": time.time(), **columns}
        if release:
            assignments.update(claimed_by=None, claimed_until=None)
        sets = ", ".join(f"{column} = ?" for column in assignments)
        statuses = ", ".join("?" for _ in allowed)
        # One statement, so one transaction: the status checked is the status changed.
        rows = self._execute(
            f"UPDATE operations SET {sets} WHERE key = ? AND status IN ({statuses}) RETURNING *",
            (*assignments.values(), key, *allowed),
        )
        if rows:
            return _operation(rows[0])
        found = self._execute("SELECT status FROM operations WHERE key = ?", (key,))
        if not found:
            raise OutboxError(f"no outbox operation with key {key!r}")
        raise OutboxError(f"operation {key!r} is {found[0]['status']}: cannot become {status}")

    def _claimable(self, claimed_by: str | None, claimed_until: float | None, now: float) -> bool:
        # Even this instance's own claims count: two threads sharing an Outbox must not get the same operation.
        if claimed_by is None or (claimed_until or 0) < now:
            return True
        host, pid, _ = claimed_by.split(":", 2)
        return host == socket.gethostname() and not _alive(int(pid))

    def _execute(self, sql: str, parameters: Sequence[Any] = ()) -> list[sqlite3.Row]:
        """One statement in a transaction of its own (the connection commits each statement by itself); its
        rows. A read, or a write whose check is in its WHERE clause, needs no more."""
        try:
            return self._connection().execute(sql, parameters).fetchall()
        except sqlite3.DatabaseError as exc:
            if type(exc) is sqlite3.DatabaseError:  # the file itself (not a lock or a constraint): damaged
                raise self._damaged(exc) from None
            raise

    @contextmanager
    def _write_transaction(self) -> Iterator[sqlite3.Connection]:
        # Statements that must hold together. BEGIN IMMEDIATE takes the write lock before reading, so two
        # claimers cannot both read an operation as free.
        db = self._connection()
        db.execute("BEGIN IMMEDIATE")
        try:
            yield db
        except BaseException as exc:
            with suppress(sqlite3.Error):  # a damaged file may refuse the rollback too
                db.execute("ROLLBACK")
            if type(exc) is sqlite3.DatabaseError:  # the file itself (not a lock or a constraint): damaged
                raise self._damaged(exc) from None
            raise
        db.execute("COMMIT")

    def _damaged(self, exc: sqlite3.DatabaseError) -> OutboxError:
        return OutboxError(
            f"the outbox {self.path} is damaged ({exc}): it records this party's unfinished puts and "
            "transactions; restore it from a backup, or move it away to start an empty one"
        )

    def _connection(self) -> sqlite3.Connection:
        return self._connections.get()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def _operation(row: sqlite3.Row) -> Operation:
    return Operation(
        seq=row["seq"],
        key=row["key"],
        kind=row["kind"],
        payload=json.loads(row["payload"]),
        status=row["status"],
        result=None if row["result"] is None else json.loads(row["result"]),
        error=row["error"],
        attempts=row["attempts"],
        tx_sender=row["tx_sender"],
        tx_nonce=row["tx_nonce"],
        tx_hash=row["tx_hash"],
        tx_raw=None if row["tx_raw"] is None else bytes(row["tx_raw"]),
    )


# ---------------------------------------------------------------------- running

Handler = Callable[[Operation, Outbox], Any]
Checkpoint = Callable[[str, Operation], None]


TRANSACTION_FIELDS = ("to", "data", "value", "gas")


def revert_result(exc: ContractReverted) -> dict[str, Any]:
    """A contract's refusal as a failed operation's JSON result: ``{"error": name, "args": {...}}``, from which
    :func:`reverted_from_result` rebuilds the exception."""
    args = {k: v if isinstance(v, (bool, int, str)) else str(v) for k, v in exc.args_by_name.items()}
    return {"error": exc.error, "args": args, "contract": exc.contract}


def reverted_from_result(result: Any) -> ContractReverted | None:
    """The :class:`ContractReverted` a failed operation recorded with :func:`revert_result`, or None."""
    if isinstance(result, dict) and "error" in result and "args" in result:
        return ContractReverted(result["error"], dict(result["args"]), result.get("contract"))
    return None


def transaction_payload(
    call: ContractFunction, sender: str, *, value: int = 0, gas: int | None = None
) -> dict[str, Any]:
    """The JSON payload of a ``"transaction"`` operation that sends `call` from `sender`. Callers may add keys
    of their own (bookkeeping for recovery): only ``sender`` and :data:`TRANSACTION_FIELDS` are sent."""
    payload: dict[str, Any] = {
        "sender": sender,
        "to": call.address,
        "data": calldata(call),  # the calldata build_transaction would use
        "value": value,
    }
    if gas is not None:
        payload["gas"] = gas
    return payload


class TransactionHandler:
    """Executes ``"transaction"`` operations (payload from :func:`transaction_payload`) crash-safely.

    `checkpoint`, when given, is called after each durable step ("signed", "broadcast", "recorded") with the
    operation as it then stands: tests use it to kill the process at exactly that point; and ("looked") between
    a resumed transaction's two looks at the chain, where tests mine it.
    """

    def __init__(self, transactor: Transactor, *, checkpoint: Checkpoint | None = None) -> None:
        self.transactor = transactor
        self.checkpoint = checkpoint or (lambda point, op: None)
        # Per operation key, a transaction's nonce, gas and fees read ahead with other reads (batched.py's
        # prepare_with_reads), used once, by this process, instead of reading them when it is signed.
        self.read_ahead: dict[str, dict[str, Any]] = {}

    def __call__(self, op: Operation, outbox: Outbox) -> dict[str, Any]:
        """Sends (or finds) the transaction and waits for its receipt; returns a receipt summary.

        Raises:
            PermanentFailure: the contract refuses it (at estimation or on-chain with status 0).
            ChainError: the node cannot be reached or gives no receipt in time (the operation stays open).
        """
        op, receipt = self._broadcast(op, outbox)
        assert op.tx_hash is not None
        if receipt is None:  # asked once the broadcast is recorded, never with it (batched.py says why)
            receipt = self.transactor.wait(HexBytes(op.tx_hash))
        summary: dict[str, Any] = {
            "tx_hash": op.tx_hash,
            "block_number": receipt["blockNumber"],
            "gas_used": receipt["gasUsed"],
            "status": receipt["status"],
        }
        if receipt["status"] != 1:
            refusal = self._replayed_refusal(op, receipt["blockNumber"])
            reason = f": {refusal}" if refusal else ""
            result: dict[str, Any] = {**summary, **revert_result(refusal)} if refusal else summary
            raise PermanentFailure(f"transaction {op.tx_hash} reverted on-chain{reason}", result=result)
        return summary

    def _replayed_refusal(self, op: Operation, block: int) -> ContractReverted | None:
        """Why the contract refused `op`'s transaction, mined in `block`: its call replayed on the state that block
        left (the refusal a gas estimate would have decoded before signing), or None (say, it ran out of gas)."""
        payload = op.payload
        call = {
            "from": payload["sender"],
            "to": payload["to"],
            "data": payload["data"],
            "value": payload.get("value", 0),
        }
        try:
            self.transactor.w3.eth.call(cast(TxParams, call), block)
        except (ContractCustomError, ContractLogicError) as exc:
            return decode_revert(getattr(exc, "data", None))
        return None

    def _broadcast(self, op: Operation, outbox: Outbox) -> tuple[Operation, TxReceipt | None]:
        """The operation once its transaction is broadcast, and its receipt when already known (else None)."""
        eth = self.transactor.w3.eth
        if op.tx_raw is not None:
            assert op.tx_hash is not None and op.tx_nonce is not None and op.tx_sender is not None
            # The nonce read before the receipt: one found used then by a transaction not mined after it is
            # another's (asked the other way round, ours mined in between would look lost, and be sent twice).
            nonce_used = eth.get_transaction_count(cast(ChecksumAddress, op.tx_sender), "latest") > op.tx_nonce
            self.checkpoint("looked", op)
            if (receipt := self.transactor.receipt(HexBytes(op.tx_hash))) is not None:
                return (op if op.status == "sent" else outbox.mark_sent(op.key, op.tx_hash)), receipt
            if nonce_used:
                # Not mined, yet its nonce is used: another transaction took it, so ours can never be mined.
                op = outbox.clear_signed(op.key)
            else:
                # Maybe never broadcast, maybe dropped by a restarted node: the same bytes again, mined at most once.
                return self._send(op, outbox)
        sender = op.payload["sender"]
        fields = {k: op.payload[k] for k in TRANSACTION_FIELDS if k in op.payload}
        ahead = self.read_ahead.pop(op.key, None)
        try:  # nonce (the pending count: another process may have sent meanwhile), gas and fees in one request
            tx = {**ahead, **fields} if ahead else prepare_transaction(self.transactor.w3, fields, sender)
            signed = self.transactor.sign(tx, sender, nonce=tx["nonce"])
        except ContractReverted as exc:
            raise PermanentFailure(str(exc), result=revert_result(exc)) from exc
        op = outbox.record_signed(op.key, signed)
        self.checkpoint("signed", op)
        try:
            return self._send(op, outbox)
        except ChainError:
            if not ahead:
                raise
            # What was read ahead went stale (its nonce taken, the base fee past its fee cap): the node refused
            # the transaction, so nobody has it. Signed afresh from fresh reads.
            return self._broadcast(outbox.clear_signed(op.key), outbox)

    def _send(self, op: Operation, outbox: Outbox) -> tuple[Operation, None]:
        assert op.tx_raw is not None
        tx_hash = self.transactor.send_raw(op.tx_raw)
        self.checkpoint("broadcast", op)
        op = outbox.mark_sent(op.key, tx_hash)
        self.checkpoint("recorded", op)
        return op, None


class Runner:
    """Executes open operations with the handler registered for their kind, one at a time, oldest first."""

    def __init__(self, outbox: Outbox, handlers: Mapping[str, Handler] | None = None) -> None:
        self.outbox = outbox
        self.handlers: dict[str, Handler] = dict(handlers or {})

    def register(self, kind: str, handler: Handler) -> None:
        """Makes `handler` execute operations of `kind`."""
        self.handlers[kind] = handler

    def run_once(self) -> Operation | None:
        """Claims and executes one operation; returns it as it ended, or None when nothing is open.

        Raises:
            Exception: whatever a handler raised other than :class:`PermanentFailure`, after releasing the claim
                (the operation stays open, to be retried).
        """
        op = self.outbox.claim_next(set(self.handlers))
        if op is None:
            return None
        try:
            result = self.handlers[op.kind](op, self.outbox)
        except PermanentFailure as exc:
            return self.outbox.mark_failed(op.key, str(exc), exc.result)
        except BaseException:
            self.outbox.release(op.key)
            raise
        return self.outbox.mark_confirmed(op.key, result)

    def run(self) -> list[Operation]:
        """Executes operations until none is open (that this runner has a handler for); returns them."""
        done: list[Operation] = []
        while (op := self.run_once()) is not None:
            done.append(op)
        return done
