"""The envelope's binary format, version 1. All integers are unsigned big-endian.

======================  ==========  ===================================================================
offset                  size        field
======================  ==========  ===================================================================
0                       8           magic ``89 4C 45 50 45 4E 56 0A`` (``b"\\x89LEPENV\\n"``; the high
                                    first byte and the newline catch 7-bit and newline-mangling transfers)
8                       2           format version (1)
10                      2           flags, reserved: must be 0
12                      16          envelope id, random
28                      12          payload nonce (AES-GCM), random
40                      2           recipient count n, 1 <= n <= 1024
42                      112 * n     recipient slots, each: recipient X25519 public key (32) ++ ephemeral
                                    X25519 public key (32) ++ wrapped data key (48: 32 + GCM tag)
42 + 112n               8           ciphertext length L, L >= 16
50 + 112n               L           payload ciphertext ++ 16-byte GCM tag
======================  ==========  ===================================================================

The envelope is exactly ``50 + 112n + L`` bytes; trailing bytes are an error. Recipient keys are distinct.

Associated data:

- *header* = bytes ``[0, 50 + 112n)``, everything before the ciphertext. The payload is encrypted with
  ``aad = header``, so any change to any header byte (a slot added, removed or altered) fails the payload tag.
- *core* = the header with every wrapped-key field left out: ``magic ++ version ++ flags ++ id ++ nonce ++
  n ++ (recipient_j ++ ephemeral_j for every j) ++ L``. Slot i's data key is wrapped with
  ``aad = core ++ uint16(i)``: it is bound to this envelope (id, nonce, length), to its own recipient and
  ephemeral key, to its position, and to the full recipient list. (The wrapped keys themselves cannot be in
  their own aad; the payload tag covers them.)

The payload (plaintext), see envelope.py: ``uint32 manifest length ++ manifest document ++ 65-byte signature
++ uint64 tensors length ++ safetensors bytes``.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from .crypto import KEY_BYTES, TAG_BYTES, WRAPPED_KEY_BYTES
from .errors import (
    MalformedEnvelope,
    NotAnEnvelope,
    OversizeEnvelope,
    TruncatedEnvelope,
    UnsupportedVersion,
)

__all__ = [
    "DEFAULT_MAX_ENVELOPE_BYTES",
    "ENVELOPE_ID_BYTES",
    "FIXED_HEADER_BYTES",
    "MAGIC",
    "MAX_RECIPIENTS",
    "SLOT_BYTES",
    "VERSION",
    "EnvelopeHeader",
    "RecipientSlot",
    "header_bytes",
    "parse_envelope",
    "parse_header",
]

MAGIC = b"\x89LEPENV\n"
VERSION = 1
ENVELOPE_ID_BYTES = 16
MAX_RECIPIENTS = 1024
SLOT_BYTES = KEY_BYTES + KEY_BYTES + WRAPPED_KEY_BYTES
_PREFIX = struct.Struct(">8sHH16s12sH")  # magic, version, flags, id, nonce, n
FIXED_HEADER_BYTES = _PREFIX.size + 8  # 50: the header without slots
#: Default bound on a whole envelope: 1 GiB.
DEFAULT_MAX_ENVELOPE_BYTES = 1024 * 1024 * 1024


@dataclass(frozen=True)
class RecipientSlot:
    recipient: bytes  # X25519 public key
    ephemeral: bytes  # sender's ephemeral X25519 public key for this slot
    wrapped_key: bytes  # 48 bytes


@dataclass(frozen=True)
class EnvelopeHeader:
    """The parsed header; :meth:`encode` gives back its exact bytes."""

    envelope_id: bytes
    nonce: bytes
    slots: tuple[RecipientSlot, ...]
    ciphertext_length: int
    version: int = VERSION
    flags: int = 0

    def _prefix(self) -> bytes:
        return _PREFIX.pack(
            MAGIC,
            self.version,
            self.flags,
            self.envelope_id,
            self.nonce,
            len(self.slots),
        )

    def encode(self) -> bytes:
        """The header bytes: the payload's associated data."""
        slots = b"".join(s.recipient + s.ephemeral + s.wrapped_key for s in self.slots)
        return self._prefix() + slots + struct.pack(">Q", self.ciphertext_length)

    def wrap_aad(self, index: int) -> bytes:
        """Associated data of slot `index`'s wrapped key (the *core* plus the index)."""
        keys = b"".join(s.recipient + s.ephemeral for s in self.slots)
        return self._prefix() + keys + struct.pack(">QH", self.ciphertext_length, index)

    def find(self, recipient: bytes) -> int | None:
        """Index of the slot for `recipient`, or None."""
        for i, slot in enumerate(self.slots):
            if slot.recipient == recipient:
                return i
        return None


