"""The EIP-712 UpdateManifest: digest against eth_account's independent encoder, signing, the canonical
document, and refusal of non-canonical or out-of-range values."""

import dataclasses
import json

import pytest
from envelope_data import (
    BASE_MODEL,
    CHAIN_ID,
    DP,
    LEDGER,
    PARTNER_A,
    PARTNER_A_KEY,
    PARTNER_B,
    PARTNER_B_KEY,
)
from eth_account import Account
from eth_account.messages import encode_typed_data
from eth_utils import keccak

from lepton_ledger.chain._values import InvalidValue, as_address
from lepton_ledger.chain.typed_data import ROUND_LEDGER_NAME, domain_separator
from lepton_ledger.envelope import (
    UPDATE_MANIFEST_TYPE,
    BadSignature,
    DPRecord,
    InvalidKey,
    InvalidManifest,
    MalformedManifest,
    UpdateManifest,
)
from lepton_ledger.envelope.manifest import recover_signer
from lepton_ledger.fl.training import DPParams
from lepton_ledger.units import epsilon_to_fixed

SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141


def make_manifest(**overrides) -> UpdateManifest:
    eps = overrides.pop("cumulative_epsilon_float", 0.75)
    fixed = overrides.pop("cumulative_epsilon", None)
    fields = {
        "chain_id": CHAIN_ID,
        "ledger": LEDGER,
        "agreement_id": 7,
        "round": 3,
        "partner": PARTNER_A,
        "base_model_digest": BASE_MODEL,
        "tensor_digest": bytes.fromhex("22" * 32),
        "sample_count": 120,
        "cumulative_epsilon": epsilon_to_fixed(eps) if fixed is None else fixed,
        "cumulative_epsilon_float": eps,
        "dp": DP,
        "metrics": {"accuracy": 0.875, "loss": 0.3125},
    }
    fields.update(overrides)
    return UpdateManifest(**fields)


def independent_full_message(m: UpdateManifest) -> dict:
    """The manifest in eth_account's full-message form, written out by hand from the documented encoding."""
    return {
        "types": {
            "EIP712Domain": [
                {"name": "name", "type": "string"},
                {"name": "version", "type": "string"},
                {"name": "chainId", "type": "uint256"},
                {"name": "verifyingContract", "type": "address"},
            ],
            "UpdateManifest": [
                {"name": "formatVersion", "type": "uint16"},
                {"name": "agreementId", "type": "uint256"},
                {"name": "round", "type": "uint64"},
                {"name": "partner", "type": "address"},
                {"name": "baseModelDigest", "type": "bytes32"},
                {"name": "tensorDigest", "type": "bytes32"},
                {"name": "sampleCount", "type": "uint64"},
                {"name": "cumulativeEpsilon", "type": "uint32"},
                {"name": "cumulativeEpsilonFloat", "type": "string"},
                {"name": "dpParams", "type": "string"},
                {"name": "metrics", "type": "string"},
            ],
        },
        "primaryType": "UpdateManifest",
        "domain": {
            "name": "LeptonRoundLedger",
            "version": "1",
            "chainId": CHAIN_ID,
            "verifyingContract": LEDGER,
        },
        "message": {
            "formatVersion": 1,
            "agreementId": m.agreement_id,
            "round": m.round,
            "partner": m.partner,
            "baseModelDigest": m.base_model_digest,
            "tensorDigest": m.tensor_digest,
            "sampleCount": m.sample_count,
            "cumulativeEpsilon": m.cumulative_epsilon,
            "cumulativeEpsilonFloat": "0.75",
            "dpParams": '{"accountant":"rdp","clippingNorm":1.0,"delta":1e-05,"noiseMultiplier":1.1,'
            '"sampleRate":0.01,"steps":100}',
            "metrics": '{"accuracy":0.875,"loss":0.3125}',
        },
    }


def eip712_digest(full_message: dict) -> bytes:
    signable = encode_typed_data(full_message=full_message)
    return keccak(b"\x19" + signable.version + signable.header + signable.body)


def test_type_string_is_the_documented_one():
    assert UPDATE_MANIFEST_TYPE == (
        "UpdateManifest(uint16 formatVersion,uint256 agreementId,uint64 round,address partner,"
        "bytes32 baseModelDigest,bytes32 tensorDigest,uint64 sampleCount,uint32 cumulativeEpsilon,"
        "string cumulativeEpsilonFloat,string dpParams,string metrics)"
    )


def test_digest_equals_eth_account_full_message_digest():
    m = make_manifest()
    assert m.digest() == eip712_digest(independent_full_message(m))


def test_typed_data_is_what_eth_account_signs():
    m = make_manifest()
    assert eip712_digest(m.typed_data()) == m.digest()
    signed = Account.sign_typed_data(PARTNER_A_KEY, full_message=m.typed_data())
    assert recover_signer(m.digest(), bytes(signed.signature)) == PARTNER_A


def test_sign_recovers_partner():
    m = make_manifest()
    assert recover_signer(m.digest(), m.sign(PARTNER_A_KEY)) == PARTNER_A


def test_sign_refuses_key_of_another_partner():
    with pytest.raises(InvalidKey):
        make_manifest().sign(PARTNER_B_KEY)


@pytest.mark.parametrize(
    "change",
    [
        {"chain_id": 1},
        {"ledger": "0xe7f1725E7734CE288F8367e1Bb143E90bb3F0512"},
        {"round": 4},
        {"sample_count": 121},
        {"metrics": {"accuracy": 0.876, "loss": 0.3125}},
        {"dp": dataclasses.replace(DP, noise_multiplier=1.2)},
        {"cumulative_epsilon_float": 0.7500001},
    ],
)
def test_every_field_changes_the_digest(change):
    assert make_manifest(**change).digest() != make_manifest().digest()


