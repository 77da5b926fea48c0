"""AgreementRegistry.signBySig: EIP-712 signatures relayed by anyone, nonces, deadlines, versions, and
ERC-1271 smart-wallet parties. Digests are built here from the EIP-712 spec, independently of the contract."""

import pytest
from brownie import accounts, chain, web3
from conftest import private_key_of, reverts_with
from eth_abi import encode
from eth_account import Account

NAME, VERSION = "LeptonAgreementRegistry", "1"
SIGN_AGREEMENT = (
    "SignAgreement(uint256 agreementId,uint32 version,bytes32 termsHash,address party,uint256 nonce,uint256 deadline)"
)
DOMAIN_TYPE = "EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)"
MESSAGE_TYPES = {
    "SignAgreement": [
        {"name": "agreementId", "type": "uint256"},
        {"name": "version", "type": "uint32"},
        {"name": "termsHash", "type": "bytes32"},
        {"name": "party", "type": "address"},
        {"name": "nonce", "type": "uint256"},
        {"name": "deadline", "type": "uint256"},
    ]
}
PROPOSED, ACTIVE = 1, 2
HOUR = 3600


def keccak(data: bytes) -> bytes:
    return bytes(web3.keccak(data))


def key_of(account) -> bytes:
    return private_key_of(list(accounts).index(account))


def eip712_digest(domain: dict, message: dict) -> bytes:
    """keccak256("\\x19\\x01" || domainSeparator || hashStruct(message)), by the book."""
    separator = keccak(
        encode(
            ["bytes32", "bytes32", "bytes32", "uint256", "address"],
            [
                keccak(DOMAIN_TYPE.encode()),
                keccak(domain["name"].encode()),
                keccak(domain["version"].encode()),
                domain["chainId"],
                domain["verifyingContract"],
            ],
        )
    )
    struct_hash = keccak(
        encode(
            ["bytes32", "uint256", "uint32", "bytes32", "address", "uint256", "uint256"],
            [
                keccak(SIGN_AGREEMENT.encode()),
                message["agreementId"],
                message["version"],
                message["termsHash"],
                message["party"],
                message["nonce"],
                message["deadline"],
            ],
        )
    )
    return keccak(b"\x19\x01" + separator + struct_hash)


@pytest.fixture(scope="module")
def typed(agreements):
    """typed(agreement_id, party, deadline, **overrides) -> (domain, message) for the current version and
    nonce; overrides replace any domain field or message field by name (`version` is the domain's)."""

    def _typed(agreement_id, party, deadline, **overrides):
        state = agreements.agreementState(agreement_id)
        domain = {
            "name": NAME,
            "version": VERSION,
            "chainId": chain.id,
            "verifyingContract": agreements.address,
        }
        message = {
            "agreementId": agreement_id,
            "version": state[1],
            "termsHash": bytes(state.dict()["termsHash"]),
            "party": str(party),
            "nonce": agreements.nonces(party),
            "deadline": deadline,
        }
        for name, value in overrides.items():
            (domain if name in domain else message)[name] = value
        return domain, message

    return _typed


@pytest.fixture(scope="module")
def sign_typed(typed):
    """sign_typed(signer, agreement_id, party, deadline, **overrides) -> the 65-byte signature by `signer`'s
    key (eth_account's EIP-712 implementation)."""

    def _sign_typed(signer, agreement_id, party, deadline, **overrides):
        domain, message = typed(agreement_id, party, deadline, **overrides)
        signed = Account.sign_typed_data(key_of(signer), domain, MESSAGE_TYPES, message)
        return bytes(signed.signature)

    return _sign_typed


@pytest.fixture(scope="module", autouse=True)
def registered(partner_a, partner_b, partner_c, register):
    """Partners a, b and c, registered and approved once for the module (tests revert to this state)."""
    for partner in (partner_a, partner_b, partner_c):
        register(partner)


@pytest.fixture
def deadline():
    return chain.time() + HOUR


@pytest.fixture
def proposal(make_agreement, partner_a, partner_b):
    """A proposal between partners a and b, both staked, neither signed."""
    return make_agreement([partner_a, partner_b], sign=False, stake=True)


# ---------------------------------------------------------------------------------------------------------------
# the digest
# ---------------------------------------------------------------------------------------------------------------


def test_signing_digest_matches_eip712_spec(agreements, proposal, partner_a, deadline, typed):
    domain, message = typed(proposal, partner_a, deadline)

    expected = eip712_digest(domain, message)

    assert bytes(agreements.signingDigest(proposal, partner_a, deadline)) == expected
    signed = Account.sign_typed_data(key_of(partner_a), domain, MESSAGE_TYPES, message)
    assert bytes(signed.message_hash) == expected


