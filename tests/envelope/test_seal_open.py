"""seal / open end to end: several recipients, and each way an envelope is refused, by its named error."""

import hashlib
import struct

import pytest
import torch
from envelope_data import (
    BASE_MODEL,
    CHAIN_ID,
    DP,
    LEDGER,
    PARTNER_A,
    PARTNER_A_KEY,
    PARTNER_B,
    PARTNER_B_KEY,
    update_tensors,
)

import lepton_ledger.envelope as envelope_pkg
from lepton_ledger.chain.typed_data import update_commitment_digest
from lepton_ledger.envelope import (
    BadSignature,
    DecryptionFailed,
    EnvelopeError,
    Expected,
    InvalidKey,
    InvalidManifest,
    MalformedEnvelope,
    MalformedManifest,
    MalformedPayload,
    ManifestMismatch,
    NotARecipient,
    OversizeEnvelope,
    OversizeTensor,
    ReplayedEnvelope,
    TamperedCiphertext,
    TamperedHeader,
    TensorDigestMismatch,
    TruncatedEnvelope,
    UpdateManifest,
    generate_x25519_keypair,
    open,
    seal,
    serialize_tensors,
    tensor_digest,
    update_commitment,
)
from lepton_ledger.envelope.envelope import (
    decrypt_envelope,
    encode_payload,
    encrypt_envelope,
)
from lepton_ledger.errors import LeptonError
from lepton_ledger.fl.training import DPParams

SLOT = 112


def assert_same_tensors(a: dict, b: dict) -> None:
    assert set(a) == set(b)
    for name, tensor in a.items():
        assert tensor.dtype == b[name].dtype and torch.equal(tensor, b[name])


def reencrypt(sealed, recipients, *, document=None, signature=None, tensor_bytes=None) -> bytes:
    """A fresh envelope whose payload mixes the given parts with `sealed`'s own: how a forger who can encrypt
    (anyone: recipients' keys are public) builds an envelope around parts of real ones."""
    m = sealed.manifest
    return encrypt_envelope(
        encode_payload(
            m.to_document() if document is None else document,
            sealed.signature if signature is None else signature,
            serialize_tensors(update_tensors()) if tensor_bytes is None else tensor_bytes,
        ),
        recipients,
    )


# -- round trip -------------------------------------------------------------------------------------------


def test_every_recipient_opens_the_same_update(coordinator, auditor):
    third = generate_x25519_keypair()
    sealed = seal(
        update_tensors(),
        signer_key=PARTNER_A_KEY,
        recipients=[coordinator[1], auditor[1], third[1]],
        chain_id=CHAIN_ID,
        ledger=LEDGER,
        agreement_id=7,
        round=1,
        base_model_digest=BASE_MODEL,
        dp=DP,
        cumulative_epsilon=0.75,
        sample_count=120,
        metrics={"accuracy": 0.875},
    )
    for private, public in (coordinator, auditor, third):
        opened = open(sealed.data, private)
        assert_same_tensors(opened.tensors, update_tensors())
        assert opened.manifest == sealed.manifest
        assert opened.manifest.partner == PARTNER_A
        assert opened.manifest.metrics == {"accuracy": 0.875}
        assert opened.manifest_digest == sealed.manifest_digest == sealed.manifest.digest()
        assert opened.envelope_digest == sealed.envelope_digest == hashlib.sha256(sealed.data).digest()
        assert opened.recipients == (coordinator[1], auditor[1], third[1])


def test_open_passes_when_every_expectation_holds(make_envelope, coordinator):
    sealed = make_envelope()
    expected = Expected(
        agreement_id=7,
        round=1,
        partner=PARTNER_A.lower(),
        base_model_digest=BASE_MODEL,
        manifest_digest=sealed.manifest_digest,
        chain_id=CHAIN_ID,
        ledger=LEDGER,
    )
    assert open(sealed.data, coordinator[0], expected=expected).manifest == sealed.manifest


def test_two_seals_of_one_update_differ_but_commit_to_the_same_manifest(make_envelope):
    a, b = make_envelope(), make_envelope()
    assert a.data != b.data  # fresh data key, nonce, envelope id, ephemeral keys
    assert a.manifest_digest == b.manifest_digest


