"""The binary layout: documented offsets, and every structural refusal before any key is used."""

import struct

import pytest

from lepton_ledger.envelope import (
    MAGIC,
    MalformedEnvelope,
    NotAnEnvelope,
    OversizeEnvelope,
    TruncatedEnvelope,
    UnsupportedVersion,
)
from lepton_ledger.envelope.format import parse_envelope

SLOT = 112
FIXED = 50


@pytest.fixture
def sealed(make_envelope):
    return make_envelope()


def test_layout_matches_the_documented_offsets(sealed, coordinator, auditor):
    data = sealed.data
    assert data[:8] == b"\x89LEPENV\n" == MAGIC
    assert struct.unpack_from(">HH", data, 8) == (1, 0)
    assert struct.unpack_from(">H", data, 40) == (2,)
    assert data[42:74] == coordinator[1] and data[42 + SLOT : 74 + SLOT] == auditor[1]
    (length,) = struct.unpack_from(">Q", data, 42 + 2 * SLOT)
    assert len(data) == FIXED + 2 * SLOT + length
    header, ciphertext = parse_envelope(data)
    assert header.encode() == data[: FIXED + 2 * SLOT] and ciphertext == data[FIXED + 2 * SLOT :]


def test_every_proper_prefix_is_truncated(sealed):
    for n in range(len(sealed.data)):
        with pytest.raises(TruncatedEnvelope):
            parse_envelope(sealed.data[:n])


@pytest.mark.parametrize("data", [b"PK\x03\x04 a zip file", b"\x89PNG\r\n\x1a\n" + bytes(100), b"{}"])
def test_other_files_are_not_envelopes(data):
    with pytest.raises(NotAnEnvelope):
        parse_envelope(data)


def _patch(data: bytes, offset: int, value: bytes) -> bytes:
    return data[:offset] + value + data[offset + len(value) :]


def test_unknown_version_is_refused(sealed):
    with pytest.raises(UnsupportedVersion):
        parse_envelope(_patch(sealed.data, 8, struct.pack(">H", 2)))


def test_reserved_flags_are_refused(sealed):
    with pytest.raises(MalformedEnvelope):
        parse_envelope(_patch(sealed.data, 10, struct.pack(">H", 1)))


def test_zero_recipients_is_refused(sealed):
    with pytest.raises(MalformedEnvelope):
        parse_envelope(_patch(sealed.data, 40, struct.pack(">H", 0)))


def test_duplicate_recipient_is_refused(sealed):
    first_key = sealed.data[42:74]
    with pytest.raises(MalformedEnvelope):
        parse_envelope(_patch(sealed.data, 42 + SLOT, first_key))


def test_trailing_bytes_are_refused(sealed):
    with pytest.raises(MalformedEnvelope):
        parse_envelope(sealed.data + b"\x00")


def test_ciphertext_shorter_than_a_tag_is_refused(sealed):
    at = 42 + 2 * SLOT
    data = _patch(sealed.data, at, struct.pack(">Q", 15))[: at + 8 + 15]
    with pytest.raises(MalformedEnvelope):
        parse_envelope(data)


def test_oversize_envelope_is_refused_before_parsing(sealed):
    with pytest.raises(OversizeEnvelope):
        parse_envelope(sealed.data, max_envelope_bytes=len(sealed.data) - 1)
    parse_envelope(sealed.data, max_envelope_bytes=len(sealed.data))


def test_announced_oversize_is_refused_without_the_bytes(sealed):
    # A header that announces 2**60 bytes of ciphertext is refused as oversize, not read as truncated.
    at = 42 + 2 * SLOT
    with pytest.raises(OversizeEnvelope):
        parse_envelope(_patch(sealed.data, at, struct.pack(">Q", 2**60)), max_envelope_bytes=10**6)
