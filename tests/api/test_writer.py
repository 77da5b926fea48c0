"""The service's one writer: every transaction of the coordinator's key is sent by one thread through the
coordinator's outbox, so that concurrent requests never race on its nonce, and a service killed between a
transaction's broadcast and its receipt neither loses nor doubles it: the retry of the request answers its
outcome. Jobs: an anchor due while an audit runs does not wait for the audit."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from agreement_setup import funded_agreement
from service_world import CLOSE, audit_state_held, client_partner, commit_through_client, follow_job, open_round

from lepton_ledger.api.client import ServiceClient

RACE_TIMEOUT = 120.0  # seconds a test waits for the service to act, not a pause


def _count(service) -> int:
    return int(service.d.agreements.functions.agreementCount().call())


def _terms(service) -> dict:
    return {
        "parties": [service.alpha.address, service.beta.address],
        "days": 30,
        "rounds": 3,
        "arbiter": service.roles.admin.address,
        "document": {"task": "one writer", "model": "logreg"},
    }


def test_concurrent_coordinator_requests_each_land_once_with_a_nonce_of_their_own(service):
    agreement_id = funded_agreement(
        service.tx, service.d, service.token, service.roles, [service.alpha, service.beta], store=service.store
    )
    service.wait_block(service.w3.eth.block_number)
    headers = service.headers(service.roles.coordinator)
    before, count = service.coordinator_nonce(), _count(service)
    opening = {**CLOSE, "round_seconds": 600}
    requests = [
        ("/v1/agreements", _terms(service), "race-propose-1"),
        ("/v1/agreements", _terms(service), "race-propose-2"),
        (f"/v1/agreements/{agreement_id}/rounds", opening, "race-open-1"),
        (f"/v1/agreements/{agreement_id}/rounds", opening, "race-open-2"),
    ]
    start = threading.Barrier(len(requests))

    def post(path: str, body: dict, key: str) -> httpx.Response:
        with httpx.Client(base_url=service.api.base_url, timeout=RACE_TIMEOUT) as client:
            start.wait()  # all four requests in flight together
            return client.post(path, json=body, headers=headers | {"Idempotency-Key": key})

    with ThreadPoolExecutor(len(requests)) as pool:
        replies = list(pool.map(lambda request: post(*request), requests))
    proposals, opens = replies[:2], replies[2:]
    assert [r.status_code for r in proposals] == [200, 200], [r.text for r in proposals]
    assert (
        sorted(r.json()["agreement_id"] for r in proposals) == [count + 1, count + 2] and _count(service) == count + 2
    )
    # One round opens; the other request, checked in its turn on the writer, finds it open.
    assert sorted(r.status_code for r in opens) == [200, 409], [r.text for r in opens]
    refused = next(r for r in opens if r.status_code == 409)
    assert refused.json()["error"]["code"] == "RoundStillOpen", refused.text
    # Two proposals and one openRound, each mined with its own nonce of the coordinator.
    assert service.coordinator_nonce() == before + 3
    mined = [
        service.w3.eth.get_transaction(log["transactionHash"])["nonce"]
        for log in service.d.agreements.events.AgreementProposed().get_logs(from_block=0)
        if log["args"]["agreementId"] > count
    ]
    assert sorted(mined) == sorted(set(mined)) and len(mined) == 2


def test_a_proposal_killed_between_broadcast_and_receipt_is_mined_once_and_its_retry_answers_it(service):
    w3, coordinator = service.w3, service.roles.coordinator
    headers = service.headers(coordinator) | {"Idempotency-Key": "propose-killed"}
    body, before, count = _terms(service), service.coordinator_nonce(), _count(service)
    w3.provider.make_request("evm_setAutomine", [False])  # the node takes transactions and mines none
    try:
        with ThreadPoolExecutor(1) as pool:
            request = pool.submit(service.api.post, "/v1/agreements", json=body, headers=headers)
            deadline = time.monotonic() + RACE_TIMEOUT
            while w3.eth.get_transaction_count(coordinator.address, "pending") == before:
                assert time.monotonic() < deadline and not request.done(), "the proposal was never broadcast"
                time.sleep(0.05)  # polling the node for the broadcast
            service.server.kill()  # kill -9: the transaction broadcast, its receipt not yet seen
            with pytest.raises(httpx.TransportError):
                request.result()
        w3.provider.make_request("anvil_dropAllTransactions", [])  # and the node lost it meanwhile
    finally:
        w3.provider.make_request("evm_setAutomine", [True])
        if service.server.process.poll() is not None:
            service.server.start()
    retry = service.api.post("/v1/agreements", json=body, headers=headers)
    assert retry.status_code == 200, retry.text
    assert retry.json()["agreement_id"] == count + 1 == _count(service)  # proposed once: the same signed bytes
    assert service.coordinator_nonce() == before + 1
    again = service.api.post("/v1/agreements", json=body, headers=headers)
    assert again.json() == retry.json() and service.coordinator_nonce() == before + 1


def test_a_request_behind_a_step_that_never_ends_is_answered_503_and_sends_nothing(service):
    """A step that never ends (its transaction taken by the node and never mined) holds the writer: a request behind
    it is answered 503 WriterBusy once the writer's wait (10 s by default) has passed, instead of holding a worker
    thread of the server until that step ends; its step is dropped unrun, and its retry later runs it."""
    w3, coordinator = service.w3, service.roles.coordinator
    headers = service.headers(coordinator)
    body, before, count = _terms(service), service.coordinator_nonce(), _count(service)
    w3.provider.make_request("evm_setAutomine", [False])  # the node takes transactions and mines none
    try:
        with ThreadPoolExecutor(1) as pool:
            held = pool.submit(
                service.api.post, "/v1/agreements", json=body, headers=headers | {"Idempotency-Key": "held-step"}
            )
            deadline = time.monotonic() + RACE_TIMEOUT
            while w3.eth.get_transaction_count(coordinator.address, "pending") == before:
                assert time.monotonic() < deadline and not held.done(), "the proposal was never broadcast"
                time.sleep(0.05)  # polling the node for the broadcast
            behind = service.api.post("/v1/agreements", json=body, headers=headers | {"Idempotency-Key": "behind"})
            assert behind.status_code == 503, behind.text
            assert behind.json()["error"]["code"] == "WriterBusy" and behind.headers["Retry-After"]
            assert w3.eth.get_transaction_count(coordinator.address, "pending") == before + 1  # nothing of it sent
            w3.provider.make_request("evm_setAutomine", [True])
            w3.provider.make_request("evm_mine", [])  # the held step's transaction mined: the step ends
            assert held.result().status_code == 200, held.result().text
    finally:
        w3.provider.make_request("evm_setAutomine", [True])
    retry = service.api.post("/v1/agreements", json=body, headers=headers | {"Idempotency-Key": "behind"})
    assert retry.status_code == 200, retry.text
    assert retry.json()["agreement_id"] == count + 2 == _count(service)
    assert service.coordinator_nonce() == before + 2


def test_an_anchor_due_while_an_audit_runs_is_anchored_before_the_audit_ends(service, tmp_path):
    w = service
    agreement_id, round_id = open_round(w, tmp_path / "coordinator")
    kept = commit_through_client(w, w.alpha, 0, agreement_id, round_id, tmp_path)
    auditor, coordinator = w.headers(w.roles.auditor), w.headers(w.roles.coordinator)
    recipients = [w.roles.coordinator.address, w.roles.auditor.address]
    chain = {"chain_id": w.w3.eth.chain_id, "ledger": w.d.ledger.address}
    with ServiceClient(str(w.api.base_url), w.beta, chain_id=w.w3.eth.chain_id) as beta:
        # beta's update trained and uploaded first: within the audit's wait, only its commitment is handed in.
        signed = client_partner(w, beta, w.beta, 1, agreement_id, round_id, tmp_path).run_round_batched(
            agreement_id, round_id, recipients
        )
        held = audit_state_held(w)
        try:
            audit = w.api.post("/v1/audit", headers=auditor | {"Idempotency-Key": "audit-held"}).json()
            deadline = time.monotonic() + RACE_TIMEOUT
            while w.api.get(f"/v1/jobs/{audit['id']}", headers=auditor).json()["status"] == "queued":
                assert time.monotonic() < deadline, "the audit never started"
                time.sleep(0.05)  # polling the job's status
            beta.submit_commitment(signed, **chain)  # every party committed: the anchor is due now
            anchored = follow_job(w, kept["anchor_job"], coordinator, timeout=20.0)  # within the audit's wait
            assert anchored["status"] == "done", anchored
            assert w.api.get(f"/v1/jobs/{audit['id']}", headers=auditor).json()["status"] == "running"
        finally:
            held.close()
    assert follow_job(w, audit["id"], auditor)["status"] == "done"
