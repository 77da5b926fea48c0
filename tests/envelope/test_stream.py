"""envelope.stream: an envelope fed in pieces opens exactly as envelope.open opens the same bytes (the same
opened update, or the same error class and message), whatever the pieces, for sound, tampered, truncated,
padded and foreign bytes; and a large one is opened holding its plaintext once, not its ciphertext too."""

from __future__ import annotations

import struct
import tracemalloc

import pytest
import torch

from lepton_ledger.envelope import EnvelopeError, open
from lepton_ledger.envelope.format import FIXED_HEADER_BYTES, SLOT_BYTES
from lepton_ledger.envelope.stream import EnvelopeStream


def outcome(opener):
    try:
        opened = opener()
    except EnvelopeError as exc:
        return type(exc).__name__, str(exc)
    tensors = {name: t.tolist() for name, t in opened.tensors.items()}
    return opened.manifest_digest, opened.envelope_digest, opened.recipients, bytes(opened.tensor_bytes), tensors


def streamed(data: bytes, key: bytes, pieces: list[int]):
    stream = EnvelopeStream(key)
    at = 0
    for size in pieces:
        stream.feed(data[at : at + size])
        at += size
    stream.feed(data[at:])
    return stream.open()


def variants(data: bytes) -> dict[str, bytes]:
    n = struct.unpack_from(">H", data, 40)[0]
    header = FIXED_HEADER_BYTES + SLOT_BYTES * n
    flip = lambda at: data[:at] + bytes([data[at] ^ 1]) + data[at + 1 :]  # noqa: E731
    return {
        "sound": data,
        "magic": flip(0),
        "version": flip(9),
        "recipient count": data[:40] + struct.pack(">H", 0) + data[42:],
        "wrapped key": flip(42 + 2 * 32 + 3),
        "length": flip(header - 1),
        "ciphertext": flip(header + 5),
        "tag": flip(len(data) - 1),
        "truncated in the fixed header": data[:30],
        "truncated in the slots": data[: header - 20],
        "truncated in the ciphertext": data[:-5],
        "trailing bytes": data + b"\x00\x01",
        "not an envelope": b"hello",
        "empty": b"",
    }


@pytest.mark.parametrize("pieces", [[1] * 300, [7, 41, 2, 500], [100_000], [161, 1, 1, 16]])
def test_pieces_open_as_the_whole_does(make_envelope, coordinator, rando, pieces):
    data = make_envelope().data
    for name, candidate in variants(data).items():
        for key in (coordinator[0], rando[0]):
            whole = outcome(lambda: open(candidate, key))
            assert outcome(lambda: streamed(candidate, key, pieces)) == whole, name


def test_a_large_envelope_is_opened_holding_its_plaintext_once(make_envelope, coordinator):
    tensors = {"weight": torch.randn(2048, 1024)}  # 8 MiB
    data = make_envelope(tensors=tensors).data
    chunk = 256 * 1024
    tracemalloc.start()
    try:
        stream = EnvelopeStream(coordinator[0])
        for at in range(0, len(data), chunk):
            stream.feed(data[at : at + chunk])  # a store's block, as it arrives
        opened = stream.open()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert torch.equal(opened.tensors["weight"], tensors["weight"])
    # The plaintext (about the envelope's size), the pieces in hand and the bookkeeping: not the ciphertext too.
    assert peak < 1.3 * len(data), (peak, len(data))
