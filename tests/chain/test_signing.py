"""chain/signing.py: EIP-1559 transactions signed with libsecp256k1 give eth_account's bytes and hash; every
other transaction is eth_account's own."""

from __future__ import annotations

import pytest
from eth_account import Account
from eth_utils import keccak

from lepton_ledger.chain.signing import sign_transaction

TO = "0x5FbDB2315678afecb367f032d93F642f64180aa3"


def _tx(i: int) -> dict:
    return {
        "chainId": [1, 31337, 2**40][i % 3],
        "nonce": [0, 1, 127, 128, 2**32][i % 5],
        "gas": 21_000 + 977 * i,
        "maxFeePerGas": [0, 1, 2 * 10**9 + i, 2**200][i % 4],
        "maxPriorityFeePerGas": [0, 10**9, i][i % 3],
        "to": TO,
        "value": [0, 1, 10**18 + i][i % 3],
        "data": ["0x", "0x" + "ab" * i, bytes(range(i % 256)) * (1 + i % 3)][i % 3],
        **({"type": [2, "0x2"][i % 2]} if i % 4 == 0 else {}),
        **({"accessList": []} if i % 5 == 0 else {}),
    }


def test_dynamic_fee_transactions_are_eth_accounts_bytes():
    for i in range(120):
        account = Account.from_key(keccak(i.to_bytes(4, "big")))
        tx = _tx(i)
        expected = account.sign_transaction(dict(tx))
        raw, tx_hash = sign_transaction(account, tx)
        assert raw == bytes(expected.raw_transaction), i
        assert tx_hash == bytes(expected.hash), i


@pytest.mark.parametrize(
    "change",
    [
        {"accessList": [{"address": TO, "storageKeys": ["0x" + "00" * 32]}]},  # an access list
        {"type": 1, "gasPrice": 10**9, "maxFeePerGas": None, "maxPriorityFeePerGas": None},  # EIP-2930
        {"gasPrice": 10**9, "maxFeePerGas": None, "maxPriorityFeePerGas": None},  # legacy
        {"to": None},  # a contract creation
    ],
)
def test_other_transactions_are_signed_by_eth_account(change):
    account = Account.from_key(b"\x07" * 32)
    tx = {k: v for k, v in {**_tx(3), **change}.items() if v is not None}
    expected = account.sign_transaction(dict(tx))
    assert sign_transaction(account, tx) == (bytes(expected.raw_transaction), bytes(expected.hash))


@pytest.mark.parametrize(
    "change",
    [
        {"to": TO[:2] + TO[2:].swapcase()},  # a mixed-case address with a wrong checksum
        {"to": TO.lower()},  # eth_account takes checksummed addresses only
        {"type": 2.0},  # equal to 2, not of its type
        {"data": "0xab cd"},  # hex with a space, which bytes.fromhex alone would skip
        {"nonce": -1},
        {"value": "1"},
        {"from": "0x" + "11" * 20},  # another sender than the key's
    ],
)
def test_what_eth_account_refuses_is_refused_by_it(change):
    account = Account.from_key(b"\x07" * 32)
    tx = {**_tx(3), **change}
    with pytest.raises(Exception) as expected:
        account.sign_transaction(dict(tx))
    with pytest.raises(type(expected.value)):
        sign_transaction(account, tx)
