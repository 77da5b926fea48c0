"""chain.batched on a real anvil: reads in one batch request decoded as web3 decodes them, at the latest or an
older block; a transaction's nonce, gas and fees in one request, a refusal decoded, and a web3 with a gas price
strategy (as brownie's) given a legacy transaction that mines; a dry run's refusal decoded."""

from __future__ import annotations

import pytest
from web3.exceptions import BadResponseFormat, ContractCustomError
from web3.middleware import Web3Middleware

from lepton_ledger.chain.anvil import Anvil, dev_account
from lepton_ledger.chain.batched import calldata, dry_run, prepare_transaction, read_many
from lepton_ledger.chain.connection import RequestCounter
from lepton_ledger.chain.deployment import AUDITOR_ROLE, DevRoles, deploy_with_roles
from lepton_ledger.chain.state import Partner
from lepton_ledger.chain.transactions import Transactor, decode_revert
from lepton_ledger.errors import ChainError, ContractReverted
from lepton_ledger.units import PartnerStatus


@pytest.fixture(scope="module")
def chain():
    with Anvil() as w3:
        roles = DevRoles.from_dev_keys()
        tx = Transactor(w3, [*roles.accounts(), dev_account(5), dev_account(6)])
        yield w3, tx, deploy_with_roles(tx, roles, dispute_window=600)


def register_call(d):
    return d.partners.functions.register(bytes([7]) * 32, bytes([1]) * 32)


def test_reads_come_back_decoded_from_one_request(chain):
    w3, _, d = chain
    newcomer = dev_account(5).address
    with RequestCounter(w3) as counter:
        epsilon, partner = read_many(
            w3, [d.ledger.functions.cumulativeEpsilon(1, newcomer), d.partners.functions.partnerOf(newcomer)]
        )
        assert counter.take() == 1
    record = Partner.decode(partner)
    assert epsilon == 0 and record.status is PartnerStatus.NONE and record.encryption_key == bytes(32)
    assert read_many(w3, []) == []


def test_a_transaction_is_prepared_in_one_request_and_a_refusal_is_decoded(chain):
    w3, _, d = chain
    sender = dev_account(5).address
    call = register_call(d)
    with RequestCounter(w3) as counter:
        prepared = prepare_transaction(w3, {"to": call.address, "data": call._encode_transaction_data()}, sender)
        assert counter.take() == 1
    assert prepared["nonce"] == w3.eth.get_transaction_count(sender, "pending") and prepared["gas"] > 21_000
    assert prepared["maxFeePerGas"] >= prepared["maxPriorityFeePerGas"]
    refused = d.ledger.functions.submitUpdate(1, 1, b"\x01" * 32, b"\x02" * 32, 5, 10)
    with pytest.raises(ContractReverted):
        prepare_transaction(w3, {"to": refused.address, "data": refused._encode_transaction_data()}, sender)


def test_a_web3_with_a_gas_price_strategy_gets_a_legacy_transaction_that_mines(chain):
    w3, tx, d = chain
    sender = dev_account(6).address
    call = register_call(d)
    w3.eth.set_gas_price_strategy(lambda web3, params: web3.eth.gas_price)
    try:
        prepared = prepare_transaction(w3, {"to": call.address, "data": call._encode_transaction_data()}, sender)
        assert "maxFeePerGas" not in prepared
        signed = tx.sign(prepared, sender, nonce=prepared["nonce"])
    finally:
        w3.eth.set_gas_price_strategy(None)
    receipt = tx.wait(tx.send_raw(signed.raw))
    assert receipt["status"] == 1 and receipt["type"] == 0


def test_a_receipt_asked_before_the_node_mines_is_counted_apart_from_the_work(chain):
    w3, _, _ = chain
    sender = dev_account(6)
    w3.provider.make_request("evm_setAutomine", [False])
    try:
        with RequestCounter(w3) as counter:
            signed = sender.sign_transaction(
                {
                    "to": sender.address,
                    "value": 1,
                    "gas": 21_000,
                    "chainId": w3.eth.chain_id,
                    "nonce": w3.eth.get_transaction_count(sender.address, "pending"),
                    "maxFeePerGas": 10**10,
                    "maxPriorityFeePerGas": 1,
                }
            )
            tx_hash = w3.eth.send_raw_transaction(signed.raw_transaction)
            with pytest.raises(Exception, match="not found"):
                w3.eth.get_transaction_receipt(tx_hash)  # not mined: the node answers null
            assert (counter.take(), counter.pending_polls) == (2, 1)  # the nonce and the send; the empty poll apart
            w3.provider.make_request("evm_mine", [])
            assert w3.eth.get_transaction_receipt(tx_hash)["status"] == 1
            assert (counter.take(), counter.pending_polls) == (2, 1)  # the mine, and a receipt found: requests
    finally:
        w3.provider.make_request("evm_setAutomine", [True])


def test_calldata_is_web3s_for_integers_bytes_addresses_and_arrays(chain):
    _, _, d = chain
    partner = dev_account(5).address
    calls = [
        d.ledger.functions.submitUpdate(1, 1, b"\x01" * 32, b"\x02" * 32, 5, 10),
        d.partners.functions.partnerOf(partner),
        d.partners.functions.hasRole(AUDITOR_ROLE, partner),
        d.ledger.functions.commitBatch(1, 2, b"\x03" * 32, b"\x04" * 32, b"\x05" * 70),
        d.vault.functions.claim(1, 2, 10**18, [b"\x06" * 32, b"\x07" * 32]),
        d.agreements.functions.vault(),
    ]
    assert [calldata(c) for c in calls] == [c._encode_transaction_data() for c in calls]


