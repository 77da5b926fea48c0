"""UnixFS files as kubo's `ipfs add` builds them, and the reader that walks them back into bytes.

Importer (how boxo's `importer/balanced` lays a file out, re-derived here): the input is cut into fixed
256 KiB chunks; each chunk becomes a leaf (a dag-pb node wrapping UnixFS ``File`` data for CIDv0, a raw block
for ``--cid-version=1``, which implies ``--raw-leaves``); leaves are grouped under parents of at most 174 links,
parents under grandparents, and so on, each internal node a UnixFS ``File`` with ``filesize`` and one
``blocksizes`` entry per child. A file of one chunk is that single leaf. The balanced builder fills the tree
depth-first, which yields exactly the tree obtained by grouping each layer 174 at a time and only creating a
new layer when a layer holds more than one node, so the importer keeps one list of pending links per layer
(at most 174 x depth entries) and one chunk buffer: memory stays flat whatever the input size.

Leaves are hashed from (header, chunk, trailer) without ever concatenating them, so the cost per chunk is the
sha256 itself plus a few small allocations.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import BinaryIO

from .cid import CID, DAG_PB, RAW, cid_from_digest, cid_to_str, make_cid, normalize
from .dagpb import (
    T_FILE,
    T_RAW,
    DecodeError,
    decode_node,
    decode_unixfs,
    encode_node_raw,
    encode_unixfs,
    file_leaf_parts,
)
from .store import DEFAULT_MAX_FILE_BYTES, FileTooLarge, StorageError

CHUNK_SIZE = 262144  # kubo's default splitter: size-262144
MAX_LINKS = 174  # boxo helpers.DefaultLinksPerBlock

BlockSink = Callable[[bytes, Sequence[bytes | memoryview]], None]
"""Receives each new block as (binary CID, parts whose concatenation is the block). The parts may alias a
reused buffer: a sink must consume them before returning."""

_FULL_LEAF_PARTS = file_leaf_parts(CHUNK_SIZE)


@dataclass(frozen=True)
class ImportResult:
    cid: str
    size: int  # file size in bytes
    blocks: int  # blocks produced (duplicates included)


class _Builder:
    """Balanced-layout DAG builder, fed one chunk at a time."""

    def __init__(self, *, cid_version: int, raw_leaves: bool, sink: BlockSink | None, max_links: int) -> None:
        self.max_links = max_links
        self.version = cid_version
        self.raw_leaves = raw_leaves
        self.sink = sink
        # levels[i]: pending (cid binary, tsize, filesize) of the nodes at height i not yet under a parent.
        self.levels: list[list[tuple[bytes, int, int]]] = [[]]
        self.size = 0
        self.blocks = 0

    def add_chunk(self, chunk: memoryview) -> None:
        n = len(chunk)
        self.size += n
        self.blocks += 1
        if self.raw_leaves:
            cid = cid_from_digest(hashlib.sha256(chunk).digest(), version=1, codec=RAW)
            if self.sink is not None:
                self.sink(cid, (chunk,))
            self._push(0, (cid, n, n))
            return
        head, tail = _FULL_LEAF_PARTS if n == CHUNK_SIZE else file_leaf_parts(n)
        h = hashlib.sha256(head)
        h.update(chunk)
        h.update(tail)
        cid = cid_from_digest(h.digest(), version=self.version, codec=DAG_PB)
        if self.sink is not None:
            self.sink(cid, (head, chunk, tail))
        self._push(0, (cid, len(head) + n + len(tail), n))

    def _push(self, level: int, entry: tuple[bytes, int, int]) -> None:
        pending = self.levels[level]
        if len(pending) == self.max_links:
            # A full layer gets its parent only once we know more data follows (kubo makes no extra root
            # above a full node when the file ends exactly there).
            parent = self._make_parent(pending)
            self.levels[level] = [entry]
            if level + 1 == len(self.levels):
                self.levels.append([])
            self._push(level + 1, parent)
        else:
            pending.append(entry)

    def _make_parent(self, children: list[tuple[bytes, int, int]]) -> tuple[bytes, int, int]:
        filesize = sum(c[2] for c in children)
        data = encode_unixfs(T_FILE, filesize=filesize, blocksizes=[c[2] for c in children])
        block = encode_node_raw([(c[0], "", c[1]) for c in children], data)
        cid = make_cid(block, version=self.version, codec=DAG_PB)
        self.blocks += 1
        if self.sink is not None:
            self.sink(cid, (block,))
        return cid, len(block) + sum(c[1] for c in children), filesize

    def finish(self) -> bytes:
        if self.size == 0 and not self.levels[0]:
            self.add_chunk(memoryview(b""))  # the empty file is one empty leaf
        level = 0
        while True:
            pending = self.levels[level]
            top = level == len(self.levels) - 1
            if top and len(pending) == 1:
                return pending[0][0]
            parent = self._make_parent(pending)
            self.levels[level] = []
            if top:
                self.levels.append([])
            # through _push: the layer above may be full, and then it needs its own parent first
            self._push(level + 1, parent)
            level += 1


def import_file(
    source: bytes | bytearray | memoryview | BinaryIO,
    *,
    cid_version: int = 0,
    raw_leaves: bool | None = None,
    sink: BlockSink | None = None,
    max_links: int = MAX_LINKS,
) -> ImportResult:
    """Builds the UnixFS DAG of `source` as `ipfs add` would and returns its root CID.

    cid_version 0 (kubo's default) or 1 (raw leaves unless `raw_leaves=False`, as ``--cid-version=1``).
    `sink` receives every block (None = only hash). `max_links` other than 174 gives non-kubo CIDs (tests use
    it to reach deep trees with little data). A stream is read in 256 KiB chunks into one reused buffer.
    Raises ValueError for a bad cid_version, and whatever the stream or the sink raises.
    """
    if cid_version not in (0, 1):
        raise ValueError(f"cid_version must be 0 or 1, not {cid_version!r}")
    if raw_leaves is None:
        raw_leaves = cid_version == 1
    if raw_leaves and cid_version == 0:
        raise ValueError("raw leaves need CIDv1")
    if max_links < 2:
        raise ValueError("max_links must be at least 2")
    builder = _Builder(cid_version=cid_version, raw_leaves=raw_leaves, sink=sink, max_links=max_links)
    if isinstance(source, (bytes, bytearray, memoryview)):
        mv = memoryview(source).cast("B")
        for off in range(0, len(mv), CHUNK_SIZE):
            builder.add_chunk(mv[off : off + CHUNK_SIZE])
    else:
        buf = bytearray(CHUNK_SIZE)
        view = memoryview(buf)
        while True:
            filled = 0
            # Fill whole chunks like kubo's splitter (io.ReadFull): a short read is not the end of the file.
            while filled < CHUNK_SIZE:
                got = source.readinto(view[filled:])  # type: ignore[attr-defined]
                if not got:
                    break
                filled += got
            if filled:
                builder.add_chunk(view[:filled])
            if filled < CHUNK_SIZE:
                break
    root = builder.finish()
    return ImportResult(cid=cid_to_str(root), size=builder.size, blocks=builder.blocks)


def file_cid(source: bytes | BinaryIO, *, cid_version: int = 0) -> str:
    """The CID `ipfs add --only-hash [--cid-version=1]` prints for `source`."""
    return import_file(source, cid_version=cid_version).cid


def child_cids(cid: CID, block: bytes) -> list[str]:
    """The CIDs a block links to (none for a raw block). Raises StorageError naming `cid` for malformed dag-pb."""
    if cid.codec == RAW:
        return []
    try:
        return [link.cid for link in decode_node(block).links]
    except DecodeError as exc:
        raise StorageError(f"block {cid} is not valid dag-pb: {exc}") from None


MAX_DEPTH = 32
"""Deepest DAG `iter_file` follows: kubo's balanced layout needs 4 levels for 10^15 bytes; a deeper chain of
single links is a hostile DAG, refused before it grows the walk's stack."""


def iter_file(
    get_block: Callable[[str], bytes], cid: str | CID, *, max_bytes: int = DEFAULT_MAX_FILE_BYTES
) -> Iterator[bytes]:
    """Yields the bytes of the UnixFS file at `cid`, depth-first, one block at a time, at most `max_bytes`.

    `get_block` must return verified bytes (raising BlockNotFound / BlockCorrupted naming the block).
    The root's declared ``filesize`` is checked against `max_bytes` before any other block is fetched, and the
    bytes yielded are counted, so a DAG whose nodes repeat links or lie about sizes (a few KB of blocks that
    describe petabytes) stops at the limit. Every node must also agree with its parent: a node with links
    declares one positive ``blocksizes`` entry per link, its ``filesize`` is its data plus those, and each child
    holds exactly the size its parent declared for it. So every leaf carries at least one byte of the root's
    declared size, and the blocks walked are bounded by that size: repeated links to empty nodes (millions of
    fetches described by a few hundred KB, yielding nothing) are refused at the first inconsistent node.
    Raises InvalidCID for a malformed root CID, FileTooLarge past `max_bytes`, StorageError naming the block
    when a block is not a UnixFS file node (a directory, malformed dag-pb) or the DAG is deeper than MAX_DEPTH.
    """
    root = normalize(cid)
    name = str(root)
    # (child CID, the size its parent declared for it; None for the root)
    stack: list[Iterator[tuple[str, int | None]]] = [iter([(name, None)])]
    total = 0
    while stack:
        nxt, expected = next(stack[-1], (None, None))
        if nxt is None:
            stack.pop()
            continue
        parsed = normalize(nxt)
        block = get_block(nxt)
        if parsed.codec == RAW:
            data: bytes | None = block
            _check_size(name, nxt, expected, len(block))
        else:
            try:
                node = decode_node(block)
                if node.data is None:
                    raise DecodeError("no UnixFS Data")
                fs = decode_unixfs(node.data)
            except DecodeError as exc:
                raise StorageError(f"block {nxt} is not a UnixFS file node: {exc}") from None
            if fs.type not in (T_FILE, T_RAW):
                raise StorageError(f"block {nxt} is UnixFS type {fs.type}, not a file (only files are supported)")
            if len(stack) == 1 and fs.filesize is not None and fs.filesize > max_bytes:
                raise FileTooLarge(name, max_bytes, fs.filesize)
            data = fs.data
            sizes = list(fs.blocksizes or [])
            if node.links and (len(sizes) != len(node.links) or min(sizes) < 1):
                raise StorageError(
                    f"file {name}: block {nxt} has {len(node.links)} links but blocksizes {sizes[:8]}"
                    " (one positive size per link expected)"
                )
            size = len(data or b"") + sum(sizes)
            if fs.filesize is not None and fs.filesize != size:
                raise StorageError(f"file {name}: block {nxt} declares filesize {fs.filesize} but holds {size} bytes")
            _check_size(name, nxt, expected, size)
            if node.links:
                if len(stack) >= MAX_DEPTH:
                    raise StorageError(f"file {name} is more than {MAX_DEPTH} levels deep (block {nxt})")
                stack.append(iter([(link.cid, blocksize) for link, blocksize in zip(node.links, sizes)]))
        if data:
            total += len(data)
            if total > max_bytes:
                raise FileTooLarge(name, max_bytes)
            yield data


def _check_size(name: str, block: str, expected: int | None, size: int) -> None:
    """Refuses a child whose size is not the one its parent declared for it (see ``iter_file``)."""
    if expected is not None and size != expected:
        raise StorageError(f"file {name}: block {block} holds {size} bytes but its parent declares {expected}")