def test_seal_takes_training_dp_params(make_envelope, coordinator):
    params = DPParams(
        noise_multiplier=1.1,
        max_grad_norm=1.0,
        sample_rate=0.01,
        steps=100,
        delta=1e-5,
        accountant="rdp",
        epochs=1,
        batch_size=12,
        grad_sample_mode="ghost",
    )
    assert open(make_envelope(dp=params).data, coordinator[0]).manifest.dp == DP


def test_duplicate_recipients_get_one_slot(make_envelope, coordinator):
    sealed = make_envelope(recipients=[coordinator[1], coordinator[1]])
    assert open(sealed.data, coordinator[0]).recipients == (coordinator[1],)


def test_update_commitment_is_what_the_ledger_takes(make_envelope):
    sealed = make_envelope()
    c = update_commitment(sealed)
    assert (c.agreement_id, c.round, c.partner) == (7, 1, PARTNER_A)
    assert c.envelope_digest == hashlib.sha256(sealed.data).digest()
    assert c.manifest_digest == sealed.manifest_digest
    assert (c.cumulative_epsilon, c.sample_count) == (750_000, 120)
    cid_digest = bytes.fromhex("ab" * 32)
    assert update_commitment(sealed, envelope_digest=cid_digest).envelope_digest == cid_digest
    # A different envelope digest is a different commitment to sign.
    assert update_commitment_digest(CHAIN_ID, LEDGER, c) != update_commitment_digest(
        CHAIN_ID, LEDGER, update_commitment(sealed, envelope_digest=cid_digest)
    )


# -- who can open -----------------------------------------------------------------------------------------


def test_non_recipient_cannot_open(make_envelope, rando):
    with pytest.raises(NotARecipient):
        open(make_envelope().data, rando[0])


@pytest.mark.parametrize("key", [b"", b"\x01" * 31, "00" * 32])
def test_malformed_private_key_is_refused(make_envelope, key):
    with pytest.raises(InvalidKey):
        open(make_envelope().data, key)


def test_slot_redirected_to_another_key_does_not_open(make_envelope, rando):
    # "Wrong key": an attacker writes its own public key over a recipient's slot; the wrapped key was made
    # for the original recipient and is bound to the original header, so it does not unwrap.
    sealed = make_envelope()
    data = sealed.data[:42] + rando[1] + sealed.data[74:]
    with pytest.raises(TamperedHeader):
        open(data, rando[0])


