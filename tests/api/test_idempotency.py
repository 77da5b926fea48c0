"""An Idempotency-Key whose request was killed with the service: its retry after the restart runs it, once."""

from __future__ import annotations

import os
import signal
import sqlite3
import threading
import time

import httpx
from service_world import CLOSE, follow_job, fresh_account, round_with_commitments

from lepton_ledger.chain import node
from lepton_ledger.chain.state import Partner


def _unanswered(service, caller: str, key: str) -> bool:
    with sqlite3.connect(service.data_dir / "api" / "service.sqlite", isolation_level=None) as db:
        row = db.execute("SELECT body FROM idempotency WHERE caller = ? AND key = ?", (caller, key)).fetchone()
    return row is not None and row[0] is None


def test_a_request_killed_mid_way_is_run_once_by_its_retry_after_a_restart(service):
    account = fresh_account()
    node.fund(service.w3, account.address, 10**18)
    service.tx.add(account)
    service.tx.transact(
        service.d.partners.functions.register(b"\x05" * 32, b"\x06" * 32),
        account.address,
    )
    # The caller's roles are read at the latest block and kept until the next one. With mining paused no block
    # comes (a job of an earlier test sending a transaction would bring one, and the request would then hang
    # reading the roles from the stopped chain before it recorded its key).
    service.w3.provider.make_request("evm_setAutomine", [False])
    try:
        service.wait_block(service.w3.eth.block_number)  # the latest, which stays the latest
        headers = service.headers(account) | {"Idempotency-Key": "profile-1"}
        unsigned = service.api.post(
            "/v1/transactions/prepare",
            headers=headers,
            json={"contract": "PartnerRegistry", "function": "updateProfile", "args": ["0x" + "07" * 32]},
        ).json()
        raw = account.sign_transaction({k: v for k, v in unsigned.items() if k != "from"}).raw_transaction.to_0x_hex()
        before = service.w3.eth.get_transaction_count(account.address)
        _kill_mid_request(service, account.address, raw, headers)
    finally:
        service.w3.provider.make_request("evm_setAutomine", [True])
        service.w3.provider.make_request("evm_mine", [])  # what came while mining was paused
    assert _unanswered(service, account.address, "profile-1")  # what the killed process left
    service.server.start()

    retry = service.api.post("/v1/transactions", json={"raw": raw}, headers=headers)
    assert retry.status_code == 200 and retry.json()["status"] == 1, retry.text
    assert service.api.post("/v1/transactions", json={"raw": raw}, headers=headers).json() == retry.json()
    assert service.w3.eth.get_transaction_count(account.address) == before + 1  # sent once
    assert Partner.read(service.d.partners.functions.partnerOf(account.address)).profile_digest == b"\x07" * 32


def _kill_mid_request(service, caller: str, raw: str, headers: dict[str, str]) -> None:
    """Relays `raw` with the chain stopped, so that the request hangs once its key is recorded, and kills the
    service then (kill -9)."""
    answered: list[object] = []  # what the request got, if anything: a failure's explanation

    def post() -> None:
        try:
            answered.append(service.api.post("/v1/transactions", json={"raw": raw}, headers=headers))
        except httpx.TransportError as exc:
            answered.append(exc)  # the service was killed under it

    anvil = node.status(service.data_dir).pid
    os.kill(anvil, signal.SIGSTOP)  # the chain stops answering: the relay hangs after recording the key
    try:
        thread = threading.Thread(target=post)
        thread.start()
        deadline = time.monotonic() + 30
        while not _unanswered(service, caller, "profile-1"):
            assert time.monotonic() < deadline, f"the request never recorded its key; it got {answered}"
        service.server.kill()
        thread.join(timeout=30)
    finally:
        os.kill(anvil, signal.SIGCONT)


def test_a_close_retried_after_its_process_died_answers_the_job_it_had_submitted(
    service,
):
    """The process died after queueing the job and before keeping its answer: the retry finds that job."""
    agreement_id, round_id = round_with_commitments(service)
    coordinator = service.roles.coordinator.address
    headers = service.headers(service.roles.coordinator) | {"Idempotency-Key": "close-killed"}
    path = f"/v1/agreements/{agreement_id}/rounds/{round_id}/close"
    first = service.api.post(path, json=CLOSE, headers=headers)
    assert first.status_code == 202, first.text
    with sqlite3.connect(service.data_dir / "api" / "service.sqlite", isolation_level=None) as db:
        db.execute(  # what a kill -9 between the job's insert and the answer's leaves
            "UPDATE idempotency SET body = NULL, status = NULL, owner = 'a-dead-instance' WHERE caller = ? AND key = ?",
            (coordinator, "close-killed"),
        )
    again = service.api.post(path, json=CLOSE, headers=headers)
    assert again.status_code == 202 and again.json()["id"] == first.json()["id"], again.text
    assert follow_job(service, first.json()["id"], service.headers(service.roles.coordinator))["status"] == "done"
    with sqlite3.connect(service.data_dir / "api" / "service.sqlite", isolation_level=None) as db:
        jobs = db.execute(
            "SELECT COUNT(*) FROM jobs WHERE agreement_id = ? AND round_id = ?",
            (agreement_id, round_id),
        ).fetchone()[0]
    assert jobs == 1