def parse_envelope(
    data: bytes, *, max_envelope_bytes: int = DEFAULT_MAX_ENVELOPE_BYTES
) -> tuple[EnvelopeHeader, memoryview]:
    """Splits an envelope into its header and ciphertext, checking structure only (no keys needed).

    Raises:
        OversizeEnvelope: `data`, or the size its header announces, is over `max_envelope_bytes`.
        TruncatedEnvelope: `data` ends before the header or ciphertext it announces.
        NotAnEnvelope: wrong magic bytes.
        UnsupportedVersion: a version other than 1.
        MalformedEnvelope: flags set, recipient count out of range, duplicate recipients, a ciphertext
            shorter than a tag, or trailing bytes.
    """
    data = bytes(data)
    header = parse_header(data, len(data), max_envelope_bytes=max_envelope_bytes)
    return header, memoryview(data)[header_bytes(len(header.slots)) :]  # a view: a large ciphertext is not copied


def header_bytes(recipients: int) -> int:
    """The size of the header of an envelope with `recipients` slots."""
    return FIXED_HEADER_BYTES + SLOT_BYTES * recipients


def parse_header(
    prefix: bytes | bytearray, size: int, *, max_envelope_bytes: int = DEFAULT_MAX_ENVELOPE_BYTES
) -> EnvelopeHeader:
    """:func:`parse_envelope`'s checks, in its order, on an envelope of `size` bytes whose first bytes are
    `prefix` (all of them, or at least its header): a reader that streams the envelope keeps only those.

    Raises:
        as :func:`parse_envelope`.
    """
    if size > max_envelope_bytes:
        raise OversizeEnvelope(f"envelope has {size} bytes, over the bound of {max_envelope_bytes}")
    # Magic first, on whatever prefix there is: a short non-envelope is "not an envelope", not "truncated".
    if prefix[: len(MAGIC)] != MAGIC[:size]:
        raise NotAnEnvelope("input does not start with the envelope magic bytes")
    if size < _PREFIX.size:
        raise TruncatedEnvelope(f"envelope of {size} bytes ends inside the fixed header")
    _, version, flags, envelope_id, nonce, n = _PREFIX.unpack_from(prefix, 0)
    if version != VERSION:
        raise UnsupportedVersion(f"envelope format version {version}; this code reads {VERSION}")
    if flags != 0:
        raise MalformedEnvelope(f"reserved flags are set: {flags:#06x}")
    if not 1 <= n <= MAX_RECIPIENTS:
        raise MalformedEnvelope(f"recipient count {n} outside 1..{MAX_RECIPIENTS}")
    header_len = header_bytes(n)
    if header_len > max_envelope_bytes:
        raise OversizeEnvelope(f"envelope header of {header_len} bytes is over the bound of {max_envelope_bytes}")
    if size < header_len:
        raise TruncatedEnvelope(f"envelope of {size} bytes ends inside its {n} recipient slots")
    slots = []
    for i in range(n):
        off = _PREFIX.size + SLOT_BYTES * i
        slots.append(
            RecipientSlot(
                bytes(prefix[off : off + KEY_BYTES]),
                bytes(prefix[off + KEY_BYTES : off + 2 * KEY_BYTES]),
                bytes(prefix[off + 2 * KEY_BYTES : off + SLOT_BYTES]),
            )
        )
    if len({s.recipient for s in slots}) != n:
        raise MalformedEnvelope("a recipient appears twice")
    (length,) = struct.unpack_from(">Q", prefix, header_len - 8)
    if length < TAG_BYTES:
        raise MalformedEnvelope(f"ciphertext length {length} is shorter than a GCM tag")
    if header_len + length > max_envelope_bytes:
        raise OversizeEnvelope(
            f"envelope announces {header_len + length} bytes, over the bound of {max_envelope_bytes}"
        )
    if size < header_len + length:
        raise TruncatedEnvelope(f"envelope of {size} bytes, its header announces {header_len + length}")
    if size > header_len + length:
        raise MalformedEnvelope(f"{size - header_len - length} trailing bytes after the ciphertext")
    return EnvelopeHeader(bytes(envelope_id), bytes(nonce), tuple(slots), length, version, flags)
