"""LocalStore: the embedded default block store, on the local disk.

Layout under the store's root folder::

    blocks/<xy>/<key>   one file per block; <key> is the base32 multihash (blocks are addressed by hash, as in
                        kubo's flatfs, so the v0 and v1 CIDs of the same dag-pb block share one file) and <xy>
                        its next-to-last two characters (flatfs' default sharding, spreads evenly)
    pins.sqlite         pinned root CIDs (SQLite in WAL mode: readers never block a writer, several processes)
    lock                fcntl.flock: puts and pins take it shared, gc exclusive

Why this is crash- and concurrency-safe:
- a block is written to a temporary file in its own shard folder, fsync'ed, then os.replace'd onto its final
  name: a reader sees either no file or the whole block, never a prefix (a killed writer leaves at most a
  ``.tmp-`` file, which nothing reads and gc removes);
- two writers of the same block write the same bytes, so whichever rename lands last changes nothing;
- gc holds the lock exclusively, so it never runs while a put is linking freshly written (still unpinned)
  blocks; a put's pin is recorded only after all its blocks are on disk, so a pin never names a missing block.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import sqlite3
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import BinaryIO

from .cid import CID, b32encode, normalize, verify_block
from .connections import KeptConnections
from .store import (
    DEFAULT_MAX_FILE_BYTES,
    MAX_BLOCK_BYTES,
    BlockCorrupted,
    BlockNotFound,
    StorageError,
    Store,
    StoreStat,
)
from .unixfs import child_cids, import_file, iter_file

_TMP_PREFIX = ".tmp-"


class LocalStore(Store):
    """Blocks on disk under `root` (created if needed). `durable=False` skips fsync (tests, scratch stores).

    Raises StorageError when `root` cannot be created or used.
    """

    def __init__(self, root: str | os.PathLike[str] | None = None, *, durable: bool = True) -> None:
        if root is None:
            from ..settings import blockstore_dir

            root = blockstore_dir()
        self.root = Path(root)
        self.durable = durable
        # Kept: opening a connection and setting its pragmas for every put cost more than the put of a small
        # envelope (~0.4 of ~0.7 ms of CPU).
        self._connections = KeptConnections(
            self.root / "pins.sqlite",
            timeout=60,
            pragmas=("journal_mode=WAL", "synchronous=FULL" if durable else "synchronous=OFF"),
            autocommit=True,
        )
        try:
            (self.root / "blocks").mkdir(parents=True, exist_ok=True)
            self._lock_path = self.root / "lock"
            self._lock_path.touch(exist_ok=True)
            with self._db() as db:
                db.execute("CREATE TABLE IF NOT EXISTS pins (cid TEXT PRIMARY KEY)")
        except (OSError, sqlite3.Error) as exc:
            raise StorageError(f"cannot open block store at {self.root}: {exc}") from exc
        self._shards: set[str] = set()

    # -- plumbing ----------------------------------------------------------------------------------------

    @contextlib.contextmanager
    def _db(self) -> Iterator[sqlite3.Connection]:
        yield self._connections.get()

    @contextlib.contextmanager
    def _locked(self, exclusive: bool) -> Iterator[None]:
        fd = os.open(self._lock_path, os.O_RDWR)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
            yield
        finally:
            os.close(fd)  # closing the descriptor releases the lock

    def _path(self, cid: CID) -> Path:
        key = b32encode(cid.multihash)
        return self.root / "blocks" / key[-3:-1] / key

    def _write(self, cid_binary: bytes, parts: Sequence[bytes | memoryview]) -> None:
        path = self._path(normalize(cid_binary))
        if path.exists():
            return  # content-addressed: an existing block already holds these bytes
        shard = path.parent
        if shard.name not in self._shards:
            shard.mkdir(exist_ok=True)
            self._shards.add(shard.name)
        fd, tmp = tempfile.mkstemp(prefix=_TMP_PREFIX, dir=shard)
        try:
            with os.fdopen(fd, "wb") as f:
                for part in parts:
                    f.write(part)
                f.flush()
                if self.durable:
                    os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise

    def _walk(self, root: CID) -> Iterator[CID]:
        """Every CID of the DAG under `root` (each once), verifying each block. Raises BlockNotFound,
        BlockCorrupted, StorageError naming the block at fault."""
        seen: set[bytes] = set()
        stack = [root]
        while stack:
            cid = stack.pop()
            if cid.binary in seen:
                continue
            seen.add(cid.binary)
            block = self.get_block(cid)
            yield cid
            stack.extend(normalize(c) for c in reversed(child_cids(cid, block)))

    # -- Store -------------------------------------------------------------------------------------------

    def put(self, data: bytes | BinaryIO, *, cid_version: int = 0, pin: bool = True) -> str:
        """See Store.put. Raises ValueError for a bad cid_version, StorageError on I/O failure."""
        try:
            with self._locked(exclusive=False):
                cid = import_file(data, cid_version=cid_version, sink=self._write).cid
                if pin:
                    self._add_pin(cid)
        except OSError as exc:
            raise StorageError(f"writing to block store {self.root} failed: {exc}") from exc
        return cid

    def stream(self, cid: str, *, max_bytes: int = DEFAULT_MAX_FILE_BYTES) -> Iterator[bytes]:
        return iter_file(self.get_block, cid, max_bytes=max_bytes)

    def has(self, cid: str) -> bool:
        return self._path(normalize(cid)).exists()

    def get_block(self, cid: str | CID) -> bytes:
        parsed = normalize(cid)
        try:
            with open(self._path(parsed), "rb") as f:
                # Its size, not the bound: read(n) takes n bytes first (4 MiB for each 256 KiB block read). A block
                # file larger than any block is not read whole.
                data = f.read(min(os.fstat(f.fileno()).st_size, MAX_BLOCK_BYTES) + 1)
        except FileNotFoundError:
            raise BlockNotFound(str(parsed)) from None
        except OSError as exc:
            raise StorageError(f"reading block {parsed} failed: {exc}") from exc
        if len(data) > MAX_BLOCK_BYTES:
            raise BlockCorrupted(str(parsed), f"block {parsed} is over {MAX_BLOCK_BYTES} bytes (corrupted)")
        verify_block(parsed, data)
        return data

    def put_block(self, cid: str, data: bytes) -> None:
        parsed = normalize(cid)
        verify_block(parsed, data)
        with self._locked(exclusive=False):
            self._write(parsed.binary, (data,))

    def put_blocks(self, blocks: Iterable[tuple[str, bytes]]) -> None:
        """Stores many blocks under one lock acquisition. Raises BlockCorrupted naming the first bad block
        (the blocks before it stay, unpinned, for gc to take)."""
        with self._locked(exclusive=False):
            for cid, data in blocks:
                parsed = normalize(cid)
                verify_block(parsed, data)
                self._write(parsed.binary, (data,))

    def _add_pin(self, cid: str) -> None:
        with self._db() as db:
            db.execute("INSERT OR IGNORE INTO pins (cid) VALUES (?)", (cid,))

    def pin(self, cid: str) -> None:
        """Pins `cid` after checking that its whole DAG is present and intact (BlockNotFound /
        BlockCorrupted naming the block otherwise; nothing is pinned then)."""
        parsed = normalize(cid)
        with self._locked(exclusive=False):
            for _ in self._walk(parsed):
                pass
            self._add_pin(str(parsed))

    def unpin(self, cid: str) -> None:
        parsed = str(normalize(cid))
        with self._db() as db:
            if db.execute("DELETE FROM pins WHERE cid = ?", (parsed,)).rowcount == 0:
                raise StorageError(f"{parsed} is not pinned")

    def pins(self) -> list[str]:
        with self._db() as db:
            return [row[0] for row in db.execute("SELECT cid FROM pins ORDER BY cid")]

    def gc(self) -> int:
        """Deletes every block not reachable from a pin, and leftover temporary files of killed writers.
        Raises BlockNotFound / BlockCorrupted when a pinned DAG is damaged (then deletes nothing: better keep
        garbage than delete what a damaged DAG's parent might still name)."""
        with self._locked(exclusive=True):
            keep: set[str] = set()
            for root in self.pins():
                for cid in self._walk(normalize(root)):
                    keep.add(self._path(cid).name)
            removed = 0
            for shard in (self.root / "blocks").iterdir():
                if not shard.is_dir():
                    continue
                for entry in shard.iterdir():
                    if entry.name.startswith(_TMP_PREFIX):
                        entry.unlink(missing_ok=True)  # no put runs now: this is a dead writer's leftover
                    elif entry.name not in keep:
                        entry.unlink(missing_ok=True)
                        removed += 1
            return removed

    def stat(self) -> StoreStat:
        blocks = size = 0
        for shard in (self.root / "blocks").iterdir():
            if not shard.is_dir():
                continue
            for entry in os.scandir(shard):
                if entry.name.startswith(_TMP_PREFIX):
                    continue
                with contextlib.suppress(FileNotFoundError):  # a concurrent gc may remove it
                    size += entry.stat().st_size
                    blocks += 1
        return StoreStat(blocks=blocks, size=size, pins=len(self.pins()))

    def verify_all(self) -> int:
        """Verifies every visible block against its multihash; returns how many. Raises BlockCorrupted
        naming the first bad block (as its CIDv1 raw form: the store keeps no codec per block)."""
        import base64
        import hashlib

        n = 0
        for shard in (self.root / "blocks").iterdir():
            if not shard.is_dir():
                continue
            for entry in shard.iterdir():
                if entry.name.startswith(_TMP_PREFIX):
                    continue
                mh = base64.b32decode(entry.name.upper() + "=" * (-len(entry.name) % 8))
                if hashlib.sha256(entry.read_bytes()).digest() != mh[2:]:
                    raise BlockCorrupted("b" + b32encode(b"\x01\x55" + mh))
                n += 1
        return n
