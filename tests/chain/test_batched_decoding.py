"""chain.batched decodes a contract read itself (web3's codec, then web3's return conventions) instead of through
web3's formatting path: held to web3's own answer, value and type, for every view of every contract, on a chain
where an agreement between registered partners exists (so that arrays, addresses and structs are not empty)."""

from __future__ import annotations

from typing import Any

import pytest
from eth_abi import encode
from eth_utils import get_abi_output_types
from web3 import Web3
from web3.contract.utils import format_contract_call_return_data_curried

from lepton_ledger.chain import agreements
from lepton_ledger.chain.anvil import Anvil, dev_account
from lepton_ledger.chain.batched import CACHED_ANSWER_BYTES, _decode, _decoded
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


ADDRESS = "0x" + "ab" * 20  # lower case: web3 answers it checksummed
# Output types no contract of the project returns, each with a value eth_abi encodes for it.
SYNTHETIC: dict[str, tuple[list[dict[str, Any]], list[Any]]] = {
    "fixed array of tuples": (
        [{"name": "v", "type": "tuple[2]", "components": [{"name": "a", "type": "address"}, {"type": "bytes"}]}],
        [[(ADDRESS, b"\x01"), (ADDRESS, b"")]],
    ),
    "bytes array": ([{"name": "v", "type": "bytes[]"}], [[b"\x01\x02", b""]]),
    "string array": ([{"name": "v", "type": "string[]"}], [["a", "bé", ""]]),
    "nested address arrays": ([{"name": "v", "type": "address[2][]"}], [[[ADDRESS, ADDRESS]]]),
    "tuple of a tuple array and a fixed array": (
        [
            {
                "name": "v",
                "type": "tuple",
                "components": [
                    {"name": "i", "type": "tuple[]", "components": [{"type": "string"}, {"type": "address[]"}]},
                    {"name": "u", "type": "uint8[2]"},
                ],
            }
        ],
        [([("x", [ADDRESS])], [1, 2])],
    ),
    "several outputs, unnamed": (
        [{"name": "", "type": "bool"}, {"name": "", "type": "int256[]"}, {"name": "", "type": "bytes4"}],
        [True, [-1, 2], b"\x01\x02\x03\x04"],
    ),
}


@pytest.mark.parametrize("kind", SYNTHETIC)
def test_output_types_no_contract_has_decode_as_web3_decodes_them(kind):
    outputs, values = SYNTHETIC[kind]
    abi = {"type": "function", "name": "f", "inputs": [], "outputs": outputs, "stateMutability": "view"}
    w3 = Web3()
    call = w3.eth.contract(address=Web3.to_checksum_address(ADDRESS), abi=[abi]).functions.f()
    types = get_abi_output_types(abi)
    data = encode(types, values)
    web3s = format_contract_call_return_data_curried(w3, False, call.abi, call.abi_element_identifier, (), types, data)
    assert _same(_decoded(w3, call, "0x" + data.hex()), web3s)


def test_the_same_answer_decoded_again_is_a_fresh_value_equal_to_web3s():
    """Decodings are kept per answer (a round's parties read the same views); the lists web3 gives are built anew
    each time, so a caller that changes one changes no later answer."""
    outputs, values = SYNTHETIC["tuple of a tuple array and a fixed array"]
    abi = {"type": "function", "name": "f", "inputs": [], "outputs": outputs, "stateMutability": "view"}
    w3 = Web3()
    call = w3.eth.contract(address=Web3.to_checksum_address(ADDRESS), abi=[abi]).functions.f()
    types = get_abi_output_types(abi)
    answer = "0x" + encode(types, values).hex()
    web3s = format_contract_call_return_data_curried(
        w3, False, call.abi, call.abi_element_identifier, (), types, bytes.fromhex(answer[2:])
    )
    first = _decoded(w3, call, answer)
    first[0][0][1].append("changed by its caller")
    first[1][0] = 99
    kept = _decode.cache_info().hits
    again = _decoded(w3, call, answer)
    assert _decode.cache_info().hits == kept + 1  # decoded once
    assert _same(again, web3s) and again[0][0][1] is not first[0][0][1]


def test_a_large_answer_is_decoded_but_not_kept():
    abi = {"type": "function", "name": "f", "inputs": [], "outputs": [{"type": "bytes", "name": ""}]}
    abi["stateMutability"] = "view"
    w3 = Web3()
    call = w3.eth.contract(address=Web3.to_checksum_address(ADDRESS), abi=[abi]).functions.f()
    large = b"\x01" * CACHED_ANSWER_BYTES  # with its offset and length, over the bound
    answer = "0x" + encode(["bytes"], [large]).hex()
    before = _decode.cache_info()
    assert _decoded(w3, call, answer) == large and _decoded(w3, call, answer) == large
    after = _decode.cache_info()
    assert (after.hits, after.misses) == (before.hits, before.misses)  # the cache never saw it
