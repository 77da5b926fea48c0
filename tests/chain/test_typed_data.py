"""The EIP-712 helpers against the standard's vector, eth_account's independent encoder and hand-built
encodings, without a chain. tests/contracts/test_chain_helpers.py checks them against the deployed contracts.
"""

import dataclasses

import pytest
from eth_account import Account
from eth_account.messages import encode_typed_data
from eth_utils import keccak

from lepton_ledger.chain._values import InvalidValue
from lepton_ledger.chain.typed_data import (
    SIGN_AGREEMENT_TYPEHASH,
    UPDATE_COMMITMENT_TYPEHASH,
    SigningError,
    UpdateCommitment,
    address_of_key,
    domain_separator,
    sign_agreement_digest,
    sign_digest,
    terms_hash,
    update_commitment_digest,
)

CHAIN_ID = 31337
LEDGER = "0x5FbDB2315678afecb367f032d93F642f64180aa3"
REGISTRY = "0xe7f1725E7734CE288F8367e1Bb143E90bb3F0512"
# anvil's account 0 ("test test ... junk" mnemonic) and its address.
KEY_0 = bytes.fromhex("ac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80")
ADDRESS_0 = "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266"
PARTNER = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"

DOMAIN_TYPE = [
    {"name": "name", "type": "string"},
    {"name": "version", "type": "string"},
    {"name": "chainId", "type": "uint256"},
    {"name": "verifyingContract", "type": "address"},
]


def _commitment(**overrides) -> UpdateCommitment:
    fields = {
        "agreement_id": 1,
        "round": 2,
        "partner": PARTNER,
        "envelope_digest": b"\xaa" * 32,
        "manifest_digest": b"\xbb" * 32,
        "cumulative_epsilon": 1_500_000,
        "sample_count": 60_000,
    }
    fields.update(overrides)
    return UpdateCommitment(**fields)


def _eth_account_digest(domain: dict, primary: str, fields: list[dict], message: dict) -> bytes:
    signable = encode_typed_data(
        full_message={
            "types": {"EIP712Domain": DOMAIN_TYPE, primary: fields},
            "primaryType": primary,
            "domain": domain,
            "message": message,
        }
    )
    return keccak(b"\x19" + signable.version + signable.header + signable.body)


# --------------------------------------------------------------------------------------------------- domain


def test_domain_separator_matches_the_eip712_example():
    # EIP-712's own example domain ("Ether Mail") and the separator the standard's reference code prints.
    separator = domain_separator("Ether Mail", 1, "0xCcCCccccCCCCcCCCCCCcCcCccCcCCCcCcccccccC")
    assert separator.hex() == "f2cee375fa42b42143804025fc449deafd50cc031ca257e0b194a650a912090f"


def test_domain_separator_binds_chain_and_contract():
    base = domain_separator("LeptonRoundLedger", CHAIN_ID, LEDGER)
    assert base != domain_separator("LeptonRoundLedger", 1, LEDGER)
    assert base != domain_separator("LeptonRoundLedger", CHAIN_ID, REGISTRY)
    assert base != domain_separator("LeptonRoundLedger", CHAIN_ID, LEDGER, version="2")


def test_domain_separator_refuses_a_malformed_contract_address():
    with pytest.raises(InvalidValue):
        domain_separator("LeptonRoundLedger", CHAIN_ID, "0x1234")


# ------------------------------------------------------------------------------------------ update commitment


def test_update_commitment_typehash_is_the_contract_type_string():
    assert UPDATE_COMMITMENT_TYPEHASH == keccak(
        text="UpdateCommitment(uint256 agreementId,uint64 round,address partner,bytes32 envelopeDigest,"
        "bytes32 manifestDigest,uint32 cumulativeEpsilon,uint64 sampleCount)"
    )