def test_domain_is_lepton_agreement_registry_on_this_chain(agreements):
    _, name, version, chain_id, verifying_contract, salt, extensions = agreements.eip712Domain()

    assert (name, version, chain_id, verifying_contract) == (NAME, VERSION, chain.id, agreements.address)
    assert bytes(salt) == b"\x00" * 32
    assert list(extensions) == []


def test_sign_agreement_typehash_is_the_documented_type(agreements):
    assert bytes(agreements.SIGN_AGREEMENT_TYPEHASH()) == keccak(SIGN_AGREEMENT.encode())


def test_signing_digest_refuses_unknown_agreement(agreements, partner_a, deadline):
    with reverts_with("AgreementRegistryUnknownAgreement", 42):
        agreements.signingDigest(42, partner_a, deadline)


# ---------------------------------------------------------------------------------------------------------------
# relayed signatures
# ---------------------------------------------------------------------------------------------------------------


def test_sign_by_sig_relayed_by_rando_records_signature(
    agreements, proposal, partner_a, rando, deadline, sign_typed, assert_events
):
    signature = sign_typed(partner_a, proposal, partner_a, deadline)

    tx = agreements.signBySig(proposal, partner_a, deadline, signature, {"from": rando})

    assert agreements.hasSigned(proposal, 1, partner_a)
    assert agreements.nonces(partner_a) == 1
    assert agreements.agreementState(proposal)[0] == PROPOSED
    assert_events(tx, ("AgreementSigned", {"agreementId": proposal, "version": 1, "party": partner_a, "relayed": True}))


def test_relayed_last_signature_activates(
    agreements, proposal, partner_a, partner_b, rando, deadline, sign_typed, assert_events
):
    agreements.sign(proposal, {"from": partner_a})
    signature = sign_typed(partner_b, proposal, partner_b, deadline)

    tx = agreements.signBySig(proposal, partner_b, deadline, signature, {"from": rando})

    assert agreements.agreementState(proposal)[0] == ACTIVE
    assert_events(
        tx,
        ("AgreementSigned", {"agreementId": proposal, "version": 1, "party": partner_b, "relayed": True}),
        ("AgreementActivated", {"agreementId": proposal, "version": 1}),
    )


def test_sign_by_sig_refuses_replay(agreements, proposal, partner_a, rando, deadline, sign_typed):
    signature = sign_typed(partner_a, proposal, partner_a, deadline)
    agreements.signBySig(proposal, partner_a, deadline, signature, {"from": rando})

    # The nonce was consumed, so the replayed signature no longer matches the digest.
    with reverts_with("AgreementRegistryInvalidSignature", partner_a):
        agreements.signBySig(proposal, partner_a, deadline, signature, {"from": rando})

    assert agreements.nonces(partner_a) == 1
    assert agreements.agreementState(proposal)[2] == 1


def test_sign_by_sig_refuses_signature_for_another_chain(agreements, proposal, partner_a, rando, deadline, sign_typed):
    signature = sign_typed(partner_a, proposal, partner_a, deadline, chainId=chain.id + 1)

    with reverts_with("AgreementRegistryInvalidSignature", partner_a):
        agreements.signBySig(proposal, partner_a, deadline, signature, {"from": rando})

    assert agreements.nonces(partner_a) == 0
    assert not agreements.hasSigned(proposal, 1, partner_a)


@pytest.fixture
def other_contract(ledger):
    return ledger.address


@pytest.mark.parametrize(
    "field, value",
    [("name", "LeptonRoundLedger"), ("version", "2"), ("verifyingContract", None)],
    ids=["name", "version", "verifying-contract"],
)
def test_sign_by_sig_refuses_signature_for_another_domain(
    agreements, proposal, partner_a, rando, deadline, sign_typed, other_contract, field, value
):
    signature = sign_typed(partner_a, proposal, partner_a, deadline, **{field: value or other_contract})

    with reverts_with("AgreementRegistryInvalidSignature", partner_a):
        agreements.signBySig(proposal, partner_a, deadline, signature, {"from": rando})

    assert agreements.nonces(partner_a) == 0


def test_sign_by_sig_refuses_expired_deadline(agreements, proposal, partner_a, rando, sign_typed):
    expired = chain.time() - 1
    signature = sign_typed(partner_a, proposal, partner_a, expired)

    with reverts_with("AgreementRegistryExpiredSignature", expired):
        agreements.signBySig(proposal, partner_a, expired, signature, {"from": rando})

    assert agreements.nonces(partner_a) == 0
    assert not agreements.hasSigned(proposal, 1, partner_a)


