"""Content addressing of every artifact the chain references (global model, envelopes, aggregate, round
report, batch document, terms, challenge evidence).

The chain holds a bytes32: the sha2-256 digest of the artifact's CID. For that to name exactly one artifact,
the codec is fixed, not guessed: every referenced artifact is imported as kubo's plain ``ipfs add`` does
(CIDv0: dag-pb nodes throughout, 256 KiB chunks, balanced), and a CIDv0 *is* its sha2-256 multihash, so
``digest -> CID`` is a bijection (:func:`cid_for_digest`) that needs no store lookup. A file of any size,
one block or thousands, is fetched by that CID and comes back exactly as committed; the store verifies every
block, and :func:`fetch` bounds what it reads. (Guessing "raw, else dag-pb" could not work: stores key blocks
by multihash, so the raw CID of a multi-block file's root names the root node's 108 bytes.)

On-chain change that would add to this: committing the full binary CID (codec included) instead of its
digest would let artifacts use any codec; with digests the codec is fixed here, off-chain, for every party.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterable
from typing import Any

from ..errors import LeptonError
from ..storage.cid import DAG_PB, cid_from_digest, cid_to_str, parse_cid
from ..storage.store import DEFAULT_MAX_FILE_BYTES, BlockNotFound, InvalidCID
from ..storage.unixfs import import_file

__all__ = [
    "ArtifactNotFound",
    "artifact_cid",
    "cid_for_digest",
    "content_digest",
    "digest_of_cid",
    "fetch",
    "fetch_into",
    "publish",
]

CID_VERSION = 0  # kubo's `ipfs add` defaults: dag-pb everywhere, so the digest alone names the CID


class ArtifactNotFound(LeptonError, LookupError):
    """The store holds no artifact with this digest (its root block is missing)."""


def artifact_cid(data: bytes) -> str:
    """The CID :func:`publish` gives `data`, computed without a store."""
    return import_file(data, cid_version=CID_VERSION).cid


def content_digest(data: bytes) -> bytes:
    """The digest :func:`publish` puts on-chain for `data`, computed without a store."""
    return parse_cid(artifact_cid(data)).digest


def cid_for_digest(digest: bytes) -> str:
    """The one CID an on-chain digest names.

    Raises:
        InvalidCID: `digest` is not 32 bytes.
    """
    if len(bytes(digest)) != 32:
        raise InvalidCID(f"an artifact digest has 32 bytes, not {len(bytes(digest))}")
    return cid_to_str(cid_from_digest(bytes(digest), version=CID_VERSION, codec=DAG_PB))


def digest_of_cid(cid: str) -> bytes:
    """The on-chain digest of an artifact CID (a dag-pb CID, v0 or v1).

    Raises:
        InvalidCID: not a CID, or not dag-pb (no on-chain digest names it).
    """
    parsed = parse_cid(cid)
    if parsed.codec != DAG_PB:
        raise InvalidCID(f"{cid} is not dag-pb: the chain's artifact digests name dag-pb CIDs only")
    return parsed.digest


def publish(store: Any, data: bytes) -> tuple[str, bytes]:
    """Puts `data` and returns ``(cid, digest)``, the digest being what goes on-chain."""
    cid = store.put(data, cid_version=CID_VERSION)
    return cid, parse_cid(cid).digest


def fetch(store: Any, digest: bytes, *, max_bytes: int = DEFAULT_MAX_FILE_BYTES) -> bytes:
    """The bytes the on-chain `digest` names, verified block by block, at most `max_bytes` (refused from the
    root node's declared size before any leaf is fetched).

    Raises:
        ArtifactNotFound: the store lacks the root block.
        InvalidCID: `digest` is not 32 bytes.
        BlockNotFound, BlockCorrupted, FileTooLarge, StorageError: a missing inner block (named), a block that
            does not match its CID, over `max_bytes`, a root that is not a UnixFS file.
    """
    cid = cid_for_digest(digest)
    try:
        return store.get(cid, max_bytes=max_bytes)
    except BlockNotFound as exc:
        raise _not_found(exc, cid, digest) from None


def fetch_into(
    store: Any, digest: bytes, sink: Callable[[bytes], None], *, max_bytes: int = DEFAULT_MAX_FILE_BYTES
) -> tuple[bytes, int]:
    """:func:`fetch` without holding the bytes: each verified block's bytes go to `sink` as they are read, and
    are hashed on the way as :func:`content_digest` hashes them. Returns ``(the digest they give, their size)``:
    whoever does not trust the store's own verification compares that digest with `digest`.

    Raises:
        as :func:`fetch`, and whatever `sink` raises.
    """
    cid = cid_for_digest(digest)
    reader = _Tap(store.stream(cid, max_bytes=max_bytes), sink)
    try:
        found = parse_cid(import_file(reader, cid_version=CID_VERSION).cid).digest
    except BlockNotFound as exc:
        raise _not_found(exc, cid, digest) from None
    return found, reader.size


class _Tap(io.RawIOBase):
    """Chunks as a readable file (what ``import_file`` hashes), each handed to `sink` as it is read."""

    def __init__(self, chunks: Iterable[bytes], sink: Callable[[bytes], None]) -> None:
        self._chunks, self._sink = iter(chunks), sink
        self._left = memoryview(b"")
        self.size = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        while not len(self._left):
            chunk = next(self._chunks, None)
            if chunk is None:
                return 0
            self._sink(chunk)
            self.size += len(chunk)
            self._left = memoryview(chunk)
        n = min(len(buffer), len(self._left))
        buffer[:n] = self._left[:n]
        self._left = self._left[n:]
        return n


def _not_found(exc: BlockNotFound, cid: str, digest: bytes) -> Exception:
    """ArtifactNotFound when the missing block is the artifact's root, else `exc` (an inner block is missing)."""
    if exc.cid == cid or exc.cid == str(parse_cid(cid)) or _digest_or_none(exc.cid) == bytes(digest):
        return ArtifactNotFound(f"no artifact with digest 0x{bytes(digest).hex()} ({cid}) in the store")
    return exc


def _digest_or_none(cid: str) -> bytes | None:
    try:
        return parse_cid(cid).digest
    except InvalidCID:
        return None
