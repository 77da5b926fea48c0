"""The event index against a real anvil and a real deployment: incremental, idempotent, gap-free, queryable,
resumable from its SQLite file, and dropping what a reorganisation replaced."""

from __future__ import annotations

import threading

import pytest

from lepton_ledger.chain.anvil import Anvil, dev_account
from lepton_ledger.chain.connection import RequestCounter
from lepton_ledger.chain.deployment import deploy_system
from lepton_ledger.chain.events import EventIndex
from lepton_ledger.chain.transactions import Transactor


@pytest.fixture(scope="module")
def system():
    with Anvil() as w3:
        admin, coordinator, auditor, treasury = (dev_account(i) for i in (0, 1, 2, 7))
        partners = [dev_account(i) for i in (3, 4, 5)]
        tx = Transactor(w3, [admin, coordinator, auditor, treasury, *partners])
        deployment = deploy_system(
            tx,
            admin=admin.address,
            coordinator=coordinator.address,
            auditors=[auditor.address],
            slash_recipient=treasury.address,
            dispute_window=60,
        )
        yield w3, tx, deployment, coordinator, partners


def contracts(w3, deployment):
    return {
        name: w3.eth.contract(address=a, abi=c.abi)
        for (name, a), c in zip(
            deployment.addresses().items(),
            (deployment.partners, deployment.agreements, deployment.vault, deployment.ledger),
        )
    }


def all_logs(w3, deployment, to_block):
    """Every log of the four contracts, straight from the node: the index must hold exactly these."""
    logs = w3.eth.get_logs({"fromBlock": 0, "toBlock": to_block, "address": list(deployment.addresses().values())})
    return sorted((log["transactionHash"].to_0x_hex(), log["logIndex"]) for log in logs)


def register(tx, deployment, partner, n):
    return tx.transact(deployment.partners.functions.register(bytes([n]) * 32, bytes([n + 1]) * 32), partner.address)


def test_index_is_incremental_idempotent_gap_free_and_resumable(system, tmp_path):
    w3, tx, d, coordinator, partners = system
    path = tmp_path / "events.sqlite"
    index = EventIndex(w3, contracts(w3, d), path, chunk=3)
    first = index.sync()
    deployed = index.count()
    # The deployment granted roles and bound contracts: those logs are there, one row per log.
    assert deployed == len(all_logs(w3, d, first.to_block)) > 0
    assert {e.event for e in index.events()} >= {"RoleGranted"}

    register(tx, d, partners[0], 1)
    tx.transact(d.partners.functions.approve(partners[0].address), coordinator.address)
    second = index.sync()
    assert second.from_block == first.to_block + 1
    assert second.inserted == 2
    assert [e.event for e in index.events(partner=partners[0].address)] == ["PartnerRegistered", "PartnerApproved"]

    # Re-reading ranges already indexed inserts nothing.
    again = EventIndex(w3, contracts(w3, d), tmp_path / "again.sqlite", chunk=5)
    again.sync()
    assert again.sync().inserted == 0
    assert again.count() == index.count()

    # A fresh index on the same file (a restarted service) resumes after the last indexed block.
    register(tx, d, partners[1], 3)
    restarted = EventIndex(w3, contracts(w3, d), path, chunk=3)
    assert restarted.last_block == second.to_block
    third = restarted.sync()
    assert third.from_block == second.to_block + 1 and third.inserted == 1
    stored = sorted((e.tx_hash, e.log_index) for e in restarted.events())
    assert stored == all_logs(w3, d, third.to_block)


def test_a_sync_costs_two_requests_whatever_it_reads_and_one_when_nothing_is_new(system, tmp_path):
    w3, tx, d, coordinator, _ = system
    index = EventIndex(w3, contracts(w3, d), tmp_path / "trips.sqlite", chunk=2)
    index.sync()
    newcomer = dev_account(8)
    tx.add(newcomer)
    register(tx, d, newcomer, 7)
    tx.transact(d.partners.functions.approve(newcomer.address), coordinator.address)
    with RequestCounter(w3) as counter:
        assert index.sync().inserted == 2
        # The head and the last indexed block's hash in one batch, the logs in one: one range (two blocks).
        assert counter.take() == 2  # six when the hashes and the head were read one by one
        assert index.sync().inserted == 0
        assert counter.take() == 1
        for _ in range(3):
            w3.provider.make_request("evm_mine", [])
        counter.take()
        # Two ranges: their ends' hashes in one more batch (one is the head's, read already), a request of logs each.
        stats = index.sync()
        assert counter.take() == 4 and (stats.to_block - stats.from_block) == 2
    assert sorted((e.tx_hash, e.log_index) for e in index.events()) == all_logs(w3, d, stats.to_block)


