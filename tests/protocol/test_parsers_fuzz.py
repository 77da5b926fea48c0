"""Property tests of every parser the protocol layer owns (issue 11): over arbitrary bytes and over mutations of
valid documents, each parser returns or raises its named error, never a builtin (RecursionError, OverflowError,
TypeError, KeyError...), and none allocates beyond its bound (a document over its byte bound is refused before
it is parsed). The envelope is fuzzed through ``open`` with the chain's expectations, the entry point the
coordinator and the auditor both use; its payload is mutated *inside* the encryption so that the manifest,
payload and safetensors parsers see the bytes."""

from __future__ import annotations

import json
import struct

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lepton_ledger.chain.typed_data import UpdateCommitment
from lepton_ledger.envelope import (
    DPRecord,
    EnvelopeError,
    Expected,
    generate_x25519_keypair,
    seal,
)
from lepton_ledger.envelope import open as open_envelope
from lepton_ledger.envelope.envelope import decrypt_envelope, encrypt_envelope
from lepton_ledger.envelope.manifest import MAX_MANIFEST_BYTES, UpdateManifest
from lepton_ledger.envelope.tensors import deserialize_tensors, serialize_tensors
from lepton_ledger.protocol.commitments import (
    BatchItem,
    encode_batch_document,
    parse_batch_document,
    parse_signed_commitment,
)
from lepton_ledger.protocol.errors import DocumentTooLarge, ProtocolError
from lepton_ledger.protocol.jsonio import load_json
from lepton_ledger.protocol.safetensors import parse_header
from lepton_ledger.rounds.report import PartnerOutcome, RoundReport, load_report
from lepton_ledger.rounds.rules import RoundRules

PARTNER_KEY = bytes.fromhex("ac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80")
PARTNER = "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266"
LEDGER = "0x5FbDB2315678afecb367f032d93F642f64180aa3"
FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

TENSORS = serialize_tensors({"w": torch.ones(3, 2), "b": torch.zeros(2, dtype=torch.float64)})
BATCH = encode_batch_document(
    chain_id=31337,
    ledger=LEDGER,
    agreement_id=1,
    round=2,
    items=[
        BatchItem(
            0,
            UpdateCommitment(1, 2, PARTNER, b"\x01" * 32, b"\x02" * 32, 1_500_000, 120),
            b"\x1b" * 65,
            "Qm" + "a" * 44,
        ),
    ],
)
SIGNED = json.dumps(
    {
        "version": 1,
        "chain_id": 31337,
        "ledger": LEDGER,
        "agreementId": 1,
        "round": 2,
        "partner": PARTNER,
        "envelopeDigest": "0x" + "01" * 32,
        "manifestDigest": "0x" + "02" * 32,
        "cumulativeEpsilon": 1_500_000,
        "sampleCount": 120,
        "signature": "0x" + "1b" * 65,
        "envelopeCid": "Qm" + "a" * 44,
    }
).encode()
REPORT = RoundReport(
    31337,
    LEDGER,
    1,
    2,
    "0x" + "11" * 32,
    "0x" + "22" * 32,
    RoundRules(max_norm=50.0),
    "by_sample_count",
    10**20,
    [PartnerOutcome(PARTNER, "Qm" + "a" * 44, "0x" + "33" * 32, 120, 1_500_000, True, [], None, 1.5, 0.25, 10**20)],
).to_bytes()


@st.composite
def mutated(draw: st.DrawFn, valid: bytes) -> bytes:
    """`valid` with a byte flipped, a slice cut out, or bytes inserted (JSON-ish ones more often)."""
    data = bytearray(valid)
    for _ in range(draw(st.integers(1, 4))):
        at = draw(st.integers(0, len(data)))
        kind = draw(st.sampled_from(["flip", "cut", "insert"]))
        if kind == "flip" and at < len(data):
            data[at] ^= draw(st.integers(1, 255))
        elif kind == "cut":
            del data[at : at + draw(st.integers(1, 40))]
        else:
            data[at:at] = draw(
                st.one_of(
                    st.binary(max_size=8),
                    st.sampled_from(
                        [
                            b"[",
                            b"{",
                            b"]",
                            b"}",
                            b"Infinity",
                            b"NaN",
                            b"1e999",
                            b"-",
                            b'"',
                            b"9" * 400,
                            b"[" * 5000,
                            b",",
                        ]
                    ),
                )
            )
    return bytes(data)


@FUZZ
@given(st.one_of(st.binary(max_size=2000), mutated(BATCH)))
def test_batch_document_parser_raises_only_its_named_errors(data: bytes) -> None:
    try:
        parse_batch_document(data)
    except ProtocolError:
        pass


@FUZZ
@given(st.one_of(st.binary(max_size=2000), mutated(SIGNED)))
def test_signed_commitment_parser_raises_only_its_named_errors(data: bytes) -> None:
    try:
        parse_signed_commitment(
            load_json(data, what="signed commitment", max_bytes=4096), chain_id=31337, ledger=LEDGER
        )
    except ProtocolError:
        pass


