"""dag-pb nodes and UnixFS Data, encoded exactly as kubo encodes them (byte-identical, so CIDs agree).

dag-pb (https://ipld.io/specs/codecs/dag-pb/spec/): ``PBNode { repeated PBLink Links = 2; optional bytes Data = 1; }``
with ``PBLink { optional bytes Hash = 1; optional string Name = 2; optional uint64 Tsize = 3; }``. The spec's
canonical form writes the Links *before* Data (field order 2 then 1), and each link's fields in order
Hash, Name, Tsize. kubo always writes Name (empty string included) and Tsize.

UnixFS (``unixfs.proto``): ``Data { required Type = 1; optional bytes Data = 2; optional uint64 filesize = 3;
repeated uint64 blocksizes = 4 (not packed); optional uint64 hashType = 5; optional uint64 fanout = 6; }``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from .cid import cid_to_str, decode_varint, encode_varint, parse_binary
from .store import InvalidCID

# UnixFS Data.Type values
T_RAW = 0
T_DIRECTORY = 1
T_FILE = 2
T_METADATA = 3
T_SYMLINK = 4
T_HAMTSHARD = 5


class DecodeError(ValueError):
    """A block is not well-formed dag-pb / UnixFS. Callers wrap it into an error naming the block's CID."""


@dataclass(frozen=True)
class PBLink:
    """A link: the child's CID (string), its name, and Tsize (the child DAG's total serialized size)."""

    cid: str
    name: str = ""
    tsize: int = 0

    @property
    def cid_binary(self) -> bytes:
        from .cid import parse_cid

        return parse_cid(self.cid).binary


@dataclass(frozen=True)
class PBNode:
    links: list[PBLink] = field(default_factory=list)
    data: bytes | None = None


@dataclass(frozen=True)
class UnixFSData:
    type: int
    data: bytes | None = None
    filesize: int | None = None
    blocksizes: list[int] = field(default_factory=list)
    hash_type: int | None = None
    fanout: int | None = None


def _key(field_no: int, wire: int) -> bytes:
    return encode_varint((field_no << 3) | wire)


def _bytes_field(field_no: int, value: bytes | memoryview) -> bytes:
    return _key(field_no, 2) + encode_varint(len(value)) + bytes(value)


def encode_link(cid_binary: bytes, name: str, tsize: int) -> bytes:
    """One encoded PBLink (without the enclosing PBNode field key)."""
    name_b = name.encode("utf-8")
    return (
        b"\x0a"
        + encode_varint(len(cid_binary))
        + cid_binary
        + b"\x12"
        + encode_varint(len(name_b))
        + name_b
        + b"\x18"
        + encode_varint(tsize)
    )


def encode_node_raw(links: Sequence[tuple[bytes, str, int]], data: bytes | None) -> bytes:
    """Encodes a PBNode from binary-CID links ``(cid_binary, name, tsize)`` and optional Data."""
    parts = []
    for cid_b, name, tsize in links:
        enc = encode_link(cid_b, name, tsize)
        parts.append(b"\x12" + encode_varint(len(enc)) + enc)
    if data is not None:
        parts.append(_bytes_field(1, data))
    return b"".join(parts)


def encode_node(node: PBNode) -> bytes:
    """Encodes a PBNode (links carry string CIDs). Raises InvalidCID for a malformed link CID."""
    return encode_node_raw([(link.cid_binary, link.name, link.tsize) for link in node.links], node.data)


def encode_unixfs(
    type_: int,
    data: bytes | None = None,
    filesize: int | None = None,
    blocksizes: Sequence[int] = (),
    hash_type: int | None = None,
    fanout: int | None = None,
) -> bytes:
    """Encodes UnixFS Data in field order, as go-unixfs's protobuf marshaller does."""
    out = bytearray(b"\x08" + encode_varint(type_))
    if data is not None:
        out += _bytes_field(2, data)
    if filesize is not None:
        out += b"\x18" + encode_varint(filesize)
    for size in blocksizes:
        out += b"\x20" + encode_varint(size)
    if hash_type is not None:
        out += b"\x28" + encode_varint(hash_type)
    if fanout is not None:
        out += b"\x30" + encode_varint(fanout)
    return bytes(out)