def test_queries_filter_by_agreement_round_and_partner_in_chain_order(system, tmp_path):
    w3, tx, d, _, partners = system
    index = EventIndex(w3, contracts(w3, d), tmp_path / "q.sqlite")
    register(tx, d, partners[2], 5)
    index.sync()
    (registered,) = index.events("PartnerRegistered", partner=partners[2].address.lower())
    assert registered.contract == "PartnerRegistry"
    assert registered.args["profileDigest"] == "0x" + "05" * 32
    assert registered.agreement_id is None and registered.round is None
    everything = index.events()
    assert [(e.block_number, e.log_index) for e in everything] == sorted(
        (e.block_number, e.log_index) for e in everything
    )
    assert index.events("NoSuchEvent") == []
    assert all(
        e.event in ("RoleGranted", "PartnerRegistered") for e in index.events(["RoleGranted", "PartnerRegistered"])
    )


def test_reorg_drops_replaced_events_and_reindexes(tmp_path):
    with Anvil() as w3:
        admin, coordinator, partner = dev_account(0), dev_account(1), dev_account(3)
        tx = Transactor(w3, [admin, coordinator, dev_account(2), dev_account(7), partner])
        d = deploy_system(
            tx,
            admin=admin.address,
            coordinator=coordinator.address,
            auditors=[],
            slash_recipient=dev_account(7).address,
            dispute_window=60,
        )
        index = EventIndex(w3, contracts(w3, d), tmp_path / "reorg.sqlite")
        index.sync()
        snapshot = w3.provider.make_request("evm_snapshot", [])["result"]
        tx.transact(d.partners.functions.register(b"\x01" * 32, b"\x02" * 32), partner.address)
        tx.transact(d.partners.functions.approve(partner.address), coordinator.address)
        index.sync()
        assert len(index.events(partner=partner.address)) == 2
        w3.provider.make_request("evm_revert", [snapshot])
        # The replacement branch: a different registration, then enough blocks to pass the old height.
        fresh = Transactor(w3, [partner])
        fresh.transact(d.partners.functions.register(b"\x09" * 32, b"\x02" * 32), partner.address)
        w3.provider.make_request("evm_mine", [])
        w3.provider.make_request("evm_mine", [])
        stats = index.sync()
        assert stats.rewound_to is not None
        (only,) = index.events(partner=partner.address)
        assert only.event == "PartnerRegistered" and only.args["profileDigest"] == "0x" + "09" * 32
        head = w3.eth.block_number
        assert sorted((e.tx_hash, e.log_index) for e in index.events()) == all_logs(w3, d, head)


def test_one_connection_per_thread_commits_without_a_full_sync_and_never_reads_stale(system, tmp_path):
    w3, tx, d, coordinator, partners = system
    path = tmp_path / "held.sqlite"
    writer, reader = EventIndex(w3, contracts(w3, d), path), EventIndex(w3, contracts(w3, d), path)
    # A range is committed with its checkpoint, without the fsync of synchronous=FULL at each commit: the index
    # is a copy of the chain, and what a power cut loses is read again by the next sync.
    held = writer._connection()
    assert held is writer._connection() and held.execute("PRAGMA synchronous").fetchone()[0] == 1  # NORMAL
    writer.sync()
    before = reader.count()  # the reader holds its connection open from here on
    assert before == writer.count() > 0
    newcomer = dev_account(9)
    tx.add(newcomer)
    register(tx, d, newcomer, 11)
    assert writer.sync().inserted == 1
    assert reader.count() == before + 1  # what another connection committed since is seen at once

    seen: list[int] = []
    thread = threading.Thread(target=lambda: seen.append(writer.count()))  # its own connection, not this thread's
    thread.start()
    thread.join()
    assert seen == [before + 1]