def test_the_valid_signed_commitment_parses() -> None:
    item = parse_signed_commitment(json.loads(SIGNED), chain_id=31337, ledger=LEDGER)
    assert (item.commitment.partner, item.commitment.cumulative_epsilon, item.envelope_cid[:2]) == (
        PARTNER,
        1_500_000,
        "Qm",
    )
    with pytest.raises(ProtocolError, match="not 0x0000000000000000000000000000000000000001 on chain 31337"):
        parse_signed_commitment(json.loads(SIGNED), chain_id=31337, ledger="0x" + "00" * 19 + "01")


@FUZZ
@given(st.one_of(st.binary(max_size=2000), mutated(REPORT)))
def test_round_report_parser_raises_only_its_named_errors(data: bytes) -> None:
    try:
        load_report(data)
        RoundReport.from_bytes(data)
    except ProtocolError:
        pass


@FUZZ
@given(st.one_of(st.binary(max_size=2000), mutated(TENSORS)))
def test_safetensors_header_parser_raises_only_its_named_errors(data: bytes) -> None:
    try:
        entries = parse_header(data, max_tensor_bytes=1 << 20)
    except ProtocolError:
        return
    assert all(e.end <= len(data) for e in entries.values())
    try:
        deserialize_tensors(data)  # what passed the header parser is safe to hand to safetensors
    except EnvelopeError:
        pass


@FUZZ
@given(st.binary(max_size=3000))
def test_json_reader_raises_only_its_named_errors(data: bytes) -> None:
    try:
        load_json(data, what="x", max_bytes=2000)
    except ProtocolError:
        pass


def test_documents_over_their_bound_are_refused_before_parsing() -> None:
    with pytest.raises(DocumentTooLarge):
        load_json(b"[" * 10 + b"]" * 10, what="x", max_bytes=19)
    with pytest.raises(ProtocolError, match="nested deeper"):
        load_json(b"[" * 100_000 + b"]" * 100_000, what="x", max_bytes=1 << 20)
    with pytest.raises(ProtocolError, match="out of range"):
        load_json(b"[1e999]", what="x", max_bytes=100)


# -- the envelope, as the coordinator and the auditor open it -------------------------------------------------

RECIPIENT_PRIVATE, RECIPIENT_PUBLIC = generate_x25519_keypair()
SEALED = seal(
    {"w": torch.ones(3, 2)},
    signer_key=PARTNER_KEY,
    recipients=[RECIPIENT_PUBLIC],
    chain_id=31337,
    ledger=LEDGER,
    agreement_id=1,
    round=2,
    base_model_digest=b"\x11" * 32,
    dp=DPRecord(1.1, 1.0, 0.01, 100, 1e-5, "rdp"),
    cumulative_epsilon=1.5,
    sample_count=120,
)
EXPECTED = Expected(
    agreement_id=1,
    round=2,
    partner=PARTNER,
    base_model_digest=b"\x11" * 32,
    manifest_digest=SEALED.manifest_digest,
    chain_id=31337,
    ledger=LEDGER,
)
PAYLOAD = decrypt_envelope(SEALED.data, RECIPIENT_PRIVATE)[1]


def _open(data: bytes) -> None:
    try:
        open_envelope(data, RECIPIENT_PRIVATE, expected=EXPECTED)
    except EnvelopeError:
        pass


@FUZZ
@given(st.one_of(st.binary(max_size=3000), mutated(SEALED.data)))
def test_opening_arbitrary_or_mutated_envelope_bytes_raises_only_envelope_errors(data: bytes) -> None:
    _open(data)


@FUZZ
@given(mutated(PAYLOAD))
def test_opening_a_mutated_payload_sealed_to_us_raises_only_envelope_errors(payload: bytes) -> None:
    _open(encrypt_envelope(payload, [RECIPIENT_PUBLIC]))


@FUZZ
@given(mutated(SEALED.manifest.to_document()))
def test_a_mutated_manifest_raises_only_malformed_manifest_or_a_signature_error(document: bytes) -> None:
    (m,) = struct.unpack_from(">I", PAYLOAD, 0)
    _open(encrypt_envelope(struct.pack(">I", len(document)) + document + PAYLOAD[4 + m :], [RECIPIENT_PUBLIC]))
    try:
        UpdateManifest.from_document(document)
    except EnvelopeError:
        pass


def test_an_oversize_manifest_is_refused_before_it_is_parsed() -> None:
    document = json.dumps({"pad": "x" * MAX_MANIFEST_BYTES}).encode()
    payload = struct.pack(">I", len(document)) + document + bytes(65) + struct.pack(">Q", 0)
    with pytest.raises(EnvelopeError, match=f"over the bound of {MAX_MANIFEST_BYTES}"):
        open_envelope(encrypt_envelope(payload, [RECIPIENT_PUBLIC]), RECIPIENT_PRIVATE)