def test_update_commitment_digest_matches_eth_account_encoder():
    commitment = _commitment()
    expected = _eth_account_digest(
        {"name": "LeptonRoundLedger", "version": "1", "chainId": CHAIN_ID, "verifyingContract": LEDGER},
        "UpdateCommitment",
        [
            {"name": "agreementId", "type": "uint256"},
            {"name": "round", "type": "uint64"},
            {"name": "partner", "type": "address"},
            {"name": "envelopeDigest", "type": "bytes32"},
            {"name": "manifestDigest", "type": "bytes32"},
            {"name": "cumulativeEpsilon", "type": "uint32"},
            {"name": "sampleCount", "type": "uint64"},
        ],
        {
            "agreementId": 1,
            "round": 2,
            "partner": PARTNER,
            "envelopeDigest": b"\xaa" * 32,
            "manifestDigest": b"\xbb" * 32,
            "cumulativeEpsilon": 1_500_000,
            "sampleCount": 60_000,
        },
    )
    assert update_commitment_digest(CHAIN_ID, LEDGER, commitment) == expected


@pytest.mark.parametrize(
    "change",
    [
        {"agreement_id": 2},
        {"round": 3},
        {"partner": ADDRESS_0},
        {"envelope_digest": b"\xab" * 32},
        {"manifest_digest": b"\xbc" * 32},
        {"cumulative_epsilon": 1_500_001},
        {"sample_count": 60_001},
    ],
)
def test_update_commitment_digest_changes_with_every_field(change):
    assert update_commitment_digest(CHAIN_ID, LEDGER, _commitment(**change)) != update_commitment_digest(
        CHAIN_ID, LEDGER, _commitment()
    )


def test_update_commitment_as_tuple_is_in_struct_order():
    assert _commitment().as_tuple() == (1, 2, PARTNER, b"\xaa" * 32, b"\xbb" * 32, 1_500_000, 60_000)


def test_update_commitment_normalises_hex_and_address_case():
    commitment = _commitment(partner=PARTNER.lower(), envelope_digest="0x" + "aa" * 32)
    assert commitment == _commitment()


def test_update_commitment_is_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        _commitment().round = 5


@pytest.mark.parametrize(
    "change",
    [
        {"cumulative_epsilon": 2**32},
        {"round": -1},
        {"sample_count": 2**64},
        {"envelope_digest": b"\xaa" * 31},
        {"partner": "0xdead"},
    ],
)
def test_update_commitment_refuses_values_outside_their_solidity_types(change):
    with pytest.raises(InvalidValue):
        _commitment(**change)


# ------------------------------------------------------------------------------------------------ agreements


def test_sign_agreement_typehash_is_the_contract_type_string():
    assert SIGN_AGREEMENT_TYPEHASH == keccak(
        text="SignAgreement(uint256 agreementId,uint32 version,bytes32 termsHash,address party,uint256 nonce,"
        "uint256 deadline)"
    )


def test_sign_agreement_digest_matches_eth_account_encoder():
    expected = _eth_account_digest(
        {"name": "LeptonAgreementRegistry", "version": "1", "chainId": CHAIN_ID, "verifyingContract": REGISTRY},
        "SignAgreement",
        [
            {"name": "agreementId", "type": "uint256"},
            {"name": "version", "type": "uint32"},
            {"name": "termsHash", "type": "bytes32"},
            {"name": "party", "type": "address"},
            {"name": "nonce", "type": "uint256"},
            {"name": "deadline", "type": "uint256"},
        ],
        {"agreementId": 3, "version": 2, "termsHash": b"\x42" * 32, "party": PARTNER, "nonce": 7, "deadline": 10**9},
    )
    assert sign_agreement_digest(CHAIN_ID, REGISTRY, 3, 2, b"\x42" * 32, PARTNER, 7, 10**9) == expected


def _terms(parties=(PARTNER, ADDRESS_0)):
    return (
        b"\x01" * 32,
        list(parties),
        REGISTRY,
        300 * 10**18,
        1,
        8_000_000,
        10**13,
        10**20,
        100,
        200,
        10,
        PARTNER,
        ADDRESS_0,
        50_000,
        7 * 10**18,
    )


def test_terms_hash_matches_hand_built_abi_encoding():
    # abi.encode(Terms) of a struct with a dynamic member: an offset to the tuple, 15 head words (the party
    # array as an offset from the tuple's start), then the array's length and items.
    def word(value: int) -> bytes:
        return value.to_bytes(32, "big")

    def address_word(address: str) -> bytes:
        return bytes(12) + bytes.fromhex(address[2:])

    head = (
        b"\x01" * 32
        + word(15 * 32)
        + address_word(REGISTRY)
        + word(300 * 10**18)
        + word(1)
        + word(8_000_000)
        + word(10**13)
        + word(10**20)
        + word(100)
        + word(200)
        + word(10)
        + address_word(PARTNER)
        + address_word(ADDRESS_0)
        + word(50_000)
        + word(7 * 10**18)
    )
    tail = word(2) + address_word(PARTNER) + address_word(ADDRESS_0)
    assert terms_hash(_terms()) == keccak(word(32) + head + tail)