def test_sign_by_sig_refuses_deadline_that_passed_before_relay(
    agreements, proposal, partner_a, rando, deadline, sign_typed
):
    signature = sign_typed(partner_a, proposal, partner_a, deadline)
    chain.sleep(HOUR + 10)

    with reverts_with("AgreementRegistryExpiredSignature", deadline):
        agreements.signBySig(proposal, partner_a, deadline, signature, {"from": rando})

    assert agreements.nonces(partner_a) == 0


def test_sign_by_sig_refuses_tampered_deadline(agreements, proposal, partner_a, rando, deadline, sign_typed):
    signature = sign_typed(partner_a, proposal, partner_a, deadline)

    with reverts_with("AgreementRegistryInvalidSignature", partner_a):
        agreements.signBySig(proposal, partner_a, deadline + 1, signature, {"from": rando})

    assert agreements.nonces(partner_a) == 0


def test_sign_by_sig_refuses_wrong_nonce(agreements, proposal, partner_a, rando, deadline, sign_typed):
    signature = sign_typed(partner_a, proposal, partner_a, deadline, nonce=1)

    with reverts_with("AgreementRegistryInvalidSignature", partner_a):
        agreements.signBySig(proposal, partner_a, deadline, signature, {"from": rando})

    assert agreements.nonces(partner_a) == 0


def test_sign_by_sig_refuses_old_version_after_amend(
    agreements, proposal, partner_a, partner_b, rando, coordinator, deadline, sign_typed, make_terms
):
    signature = sign_typed(partner_a, proposal, partner_a, deadline)
    agreements.amend(
        proposal, make_terms([partner_a, partner_b], termsDigest=web3.keccak(text="v2")), {"from": coordinator}
    )

    with reverts_with("AgreementRegistryInvalidSignature", partner_a):
        agreements.signBySig(proposal, partner_a, deadline, signature, {"from": rando})

    assert not agreements.hasSigned(proposal, 2, partner_a)


def test_sign_by_sig_accepts_new_version_after_amend(
    agreements, proposal, partner_a, partner_b, rando, coordinator, deadline, sign_typed, make_terms, assert_events
):
    agreements.amend(
        proposal, make_terms([partner_a, partner_b], termsDigest=web3.keccak(text="v2")), {"from": coordinator}
    )
    signature = sign_typed(partner_a, proposal, partner_a, deadline)

    tx = agreements.signBySig(proposal, partner_a, deadline, signature, {"from": rando})

    assert agreements.hasSigned(proposal, 2, partner_a)
    assert_events(tx, ("AgreementSigned", {"agreementId": proposal, "version": 2, "party": partner_a, "relayed": True}))


def test_sign_by_sig_refuses_signature_for_another_agreement(
    agreements, make_agreement, proposal, partner_a, partner_b, rando, deadline, sign_typed
):
    other = make_agreement([partner_a, partner_b], sign=False, stake=False)
    signature = sign_typed(partner_a, other, partner_a, deadline)

    with reverts_with("AgreementRegistryInvalidSignature", partner_a):
        agreements.signBySig(proposal, partner_a, deadline, signature, {"from": rando})

    assert not agreements.hasSigned(proposal, 1, partner_a)


def test_sign_by_sig_refuses_signature_by_another_key(
    agreements, proposal, partner_a, partner_b, rando, deadline, sign_typed
):
    signature = sign_typed(partner_b, proposal, partner_a, deadline)

    with reverts_with("AgreementRegistryInvalidSignature", partner_a):
        agreements.signBySig(proposal, partner_a, deadline, signature, {"from": rando})

    assert not agreements.hasSigned(proposal, 1, partner_a)
    assert not agreements.hasSigned(proposal, 1, partner_b)


@pytest.mark.parametrize("signature", [b"", b"\x00" * 65, b"\x01" * 64], ids=["empty", "zeroes", "short"])
def test_sign_by_sig_refuses_malformed_signature(agreements, proposal, partner_a, rando, deadline, signature):
    with reverts_with("AgreementRegistryInvalidSignature", partner_a):
        agreements.signBySig(proposal, partner_a, deadline, signature, {"from": rando})

    assert agreements.nonces(partner_a) == 0


