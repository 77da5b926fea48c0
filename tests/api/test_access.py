"""Who reads blobs and jobs: the parties of the agreement they belong to, the coordinator and auditors; a
suspended partner reads no blob; anyone else is 403, whether or not the store holds the blob."""

from __future__ import annotations

import pytest
from service_world import follow_job

from lepton_ledger.chain.state import Round
from lepton_ledger.protocol.addressing import cid_for_digest


def _report_cid(service) -> str:
    return cid_for_digest(
        Round.read(service.d.ledger.functions.round(service.agreement_id, service.round_id)).report_digest
    )


def test_a_round_artifact_is_read_by_its_agreements_parties_and_the_overseers(service):
    cid = _report_cid(service)
    for account in (service.alpha, service.roles.coordinator, service.roles.auditor):
        assert service.api.get(f"/v1/blobs/{cid}", headers=service.headers(account)).status_code == 200
    outsider = service.headers(service.outsider)  # registered, approved, party to nothing
    reply = service.api.get(f"/v1/blobs/{cid}", headers=outsider)
    assert reply.status_code == 403 and reply.json()["error"]["code"] == "Forbidden", reply.text
    assert service.api.head(f"/v1/blobs/{cid}", headers=outsider).status_code == 403
    # Whether the store holds a CID is not told to whoever may not read it; an overseer learns it.
    missing = cid_for_digest(b"\x01" * 32)
    assert service.api.get(f"/v1/blobs/{missing}", headers=outsider).status_code == 403
    assert service.api.get(f"/v1/blobs/{missing}", headers=service.headers(service.roles.auditor)).status_code == 404


def test_a_suspended_party_reads_no_blob_until_reinstated(service):
    cid, alpha = _report_cid(service), service.alpha
    headers = service.headers(alpha)
    coordinator = service.roles.coordinator.address
    receipt = service.tx.transact(service.d.partners.functions.suspend(alpha.address, b"\x03" * 32), coordinator)
    try:
        service.wait_block(receipt["blockNumber"])
        assert service.api.get("/v1/auth/me", headers=headers).json()["roles"] == ["partner:suspended"]
        assert service.api.get(f"/v1/blobs/{cid}", headers=headers).status_code == 403
    finally:
        receipt = service.tx.transact(service.d.partners.functions.approve(alpha.address), coordinator)
    service.wait_block(receipt["blockNumber"])
    assert service.api.get(f"/v1/blobs/{cid}", headers=headers).status_code == 200


@pytest.fixture(scope="module")
def failed_job(service):
    """A close job of agreement 1's open round that fails at once (another evaluation set than the round's: the
    split's seed differs): a job to read, and nothing sent."""
    headers = service.headers(service.roles.coordinator)
    reply = service.api.post(
        f"/v1/agreements/{service.agreement_id}/rounds/{service.open_round}/close",
        json={"dataset": "digits", "partitions": 2, "seed": 1},
        headers=headers,
    )
    assert reply.status_code == 202, reply.text
    return follow_job(service, reply.json()["id"], headers)["id"]


def test_a_job_is_read_by_its_agreements_parties_and_the_overseers(service, failed_job):
    for account in (
        service.alpha,
        service.beta,
        service.roles.coordinator,
        service.roles.auditor,
    ):
        reply = service.api.get(f"/v1/jobs/{failed_job}", headers=service.headers(account))
        assert reply.status_code == 200 and reply.json()["status"] == "failed", reply.text
        assert "evaluation set" in reply.json()["error"]
    reply = service.api.get(f"/v1/jobs/{failed_job}", headers=service.headers(service.outsider))
    assert reply.status_code == 403 and reply.json()["error"]["code"] == "Forbidden", reply.text
