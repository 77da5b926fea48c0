"""CIDs as kubo makes them: CIDv0 (base58btc of a sha2-256 multihash, always dag-pb) and CIDv1 (base32,
codec dag-pb or raw, sha2-256).

Hand-rolled rather than built on `multiformats`: the importer makes one CID per 256 KiB chunk and the reader
parses one per block, and `multiformats.CID` costs tens of microseconds per object (it validates through its
registries) where the few byte operations below cost about one. Internally CIDs travel as their binary form
(`bytes`); strings are made only at the edges.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass

from .store import BlockCorrupted, InvalidCID

DAG_PB = 0x70
RAW = 0x55
SHA2_256 = 0x12
_CODECS = {DAG_PB: "dag-pb", RAW: "raw"}
_MH_PREFIX = b"\x12\x20"  # sha2-256, 32-byte digest
_V1_PB_PREFIX = b"\x01\x70\x12\x20"
_V1_RAW_PREFIX = b"\x01\x55\x12\x20"

_B58_ALPHABET = b"123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
_B58_INDEX = {c: i for i, c in enumerate(_B58_ALPHABET)}


def b58encode(data: bytes) -> str:
    """base58btc (Bitcoin alphabet), leading zero bytes as leading '1's."""
    n = int.from_bytes(data, "big")
    out = bytearray()
    while n:
        n, r = divmod(n, 58)
        out.append(_B58_ALPHABET[r])
    pad = len(data) - len(data.lstrip(b"\0"))
    return (b"1" * pad + bytes(reversed(out))).decode("ascii")


def b58decode(text: str) -> bytes:
    """Inverse of `b58encode`. Raises ValueError on a character outside the alphabet."""
    n = 0
    for ch in text.encode("ascii", "replace"):
        try:
            n = n * 58 + _B58_INDEX[ch]
        except KeyError:
            raise ValueError(f"invalid base58 character {chr(ch)!r}") from None
    pad = len(text) - len(text.lstrip("1"))
    body = n.to_bytes((n.bit_length() + 7) // 8, "big") if n else b""
    return b"\0" * pad + body


def b32encode(data: bytes) -> str:
    """RFC 4648 base32, lower case, no padding (multibase 'b' without its prefix)."""
    return base64.b32encode(data).decode("ascii").rstrip("=").lower()


def b32decode(text: str) -> bytes:
    """Inverse of `b32encode`. Raises ValueError (binascii.Error) on bad input."""
    upper = text.upper()
    return base64.b32decode(upper + "=" * (-len(upper) % 8))


def encode_varint(n: int) -> bytes:
    """Unsigned LEB128, as multiformats and protobuf use."""
    if n < 0:
        raise ValueError("varint must be non-negative")
    out = bytearray()
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def decode_varint(buf: bytes | memoryview, pos: int = 0) -> tuple[int, int]:
    """Reads an unsigned varint at `pos`; returns (value, position after it). Raises ValueError when
    truncated or longer than 9 bytes (multiformats' limit)."""
    result = 0
    shift = 0
    end = len(buf)
    while True:
        if pos >= end:
            raise ValueError("truncated varint")
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, pos
        shift += 7
        if shift >= 63:
            raise ValueError("varint too long")


@dataclass(frozen=True)
class CID:
    """A parsed CID. `binary` is its canonical binary form (for v0: the bare 34-byte multihash)."""

    version: int
    codec: int
    digest: bytes  # the sha2-256 digest

    @property
    def multihash(self) -> bytes:
        return _MH_PREFIX + self.digest

    @property
    def binary(self) -> bytes:
        if self.version == 0:
            return _MH_PREFIX + self.digest
        return b"\x01" + encode_varint(self.codec) + _MH_PREFIX + self.digest

    @property
    def codec_name(self) -> str:
        return _CODECS[self.codec]

    def __str__(self) -> str:
        return cid_to_str(self.binary)


def make_cid(data: bytes | memoryview, *, version: int = 0, codec: int = DAG_PB) -> bytes:
    """Binary CID of a block. Raises ValueError for a v0 CID of a non-dag-pb codec or an unknown version."""
    return cid_from_digest(hashlib.sha256(data).digest(), version=version, codec=codec)


def cid_from_digest(digest: bytes, *, version: int = 0, codec: int = DAG_PB) -> bytes:
    """Binary CID from a sha2-256 digest (so the importer can hash a block from its parts, no copy)."""
    if version == 0:
        if codec != DAG_PB:
            raise ValueError("CIDv0 is always dag-pb")
        return _MH_PREFIX + digest
    if version == 1:
        if codec == DAG_PB:
            return _V1_PB_PREFIX + digest
        if codec == RAW:
            return _V1_RAW_PREFIX + digest
        raise ValueError(f"unsupported codec 0x{codec:x}")
    raise ValueError(f"unsupported CID version {version}")


def cid_to_str(binary: bytes) -> str:
    """The string kubo prints: base58btc for v0, multibase base32 ('b...') for v1."""
    if len(binary) == 34 and binary[0] == 0x12:
        return b58encode(binary)
    return "b" + b32encode(binary)


def parse_binary(binary: bytes | memoryview, pos: int = 0) -> tuple[CID, int]:
    """Parses a binary CID starting at `pos`; returns it and the position after it. Raises InvalidCID."""
    try:
        if binary[pos] == 0x12:
            # CIDv0: a bare multihash, which must be sha2-256 with a 32-byte digest.
            if bytes(binary[pos : pos + 2]) != _MH_PREFIX or len(binary) < pos + 34:
                raise InvalidCID("CIDv0 must be a sha2-256 multihash of 32 bytes")
            return CID(0, DAG_PB, bytes(binary[pos + 2 : pos + 34])), pos + 34
        version, p = decode_varint(binary, pos)
        if version != 1:
            raise InvalidCID(f"unsupported CID version {version}")
        codec, p = decode_varint(binary, p)
        if codec not in _CODECS:
            raise InvalidCID(f"unsupported codec 0x{codec:x} (dag-pb and raw only)")
        hcode, p = decode_varint(binary, p)
        hlen, p = decode_varint(binary, p)
        if hcode != SHA2_256 or hlen != 32:
            raise InvalidCID(f"unsupported multihash 0x{hcode:x}/{hlen} (sha2-256 only)")
        if len(binary) < p + 32:
            raise InvalidCID("truncated CID digest")
        return CID(1, codec, bytes(binary[p : p + 32])), p + 32
    except IndexError:
        raise InvalidCID("truncated CID") from None
    except ValueError as exc:
        if isinstance(exc, InvalidCID):
            raise
        raise InvalidCID(f"malformed binary CID: {exc}") from None


def parse_cid(text: str | bytes) -> CID:
    """Parses a CID string (``Qm...`` v0, ``b...`` base32 v1, ``z...`` base58btc v1) or binary CID.
    Raises InvalidCID naming the input when it is not a sha2-256 dag-pb/raw CID."""
    if isinstance(text, (bytes, bytearray, memoryview)):
        cid, end = parse_binary(bytes(text))
        if end != len(text):
            raise InvalidCID("trailing bytes after binary CID")
        return cid
    if not isinstance(text, str) or not text:
        raise InvalidCID(f"not a CID: {text!r}")
    try:
        if len(text) == 46 and text.startswith("Qm"):
            binary = b58decode(text)
        elif text[0] == "b":
            binary = b32decode(text[1:])
        elif text[0] == "z":
            binary = b58decode(text[1:])
        else:
            raise InvalidCID(f"not a CID: {text!r} (expected Qm... or a base32 'b...' CIDv1)")
    except (ValueError, UnicodeError) as exc:
        if isinstance(exc, InvalidCID):
            raise
        raise InvalidCID(f"not a CID: {text!r} ({exc})") from None
    try:
        cid, end = parse_binary(binary)
    except InvalidCID as exc:
        raise InvalidCID(f"not a CID: {text!r} ({exc})") from None
    if end != len(binary):
        raise InvalidCID(f"not a CID: {text!r} (trailing bytes)")
    if cid.version == 0 and not text.startswith("Qm"):
        raise InvalidCID(f"not a CID: {text!r} (a bare multihash must be written base58btc)")
    return cid


def normalize(cid: str | bytes | CID) -> CID:
    """Accepts a CID in any of the forms above. Raises InvalidCID."""
    return cid if isinstance(cid, CID) else parse_cid(cid)


def verify_block(cid: str | bytes | CID, data: bytes | memoryview) -> None:
    """Checks that `data` hashes to `cid`. Raises BlockCorrupted naming the CID, InvalidCID for a bad CID."""
    parsed = normalize(cid)
    if hashlib.sha256(data).digest() != parsed.digest:
        raise BlockCorrupted(str(parsed))
