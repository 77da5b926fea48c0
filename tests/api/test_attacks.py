"""An attacker's read of the service's newest routes: batched commitments and their anchor job, the coordinator's
steps, the miner, the read model and the dashboard. Each test is an attack that worked on the code it was written
against; the fix it proves is named in its docstring."""

from __future__ import annotations

import time

import pytest
from service_world import commit_through_client, follow_job, open_round
from test_commitments import _batches
from test_coordination import _count, _post, _terms


def _first_failure(world, job_id: int, headers: dict[str, str], timeout: float = 180.0) -> dict:
    """The job once an attempt of it has failed (its error set), whether it is queued again or failed for good."""
    deadline = time.monotonic() + timeout
    while not (job := world.api.get(f"/v1/jobs/{job_id}", headers=headers).json())["error"]:
        assert job["status"] != "done" and time.monotonic() < deadline, job
        time.sleep(0.2)  # polling a job's status, as any client does
    return job


def test_an_anchor_that_fails_for_a_moment_is_tried_again_before_the_deadline(service, tmp_path):
    """A failed anchor job stranded the round: every party had committed, so a commitment resent was
    ``AlreadyCommitted`` and nothing queued the anchor again; a node or a coordinator's balance failing for one
    moment near the deadline lost every partner's update. The job is queued again while the round takes a batch."""
    w = service
    agreement_id, round_id = open_round(w, tmp_path / "coordinator")
    coordinator, coordinator_headers = w.roles.coordinator.address, w.headers(w.roles.coordinator)
    balance = w.w3.eth.get_balance(coordinator)
    w.w3.provider.make_request("anvil_setBalance", [coordinator, hex(0)])  # commitBatch cannot pay for its gas
    try:
        kept = commit_through_client(w, w.alpha, 0, agreement_id, round_id, tmp_path)
        commit_through_client(
            w, w.beta, 1, agreement_id, round_id, tmp_path
        )  # every party has committed: the anchor is due
        failed = _first_failure(w, kept["anchor_job"], coordinator_headers)
    finally:
        w.w3.provider.make_request("anvil_setBalance", [coordinator, hex(balance)])
    assert failed["status"] == "queued", failed
    job = follow_job(w, kept["anchor_job"], coordinator_headers)
    assert job["status"] == "done" and job["result"]["partners"] == sorted([w.alpha.address, w.beta.address]), job
    assert len(_batches(w, agreement_id, round_id)) == 1


KRUM_FOR_100_BYZANTINE = {
    "aggregation_rule": "krum",
    "aggregation_params": {"f": 100},
    "scoring": "leave_one_out:accuracy",
    "scoring_params": {},
    "max_norm": 1.0,
}


@pytest.mark.parametrize(
    "document",
    [{"model": "no-such-model"}, {"rules": KRUM_FOR_100_BYZANTINE}],
    ids=["unknown-model", "krum-f-beyond-the-parties"],
)
def test_terms_whose_round_rules_cannot_run_are_refused_before_proposing(service, document):
    """Terms every party would sign, whose rounds can never open or close (a model no code builds, Krum tolerating
    100 faulty updates out of two), were proposed on-chain: parties stake into an agreement that cannot run."""
    before, count = service.coordinator_nonce(), _count(service)
    terms = _terms(service, document={"task": "digits", **document})
    reply = _post(service, "/v1/agreements", terms, service.roles.coordinator, key=f"absurd-{document}")
    assert reply.status_code == 422, reply.text
    assert service.coordinator_nonce() == before and _count(service) == count
