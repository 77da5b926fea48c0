"""An event index: the logs of the lepton-ledger contracts, decoded and kept in SQLite for fast queries.

The index reads ``eth_getLogs`` block range by block range, decodes every log with its contract's ABI and
stores it with the columns queries need (agreement, round, partner). It is idempotent (a log's key is its
transaction hash and log index, so indexing a range twice inserts nothing), resumable (each range is committed
together with the last indexed block, so a crash loses at most the range in flight, which is re-read), and
handles reorganisations of local chains minimally: the hash of the last block of every indexed range is kept,
and when the chain no longer has it, the index drops everything above the newest range end the chain still
agrees with, then re-reads from there.
"""

from __future__ import annotations

import json
import re
import sqlite3
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from eth_abi import decode as abi_decode
from eth_abi.exceptions import DecodingError
from eth_abi.grammar import parse as parse_abi_type
from eth_utils import event_abi_to_log_topic
from hexbytes import HexBytes
from web3 import Web3
from web3.contract import Contract
from web3.exceptions import BlockNotFound

from ..errors import ChainError, ConfigurationError
from ..storage.connections import KeptConnections
from ._values import checksummed
from .batched import batch_results
from .transactions import node_request

_SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    tx_hash      TEXT    NOT NULL,
    log_index    INTEGER NOT NULL,
    block_number INTEGER NOT NULL,
    block_hash   TEXT    NOT NULL,
    contract     TEXT    NOT NULL,
    address      TEXT    NOT NULL,
    event        TEXT    NOT NULL,
    args         TEXT    NOT NULL,
    agreement_id INTEGER,
    round        INTEGER,
    partner      TEXT,
    PRIMARY KEY (tx_hash, log_index)
);
CREATE INDEX IF NOT EXISTS events_order     ON events (block_number, log_index);
CREATE INDEX IF NOT EXISTS events_event     ON events (event, block_number, log_index);
CREATE INDEX IF NOT EXISTS events_agreement ON events (agreement_id, round, block_number, log_index);
CREATE INDEX IF NOT EXISTS events_partner   ON events (partner, block_number, log_index);
CREATE TABLE IF NOT EXISTS checkpoints (
    block_number INTEGER PRIMARY KEY,
    block_hash   TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""

_SQLITE_MAX = 2**63 - 1
REWIND_PAGE = 100  # range ends whose hashes one request reads while looking for where a reorganisation began


@dataclass(frozen=True)
class IndexedEvent:
    """One decoded log, as stored."""

    block_number: int
    block_hash: str
    tx_hash: str
    log_index: int
    contract: str
    address: str
    event: str
    args: dict[str, Any]
    agreement_id: int | None
    round: int | None
    partner: str | None


@dataclass(frozen=True)
class IndexStats:
    """What one call to :meth:`EventIndex.sync` did."""

    from_block: int
    to_block: int
    inserted: int
    rewound_to: int | None = None


class EventIndex:
    """Decoded events of a set of contracts in a SQLite file (or ``:memory:``-like path of the caller's choice).

    Args:
        w3: a connected Web3.
        contracts: the contracts to index, by name (``Deployment.addresses()`` bound to their ABIs).
        path: the SQLite file; created when missing.
        start_block: the first block to read when the file is new (the deployment block saves work).
        chunk: blocks per ``eth_getLogs`` request; nodes cap the range or the result size.
        confirmations: blocks behind the head left unindexed, so that a reorg rarely reaches indexed blocks.
    """

    def __init__(
        self,
        w3: Web3,
        contracts: Mapping[str, Contract],
        path: Path,
        *,
        start_block: int = 0,
        chunk: int = 2_000,
        confirmations: int = 0,
    ) -> None:
        if chunk < 1 or confirmations < 0 or start_block < 0:
            raise ConfigurationError("chunk must be >= 1, confirmations and start_block >= 0")
        self.w3 = w3
        self.path = Path(path)
        self.start_block = start_block
        self.chunk = chunk
        self.confirmations = confirmations
        # One connection per process and thread instead of one per operation. synchronous=NORMAL in WAL mode: a
        # commit survives the death of the process and the file stays consistent; a power cut may lose the last
        # ranges, which the next sync reads again (the index is a copy of the chain), so the fsync FULL made at
        # every range's commit bought nothing.
        self._connections = KeptConnections(self.path, timeout=30, pragmas=("journal_mode=WAL", "synchronous=NORMAL"))
        self._by_address: dict[str, tuple[str, dict[bytes, EventDecoder]]] = {}
        for name, contract in contracts.items():
            topics = {
                bytes(event_abi_to_log_topic(entry)): EventDecoder(entry)  # type: ignore[arg-type]
                for entry in contract.abi
                if entry.get("type") == "event" and not entry.get("anonymous")
            }
            self._by_address[Web3.to_checksum_address(contract.address)] = (name, topics)
        with self._connect() as db:
            db.executescript(_SCHEMA)

    # ------------------------------------------------------------------ indexing

    @property
    def last_block(self) -> int | None:
        """The last block whose logs are all stored, or None before the first sync."""
        with self._connect() as db:
            row = db.execute("SELECT value FROM meta WHERE key = 'last_block'").fetchone()
        return int(row[0]) if row else None

    def sync(self, to_block: int | None = None) -> IndexStats:
        """Indexes every block after the last indexed one up to `to_block` (default: head minus confirmations).

        Round trips: the head and the last indexed block's hash (to see a reorganisation) in one batch request;
        the hashes of the ranges' end blocks in one more when there are several ranges; one ``eth_getLogs`` per
        range. Nothing new: one request.

        Raises:
            ChainError: a log of an indexed contract does not decode with its ABI (wrong ABI or address).
        """
        last = self.last_block
        try:
            head, *last_block = self._blocks(["latest", *([] if last is None else [last])])
            last_hash = _hex(last_block[0]["hash"]) if last_block else None
        except BlockNotFound:  # the chain is now shorter than what was indexed: a reorganisation
            head, last_hash = self._blocks(["latest"])[0], None
        rewound = None
        if last is not None and last_hash != self._stored_hash(last):
            rewound = self._rewind(int(head["number"]))
            last = self.last_block
        target = int(head["number"]) - self.confirmations
        target = target if to_block is None else min(to_block, target)
        first = self.start_block if last is None else last + 1
        ranges = [(low, min(low + self.chunk - 1, target)) for low in range(first, target + 1, self.chunk)]
        # Each range end's hash is read before its logs: if a reorg replaces it in between, the next sync sees a
        # hash the chain no longer has and re-reads the range. The head's came with it.
        ends = [high for _, high in ranges if high != head["number"]]
        hashes = {int(head["number"]): _hex(head["hash"])}
        hashes.update(zip(ends, (_hex(b["hash"]) for b in self._blocks(ends))))
        inserted = sum(self._index_range(low, high, hashes[high]) for low, high in ranges)
        return IndexStats(from_block=first, to_block=max(target, first - 1), inserted=inserted, rewound_to=rewound)

    def _blocks(self, numbers: Sequence[int | str]) -> list[Any]:
        """The blocks `numbers` (or ``"latest"``), from one batch request.

        Raises:
            BlockNotFound: the chain has no such block.
        """
        if not numbers:
            return []
        # Asked of the provider and read as they come (the number and hash are all the index uses): web3 formats
        # every field of every block. An error answer, or a provider without batches, goes through web3, which
        # raises it as web3 does.
        blocks = batch_results(self.w3, [("eth_getBlockByNumber", [_block_tag(n), False]) for n in numbers])
        if blocks is not None:
            if any(block is None for block in blocks):
                raise BlockNotFound(f"the chain has no block among {list(numbers)}")
            try:
                return [{"number": _quantity(b["number"]), "hash": _node_hex(b["hash"], _HASH)} for b in blocks]
            except (KeyError, TypeError, ValueError) as exc:
                raise ChainError(f"the node answered blocks {list(numbers)} without a number or hash: {exc}") from None
        with self.w3.batch_requests() as batch:
            for number in numbers:
                batch.add(self.w3.eth.get_block(number))  # type: ignore[arg-type]
            return list(batch.execute())

    def _index_range(self, low: int, high: int, end_hash: str) -> int:
        logs = self._logs(low, high)
        rows = [self._row(log) for log in logs]
        with self._connect() as db:
            before = db.total_changes
            db.executemany(
                "INSERT OR IGNORE INTO events (tx_hash, log_index, block_number, block_hash, contract, address, "
                "event, args, agreement_id, round, partner) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                rows,
            )
            inserted = db.total_changes - before
            db.execute("INSERT OR REPLACE INTO checkpoints VALUES (?, ?)", (high, end_hash))
            db.execute("INSERT OR REPLACE INTO meta VALUES ('last_block', ?)", (str(high),))
        return inserted

    def _logs(self, low: int, high: int) -> list[Mapping[str, Any]]:
        """The indexed contracts' logs of blocks `low` to `high`, asked of the provider and read as they come
        (web3's formatting of each log cost more than decoding it); an error answer is asked again through web3,
        which raises it as web3 does."""
        query = {"fromBlock": hex(low), "toBlock": hex(high), "address": list(self._by_address)}
        answer = node_request(self.w3, "eth_getLogs", [query])
        if "error" in answer:
            return list(
                self.w3.eth.get_logs(
                    {"fromBlock": low, "toBlock": high, "address": list(self._by_address)}  # type: ignore[typeddict-item]
                )
            )
        try:
            return [
                {
                    "address": _node_hex(log["address"], _ADDRESS),
                    "topics": [HexBytes(_node_hex(topic, _HASH)) for topic in log["topics"]],
                    "data": _node_hex(log["data"], _DATA),
                    "blockHash": _node_hex(log["blockHash"], _HASH),
                    "transactionHash": _node_hex(log["transactionHash"], _HASH),
                    "logIndex": _quantity(log["logIndex"]),
                    "blockNumber": _quantity(log["blockNumber"]),
                }
                for log in answer["result"]
            ]
        except (KeyError, TypeError, ValueError) as exc:
            raise ChainError(f"the node's logs of blocks {low}-{high} are malformed: {exc}") from None

    def _row(self, log: Mapping[str, Any]) -> tuple[Any, ...]:
        address = checksummed(log["address"])
        if address not in self._by_address:  # the node answered a log of a contract it was not asked about
            raise ChainError(f"log {_hex(log['transactionHash'])}:{log['logIndex']} is of {address}, not indexed here")
        name, topics = self._by_address[address]
        topic0 = bytes(log["topics"][0]) if log["topics"] else b""
        decoder = topics.get(topic0)
        where = f"{_hex(log['transactionHash'])}:{log['logIndex']}"
        if decoder is None:
            raise ChainError(f"log {where} of {name} matches no event of its ABI")
        try:
            decoded = decoder.args(log)
        except (DecodingError, ValueError) as exc:  # a log whose topics or data do not fit the event's ABI
            raise ChainError(f"log {where} of {name} does not decode as {decoder.name}: {exc}") from None
        event = decoder.name
        args = {key: _jsonable(value) for key, value in decoded.items()}
        partner = args.get("partner", args.get("party"))
        return (
            _hex(log["transactionHash"]),
            log["logIndex"],
            log["blockNumber"],
            _hex(log["blockHash"]),
            name,
            address,
            event,
            json.dumps(args, sort_keys=True),
            _sqlite_int(args.get("agreementId")),
            _sqlite_int(args.get("round")),
            partner if isinstance(partner, str) else None,
        )

    def _rewind(self, head: int) -> int:
        """Drops what a reorganisation replaced, down to the newest range end whose hash the chain still has
        (their hashes read a page of range ends a batch request); returns the block re-indexing resumes after."""
        with self._connect() as db:
            checkpoints = db.execute(
                "SELECT block_number, block_hash FROM checkpoints WHERE block_number <= ? ORDER BY block_number DESC",
                (head,),
            ).fetchall()
        keep: int | None = None
        for page in range(0, len(checkpoints), REWIND_PAGE):  # newest first, a page a request: a reorg is shallow
            batch = checkpoints[page : page + REWIND_PAGE]
            try:
                chain = [_hex(b["hash"]) for b in self._blocks([number for number, _ in batch])]
            except BlockNotFound:  # the chain shrank again meanwhile: keep nothing, re-read it all
                break
            keep = next((number for (number, stored), now in zip(batch, chain) if now == stored), None)
            if keep is not None:
                break
        with self._connect() as db:
            floor = self.start_block - 1 if keep is None else keep
            db.execute("DELETE FROM events WHERE block_number > ?", (floor,))
            db.execute("DELETE FROM checkpoints WHERE block_number > ?", (floor,))
            if keep is None:
                db.execute("DELETE FROM meta WHERE key = 'last_block'")
            else:
                db.execute("INSERT OR REPLACE INTO meta VALUES ('last_block', ?)", (str(keep),))
        return floor

    def _stored_hash(self, number: int) -> str | None:
        with self._connect() as db:
            row = db.execute("SELECT block_hash FROM checkpoints WHERE block_number = ?", (number,)).fetchone()
        return row[0] if row else None

    # ------------------------------------------------------------------ queries

    def events(
        self,
        name: str | Sequence[str] | None = None,
        *,
        agreement_id: int | None = None,
        round: int | None = None,
        partner: str | None = None,
        contract: str | None = None,
    ) -> list[IndexedEvent]:
        """Stored events matching every given filter, in chain order (block, then log index).

        `partner` matches the event's ``partner`` or ``party`` argument, in any letter case.
        """
        clauses: list[str] = []
        params: list[Any] = []
        if name is not None:
            names = [name] if isinstance(name, str) else list(name)
            clauses.append(f"event IN ({', '.join('?' for _ in names)})")
            params += names
        for column, value in (("agreement_id", agreement_id), ("round", round), ("contract", contract)):
            if value is not None:
                clauses.append(f"{column} = ?")
                params.append(value)
        if partner is not None:
            clauses.append("partner = ?")
            params.append(Web3.to_checksum_address(partner))
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        with self._connect() as db:
            rows = db.execute(
                "SELECT block_number, block_hash, tx_hash, log_index, contract, address, event, args, agreement_id, "
                f"round, partner FROM events {where} ORDER BY block_number, log_index",
                params,
            ).fetchall()
        return [
            IndexedEvent(
                block_number=r[0],
                block_hash=r[1],
                tx_hash=r[2],
                log_index=r[3],
                contract=r[4],
                address=r[5],
                event=r[6],
                args=json.loads(r[7]),
                agreement_id=r[8],
                round=r[9],
                partner=r[10],
            )
            for r in rows
        ]

    def count(self) -> int:
        """How many events are stored."""
        with self._connect() as db:
            return int(db.execute("SELECT COUNT(*) FROM events").fetchone()[0])

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        # `with db` commits (or rolls back) each range atomically with its checkpoint; a read outside a
        # transaction sees what other processes committed, so a connection held open never gives a stale view.
        db = self._connection()
        with db:
            yield db

    def _connection(self) -> sqlite3.Connection:
        return self._connections.get()


class EventDecoder:
    """Decodes the logs of one event ABI into the arguments web3's ``process_log`` gives (``["args"]``: addresses
    checksummed, structs as dicts by component name, arrays of the data as lists), its type lists and shapes
    worked out once: web3 re-derives them from the ABI for every log, most of an index sync's CPU."""

    def __init__(self, abi: Mapping[str, Any]) -> None:
        self.name: str = abi["name"]
        inputs = abi["inputs"]
        indexed = [i for i in inputs if i.get("indexed")]
        data = [i for i in inputs if not i.get("indexed")]
        # An indexed dynamic value (string, bytes, array, dynamic struct) is logged as the keccak of its encoding.
        self._topic_types = [
            "bytes32" if parse_abi_type(_type_string(i)).is_dynamic else _type_string(i) for i in indexed
        ]
        self._topic_shapes = [checksummed if t == "address" else _same for t in self._topic_types]
        self._topic_names = [i["name"] for i in indexed]
        self._data_types = [_type_string(i) for i in data]
        self._data_shapes = [_shape(i) for i in data]
        self._data_names = [i["name"] for i in data]

    def args(self, log: Mapping[str, Any]) -> dict[str, Any]:
        """The log's decoded arguments, the indexed ones first, as web3 orders them."""
        topics = log["topics"][1:]
        if len(topics) != len(self._topic_types):
            raise ValueError(f"expected {len(self._topic_types)} indexed topics, got {len(topics)}")
        values = abi_decode(self._topic_types, b"".join(bytes(t) for t in topics))
        args = {n: f(v) for n, f, v in zip(self._topic_names, self._topic_shapes, values)}
        values = abi_decode(self._data_types, bytes(HexBytes(log["data"])))
        args.update((n, f(v)) for n, f, v in zip(self._data_names, self._data_shapes, values))
        return args


def _type_string(abi: Mapping[str, Any]) -> str:
    # A struct's canonical type, ``(t1,t2)`` plus its array suffix, as eth_abi reads it.
    kind: str = abi["type"]
    if not kind.startswith("tuple"):
        return kind
    return "(" + ",".join(_type_string(c) for c in abi["components"]) + ")" + kind[len("tuple") :]


def _same(value: Any) -> Any:
    return value


def _shape(abi: Mapping[str, Any]) -> Callable[[Any], Any]:
    """What web3 does to one decoded data value of this ABI entry: checksums addresses, names struct components,
    turns arrays into lists."""
    kind: str = abi["type"]
    if kind.endswith("]"):
        item = _shape({**abi, "type": kind[: kind.rindex("[")]})
        return lambda value: [item(v) for v in value]
    if kind == "tuple":
        parts = [(c["name"], _shape(c)) for c in abi["components"]]
        return lambda value: {n: f(v) for (n, f), v in zip(parts, value)}
    if kind == "address":
        return checksummed
    return _same


_HASH = re.compile(r"0x[0-9a-fA-F]{64}")
_ADDRESS = re.compile(r"0x[0-9a-fA-F]{40}")
_DATA = re.compile(r"0x(?:[0-9a-fA-F]{2})*")
_QUANTITY = re.compile(r"0x[0-9a-fA-F]{1,16}")


def _node_hex(value: Any, shape: re.Pattern[str]) -> str:
    """`value` of a node's answer when it is a hex string of `shape`. Raises ValueError otherwise."""
    if not (isinstance(value, str) and shape.fullmatch(value)):
        raise ValueError(f"{str(value)[:80]!r} is not {shape.pattern}")
    return value


def _quantity(value: Any) -> int:
    """A JSON-RPC quantity (0x-hex) of a node's answer that SQLite can hold. Raises ValueError otherwise."""
    number = int(_node_hex(value, _QUANTITY), 16)
    if number > _SQLITE_MAX:
        raise ValueError(f"{value} is past what the index stores")
    return number


def _block_tag(number: int | str) -> str:
    return number if isinstance(number, str) else hex(number)


def _hex(value: bytes | str) -> str:
    return HexBytes(value).to_0x_hex()


def _sqlite_int(value: Any) -> int | None:
    # SQLite integers are 64-bit; ids past that stay in the JSON args only.
    return value if isinstance(value, int) and 0 <= value <= _SQLITE_MAX else None


def _jsonable(value: Any) -> Any:
    """A decoded ABI value as JSON: bytes as 0x-hex, structs as objects, arrays as lists."""
    if isinstance(value, (bytes, bytearray)):
        return "0x" + bytes(value).hex()
    if isinstance(value, Mapping):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value
