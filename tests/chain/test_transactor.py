"""Transactor.send_raw and wait on a real anvil, asked of the provider directly: a transaction the node already
has comes back as its hash, one it refuses raises the refusal in one line, and a receipt is what web3 gives."""

from __future__ import annotations

from typing import Any

import pytest
from web3.datastructures import AttributeDict
from web3.exceptions import BadResponseFormat

from lepton_ledger.chain.anvil import Anvil, dev_account
from lepton_ledger.chain.transactions import SignedTx, Transactor
from lepton_ledger.errors import ChainError

TOPIC = "0x" + "ab" * 32
# init code that logs one word under TOPIC: mstore(0, 42); log1(0, 32, TOPIC)
LOGS = "0x602a6000527f" + TOPIC[2:] + "60206000a100"


@pytest.fixture(scope="module")
def chain():
    with Anvil() as w3:
        yield w3, Transactor(w3, [dev_account(3)])


def transfer(tx: Transactor, value: int = 1, nonce: int | None = None) -> SignedTx:
    return tx.sign({"to": dev_account(4).address, "value": value, "gas": 21_000}, dev_account(3).address, nonce=nonce)


def test_a_transaction_the_node_has_pending_or_mined_comes_back_as_its_hash(chain):
    w3, tx = chain
    signed = transfer(tx)
    w3.provider.make_request("evm_setAutomine", [False])
    try:
        assert tx.send_raw(signed.raw) == signed.tx_hash
        assert tx.send_raw(signed.raw) == signed.tx_hash  # pending: the node already knows it
    finally:
        w3.provider.make_request("evm_setAutomine", [True])
    w3.provider.make_request("evm_mine", [])
    assert tx.wait(signed.tx_hash)["status"] == 1
    assert tx.send_raw(signed.raw) == signed.tx_hash  # mined: its nonce is spent, and the node has it


def test_a_transaction_the_node_refuses_raises_its_refusal(chain):
    _, tx = chain
    mined = transfer(tx)
    tx.wait(tx.send_raw(mined.raw))
    other = transfer(tx, value=2, nonce=mined.nonce)  # another transaction with the same, spent nonce
    with pytest.raises(ChainError, match="nonce too low") as refused:
        tx.send_raw(other.raw)
    assert other.tx_hash.to_0x_hex() in str(refused.value) and "\n" not in str(refused.value)


def test_a_receipt_is_web3s_with_its_logs(chain):
    w3, tx = chain
    signed = tx.sign({"data": LOGS, "gas": 100_000}, dev_account(3).address)
    receipt = tx.wait(tx.send_raw(signed.raw))
    assert receipt == w3.eth.get_transaction_receipt(signed.tx_hash)
    assert type(receipt) is AttributeDict and type(receipt["logs"][0]) is AttributeDict
    assert receipt["contractAddress"] is not None and receipt["logs"][0]["topics"][0].to_0x_hex() == TOPIC


SIGNED = dev_account(3).sign_transaction(
    {"to": dev_account(4).address, "value": 1, "gas": 21_000, "chainId": 31337, "nonce": 0, "gasPrice": 10**9}
)


def test_an_answer_with_neither_result_nor_error_raises_as_web3_raises_it(fake_node):
    tx = Transactor(fake_node(lambda method, request_id: {"jsonrpc": "2.0", "id": request_id}), [])
    with pytest.raises(BadResponseFormat):
        tx.send_raw(SIGNED.raw_transaction)
    with pytest.raises(BadResponseFormat):  # not read as "not mined yet", waited on until the timeout
        tx.wait(SIGNED.hash, timeout=5)


def test_a_refusal_without_a_message_says_what_the_node_answered(fake_node):
    def answer(method: str, request_id: Any) -> Any:
        if method == "eth_sendRawTransaction":
            return {"jsonrpc": "2.0", "id": request_id, "error": {"code": -32000}}
        return {"jsonrpc": "2.0", "id": request_id, "result": None}  # the node does not have it

    with pytest.raises(ChainError, match="-32000") as refused:
        Transactor(fake_node(answer), []).send_raw(SIGNED.raw_transaction)
    assert SIGNED.hash.to_0x_hex() in str(refused.value) and "\n" not in str(refused.value)