# -- tampering --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("where", ["first", "middle", "tag"])
def test_tampered_ciphertext_is_refused(make_envelope, coordinator, where):
    data = bytearray(make_envelope().data)
    start = 50 + 2 * SLOT
    index = {"first": start, "middle": (start + len(data)) // 2, "tag": len(data) - 1}[where]
    data[index] ^= 0x01
    with pytest.raises(TamperedCiphertext):
        open(bytes(data), coordinator[0])


@pytest.mark.parametrize(
    "offset",
    [
        12,  # envelope id
        28,  # payload nonce
        42 + 32,  # this recipient's ephemeral key
        42 + 64,  # this recipient's wrapped key
        42 + SLOT + 5,  # the other recipient's public key (bound into every slot's aad)
    ],
)
def test_tampered_header_is_refused(make_envelope, coordinator, offset):
    data = bytearray(make_envelope().data)
    data[offset] ^= 0x80
    with pytest.raises(TamperedHeader):
        open(bytes(data), coordinator[0])


@pytest.mark.parametrize(
    "delta, error",
    [(1, TruncatedEnvelope), (-1, MalformedEnvelope), (2**62, OversizeEnvelope)],
)
def test_altered_ciphertext_length_is_refused_before_decrypting(make_envelope, coordinator, delta, error):
    data = make_envelope().data
    at = 42 + 2 * SLOT
    (length,) = struct.unpack_from(">Q", data, at)
    forged = data[:at] + struct.pack(">Q", length + delta) + data[at + 8 :]
    with pytest.raises(error):
        open(forged, coordinator[0])


def test_tampered_wrapped_key_of_another_recipient_fails_the_payload_tag(make_envelope, coordinator):
    # Slot 1's wrapped key cannot be in slot 0's aad (it depends on it), but the payload's aad is the whole
    # header, so the coordinator still notices.
    data = bytearray(make_envelope().data)
    data[42 + SLOT + 64] ^= 0x01
    with pytest.raises(TamperedCiphertext):
        open(bytes(data), coordinator[0])


def test_wrapped_key_moved_to_another_envelope_does_not_unwrap(make_envelope, coordinator):
    a, b = make_envelope(), make_envelope()
    slot = a.data[42 : 42 + SLOT]
    forged = b.data[:42] + slot + b.data[42 + SLOT :]
    with pytest.raises(TamperedHeader):
        open(forged, coordinator[0])


def test_all_decryption_failures_share_a_parent():
    assert issubclass(TamperedHeader, DecryptionFailed) and issubclass(TamperedCiphertext, DecryptionFailed)


# -- forged content (re-encrypted by someone who can encrypt to the recipients) ----------------------------


def test_altered_manifest_under_the_original_signature_is_refused(make_envelope, coordinator):
    sealed = make_envelope()
    cheaper = UpdateManifest(
        **{
            **sealed.manifest.__dict__,
            "cumulative_epsilon": 500_000,
            "cumulative_epsilon_float": 0.5,
        }
    )
    data = reencrypt(sealed, [coordinator[1]], document=cheaper.to_document())
    with pytest.raises(BadSignature):
        open(data, coordinator[0])


def test_manifest_signed_by_another_partner_is_refused(make_envelope, coordinator):
    # A's manifest carrying B's valid signature of the same statement made in B's name.
    sealed = make_envelope()
    as_b = UpdateManifest(**{**sealed.manifest.__dict__, "partner": PARTNER_B})
    data = reencrypt(sealed, [coordinator[1]], signature=as_b.sign(PARTNER_B_KEY))
    with pytest.raises(BadSignature):
        open(data, coordinator[0])


def test_swapped_manifest_over_other_tensors_is_refused(make_envelope, coordinator):
    # B's manifest and valid signature, around A's tensors.
    a = make_envelope(tensors=update_tensors(0))
    b = make_envelope(signer_key=PARTNER_B_KEY, tensors=update_tensors(1))
    data = reencrypt(b, [coordinator[1]], tensor_bytes=serialize_tensors(update_tensors(0)))
    assert tensor_digest(serialize_tensors(update_tensors(0))) == a.manifest.tensor_digest
    with pytest.raises(TensorDigestMismatch):
        open(data, coordinator[0])


def test_another_partners_envelope_does_not_match_the_chain(make_envelope, coordinator):
    # B's whole, valid update offered where the chain holds A's commitment.
    a = make_envelope()
    b = make_envelope(signer_key=PARTNER_B_KEY, tensors=update_tensors(1))
    with pytest.raises(ManifestMismatch) as by_partner:
        open(
            b.data,
            coordinator[0],
            expected=Expected(agreement_id=7, round=1, partner=PARTNER_A),
        )
    assert by_partner.value.field == "partner"
    with pytest.raises(ManifestMismatch) as by_digest:
        open(b.data, coordinator[0], expected=Expected(manifest_digest=a.manifest_digest))
    assert by_digest.value.field == "manifest_digest"


def test_envelope_from_another_round_is_a_replay(make_envelope, coordinator):
    round_1 = make_envelope(round=1)
    expected = Expected(
        agreement_id=7,
        round=2,
        partner=PARTNER_A,
        manifest_digest=round_1.manifest_digest,
    )
    with pytest.raises(ReplayedEnvelope) as info:
        open(round_1.data, coordinator[0], expected=expected)
    assert (info.value.expected, info.value.actual) == (2, 1)


@pytest.mark.parametrize(
    "expected, field",
    [
        (Expected(chain_id=1), "chain_id"),
        (Expected(ledger="0xe7f1725E7734CE288F8367e1Bb143E90bb3F0512"), "ledger"),
        (Expected(agreement_id=8), "agreement_id"),
        (Expected(base_model_digest=b"\x12" * 32), "base_model_digest"),
    ],
)
def test_each_chain_expectation_is_checked(make_envelope, coordinator, expected, field):
    with pytest.raises(ManifestMismatch) as info:
        open(make_envelope().data, coordinator[0], expected=expected)
    assert info.value.field == field and type(info.value) is ManifestMismatch


@pytest.mark.parametrize(
    "payload",
    [
        b"",
        b"\x00\x00\x00\x05abc",
        encode_payload(b"{}", b"\x00" * 65, b"x") + b"trailing",
    ],
)
def test_malformed_payload_is_refused(coordinator, payload):
    with pytest.raises(MalformedPayload):
        open(encrypt_envelope(payload, [coordinator[1]]), coordinator[0])


def test_garbage_manifest_is_refused(make_envelope, coordinator):
    data = reencrypt(make_envelope(), [coordinator[1]], document=b'{"domain":{},"message":{}}')
    with pytest.raises(MalformedManifest):
        open(data, coordinator[0])


# -- size limits and truncation ---------------------------------------------------------------------------


def test_oversize_tensor_is_refused_on_open(make_envelope, coordinator):
    sealed = make_envelope(tensors={"big": torch.zeros(1000), "small": torch.zeros(2)})
    with pytest.raises(OversizeTensor):
        open(sealed.data, coordinator[0], max_tensor_bytes=3999)
    assert set(open(sealed.data, coordinator[0], max_tensor_bytes=4000).tensors) == {
        "big",
        "small",
    }


def test_oversize_tensor_is_refused_on_seal(make_envelope):
    with pytest.raises(OversizeTensor):
        make_envelope(tensors={"big": torch.zeros(1000)}, max_tensor_bytes=3999)


def test_oversize_envelope_is_refused(make_envelope, coordinator):
    sealed = make_envelope()
    with pytest.raises(OversizeEnvelope):
        open(sealed.data, coordinator[0], max_envelope_bytes=len(sealed.data) - 1)
    with pytest.raises(OversizeEnvelope):
        make_envelope(max_envelope_bytes=len(sealed.data) - 1)


@pytest.mark.parametrize("keep", [0, 7, 41, 100, 50 + 2 * SLOT, -1])
def test_truncated_envelope_is_refused(make_envelope, coordinator, keep):
    data = make_envelope().data
    with pytest.raises(TruncatedEnvelope):
        open(data[:keep], coordinator[0])


# -- sealing input errors ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "overrides, error",
    [
        ({"recipients": []}, InvalidKey),
        ({"recipients": [b"\x01" * 31]}, InvalidKey),
        (
            {"recipients": [bytes(32)]},
            InvalidKey,
        ),  # low-order point: the shared secret would be zero
        ({"signer_key": b"\x00" * 32}, InvalidKey),
        ({"metrics": {"accuracy": float("nan")}}, InvalidManifest),
        ({"cumulative_epsilon": float("inf")}, InvalidManifest),
        ({"cumulative_epsilon": -0.1}, InvalidManifest),
        ({"round": -1}, InvalidManifest),
    ],
)
def test_seal_refuses_bad_input(make_envelope, overrides, error):
    with pytest.raises(error):
        make_envelope(**overrides)


# -- the error tree ---------------------------------------------------------------------------------------


def test_every_error_is_distinct_and_under_one_root():
    names = [n for n in envelope_pkg.errors.__all__ if n != "EnvelopeError"]
    classes = [getattr(envelope_pkg, n) for n in names]
    assert len(set(classes)) == len(names)
    for cls in classes:
        assert issubclass(cls, EnvelopeError)
    assert issubclass(EnvelopeError, LeptonError) and issubclass(EnvelopeError, ValueError)


def test_decrypt_envelope_returns_the_exact_payload(coordinator):
    payload = b"any bytes at all"
    header, out = decrypt_envelope(encrypt_envelope(payload, [coordinator[1]]), coordinator[0])
    assert out == payload and header.slots[0].recipient == coordinator[1]
