"""The service's one writer: every transaction of the coordinator's key is sent by one thread through the
coordinator's outbox, so that concurrent requests never race on its nonce, and a service killed between a
transaction's broadcast and its receipt neither loses nor doubles it: the retry of the request answers its
outcome. Jobs: an anchor due while an audit runs does not wait for the audit, and a close's computation holds
neither the writer nor the anchors."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any

import httpx
import pytest
from agreement_setup import funded_agreement
from service_world import (
    CLOSE,
    audit_state_held,
    client_partner,
    commit_through_client,
    events_held,
    follow_job,
    open_round,
    round_with_commitments,
)

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
    auditor = w.headers(w.roles.auditor)
    with _anchor_pending(w, tmp_path) as pending:
        held = audit_state_held(w)
        try:
            audit = w.api.post("/v1/audit", headers=auditor | {"Idempotency-Key": "audit-held"}).json()
            _started(w, audit["id"], auditor)
            _anchored_while_running(w, pending, audit["id"], auditor)
        finally:
            held.close()
    assert follow_job(w, audit["id"], auditor)["status"] == "done"


def test_while_a_close_computes_coordinator_requests_are_answered_and_another_round_is_anchored(service, tmp_path):
    """A close computes its outcome on its own thread, holding neither the writer nor the anchors' thread: held
    inside its computation (its event index's file locked for writing, so that its sync waits), a proposal is
    answered and another agreement's due anchor completes; released, the close finalizes its round once."""
    w = service
    closing, closing_round = round_with_commitments(w)
    coordinator = w.headers(w.roles.coordinator)
    with _anchor_pending(w, tmp_path) as pending:
        held = events_held(w)
        try:
            path = f"/v1/agreements/{closing}/rounds/{closing_round}/close"
            close = w.api.post(path, json=CLOSE, headers=coordinator | {"Idempotency-Key": "close-held"}).json()
            _started(w, close["id"], coordinator)
            proposed = w.api.post(
                "/v1/agreements", json=_terms(w), headers=coordinator | {"Idempotency-Key": "while-closing"}
            )
            assert proposed.status_code == 200, proposed.text  # not 503 WriterBusy behind the close
            _anchored_while_running(w, pending, close["id"], coordinator)
        finally:
            held.close()
    assert follow_job(w, close["id"], coordinator)["status"] == "done"
    finalized = w.d.ledger.events.RoundFinalized().get_logs(
        from_block=0, argument_filters={"agreementId": closing, "round": closing_round}
    )
    assert len(finalized) == 1


def _started(service, job_id: int, headers: dict[str, str]) -> None:
    """Returns once the job has left the queue."""
    deadline = time.monotonic() + RACE_TIMEOUT
    while service.api.get(f"/v1/jobs/{job_id}", headers=headers).json()["status"] == "queued":
        assert time.monotonic() < deadline, f"job {job_id} never started"
        time.sleep(0.05)  # polling the job's status


@contextmanager
def _anchor_pending(service, folder) -> Iterator[tuple[int, ServiceClient, Any]]:
    """A new agreement's round whose anchor job waits for beta alone: alpha's commitment kept, beta's update trained
    and uploaded, its commitment not handed in. Yields (the anchor job's id, beta's client, beta's commitment)."""
    agreement_id, round_id = open_round(service, folder / "coordinator")
    kept = commit_through_client(service, service.alpha, 0, agreement_id, round_id, folder)
    recipients = [service.roles.coordinator.address, service.roles.auditor.address]
    with ServiceClient(str(service.api.base_url), service.beta, chain_id=service.w3.eth.chain_id) as beta:
        signed = client_partner(service, beta, service.beta, 1, agreement_id, round_id, folder).run_round_batched(
            agreement_id, round_id, recipients
        )
        yield kept["anchor_job"], beta, signed


def _anchored_while_running(
    service, pending: tuple[int, ServiceClient, Any], job_id: int, headers: dict[str, str]
) -> None:
    """beta's commitment handed in (every party committed: the anchor is due now), the anchor job completes while
    job `job_id`, held (at most its 30 s busy timeout), still runs."""
    anchor_job, beta, signed = pending
    beta.submit_commitment(signed, chain_id=service.w3.eth.chain_id, ledger=service.d.ledger.address)
    anchored = follow_job(service, anchor_job, service.headers(service.roles.coordinator), timeout=20.0)
    assert anchored["status"] == "done", anchored
    assert service.api.get(f"/v1/jobs/{job_id}", headers=headers).json()["status"] == "running"
