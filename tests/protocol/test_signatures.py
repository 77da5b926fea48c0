"""``is_valid_signature_now`` decides as OpenZeppelin's SignatureChecker on a real chain (anvil): an ECDSA
signature by the party, or a contract party's ERC-1271 answer (the repo's SmartWallet test double); anything a
wallet does wrong (revert, no such function, a wrong answer) is False, never an exception."""

from __future__ import annotations

import pytest

from lepton_ledger.chain.anvil import Anvil, dev_account
from lepton_ledger.chain.artifacts import load_artifact
from lepton_ledger.chain.transactions import Transactor
from lepton_ledger.chain.typed_data import sign_digest
from lepton_ledger.protocol.signatures import is_valid_signature_now

DIGEST = bytes(range(32))


@pytest.fixture(scope="module")
def chain():
    with Anvil() as w3:
        owner, other = dev_account(3), dev_account(4)
        tx = Transactor(w3, [owner, other])
        wallet = tx.deploy(load_artifact("SmartWallet"), owner.address, sender=owner.address)
        token = tx.deploy(load_artifact("LeptonToken"), "T", "T", owner.address, sender=owner.address)
        yield w3, owner, other, wallet.address, token.address


def test_an_ecdsa_signature_by_the_party_is_valid_and_by_another_is_not(chain):
    w3, owner, other, _, _ = chain
    assert is_valid_signature_now(w3, owner.address, DIGEST, sign_digest(bytes(owner.key), DIGEST))
    assert not is_valid_signature_now(w3, owner.address, DIGEST, sign_digest(bytes(other.key), DIGEST))
    assert not is_valid_signature_now(w3, owner.address, DIGEST, b"\x01" * 65)


def test_a_wallet_party_is_judged_by_its_erc1271_answer(chain):
    w3, owner, other, wallet, _ = chain
    assert is_valid_signature_now(w3, wallet, DIGEST, sign_digest(bytes(owner.key), DIGEST))
    assert not is_valid_signature_now(w3, wallet, DIGEST, sign_digest(bytes(other.key), DIGEST))
    assert not is_valid_signature_now(w3, wallet, DIGEST, b"garbage")


def test_a_contract_without_erc1271_says_no_without_raising(chain):
    w3, owner, _, _, token = chain
    assert not is_valid_signature_now(w3, token, DIGEST, sign_digest(bytes(owner.key), DIGEST))
