"""The durable outbox: idempotent records, claims, transitions, and transactions that survive a SIGKILL at every
step, against a real anvil and real child processes, each effect landing on-chain exactly once."""

from __future__ import annotations

import base64
import gc
import hashlib
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from eth_account import Account
from web3.exceptions import TransactionNotFound

from lepton_ledger.chain.anvil import DEFAULT_MNEMONIC, Anvil
from lepton_ledger.chain.artifacts import load_artifact
from lepton_ledger.chain.transactions import Transactor
from lepton_ledger.rounds.effects import put_data
from lepton_ledger.rounds.outbox import (
    INLINE_BYTES,
    Outbox,
    OutboxError,
    Runner,
    TransactionHandler,
    reverted_from_result,
    transaction_payload,
)

# The child enqueues one registration and runs it, announcing each durable step on stdout and waiting for a
# line on stdin before going on: the parent kills it at exactly the step it chose.
CHILD = r"""
import sys
from pathlib import Path
from eth_account import Account
from web3.exceptions import TransactionNotFound
from web3 import HTTPProvider, Web3
from lepton_ledger.chain.artifacts import load_artifact
from lepton_ledger.chain.transactions import Transactor
from lepton_ledger.rounds.outbox import Outbox, Runner, TransactionHandler, transaction_payload

url, db, registry, index, key, mnemonic = sys.argv[1:]
Account.enable_unaudited_hdwallet_features()
account = Account.from_mnemonic(mnemonic, account_path=f"m/44'/60'/0'/0/{index}")
w3 = Web3(HTTPProvider(url))
partners = w3.eth.contract(address=registry, abi=load_artifact("PartnerRegistry").abi)

def point(name, op=None):
    print(name, flush=True)
    sys.stdin.readline()

outbox = Outbox(Path(db))
call = partners.functions.register(bytes([int(index)]) * 32, b"\x08" * 32)
outbox.enqueue(key, "transaction", transaction_payload(call, account.address))
point("enqueued")
Runner(outbox, {"transaction": TransactionHandler(Transactor(w3, [account]), checkpoint=point)}).run()
point("done")
"""
POINTS = ["enqueued", "signed", "broadcast", "recorded", "done"]


def account(index: int):
    Account.enable_unaudited_hdwallet_features()
    return Account.from_mnemonic(DEFAULT_MNEMONIC, account_path=f"m/44'/60'/0'/0/{index}")


@pytest.fixture(scope="module")
def chain():
    with Anvil(accounts=20) as w3:
        admin = account(0)
        registry = Transactor(w3, [admin]).deploy(load_artifact("PartnerRegistry"), admin.address, sender=admin.address)
        yield w3, registry


def registrations(registry, partner: str) -> list:
    return registry.events.PartnerRegistered.get_logs(from_block=0, argument_filters={"partner": partner})


