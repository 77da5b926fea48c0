"""chain.calls: a bound call built again from web3's first lookup equals web3's own, for every function of every
deployed contract, without web3 looking the function up again; overloads and bad arguments keep web3's ways."""

from __future__ import annotations

import gc
import os
import signal
import time
from typing import Any

import pytest
from eth_abi.exceptions import EncodingError
from web3 import Web3
from web3.contract import base_contract
from web3.contract.contract import ContractFunction
from web3.exceptions import Web3Exception

from lepton_ledger.chain.artifacts import load_artifact
from lepton_ledger.chain.batched import calldata
from lepton_ledger.chain.calls import _by_contract, calls

CONTRACTS = ("PartnerRegistry", "AgreementRegistry", "RoundLedger", "RewardVault", "ResultsCourt")
ADDRESS = Web3.to_checksum_address("0x" + "11" * 20)


def _contract(name: str) -> Any:
    return Web3().eth.contract(address=ADDRESS, abi=load_artifact(name).abi)


def _value(abi_type: str, seed: int) -> Any:
    """A value of `abi_type` that differs with `seed`."""
    if abi_type.endswith("[]"):
        return [_value(abi_type[:-2], seed), _value(abi_type[:-2], seed + 1)]
    if abi_type.startswith(("uint", "int")):
        return seed + 1
    if abi_type == "address":
        return Web3.to_checksum_address(f"0x{seed + 1:040x}")
    if abi_type == "bool":
        return seed % 2 == 0
    if abi_type == "bytes":
        return bytes([seed % 256]) * 3
    if abi_type.startswith("bytes"):
        return bytes([seed % 256]) * int(abi_type[5:])
    if abi_type == "string":
        return f"text {seed}"
    raise AssertionError(f"no test value for {abi_type}")


def _arguments(abi: dict[str, Any], seed: int) -> tuple[Any, ...] | None:
    """Arguments for `abi`'s inputs, or None when one is a struct (its own shape, not covered here)."""
    if any(item["type"].startswith("tuple") for item in abi["inputs"]):
        return None
    return tuple(_value(item["type"], seed + i) for i, item in enumerate(abi["inputs"]))


@pytest.mark.parametrize("name", CONTRACTS)
def test_every_function_is_bound_as_web3_binds_it(name):
    contract = _contract(name)
    covered = 0
    for abi in (e for e in contract.abi if e["type"] == "function"):
        first, later = _arguments(abi, 0), _arguments(abi, 7)
        if first is None or later is None:
            continue
        calls(contract).__getattr__(abi["name"])(*first)  # web3's lookup, kept
        ours = calls(contract).__getattr__(abi["name"])(*later)
        theirs = getattr(contract.functions, abi["name"])(*later)
        assert isinstance(ours, ContractFunction) and ours.abi == theirs.abi and ours.selector == theirs.selector
        assert ours.arguments == theirs.arguments and ours.args == theirs.args and ours.address == theirs.address
        assert calldata(ours) == calldata(theirs) == theirs._encode_transaction_data()
        covered += 1
    assert covered >= 5


def test_a_function_is_looked_up_by_web3_once(monkeypatch):
    contract = _contract("RoundLedger")
    looked_up = []
    real = base_contract.get_abi_element
    monkeypatch.setattr(base_contract, "get_abi_element", lambda *a, **k: looked_up.append(a) or real(*a, **k))
    for round_id in range(5):
        calls(contract).round(1, round_id)
    assert len(looked_up) == 1


OVERLOADED = [
    {"type": "function", "name": "f", "inputs": [{"name": "x", "type": "uint256"}], "outputs": []},
    {"type": "function", "name": "f", "inputs": [{"name": "x", "type": "address"}], "outputs": []},
]


def test_an_overloaded_function_is_looked_up_by_web3_every_time():
    contract = Web3().eth.contract(address=ADDRESS, abi=OVERLOADED)
    by_number, by_address = calls(contract).f(5), calls(contract).f(ADDRESS)
    assert by_number.abi["inputs"][0]["type"] == "uint256" and by_address.abi["inputs"][0]["type"] == "address"
    assert calldata(by_address) == contract.functions.f(ADDRESS)._encode_transaction_data()


def test_an_argument_that_does_not_encode_fails_when_the_call_is_encoded():
    contract = _contract("RoundLedger")
    with pytest.raises(Web3Exception):
        calls(contract).round("one", 2)  # web3's own lookup refuses it
    calls(contract).round(1, 2)
    reused = calls(contract).round("one", 2)
    with pytest.raises((EncodingError, Web3Exception, TypeError)):
        calldata(reused)


def test_the_calls_of_a_contract_go_with_it():
    contract = _contract("RoundLedger")
    calls(contract).round(1, 2)
    assert contract in _by_contract
    held = len(_by_contract)
    del contract
    gc.collect()
    assert len(_by_contract) == held - 1


def test_a_child_forked_while_the_lock_is_held_builds_calls():
    """The audit forks its workers while other threads may be building calls: the child's lock is free."""
    from lepton_ledger.chain import calls as module

    contract = _contract("RoundLedger")
    with module._lock:
        pid = os.fork()
        if pid == 0:  # the child: build a call, exit 0 (a held lock would hang it until the parent kills it)
            try:
                calls(_contract("RoundLedger")).round(1, 2)
            finally:
                os._exit(0)
    deadline = time.monotonic() + 30
    while (done := os.waitpid(pid, os.WNOHANG))[0] == 0:
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            raise AssertionError("the forked child waited for a lock its parent held")
        time.sleep(0.01)  # polling the child's exit; not synchronisation on an effect
    assert os.waitstatus_to_exitcode(done[1]) == 0
    assert calldata(calls(contract).round(1, 2)) == contract.functions.round(1, 2)._encode_transaction_data()