def file_leaf_parts(size: int) -> tuple[bytes, bytes]:
    """The bytes before and after a chunk of `size` bytes in a kubo v0 leaf block
    (PBNode{Data: UnixFS{Type: File, Data: chunk, filesize: size}}), so the importer can hash and write the
    leaf as header + chunk + trailer without copying the chunk. An empty chunk has no Data field at all."""
    sz = encode_varint(size)
    if size == 0:
        inner_head = b"\x08\x02"
    else:
        inner_head = b"\x08\x02\x12" + sz
    trailer = b"\x18" + sz
    inner_len = len(inner_head) + size + len(trailer)
    return b"\x0a" + encode_varint(inner_len) + inner_head, trailer


def _fields(buf: bytes | memoryview):  # type: ignore[no-untyped-def]
    """Yields (field_no, wire_type, value) where value is an int (varint) or a memoryview (length-delimited).
    Raises DecodeError on malformed input or wire types dag-pb/UnixFS never use."""
    mv = memoryview(buf)
    pos = 0
    end = len(mv)
    try:
        while pos < end:
            key, pos = decode_varint(mv, pos)
            fno, wire = key >> 3, key & 7
            if wire == 0:
                val, pos = decode_varint(mv, pos)
                yield fno, wire, val
            elif wire == 2:
                ln, pos = decode_varint(mv, pos)
                if pos + ln > end:
                    raise DecodeError("length-delimited field runs past the end")
                yield fno, wire, mv[pos : pos + ln]
                pos += ln
            else:
                raise DecodeError(f"unexpected wire type {wire} for field {fno}")
    except ValueError as exc:
        if isinstance(exc, DecodeError):
            raise
        raise DecodeError(str(exc)) from None


def decode_node(block: bytes | memoryview) -> PBNode:
    """Decodes a dag-pb block. Raises DecodeError if it is not dag-pb (unknown fields, links after data,
    a link without a hash, a malformed link CID)."""
    links: list[PBLink] = []
    data: bytes | None = None
    for fno, wire, val in _fields(block):
        if fno == 2 and wire == 2:
            if data is not None:
                raise DecodeError("PBNode Links after Data")
            links.append(_decode_link(val))
        elif fno == 1 and wire == 2:
            if data is not None:
                raise DecodeError("duplicate PBNode Data")
            data = bytes(val)
        else:
            raise DecodeError(f"unexpected PBNode field {fno}")
    return PBNode(links=links, data=data)


def _decode_link(buf: memoryview) -> PBLink:
    cid_s: str | None = None
    name = ""
    tsize = 0
    for fno, wire, val in _fields(buf):
        if fno == 1 and wire == 2:
            try:
                parsed, end = parse_binary(val)
            except InvalidCID as exc:
                raise DecodeError(f"link hash: {exc}") from None
            if end != len(val):
                raise DecodeError("link hash has trailing bytes")
            cid_s = cid_to_str(parsed.binary)
        elif fno == 2 and wire == 2:
            try:
                name = bytes(val).decode("utf-8")
            except UnicodeDecodeError:
                raise DecodeError("link name is not UTF-8") from None
        elif fno == 3 and wire == 0:
            tsize = val
        else:
            raise DecodeError(f"unexpected PBLink field {fno}")
    if cid_s is None:
        raise DecodeError("link without a hash")
    return PBLink(cid=cid_s, name=name, tsize=tsize)


def decode_unixfs(data: bytes | memoryview) -> UnixFSData:
    """Decodes UnixFS Data. Raises DecodeError when malformed or when Type is missing."""
    type_: int | None = None
    payload: bytes | None = None
    filesize: int | None = None
    blocksizes: list[int] = []
    hash_type: int | None = None
    fanout: int | None = None
    for fno, wire, val in _fields(data):
        if fno == 1 and wire == 0:
            type_ = val
        elif fno == 2 and wire == 2:
            payload = bytes(val)
        elif fno == 3 and wire == 0:
            filesize = val
        elif fno == 4 and wire == 0:
            blocksizes.append(val)
        elif fno == 4 and wire == 2:  # tolerate the packed encoding other writers may use
            mv, p = val, 0
            while p < len(mv):
                try:
                    v, p = decode_varint(mv, p)
                except ValueError as exc:  # a truncated packed field: malformed, like any other
                    raise DecodeError(f"packed blocksizes: {exc}") from None
                blocksizes.append(v)
        elif fno == 5 and wire == 0:
            hash_type = val
        elif fno == 6 and wire == 0:
            fanout = val
        elif fno in (7, 8):
            continue  # mode / mtime: metadata that does not change the file's bytes
        else:
            raise DecodeError(f"unexpected UnixFS field {fno}")
    if type_ is None:
        raise DecodeError("UnixFS Data without Type")
    return UnixFSData(type_, payload, filesize, blocksizes, hash_type, fanout)