def run_child_until(point: str, tmp_path: Path, w3, registry, index: int, key: str) -> list[str]:
    """Runs the child, letting it past every step before `point`, and SIGKILLs it at `point`."""
    stderr = (tmp_path / f"child-{index}.err").open("w")
    child = subprocess.Popen(
        [
            sys.executable,
            "-c",
            CHILD,
            w3.provider.endpoint_uri,
            str(tmp_path / "outbox.sqlite"),
            registry.address,
            str(index),
            key,
            DEFAULT_MNEMONIC,
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=stderr,
        text=True,
    )
    seen: list[str] = []
    try:
        assert child.stdout is not None and child.stdin is not None
        for line in child.stdout:
            seen.append(line.strip())
            if seen[-1] == point:
                child.kill()
                child.wait()
                return seen
            child.stdin.write("\n")
            child.stdin.flush()
        child.wait()
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
        stderr.close()
    raise AssertionError(
        f"child exited {child.returncode} at {seen} before {point}: {(tmp_path / f'child-{index}.err').read_text()}"
    )


@pytest.mark.parametrize("point", POINTS)
def test_transaction_killed_at_each_step_lands_exactly_once(point, chain, tmp_path):
    w3, registry = chain
    index = 3 + POINTS.index(point)
    partner = account(index)
    key = f"register:{partner.address}"
    nonce_before = w3.eth.get_transaction_count(partner.address)

    seen = run_child_until(point, tmp_path, w3, registry, index, key)
    assert seen == POINTS[: POINTS.index(point) + 1]
    outbox = Outbox(tmp_path / "outbox.sqlite")
    left = outbox.get(key)
    # What the dead child left is what each step promises: the record exists from the start, the signed bytes
    # before the broadcast, the hash only after it.
    assert (
        left.status
        == {
            "enqueued": "pending",
            "signed": "pending",
            "broadcast": "pending",
            "recorded": "sent",
            "done": "confirmed",
        }[point]
    )
    assert (left.tx_raw is not None) == (point != "enqueued")
    on_chain_before = len(registrations(registry, partner.address))
    assert on_chain_before == (0 if point in ("enqueued", "signed") else 1)

    # A fresh runner (the dead child still holds its claim, with a long lease) finishes the work.
    done = Runner(outbox, {"transaction": TransactionHandler(Transactor(w3, [partner]))}).run()
    assert [op.key for op in done] == ([] if point == "done" else [key])
    final = outbox.get(key)
    assert final.status == "confirmed"
    (log,) = registrations(registry, partner.address)
    assert final.result["tx_hash"] == log["transactionHash"].to_0x_hex() == final.tx_hash
    assert w3.eth.get_transaction_count(partner.address) == nonce_before + 1
    if point in ("signed", "broadcast", "recorded"):
        assert final.tx_raw == left.tx_raw  # the same signed transaction, never a second one
    assert Runner(outbox, {"transaction": TransactionHandler(Transactor(w3, [partner]))}).run() == []


def test_signed_transaction_whose_nonce_was_taken_is_signed_again(chain, tmp_path):
    w3, registry = chain
    index = 10
    partner = account(index)
    key = f"register:{partner.address}"
    run_child_until("signed", tmp_path, w3, registry, index, key)
    stale = Outbox(tmp_path / "outbox.sqlite").get(key)
    # Something else from the same sender takes the nonce the outbox signed with.
    tx = Transactor(w3, [partner])
    other = tx.sign({"to": account(0).address, "value": 1}, partner.address, nonce=stale.tx_nonce)
    tx.wait(tx.send_raw(other.raw))
    Runner(Outbox(tmp_path / "outbox.sqlite"), {"transaction": TransactionHandler(Transactor(w3, [partner]))}).run()
    final = Outbox(tmp_path / "outbox.sqlite").get(key)
    assert final.status == "confirmed"
    assert final.tx_nonce == stale.tx_nonce + 1 and final.tx_raw != stale.tx_raw
    assert len(registrations(registry, partner.address)) == 1
    assert w3.eth.get_transaction_count(partner.address) == stale.tx_nonce + 2


def sent_not_mined(tmp_path: Path, w3, registry, index: int):
    """The child's registration recorded as sent, waiting in the pool of a node that mines nothing (automine off:
    the caller turns it on again); (partner, key, operation)."""
    partner = account(index)
    key = f"register:{partner.address}"
    w3.provider.make_request("evm_setAutomine", [False])
    run_child_until("recorded", tmp_path, w3, registry, index, key)
    sent = Outbox(tmp_path / "outbox.sqlite").get(key)
    assert sent.status == "sent" and w3.eth.get_transaction(sent.tx_hash)["blockNumber"] is None
    return partner, key, sent


def test_sent_transaction_lost_by_the_node_is_rebroadcast_unchanged(chain, tmp_path):
    w3, registry = chain
    try:
        partner, key, sent = sent_not_mined(tmp_path, w3, registry, 13)
        # A node restarted without its mempool: the broadcast transaction is gone, its nonce still free.
        w3.provider.make_request("anvil_dropTransaction", [sent.tx_hash])
        with pytest.raises(TransactionNotFound):
            w3.eth.get_transaction(sent.tx_hash)
    finally:
        w3.provider.make_request("evm_setAutomine", [True])
    assert registrations(registry, partner.address) == []
    Runner(Outbox(tmp_path / "outbox.sqlite"), {"transaction": TransactionHandler(Transactor(w3, [partner]))}).run()
    final = Outbox(tmp_path / "outbox.sqlite").get(key)
    assert final.status == "confirmed" and final.tx_raw == sent.tx_raw and final.tx_hash == sent.tx_hash
    assert len(registrations(registry, partner.address)) == 1
    assert w3.eth.get_transaction_count(partner.address) == 1


def test_a_sent_transaction_mined_while_its_resumption_looks_is_found_not_signed_again(chain, tmp_path):
    """A resumed transaction mined between the resumption's two looks at the chain (the sender's nonce, its receipt),
    as a chain that mines on its own may while the service restarts, is the one that took the nonce: it is found,
    not taken for lost, signed afresh and sent a second time (before, the second was refused and the operation
    marked failed, its transaction mined)."""
    w3, registry = chain
    try:
        partner, key, sent = sent_not_mined(tmp_path, w3, registry, 14)

        def mined_meanwhile(point, op=None):
            if point == "looked":  # between the resumption's two looks at the chain, the block with it is mined
                w3.provider.make_request("evm_setAutomine", [True])
                w3.provider.make_request("evm_mine", [])

        handler = TransactionHandler(Transactor(w3, [partner]), checkpoint=mined_meanwhile)
        Runner(Outbox(tmp_path / "outbox.sqlite"), {"transaction": handler}).run()
    finally:
        w3.provider.make_request("evm_setAutomine", [True])
    final = Outbox(tmp_path / "outbox.sqlite").get(key)
    assert final.status == "confirmed" and final.tx_hash == sent.tx_hash, final
    assert len(registrations(registry, partner.address)) == 1
    assert w3.eth.get_transaction_count(partner.address) == 1  # one transaction sent, not two


CONCURRENT_RUNNER = r"""
import sys
from pathlib import Path
from lepton_ledger.rounds.outbox import Outbox, Runner

db, log = sys.argv[1:]

def note(op, box):
    with open(log, "a") as out:  # O_APPEND: lines of both processes interleave whole
        out.write(op.key + "\n")
    return {"noted": op.key}

print(len(Runner(Outbox(Path(db)), {"note": note}).run()), flush=True)
"""


def test_runners_in_two_processes_execute_each_operation_once(tmp_path):
    outbox = Outbox(tmp_path / "o.sqlite")
    keys = [f"note:{i}" for i in range(40)]
    for key in keys:
        outbox.enqueue(key, "note", {})
    log = tmp_path / "executed.log"
    children = [
        subprocess.Popen(
            [sys.executable, "-c", CONCURRENT_RUNNER, str(tmp_path / "o.sqlite"), str(log)],
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    counts = [int(child.communicate(timeout=120)[0]) for child in children]
    assert all(child.returncode == 0 for child in children)
    assert sum(counts) == len(keys)
    assert sorted(log.read_text().split()) == sorted(keys)
    assert {op.status for op in outbox.operations()} == {"confirmed"}


def test_refused_transaction_fails_with_the_contract_error_and_spends_nothing(chain, tmp_path):
    w3, registry = chain
    partner = account(11)
    outbox = Outbox(tmp_path / "outbox.sqlite")
    outbox.enqueue(
        "bad",
        "transaction",
        transaction_payload(registry.functions.register(b"\x00" * 32, b"\x01" * 32), partner.address),
    )
    (op,) = Runner(outbox, {"transaction": TransactionHandler(Transactor(w3, [partner]))}).run()
    assert op.status == "failed" and "PartnerRegistryZeroProfileDigest" in (op.error or "")
    assert op.tx_raw is None
    assert w3.eth.get_transaction_count(partner.address) == 0
    assert registrations(registry, partner.address) == []


def test_transaction_reverted_on_chain_is_failed_with_its_receipt(chain, tmp_path):
    w3, registry = chain
    partner = account(12)
    outbox = Outbox(tmp_path / "outbox.sqlite")
    # An explicit gas limit skips estimation, so the refusal happens on-chain (status 0), not before signing.
    call = registry.functions.register(b"\x00" * 32, b"\x01" * 32)
    outbox.enqueue("reverts", "transaction", transaction_payload(call, partner.address, gas=200_000))
    (op,) = Runner(outbox, {"transaction": TransactionHandler(Transactor(w3, [partner]))}).run()
    assert op.status == "failed" and "reverted on-chain" in (op.error or "")
    assert op.result["status"] == 0 and op.result["tx_hash"] == op.tx_hash
    # Why: the call replayed on the state its block left, decoded as an estimate's refusal would have been.
    assert reverted_from_result(op.result).error == "PartnerRegistryZeroProfileDigest"
    assert w3.eth.get_transaction_count(partner.address) == 1


def test_enqueue_is_idempotent_by_key(tmp_path):
    outbox = Outbox(tmp_path / "o.sqlite")
    first = outbox.enqueue("put:1", "ipfs", {"bytes": "aa"})
    again = Outbox(tmp_path / "o.sqlite").enqueue("put:1", "ipfs", {"bytes": "bb"})
    assert again == first and again.payload == {"bytes": "aa"}
    assert [op.key for op in outbox.operations()] == ["put:1"]


def test_an_operations_bytes_are_stored_once_beside_its_row_and_survive_its_transitions(tmp_path):
    outbox = Outbox(tmp_path / "o.sqlite")
    model = bytes(range(256)) * 4096  # a megabyte, as an mlp's update: the row stays small
    op = outbox.enqueue("put:model", "put", {"cid": "bafy-model"}, model)
    assert op.payload == {"cid": "bafy-model"}
    assert outbox.enqueue("put:model", "put", {"cid": "other"}, b"other") == op  # the key wins, bytes included
    claimed = outbox.claim_next({"put"})
    assert claimed is not None and claimed.key == "put:model"
    outbox.mark_confirmed("put:model", {"cid": "bafy-model"})
    assert Outbox(tmp_path / "o.sqlite").data("put:model") == model  # as durable as the row, from any process
    assert outbox.data("no-such-key") is None
    with sqlite3.connect(tmp_path / "o.sqlite") as db:
        (payload,) = db.execute("SELECT payload FROM operations WHERE key = 'put:model'").fetchone()
        assert db.execute("SELECT count(*) FROM blobs").fetchone() == (0,)  # nor does the database
    assert len(payload) < 100  # a claim or a transition rewrites the row: it no longer carries the megabyte
    assert [p.read_bytes() for p in (tmp_path / "o.sqlite.blobs").iterdir()] == [model]  # a file beside it
    ops = outbox.enqueue_many([("a", "put", {}, b"A"), ("b", "transaction", {"to": "0x"})])
    assert [o.key for o in ops] == ["a", "b"] and (outbox.data("a"), outbox.data("b")) == (b"A", None)


def test_an_enqueue_killed_between_placing_its_bytes_and_recording_its_row_records_nothing(tmp_path):
    # The child dies right after its bytes are in place, before the row's transaction commits.
    child = (
        "import os, sys; from pathlib import Path; from lepton_ledger.rounds import outbox\n"
        "real = os.replace\n"
        "def replace_then_die(*a): real(*a); os._exit(9)\n"
        "outbox.os.replace = replace_then_die\n"
        "outbox.Outbox(Path(sys.argv[1])).enqueue('put:env', 'put', {'cid': 'first'}, b'first' * 20000)\n"
    )
    died = subprocess.run([sys.executable, "-c", child, str(tmp_path / "o.sqlite")], check=False)
    assert died.returncode == 9
    outbox = Outbox(tmp_path / "o.sqlite")
    assert outbox.find("put:env") is None  # rolled back with the process
    assert [p.read_bytes() for p in (tmp_path / "o.sqlite.blobs").iterdir()] == [b"first" * 20000]  # no row names it
    op = outbox.enqueue("put:env", "put", {"cid": "second"}, b"second" * 20000)
    assert op.payload == {"cid": "second"} and put_data(outbox, op) == b"second" * 20000
    assert not list((tmp_path / "o.sqlite.blobs").glob("*.staged"))


def test_small_bytes_are_kept_in_the_table_and_a_crashed_enqueues_file_is_removed(tmp_path):
    outbox = Outbox(tmp_path / "o.sqlite")
    envelope = b"e" * INLINE_BYTES  # an update of a small model: no new file for it
    op = outbox.enqueue("put:small", "put", {"cid": "bafy-small"}, envelope)
    assert not list((tmp_path / "o.sqlite.blobs").iterdir())
    assert Outbox(tmp_path / "o.sqlite").data("put:small") == envelope
    assert outbox.enqueue("put:small", "put", {"cid": "other"}, b"other") == op  # the key wins, bytes included
    assert outbox.data("put:small") == envelope
    # A process died after placing a large update's file, before its row: this time the bytes are small, or none.
    for key, data in (("put:env", b"second bytes"), ("submit:1", None)):
        blob = tmp_path / "o.sqlite.blobs" / hashlib.sha256(key.encode()).hexdigest()
        blob.write_bytes(b"bytes of an enqueue that recorded nothing" * 2000)
        op = outbox.enqueue(key, "put", {"cid": "second"}, data)
        assert outbox.data(key) == data and not blob.exists()


def test_bytes_an_outbox_kept_in_its_table_are_still_given(tmp_path):
    outbox = Outbox(tmp_path / "o.sqlite")
    op = outbox.enqueue("put:old", "put", {"cid": "bafy"})
    with sqlite3.connect(tmp_path / "o.sqlite") as db:  # as an outbox of the previous layout holds them
        db.execute("INSERT INTO blobs (key, data) VALUES ('put:old', ?)", (b"kept in the table",))
    assert put_data(outbox, op) == b"kept in the table"


def test_a_put_recorded_before_its_bytes_had_a_table_still_gives_them(tmp_path):
    outbox = Outbox(tmp_path / "o.sqlite")
    legacy = outbox.enqueue("put:old", "put", {"data": base64.b64encode(b"envelope").decode(), "cid": "bafy"})
    assert put_data(outbox, legacy) == b"envelope"
    bare = outbox.enqueue("put:none", "put", {"cid": "bafy"})
    with pytest.raises(OutboxError, match="put:none"):
        put_data(outbox, bare)


def test_a_live_claim_keeps_other_claimers_off(tmp_path):
    a, b = Outbox(tmp_path / "o.sqlite"), Outbox(tmp_path / "o.sqlite")
    a.enqueue("one", "ipfs", {})
    a.enqueue("two", "ipfs", {})
    assert a.claim_next().key == "one"
    assert b.claim_next().key == "two"
    assert b.claim_next() is None
    a.release("one")
    assert b.claim_next().key == "one"


def test_the_oldest_operation_a_dead_process_held_is_claimed_before_a_newer_free_one(tmp_path):
    import socket

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    outbox = Outbox(tmp_path / "o.sqlite")
    outbox.enqueue("one", "ipfs", {})
    outbox.enqueue("two", "ipfs", {})
    with sqlite3.connect(tmp_path / "o.sqlite") as db:  # what a process killed holding "one" left, lease running
        db.execute(
            "UPDATE operations SET claimed_by = ?, claimed_until = 9e18 WHERE key = 'one'",
            (f"{socket.gethostname()}:{dead.stdout.strip()}:feedbeef",),
        )
    assert outbox.claim_next().key == "one"
    assert outbox.claim_next().key == "two"
    assert outbox.claim_next() is None
    assert Outbox(tmp_path / "o.sqlite").claim_next(kinds={"tx"}) is None  # a kind with nothing open


def test_a_claim_with_nothing_open_waits_for_no_writer(tmp_path):
    """Nothing open, the common case: answered by a read, not queued behind another process's write lock."""
    import time

    outbox = Outbox(tmp_path / "o.sqlite")
    outbox.enqueue("done", "ipfs", {})
    outbox.mark_confirmed("done", {})
    writer = sqlite3.connect(tmp_path / "o.sqlite", isolation_level=None)
    writer.execute("BEGIN IMMEDIATE")  # another process in the middle of a write
    try:
        started = time.monotonic()
        assert outbox.claim_next() is None
        assert time.monotonic() - started < 1.0
    finally:
        writer.execute("ROLLBACK")
        writer.close()


def test_expired_lease_is_taken_over(tmp_path):
    a, b = Outbox(tmp_path / "o.sqlite", lease_seconds=-1), Outbox(tmp_path / "o.sqlite")
    a.enqueue("one", "ipfs", {})
    assert a.claim_next().key == "one"
    assert b.claim_next().key == "one"


def test_transitions_refuse_what_the_status_forbids(tmp_path):
    outbox = Outbox(tmp_path / "o.sqlite")
    outbox.enqueue("k", "tx", {})
    outbox.mark_sent("k", "0x" + "ab" * 32)
    confirmed = outbox.mark_confirmed("k", {"ok": True})
    assert outbox.mark_confirmed("k", {"other": 1}) == confirmed
    with pytest.raises(OutboxError, match="is confirmed"):
        outbox.mark_sent("k", "0x" + "cd" * 32)
    with pytest.raises(OutboxError, match="is confirmed"):
        outbox.mark_failed("k", "late")
    with pytest.raises(OutboxError, match="no outbox operation"):
        outbox.mark_confirmed("missing", {})
    assert outbox.claim_next() is None


def test_runner_runs_other_kinds_and_retries_transient_errors(tmp_path):
    outbox = Outbox(tmp_path / "o.sqlite")
    outbox.enqueue("put:a", "ipfs", {"data": "hello"})
    calls: list[str] = []

    def flaky_put(op, box):
        calls.append(op.key)
        if len(calls) == 1:
            raise ConnectionError("node down")
        return {"cid": "bafy-" + op.payload["data"]}

    runner = Runner(outbox, {"ipfs": flaky_put})
    with pytest.raises(ConnectionError):
        runner.run()
    assert outbox.get("put:a").status == "pending"
    (op,) = runner.run()
    assert op.status == "confirmed" and op.result == {"cid": "bafy-hello"} and op.attempts == 2
    assert calls == ["put:a", "put:a"]


def test_enqueue_many_records_all_or_nothing(tmp_path):
    outbox = Outbox(tmp_path / "o.sqlite")
    outbox.enqueue("b", "ipfs", {"old": True})
    ops = outbox.enqueue_many([("a", "ipfs", {"n": 1}), ("b", "ipfs", {"new": True}), ("c", "tx", {"n": 3})])
    assert [op.key for op in ops] == ["a", "b", "c"] and ops[1].payload == {"old": True}
    with pytest.raises(TypeError):  # the last payload cannot be stored: the first is not recorded either
        outbox.enqueue_many([("d", "ipfs", {}), ("e", "ipfs", {"bad": object()})])
    assert outbox.find("d") is None and outbox.find("e") is None
    assert [op.key for op in outbox.operations(prefix="a")] == ["a"]
    assert [op.key for op in outbox.operations("pending", prefix="")] == ["b", "a", "c"]


def test_retry_makes_only_a_failed_operation_pending_again(tmp_path):
    outbox = Outbox(tmp_path / "o.sqlite")
    outbox.enqueue("k", "tx", {"v": 1})
    with pytest.raises(OutboxError, match="is pending"):
        outbox.retry("k")
    outbox.mark_failed("k", "refused", {"error": "X", "args": {}})
    again = outbox.retry("k", {"v": 2})
    assert (again.status, again.payload, again.error, again.result) == ("pending", {"v": 2}, None, None)
    outbox.mark_confirmed("k", {"ok": True})
    with pytest.raises(OutboxError, match="is confirmed"):
        outbox.retry("k")


@pytest.mark.parametrize("damage", ["garbage", "truncated"])
def test_a_damaged_outbox_file_is_named_and_left_as_it_is(tmp_path, damage):
    path = tmp_path / "o.sqlite"
    outbox = Outbox(path)
    for i in range(200):
        outbox.enqueue(f"put:{i}", "ipfs", {"bytes": "aa" * 100})
    del outbox
    # Its SQLite connection is freed by the cycle collector, and only its closing moves the WAL into the file: the
    # file damaged below must hold the operations (left in the WAL, a third of the file can still read as empty).
    gc.collect()
    assert not path.with_name("o.sqlite-wal").exists()
    data = path.read_bytes()
    for side in (path.with_name("o.sqlite-wal"), path.with_name("o.sqlite-shm")):
        side.unlink(missing_ok=True)
    broken = b"this is no SQLite file" * 300 if damage == "garbage" else data[: len(data) // 3]
    path.write_bytes(broken)
    with pytest.raises(OutboxError, match=rf"^the outbox {path} is damaged \(.+\): it records this party's"):
        Outbox(path).operations()
    assert path.read_bytes() == broken


def _effects(chain, path: Path):
    from lepton_ledger.rounds.effects import RoundEffects
    from lepton_ledger.storage.local import LocalStore

    w3, _ = chain
    return RoundEffects(Outbox(path), tx=Transactor(w3, [account(0)]), store=LocalStore(path.parent / "blocks"))


def test_finish_given_an_operation_another_process_ended_since_returns_it_ended(chain, tmp_path):
    """`finish(known=...)` spares a read; when the operation ended in another process after the caller read it,
    finish reads it again instead of calling it held by a live process."""
    effects = _effects(chain, tmp_path / "o.sqlite")
    stale = effects.outbox.enqueue(*effects.put_operation("envelope:1", b"update bytes"))
    other = Outbox(tmp_path / "o.sqlite")  # another process of the same party
    assert other.claim_next().key == "envelope:1"
    other.mark_confirmed("envelope:1", {"cid": stale.payload["cid"], "digest": "0x" + "00" * 32})
    assert stale.status == "pending"
    assert effects.finish("envelope:1", known=stale).status == "confirmed"


def test_finish_given_an_operation_another_live_process_holds_refuses(chain, tmp_path):
    effects = _effects(chain, tmp_path / "o.sqlite")
    known = effects.outbox.enqueue(*effects.put_operation("envelope:1", b"update bytes"))
    assert Outbox(tmp_path / "o.sqlite").claim_next().key == "envelope:1"  # claimed, lease running
    with pytest.raises(OutboxError, match="held by another live process"):
        effects.finish("envelope:1", known=known)
    with pytest.raises(OutboxError, match="held by another live process"):
        effects.finish("envelope:1")