def test_terms_hash_depends_on_party_order():
    assert terms_hash(_terms()) != terms_hash(_terms(parties=(ADDRESS_0, PARTNER)))


def test_terms_hash_refuses_a_wrong_field_count():
    with pytest.raises(InvalidValue):
        terms_hash(_terms()[:-1])


def test_terms_hash_refuses_an_epsilon_cap_over_uint32():
    terms = list(_terms())
    terms[5] = 2**32
    with pytest.raises(InvalidValue):
        terms_hash(tuple(terms))


# ------------------------------------------------------------------------------------------------- signing


def test_sign_digest_recovers_to_the_signer():
    digest = keccak(b"digest")
    signature = sign_digest(KEY_0, digest)
    assert Account._recover_hash(digest, signature=signature) == ADDRESS_0


def test_sign_digest_is_r_s_v_with_v_27_or_28_and_low_s():
    signature = sign_digest(KEY_0, keccak(b"digest"))
    assert len(signature) == 65
    assert signature[64] in (27, 28)
    secp256k1_n = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
    assert int.from_bytes(signature[32:64], "big") <= secp256k1_n // 2


def test_sign_digest_is_deterministic():
    # RFC 6979 nonces: the same key and digest give the same signature, so a published batch can be rebuilt.
    assert sign_digest(KEY_0, b"\x05" * 32) == sign_digest(KEY_0, b"\x05" * 32)


def test_sign_digest_signs_the_digest_itself_without_a_prefix():
    digest = keccak(b"digest")
    signed = Account.unsafe_sign_hash(digest, KEY_0)
    assert sign_digest(KEY_0, digest) == bytes(signed.signature)


def test_sign_digest_gives_eth_accounts_bytes_for_every_key_and_digest():
    # libsecp256k1 called directly must sign as eth_account does: the same r, s and v (27 + recovery id).
    for i in range(1, 200):
        key, digest = keccak(i.to_bytes(4, "big")), keccak(b"digest" + i.to_bytes(4, "big"))
        assert sign_digest(key, digest) == bytes(Account.unsafe_sign_hash(digest, key).signature), i


@pytest.mark.parametrize("key", [KEY_0, b"\x00" * 31 + b"\x01", bytes.fromhex("7f" + "ff" * 31)])
def test_address_of_key_is_eth_accounts_address(key):
    assert address_of_key(key) == Account.from_key(key).address
    assert address_of_key(KEY_0) == ADDRESS_0


@pytest.mark.parametrize(
    "key",
    [
        b"\x00" * 32,
        bytes.fromhex("FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141"),
        b"\x01" * 31,
        "0x01",
    ],
)
def test_address_of_key_refuses_what_is_no_private_key(key):
    with pytest.raises(SigningError):
        address_of_key(key)


def test_sign_digest_refuses_an_invalid_key():
    with pytest.raises(SigningError):
        sign_digest(b"\x00" * 32, b"\x01" * 32)


def test_sign_digest_refuses_a_short_digest():
    with pytest.raises(InvalidValue):
        sign_digest(KEY_0, b"\x01" * 31)


def test_sign_agreement_typed_data_hashes_to_the_digest_and_recovers_the_signer():
    from lepton_ledger.chain.typed_data import sign_agreement_typed_data

    party = Account.create()
    args = (31337, "0x5FbDB2315678afecb367f032d93F642f64180aa3", 7, 2, b"\x11" * 32, party.address, 3, 10**10)
    signed = Account.sign_typed_data(party.key, full_message=sign_agreement_typed_data(*args))
    assert Account._recover_hash(sign_agreement_digest(*args), signature=signed.signature) == party.address
    message = encode_typed_data(full_message=sign_agreement_typed_data(*args))
    assert Account.recover_message(message, signature=signed.signature) == party.address