def test_reads_are_what_web3s_own_calls_give_and_skip_its_per_request_middlewares(chain):
    w3, _, d = chain
    partner = dev_account(5).address
    reads = [
        d.partners.functions.partnerOf(partner),
        d.partners.functions.hasRole(AUDITOR_ROLE, partner),
        d.ledger.functions.cumulativeEpsilon(1, partner),
        d.vault.functions.roundLedger(),
    ]
    seen: list[str] = []

    class Watch(Web3Middleware):
        def request_processor(self, method, params):
            seen.append(method)
            return method, params

    w3.middleware_onion.inject(Watch, name="watch", layer=0)
    try:
        with RequestCounter(w3) as counter:
            answers = read_many(w3, reads)
            assert counter.take() == 1
        assert seen == []  # web3 formats and validates each request in its middlewares: ~10 ms for four reads
    finally:
        w3.middleware_onion.remove("watch")
    assert answers == [r.call() for r in reads]


def test_a_refused_read_raises_what_web3_raises(chain):
    w3, _, d = chain
    with pytest.raises(ContractCustomError) as raised:
        read_many(
            w3, [d.ledger.functions.cumulativeEpsilon(1, dev_account(5).address), d.ledger.functions.round(1, 99)]
        )
    with pytest.raises(ContractCustomError) as called:
        d.ledger.functions.round(1, 99).call()
    assert raised.value.data == called.value.data


def test_a_dry_run_raises_the_contracts_refusal_and_passes_what_would_pass(chain):
    w3, _, d = chain
    sender = dev_account(9).address
    refused = d.ledger.functions.submitUpdate(1, 1, b"\x01" * 32, b"\x02" * 32, 5, 10)
    with pytest.raises(ContractReverted) as raised:
        dry_run(w3, refused, sender)
    with pytest.raises(ContractCustomError) as called:
        refused.call({"from": sender})
    expected = decode_revert(called.value.data)
    assert (raised.value.error, raised.value.args_by_name) == (expected.error, expected.args_by_name)
    assert raised.value.error.startswith("RoundLedger")
    assert dry_run(w3, register_call(d), sender) is None


def test_a_dry_run_that_fails_without_a_known_error_names_the_call(chain):
    w3, _, d = chain
    elsewhere = w3.eth.contract(address=d.ledger.address, abi=d.partners.abi)  # no such function there
    with pytest.raises(ChainError, match="^partnerOf dry run: .*revert"):
        dry_run(w3, elsewhere.functions.partnerOf(dev_account(9).address), dev_account(9).address)


@pytest.mark.parametrize(
    ("answer", "said"),
    [
        ({"jsonrpc": "2.0"}, "not a JSON-RPC answer"),  # neither result nor error: not a pass
        (None, "not a JSON-RPC answer"),
        ({"jsonrpc": "2.0", "error": {"code": -32000}}, "-32000"),  # an error without a message
    ],
    ids=["neither", "null", "no message"],
)
def test_a_dry_run_answered_out_of_form_fails_in_one_line(chain, fake_node, answer, said):
    _, _, d = chain
    call = fake_node(lambda method, request_id: answer).eth.contract(address=d.ledger.address, abi=d.ledger.abi)
    with pytest.raises(ChainError, match=f"^roundCount dry run: .*{said}") as failed:
        dry_run(call.w3, call.functions.roundCount(1), dev_account(9).address)
    assert "\n" not in str(failed.value)


def test_a_read_answered_with_neither_result_nor_error_raises_as_web3_raises_it(chain, fake_node):
    _, _, d = chain
    w3 = fake_node(lambda method, request_id: {"jsonrpc": "2.0", "id": request_id})
    ledger = w3.eth.contract(address=d.ledger.address, abi=d.ledger.abi)
    with pytest.raises(BadResponseFormat):
        ledger.functions.roundCount(1).call()
    with pytest.raises(BadResponseFormat):
        read_many(w3, [ledger.functions.roundCount(1), ledger.functions.openRoundOf(1)])
    with pytest.raises(BadResponseFormat):
        Partner.read(
            w3.eth.contract(address=d.partners.address, abi=d.partners.abi).functions.partnerOf(d.ledger.address)
        )


@pytest.mark.parametrize("result", ["0x1", 5, "0xzz"], ids=["odd digits", "a number", "not hex"])
def test_a_read_answered_with_return_data_out_of_form_raises_as_web3_raises_it(chain, fake_node, result):
    _, _, d = chain
    w3 = fake_node(lambda method, request_id: {"jsonrpc": "2.0", "id": request_id, "result": result})
    ledger = w3.eth.contract(address=d.ledger.address, abi=d.ledger.abi)
    with pytest.raises(Exception) as web3s:
        ledger.functions.roundCount(1).call()
    with pytest.raises(type(web3s.value)):
        read_many(w3, [ledger.functions.roundCount(1), ledger.functions.openRoundOf(1)])


def test_reads_at_an_older_block_see_its_state(chain):
    w3, tx, d = chain
    sender = tx.add(dev_account(8))
    before = w3.eth.block_number
    tx.transact(register_call(d), sender)
    partner_of = d.partners.functions.partnerOf(sender)
    (then,) = read_many(w3, [partner_of], block=before)
    (now,) = read_many(w3, [partner_of])
    assert Partner.decode(then).status is PartnerStatus.NONE and Partner.decode(now).status is not PartnerStatus.NONE
    assert then == partner_of.call(block_identifier=before)
    with pytest.raises(ContractCustomError) as raised:  # a refused read at that block: as web3 raises it there
        read_many(w3, [partner_of, d.ledger.functions.round(1, 99)], block=before)
    with pytest.raises(ContractCustomError) as called:
        d.ledger.functions.round(1, 99).call(block_identifier=before)
    assert raised.value.data == called.value.data
