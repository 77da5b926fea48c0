"""Round close as a job: queued by the agreement's coordinator, one at a time per round, followed to the end."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest
from service_world import CLOSE, follow_job, round_with_commitments

from lepton_ledger.chain.state import Round
from lepton_ledger.units import RoundStatus


@pytest.fixture(scope="module")
def committed(service):
    return round_with_commitments(service)


def test_the_coordinator_closes_a_round_as_a_job(service, committed):
    agreement_id, round_id = committed
    headers = service.headers(service.roles.coordinator)
    path = f"/v1/agreements/{agreement_id}/rounds/{round_id}/close"
    reply = service.api.post(path, json=CLOSE, headers=headers | {"Idempotency-Key": "close-1"})
    assert reply.status_code == 202, reply.text
    job = reply.json()
    assert job["status"] in ("queued", "running") and job["kind"] == "close"
    # The same key again: the same job, no second one; another request while it runs: 409.
    again = service.api.post(path, json=CLOSE, headers=headers | {"Idempotency-Key": "close-1"})
    assert again.status_code == 202 and again.json()["id"] == job["id"]
    running = service.api.post(path, json=CLOSE, headers=headers)
    assert running.status_code == 409 and running.json()["error"]["code"] == "JobRunning", running.text

    done = follow_job(service, job["id"], headers)
    assert done["status"] == "done", done
    assert sorted(done["result"]["accepted"]) == sorted([service.alpha.address, service.beta.address])
    record = Round.read(service.d.ledger.functions.round(agreement_id, round_id))
    assert record.status is RoundStatus.FINALIZED  # once
    service.wait_block(service.w3.eth.block_number)  # the read model (per block) has seen the finalization
    assert service.api.post(path, json=CLOSE, headers=headers).status_code == 409  # no longer open


def test_close_refusals(service, committed):
    agreement_id, round_id = committed
    coordinator = service.headers(service.roles.coordinator)
    before = service.coordinator_nonce()
    assert (
        service.api.post(
            f"/v1/agreements/{agreement_id}/rounds/{round_id}/close", json=CLOSE, headers=service.headers(service.alpha)
        ).status_code
        == 403
    )
    assert service.api.post(f"/v1/agreements/{agreement_id}/rounds/{round_id}/close", json=CLOSE).status_code == 401
    assert service.api.post("/v1/agreements/99/rounds/1/close", json=CLOSE, headers=coordinator).status_code == 404
    assert (
        service.api.post(f"/v1/agreements/{agreement_id}/rounds/99/close", json=CLOSE, headers=coordinator).status_code
        == 404
    )
    assert (
        service.api.post(
            f"/v1/agreements/{agreement_id}/rounds/{round_id}/close", json={"dataset": "mnist"}, headers=coordinator
        ).status_code
        == 422
    )
    assert service.coordinator_nonce() == before
    assert service.api.get("/v1/jobs/424242", headers=coordinator).status_code == 404


def test_a_close_job_killed_with_the_service_finishes_once_after_restart(service):
    agreement_id, round_id = round_with_commitments(service)
    headers = service.headers(service.roles.coordinator)
    job = service.api.post(f"/v1/agreements/{agreement_id}/rounds/{round_id}/close", json=CLOSE, headers=headers).json()
    deadline = time.monotonic() + 60
    while service.api.get(f"/v1/jobs/{job['id']}", headers=headers).json()["status"] == "queued":
        assert time.monotonic() < deadline
    service.server.kill()  # kill -9 while the job runs (or just after it ended)
    service.server.start()
    done = follow_job(service, job["id"], headers)  # the token outlives the restart: tokens are in the database
    assert done["status"] == "done", done
    finalized = service.d.ledger.events.RoundFinalized().get_logs(
        from_block=0, argument_filters={"agreementId": agreement_id, "round": round_id}
    )
    assert len(finalized) == 1
    assert Round.read(service.d.ledger.functions.round(agreement_id, round_id)).status is RoundStatus.FINALIZED


def test_a_second_service_on_the_same_data_directory_is_refused(service):
    result = subprocess.run(
        [sys.executable, "-m", "lepton_ledger.cli", "serve", "--port", "0"],
        env=service.server.env,
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 1 and "another lepton-ledger serve runs on" in result.stdout + result.stderr


def test_a_body_that_is_not_json_is_422(service):
    """FastAPI answers 400 for a body it cannot parse; the service documents 422 for malformed input."""
    reply = service.api.post(
        f"/v1/agreements/{service.agreement_id}/rounds/{service.open_round}/close",
        content=b"\xff{",
        headers=service.headers(service.roles.coordinator) | {"Content-Type": "application/json"},
    )
    assert reply.status_code == 422 and reply.json()["error"]["code"] == "Malformed", reply.text