def test_document_round_trips():
    m = make_manifest()
    assert UpdateManifest.from_document(m.to_document()) == m


def _doc_with(message_changes: dict) -> bytes:
    doc = json.loads(make_manifest().to_document())
    doc["message"].update(message_changes)
    return json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()


@pytest.mark.parametrize(
    "document",
    [
        b"not json",
        make_manifest().to_document().replace(b'"round":3', b'"round": 3'),  # not canonical
        _doc_with({"metrics": '{"accuracy":1}'}),  # int where the canonical form has 1.0
        _doc_with({"metrics": '{"accuracy":NaN}'}),
        _doc_with({"cumulativeEpsilonFloat": "0.750"}),  # same float, another spelling
        _doc_with({"cumulativeEpsilon": 1}),  # disagrees with the float
        _doc_with({"round": 3.0}),
        _doc_with({"extra": 1}),
        _doc_with(
            {
                "dpParams": '{"accountant":"xyz","clippingNorm":1.0,"delta":1e-05,"noiseMultiplier":1.1,'
                '"sampleRate":0.01,"steps":100}'
            }
        ),
        make_manifest().to_document().replace(b"LeptonRoundLedger", b"LeptonAgreementRegistry"),
        _doc_with({"partner": PARTNER_A.lower()}),  # not checksummed
    ],
)
def test_from_document_refuses_malformed_or_non_canonical(document):
    with pytest.raises(MalformedManifest):
        UpdateManifest.from_document(document)


@pytest.mark.parametrize(
    "change",
    [
        {"metrics": {"accuracy": float("nan")}},
        {"metrics": {"accuracy": True}},
        # the fixed point must be the float rounded up: 0.7500001 needs 750001
        {"cumulative_epsilon_float": 0.7500001, "cumulative_epsilon": 750000},
        {"cumulative_epsilon_float": float("inf"), "cumulative_epsilon": 0},
        {"round": 2**64},
        {"partner": "0x1234"},
        {"base_model_digest": b"\x00" * 31},
    ],
)
def test_manifest_refuses_out_of_range_values(change):
    with pytest.raises(InvalidManifest):
        make_manifest(**change)


@pytest.mark.parametrize(
    "args",
    [
        (float("nan"), 1.0, 0.01, 100, 1e-5, "rdp"),
        (1.1, 0.0, 0.01, 100, 1e-5, "rdp"),
        (1.1, 1.0, 1.5, 100, 1e-5, "rdp"),
        (1.1, 1.0, 0.01, 1.5, 1e-5, "rdp"),
        (1.1, 1.0, 0.01, 100, 1e-5, "gdp"),
    ],
)
def test_dp_record_refuses_bad_values(args):
    with pytest.raises(InvalidManifest):
        DPRecord(*args)


def test_dp_record_from_training_params():
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
    assert DPRecord.from_params(params) == DP


def test_recover_refuses_high_s_twin():
    m = make_manifest()
    sig = m.sign(PARTNER_A_KEY)
    s = int.from_bytes(sig[32:64], "big")
    twin = sig[:32] + (SECP256K1_N - s).to_bytes(32, "big") + bytes([55 - sig[64]])  # 27 <-> 28
    with pytest.raises(BadSignature):
        recover_signer(m.digest(), twin)


@pytest.mark.parametrize("sig", [b"", b"\x01" * 64, b"\x01" * 64 + b"\x1d"])
def test_recover_refuses_malformed_signature(sig):
    with pytest.raises(BadSignature):
        recover_signer(make_manifest().digest(), sig)


def test_digests_of_many_deployments_and_partners_match_the_uncached_computation():
    # The domain separator is cached by (chain, ledger): interleaved deployments must each keep their own, and
    # every digest must be what eth_account and the written-out EIP-712 formula give.
    other_ledger = "0x" + "ab" * 20
    partner_b = PARTNER_B
    manifests = [
        make_manifest(chain_id=chain_id, ledger=ledger, partner=partner, round=round_)
        for round_ in (1, 2)
        for chain_id in (CHAIN_ID, 1, CHAIN_ID + 1)
        for ledger in (LEDGER, other_ledger, LEDGER.lower())
        for partner in (PARTNER_A, partner_b.lower())
    ]
    digests = {m.digest() for m in manifests}
    assert len(digests) == len(manifests) // 3 * 2  # the lower-case ledger is the same deployment as LEDGER
    for m in manifests:
        uncached = keccak(b"\x19\x01" + domain_separator(ROUND_LEDGER_NAME, m.chain_id, m.ledger) + m.struct_hash())
        assert m.digest() == uncached == eip712_digest(m.typed_data())
    signed = make_manifest(partner=partner_b)
    assert recover_signer(signed.digest(), signed.sign(PARTNER_B_KEY)) == partner_b


def test_a_cached_address_does_not_excuse_a_wrong_checksum():
    assert as_address(PARTNER_A.lower(), "partner") == PARTNER_A  # the checksum of PARTNER_A now cached
    wrong = PARTNER_A[:2] + PARTNER_A[2:].swapcase()
    assert wrong not in (PARTNER_A.lower(), PARTNER_A.upper())
    with pytest.raises(InvalidValue, match="partner has a wrong EIP-55 checksum"):
        as_address(wrong, "partner")
    with pytest.raises(InvalidValue, match="partner is not an address"):
        as_address(PARTNER_A + "00", "partner")
