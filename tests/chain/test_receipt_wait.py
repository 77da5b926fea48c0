"""Transactor.wait on a real anvil whose mining is switched off: it asks for the receipt at once, then after
pauses of 1, 2, 4, ... ms up to 100 ms (web3's own wait paused 100 ms before its second ask, so a transaction
mined in a millisecond waited a hundred), and gives up in one line when the timeout passes. The block is mined
from inside the n-th pause, so nothing here waits on the clock to line things up."""

from __future__ import annotations

import time

import pytest

from lepton_ledger.chain import transactions
from lepton_ledger.chain.anvil import Anvil, dev_account
from lepton_ledger.chain.transactions import RECEIPT_POLL_MAX, Transactor
from lepton_ledger.errors import ChainError

REAL_SLEEP = time.sleep


@pytest.fixture(scope="module")
def manual_chain():
    with Anvil() as w3:
        w3.provider.make_request("evm_setAutomine", [False])
        yield w3, Transactor(w3, [dev_account(0)])


def pending_transfer(w3, tx: Transactor) -> bytes:
    sender = dev_account(0).address
    signed = tx.sign({"to": dev_account(1).address, "value": 1, "gas": 21_000}, sender)
    return bytes(tx.send_raw(signed.raw))


def test_the_receipt_is_asked_for_fast_first_then_less_often(manual_chain, monkeypatch):
    w3, tx = manual_chain
    tx_hash = pending_transfer(w3, tx)
    pauses: list[float] = []

    def pause(seconds: float) -> None:
        pauses.append(seconds)
        if len(pauses) == 5:  # the node mines the transaction during the fifth pause
            w3.provider.make_request("evm_mine", [])
        REAL_SLEEP(seconds)

    monkeypatch.setattr(transactions.time, "sleep", pause)
    receipt = tx.wait(tx_hash, timeout=5)
    assert receipt["status"] == 1 and receipt["transactionHash"] == tx_hash
    assert pauses == [0.001, 0.002, 0.004, 0.008, 0.016]


def test_a_receipt_that_never_comes_fails_in_one_line_after_the_timeout(manual_chain, monkeypatch):
    w3, tx = manual_chain
    tx_hash = pending_transfer(w3, tx)
    pauses: list[float] = []
    monkeypatch.setattr(
        transactions.time,
        "sleep",
        lambda seconds: pauses.append(seconds) or REAL_SLEEP(seconds),
    )
    with pytest.raises(ChainError) as failure:
        tx.wait(tx_hash, timeout=0.5)
    assert str(failure.value) == f"no receipt for 0x{tx_hash.hex()} within 0.5 s"
    # 1, 2, 4, ... ms, then 100 ms at most; the last no longer than the time left, none past the deadline
    schedule = [min(0.001 * 2**i, RECEIPT_POLL_MAX) for i in range(len(pauses))]
    assert pauses[:-1] == schedule[:-1] and 0 < pauses[-1] <= schedule[-1]
    assert sum(pauses) <= 0.5
    w3.provider.make_request("evm_mine", [])  # the transaction was valid: it mines once asked to
    assert tx.wait(tx_hash, timeout=5)["status"] == 1