def test_sign_by_sig_applies_the_rules_of_sign(agreements, proposal, rando, register, deadline, sign_typed):
    register(rando)
    signature = sign_typed(rando, proposal, rando, deadline)

    with reverts_with("AgreementRegistryNotParty", proposal, rando):
        agreements.signBySig(proposal, rando, deadline, signature, {"from": rando})

    assert agreements.nonces(rando) == 0


def test_sign_by_sig_refuses_party_that_signed_already(agreements, proposal, partner_a, rando, deadline, sign_typed):
    agreements.sign(proposal, {"from": partner_a})
    signature = sign_typed(partner_a, proposal, partner_a, deadline)

    with reverts_with("AgreementRegistryAlreadySigned", proposal, 1, partner_a):
        agreements.signBySig(proposal, partner_a, deadline, signature, {"from": rando})

    assert agreements.nonces(partner_a) == 0


def test_nonce_is_per_party(agreements, proposal, partner_a, partner_b, rando, deadline, sign_typed):
    agreements.signBySig(
        proposal, partner_a, deadline, sign_typed(partner_a, proposal, partner_a, deadline), {"from": rando}
    )

    assert (agreements.nonces(partner_a), agreements.nonces(partner_b)) == (1, 0)


# ---------------------------------------------------------------------------------------------------------------
# ERC-1271 smart-wallet parties
# ---------------------------------------------------------------------------------------------------------------


@pytest.fixture
def wallet_agreement(partners, agreements, smart_wallet, coordinator, partner_a, partner_c, make_agreement):
    """A proposal (no stake required) between partner_a and an approved smart-wallet partner owned by
    partner_c's key; nobody has signed."""
    profile, key = web3.keccak(text="wallet profile"), web3.keccak(text="wallet x25519")
    smart_wallet.execute(partners, partners.register.encode_input(profile, key), {"from": partner_c})
    partners.approve(smart_wallet, {"from": coordinator})
    return make_agreement([partner_a, smart_wallet], sign=False, stake=False, requiredStake=0)


def test_smart_wallet_party_signs_by_owner_signature(
    agreements, wallet_agreement, smart_wallet, partner_a, partner_c, rando, deadline, sign_typed, assert_events
):
    agreements.sign(wallet_agreement, {"from": partner_a})
    signature = sign_typed(partner_c, wallet_agreement, smart_wallet, deadline)

    tx = agreements.signBySig(wallet_agreement, smart_wallet, deadline, signature, {"from": rando})

    assert agreements.hasSigned(wallet_agreement, 1, smart_wallet)
    assert agreements.nonces(smart_wallet) == 1
    assert agreements.agreementState(wallet_agreement)[0] == ACTIVE
    assert_events(
        tx,
        ("AgreementSigned", {"agreementId": wallet_agreement, "version": 1, "party": smart_wallet, "relayed": True}),
        ("AgreementActivated", {"agreementId": wallet_agreement, "version": 1}),
    )


def test_smart_wallet_party_refuses_signature_by_another_key(
    agreements, wallet_agreement, smart_wallet, partner_a, rando, deadline, sign_typed
):
    signature = sign_typed(partner_a, wallet_agreement, smart_wallet, deadline)

    with reverts_with("AgreementRegistryInvalidSignature", smart_wallet):
        agreements.signBySig(wallet_agreement, smart_wallet, deadline, signature, {"from": rando})

    assert not agreements.hasSigned(wallet_agreement, 1, smart_wallet)
    assert agreements.nonces(smart_wallet) == 0


def test_owner_signature_for_the_wallet_does_not_sign_for_the_owner(
    agreements, make_agreement, smart_wallet, partner_c, rando, deadline, sign_typed
):
    # partner_c's own signature names the wallet as party: it cannot be replayed as partner_c's.
    agreement_id = make_agreement([partner_c], sign=False, stake=False)
    signature = sign_typed(partner_c, agreement_id, smart_wallet, deadline)

    with reverts_with("AgreementRegistryInvalidSignature", partner_c):
        agreements.signBySig(agreement_id, partner_c, deadline, signature, {"from": rando})


def test_smart_wallet_party_signs_directly_through_its_owner(
    agreements, wallet_agreement, smart_wallet, partner_c, assert_events
):
    tx = smart_wallet.execute(agreements, agreements.sign.encode_input(wallet_agreement), {"from": partner_c})

    assert agreements.hasSigned(wallet_agreement, 1, smart_wallet)
    assert_events(
        tx,
        ("AgreementSigned", {"agreementId": wallet_agreement, "version": 1, "party": smart_wallet, "relayed": False}),
        emitter=agreements,
    )
