"""chain.batched decodes a contract read itself (web3's codec, then web3's return conventions) instead of through
web3's formatting path: held to web3's own answer, value and type, for every view of every contract, on a chain
where an agreement between registered partners exists (so that arrays, addresses and structs are not empty)."""

from __future__ import annotations

from typing import Any

import pytest
from eth_utils import get_abi_output_types
from web3.contract.utils import format_contract_call_return_data_curried

from lepton_ledger.chain import agreements
from lepton_ledger.chain.anvil import Anvil, dev_account
from lepton_ledger.chain.batched import _decoded
from lepton_ledger.chain.deployment import DevRoles
from lepton_ledger.chain.transactions import Transactor
from lepton_ledger.rounds.world import build_world
from tests.rounds.agreement_setup import agreement_terms


@pytest.fixture(scope="module")
def world():
    with Anvil() as w3:
        roles = DevRoles.from_dev_keys()
        partners = {"alpha": dev_account(5), "beta": dev_account(6)}
        tx = Transactor(w3, [*roles.accounts(), *partners.values()])
        built = build_world(tx, partners, dispute_window=600, roles=roles)
        terms = agreement_terms(w3, built.token, roles, [a.address for a in partners.values()], {"task": "decoding"})
        agreement_id = agreements.propose(tx, built.deployment, roles.coordinator.address, terms)
        yield w3, built.deployment, agreement_id, partners["alpha"].address


def _views_with_simple_arguments(contract: Any, agreement_id: int, party: str) -> list[Any]:
    """A bound call of every view of `contract` whose inputs are integers, addresses or bytes32."""
    calls = []
    for abi in contract.abi:
        if abi.get("type") != "function" or abi.get("stateMutability") not in ("view", "pure"):
            continue
        args: list[Any] = []
        for item in abi["inputs"]:
            if item["type"].startswith("uint"):
                args.append(agreement_id)
            elif item["type"] == "address":
                args.append(party)
            elif item["type"] == "bytes32":
                args.append(bytes(32))
            else:
                break
        else:
            calls.append(getattr(contract.functions, abi["name"])(*args))
    return calls


def _same(a: Any, b: Any) -> bool:
    if type(a) is not type(b):
        return False
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    return bool(a == b)


def test_every_view_decodes_as_web3_decodes_it(world):
    w3, d, agreement_id, party = world
    compared = []
    for contract in (d.agreements, d.partners, d.ledger, d.vault, d.court):
        for call in _views_with_simple_arguments(contract, agreement_id, party):
            try:
                raw = w3.eth.call({"to": call.address, "data": call._encode_transaction_data()})
            except Exception:  # noqa: BLE001 -- a view that refuses these arguments has nothing to decode
                continue
            web3s = format_contract_call_return_data_curried(
                w3, False, call.abi, call.abi_element_identifier, (), get_abi_output_types(call.abi), bytes(raw)
            )
            ours = _decoded(w3, call, "0x" + bytes(raw).hex())
            assert _same(ours, web3s), f"{call.fn_name}: {ours!r} != {web3s!r}"
            compared.append(call.fn_name)
    # structs with address arrays and addresses, plain values: the kinds that differ if the conventions slip
    assert {"terms", "roundConfig", "partnerOf", "roundCount"} <= set(compared)
    assert len(compared) > 40