def test_logs_read_as_the_node_sends_them_index_as_web3_formats_them(system, tmp_path):
    """The index reads eth_getLogs unformatted (web3's formatting cost more than the decoding): every log of the
    deployment gives the row web3's formatted log gives."""
    w3, _, d, _, _ = system
    index = EventIndex(w3, contracts(w3, d), tmp_path / "rows.sqlite")
    head = w3.eth.block_number
    formatted = w3.eth.get_logs({"fromBlock": 0, "toBlock": head, "address": list(d.addresses().values())})
    raw = index._logs(0, head)
    assert len(raw) == len(formatted) > 10
    assert [index._row(log) for log in raw] == [index._row(log) for log in formatted]


def _index_on(fake_node, answer):
    from lepton_ledger.chain.artifacts import load_artifact

    w3 = fake_node(answer)
    ledger = w3.eth.contract(address="0x" + "11" * 20, abi=load_artifact("RoundLedger").abi)
    return w3, {"RoundLedger": ledger}


BLOCK = {"number": "0x2", "hash": "0x" + "ab" * 32}
GOOD_LOG = {
    "address": "0x" + "11" * 20,
    "topics": ["0x" + "00" * 32],
    "data": "0x",
    "blockNumber": "0x1",
    "blockHash": "0x" + "cd" * 32,
    "transactionHash": "0x" + "ef" * 32,
    "logIndex": "0x0",
}


@pytest.mark.parametrize(
    ("logs", "message"),
    [
        ([{k: v for k, v in GOOD_LOG.items() if k != "logIndex"}], "malformed"),
        ([{**GOOD_LOG, "blockNumber": "two"}], "malformed"),
        ("not a list", "malformed"),
        ([{**GOOD_LOG, "address": "0x" + "22" * 20}], "not indexed here"),
        ([GOOD_LOG], "matches no event"),  # topic 0 of no event of the ABI
        ([{**GOOD_LOG, "blockHash": None}], "malformed"),
        ([{**GOOD_LOG, "blockHash": "0xzz"}], "malformed"),
        ([{**GOOD_LOG, "transactionHash": None}], "malformed"),
        ([{**GOOD_LOG, "data": None}], "malformed"),
        ([{**GOOD_LOG, "data": "0xzz"}], "malformed"),
        ([{k: v for k, v in GOOD_LOG.items() if k != "address"}], "malformed"),
        ([{**GOOD_LOG, "address": 5}], "malformed"),
        ([{**GOOD_LOG, "blockNumber": "0x" + "f" * 40}], "malformed"),
        ([{**GOOD_LOG, "topics": "0x" + "00" * 32}], "malformed"),
        ([["a", "log", "as", "a", "list"]], "malformed"),
    ],
)
def test_a_node_answering_malformed_or_foreign_logs_is_a_one_line_chain_error(fake_node, tmp_path, logs, message):
    from lepton_ledger.errors import ChainError

    def answer(method, request_id):
        result = {"eth_getBlockByNumber": BLOCK, "eth_getLogs": logs}[method]
        return {"jsonrpc": "2.0", "id": request_id, "result": result}

    w3, contracts_ = _index_on(fake_node, answer)
    index = EventIndex(w3, contracts_, tmp_path / "hostile.sqlite")
    with pytest.raises(ChainError, match=message):
        index.sync()
    assert index.last_block is None and index.count() == 0  # nothing recorded


@pytest.mark.parametrize(
    "block",
    [{"number": "0x2"}, {"number": "0x2", "hash": None}, {"number": "0x2", "hash": "0xzz"}, {"hash": BLOCK["hash"]}],
)
def test_a_node_answering_blocks_without_a_hash_is_a_one_line_chain_error(fake_node, tmp_path, block):
    from lepton_ledger.errors import ChainError

    def answer(method, request_id):
        return {"jsonrpc": "2.0", "id": request_id, "result": block}

    w3, contracts_ = _index_on(fake_node, answer)
    with pytest.raises(ChainError, match="without a number or hash"):
        EventIndex(w3, contracts_, tmp_path / "nohash.sqlite").sync()
