"""CAR v1 files (https://ipld.io/specs/transport/car/carv1/), as kubo's `ipfs dag export` writes them and
`ipfs dag import` reads them.

A CAR is ``varint(len) dag-cbor{"roots": [CID...], "version": 1}`` followed by sections
``varint(len(cid) + len(block)) cid block``. Export walks the DAG depth-first, left to right, each block once
(kubo's order). Import verifies every block against its CID before storing anything.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from ..errors import LeptonError
from .cid import CID, cid_to_str, encode_varint, normalize, parse_binary, verify_block
from .store import InvalidCID, Store
from .unixfs import child_cids

MAX_SECTION = 8 << 20  # no block kubo makes comes near this; refuse absurd lengths instead of allocating them


class InvalidCar(LeptonError, ValueError):
    """A file is not a CAR v1 this project can read (names the offset or field at fault)."""


# -- minimal dag-cbor for the header -----------------------------------------------------------------------


def _cbor_head(major: int, n: int) -> bytes:
    if n < 24:
        return bytes([major << 5 | n])
    if n < 0x100:
        return bytes([major << 5 | 24, n])
    if n < 0x10000:
        return bytes([major << 5 | 25]) + n.to_bytes(2, "big")
    return bytes([major << 5 | 26]) + n.to_bytes(4, "big")


def encode_header(roots: list[CID]) -> bytes:
    """The dag-cbor header block. Keys sorted length-first (dag-cbor canonical): "roots" before "version"."""
    out = bytearray(b"\xa2" + _cbor_head(3, 5) + b"roots" + _cbor_head(4, len(roots)))
    for root in roots:
        link = b"\x00" + root.binary  # tag 42 wraps the CID's binary form behind a 0x00 multibase prefix
        out += b"\xd8\x2a" + _cbor_head(2, len(link)) + link
    out += _cbor_head(3, 7) + b"version" + b"\x01"
    return bytes(out)


_MAX_HEADER_DEPTH = 4  # {"roots": [tag 42 (bytes)]} is 3 deep; anything deeper is not a CAR header


def _cbor_decode(buf: bytes, pos: int, depth: int = 0) -> tuple[object, int]:
    """Decodes the subset of dag-cbor CAR headers use: uint, bytes, text, array, map, tag 42 (CID), at most
    _MAX_HEADER_DEPTH deep, each count bounded by the bytes left (no allocation beyond the header's size)."""
    if depth > _MAX_HEADER_DEPTH:
        raise InvalidCar("CAR header nested too deeply")
    ib = buf[pos]
    major, info = ib >> 5, ib & 31
    pos += 1
    if info < 24:
        n = info
    elif info in (24, 25, 26, 27):
        size = 1 << (info - 24)
        n = int.from_bytes(buf[pos : pos + size], "big")
        pos += size
    else:
        raise InvalidCar(f"unsupported CBOR item 0x{ib:02x} in the header")
    if major == 0:
        return n, pos
    if major in (4, 5) and n > len(buf) - pos:
        raise InvalidCar(f"CBOR container of {n} items in a header of {len(buf)} bytes")
    if major in (2, 3):
        raw = buf[pos : pos + n]
        if len(raw) != n:
            raise InvalidCar("truncated CBOR string in the header")
        return (raw if major == 2 else raw.decode("utf-8")), pos + n
    if major == 4:
        items = []
        for _ in range(n):
            item, pos = _cbor_decode(buf, pos, depth + 1)
            items.append(item)
        return items, pos
    if major == 5:
        result = {}
        for _ in range(n):
            key, pos = _cbor_decode(buf, pos, depth + 1)
            value, pos = _cbor_decode(buf, pos, depth + 1)
            if not isinstance(key, str):
                raise InvalidCar("CBOR map key in the header is not a string")
            result[key] = value
        return result, pos
    if major == 6 and n == 42:
        link, pos = _cbor_decode(buf, pos, depth + 1)
        if not isinstance(link, bytes) or not link.startswith(b"\x00"):
            raise InvalidCar("malformed CID link in the header")
        return normalize(link[1:]), pos
    raise InvalidCar(f"unsupported CBOR major type {major} in the header")


def decode_header(buf: bytes) -> list[CID]:
    """The roots of a CAR v1 header block. Raises InvalidCar when it is not one."""
    try:
        header, end = _cbor_decode(buf, 0)
    except (IndexError, UnicodeDecodeError, InvalidCID) as exc:  # truncated, not UTF-8, a bad CID
        raise InvalidCar(f"malformed CAR header: {exc}") from None
    if end != len(buf) or not isinstance(header, dict):
        raise InvalidCar("malformed CAR header")
    if header.get("version") != 1:
        raise InvalidCar(f"unsupported CAR version {header.get('version')!r} (CAR v1 only)")
    roots = header.get("roots")
    if not isinstance(roots, list) or not roots or not all(isinstance(r, CID) for r in roots):
        raise InvalidCar("CAR header has no valid roots")
    return roots


# -- export ------------------------------------------------------------------------------------------------


def iter_dag(store: Store, root: str | CID) -> Iterator[tuple[CID, bytes]]:
    """The DAG's blocks, depth-first, each once, each verified by the store (BlockNotFound / BlockCorrupted)."""
    seen: set[bytes] = set()
    stack = [normalize(root)]
    while stack:
        cid = stack.pop()
        if cid.binary in seen:
            continue
        seen.add(cid.binary)
        block = store.get_block(str(cid))
        yield cid, block
        stack.extend(normalize(c) for c in reversed(child_cids(cid, block)))


def write_car(store: Store, root: str | CID, out: BinaryIO) -> int:
    """Writes the DAG under `root` as a CAR v1 to `out`; returns the number of blocks."""
    parsed = normalize(root)
    header = encode_header([parsed])
    out.write(encode_varint(len(header)) + header)
    n = 0
    for cid, block in iter_dag(store, parsed):
        cid_b = cid.binary
        out.write(encode_varint(len(cid_b) + len(block)))
        out.write(cid_b)
        out.write(block)
        n += 1
    return n


def export_car(store: Store, root: str | CID, path: str | os.PathLike[str]) -> int:
    """Writes the CAR file atomically: on any error (missing or corrupted block) nothing appears at `path`."""
    target = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-car-", dir=target.parent if str(target.parent) else ".")
    try:
        with os.fdopen(fd, "wb") as f:
            n = write_car(store, root, f)
        os.chmod(tmp, 0o644)  # mkstemp makes it 0600; a CAR is meant to be shared
        os.replace(tmp, target)
        return n
    except BaseException:
        os.unlink(tmp)
        raise


# -- import ------------------------------------------------------------------------------------------------


def _read_varint(f: BinaryIO) -> int | None:
    """A varint from the stream, or None at a clean end of file. Raises InvalidCar when truncated."""
    result = shift = 0
    first = True
    while True:
        b = f.read(1)
        if not b:
            if first:
                return None
            raise InvalidCar("CAR truncated inside a length prefix")
        first = False
        result |= (b[0] & 0x7F) << shift
        if not b[0] & 0x80:
            return result
        shift += 7
        if shift > 63:
            raise InvalidCar("CAR length prefix too long")


DEFAULT_MAX_CAR_BYTES = 2 << 30  # as storage.store.DEFAULT_MAX_FILE_BYTES: no artifact is larger


def read_car(f: BinaryIO, *, max_bytes: int = DEFAULT_MAX_CAR_BYTES) -> tuple[list[CID], Iterator[tuple[CID, bytes]]]:
    """Parses the header and returns (roots, iterator of verified (cid, block) sections), streaming, at most
    `max_bytes` of sections. Raises InvalidCar for a malformed file or one over `max_bytes` (before reading the
    section that passes it), BlockCorrupted naming a block that does not match its CID."""
    hlen = _read_varint(f)
    if hlen is None or hlen == 0 or hlen > MAX_SECTION:
        raise InvalidCar("not a CAR file: missing or absurd header length")
    header = f.read(hlen)
    if len(header) != hlen:
        raise InvalidCar("CAR truncated inside its header")
    roots = decode_header(header)

    def sections() -> Iterator[tuple[CID, bytes]]:
        offset = f.tell() if f.seekable() else None
        total = 0
        while True:
            length = _read_varint(f)
            if length is None:
                return
            if length > MAX_SECTION:
                raise InvalidCar(f"CAR section of {length} bytes is too large (at offset {offset})")
            total += length
            if total > max_bytes:
                raise InvalidCar(f"CAR holds more than {max_bytes} bytes of blocks (at offset {offset})")
            section = f.read(length)
            if len(section) != length:
                raise InvalidCar(f"CAR truncated inside a section (at offset {offset})")
            try:
                cid, end = parse_binary(section)
            except InvalidCID as exc:
                raise InvalidCar(f"bad CID in a CAR section (at offset {offset}): {exc}") from None
            block = section[end:]
            verify_block(cid, block)
            yield cid, block
            if offset is not None:
                offset = f.tell()

    return roots, sections()


def import_car(
    store: Store, path: str | os.PathLike[str], *, pin_roots: bool = True, max_bytes: int = DEFAULT_MAX_CAR_BYTES
) -> list[str]:
    """Imports a CAR file into `store`; returns its roots. Every block is verified in a first pass, so a
    malformed or corrupted file stores nothing; then blocks are stored and the roots pinned (like
    `ipfs dag import`, which fails when a root's DAG is incomplete: BlockNotFound naming the missing block).
    Raises InvalidCar (also over `max_bytes` of blocks), BlockCorrupted, BlockNotFound, OSError for an
    unreadable file."""
    with open(path, "rb") as f:
        roots, sections = read_car(f, max_bytes=max_bytes)
        for _ in sections:
            pass
        f.seek(0)
        roots, sections = read_car(f, max_bytes=max_bytes)
        store.put_blocks((str(cid), block) for cid, block in sections)
    if pin_roots:
        for root in roots:
            store.pin(str(root))
    return [cid_to_str(r.binary) for r in roots]
