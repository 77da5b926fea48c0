"""The interface every block store implements, and its errors.

A store holds IPFS blocks by CID. `put` imports bytes as a UnixFS file (the same CIDs `ipfs add` gives with
the same options) and returns the root CID; `get` reassembles the file, verifying every block's hash as it
reads, so that whatever comes back is exactly what the CID commits to.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import BinaryIO

from ..errors import LeptonError


class StorageError(LeptonError, RuntimeError):
    """A store failed for a reason other than the ones below (I/O, a backend's error reply)."""


class BlockNotFound(StorageError, LookupError):
    """A block the DAG needs is not in the store. `cid` names the missing block."""

    def __init__(self, cid: str, message: str | None = None) -> None:
        self.cid = cid
        super().__init__(message or f"block {cid} is not in the store")


class BlockCorrupted(StorageError, ValueError):
    """A block's bytes do not hash to its CID. `cid` names the corrupted block."""

    def __init__(self, cid: str, message: str | None = None) -> None:
        self.cid = cid
        super().__init__(message or f"block {cid} does not match its CID (corrupted)")


class InvalidCID(LeptonError, ValueError):
    """A string is not a CID this project can handle."""


class FileTooLarge(StorageError, ValueError):
    """A file is larger than the reader's byte limit: refused from its root node's declared size before its
    leaves are fetched, or when the bytes read pass the limit (a DAG whose sizes lie). `cid` names the file."""

    def __init__(self, cid: str, limit: int, size: int | None = None) -> None:
        self.cid, self.limit, self.size = cid, limit, size
        what = f"declares {size} bytes" if size is not None else "yields more bytes"
        super().__init__(f"file {cid} {what}, over the limit of {limit} bytes")


MAX_BLOCK_BYTES = 4 << 20
"""The largest block a store returns: kubo refuses blocks over 2 MiB (bitswap's limit) and makes 256 KiB ones;
a store that serves more for one block is refused before the rest is read."""

DEFAULT_MAX_FILE_BYTES = 2 << 30
"""What `get` / `stream` read at most unless told otherwise: twice the largest envelope (1 GiB), so that no
legitimate artifact is refused while a DAG bomb (a few KB of blocks describing petabytes) is."""


@dataclass(frozen=True)
class StoreStat:
    """What a store holds: number of blocks, their total size in bytes, and the number of pins."""

    blocks: int
    size: int
    pins: int


class Store(ABC):
    """A content-addressed block store holding UnixFS files.

    CIDs are strings as kubo prints them: base58btc for CIDv0 (``Qm...``), base32 for CIDv1 (``bafy...``).
    """

    @abstractmethod
    def put(self, data: bytes | BinaryIO, *, cid_version: int = 0, pin: bool = True) -> str:
        """Imports `data` (bytes, or a binary stream read in chunks) as a UnixFS file; returns its root CID.
        cid_version 0 = kubo's defaults (dag-pb leaves, 256 KiB chunks, balanced, 174 links per node);
        1 = ``ipfs add --cid-version=1`` (raw leaves, base32)."""

    def get(self, cid: str, *, max_bytes: int = DEFAULT_MAX_FILE_BYTES) -> bytes:
        """The file's bytes, at most `max_bytes`. Raises BlockNotFound / BlockCorrupted naming the block at
        fault, FileTooLarge before allocating more than the limit."""
        return b"".join(self.stream(cid, max_bytes=max_bytes))

    @abstractmethod
    def stream(self, cid: str, *, max_bytes: int = DEFAULT_MAX_FILE_BYTES) -> Iterator[bytes]:
        """The file's bytes in chunks, each block verified before its bytes are yielded; FileTooLarge when the
        root declares more than `max_bytes` (before any leaf is fetched) or more comes."""

    @abstractmethod
    def has(self, cid: str) -> bool:
        """Whether the block `cid` itself is present (not checking its children)."""

    @abstractmethod
    def pin(self, cid: str) -> None:
        """Protects the DAG under `cid` from garbage collection. Raises BlockNotFound if a block is missing."""

    @abstractmethod
    def unpin(self, cid: str) -> None:
        """Removes the pin on `cid` (a no-op error-free when it was not pinned is NOT allowed: raises
        StorageError naming the CID)."""

    @abstractmethod
    def pins(self) -> list[str]:
        """The pinned root CIDs."""

    @abstractmethod
    def gc(self) -> int:
        """Deletes every block not reachable from a pin; returns how many were deleted."""

    @abstractmethod
    def stat(self) -> StoreStat:
        """Counts of what the store holds."""

    # Raw block access, which CAR import/export and replication use.

    @abstractmethod
    def get_block(self, cid: str) -> bytes:
        """One block's raw bytes, verified against its CID."""

    @abstractmethod
    def put_block(self, cid: str, data: bytes) -> None:
        """Stores one block after checking that `data` hashes to `cid` (BlockCorrupted otherwise)."""

    def put_blocks(self, blocks: Iterable[tuple[str, bytes]]) -> None:
        for cid, data in blocks:
            self.put_block(cid, data)
