"""The audit as a job of the service, with its auditor key: queued by an auditor, its JSON result left where the
dashboard reads it, its HTML report served to auditors and the coordinator."""

from __future__ import annotations

import json
import sqlite3
import time

from service_world import audit_state_held, follow_job


def test_an_auditor_runs_the_audit_as_a_job_and_reads_its_report(service):
    auditor = service.headers(service.roles.auditor)
    latest = service.data_dir / "audit" / "latest.json"
    latest.unlink(missing_ok=True)
    assert service.api.get("/v1/audit/report", headers=auditor).status_code == 404  # no audit yet
    queued = service.api.post("/v1/audit", headers=auditor | {"Idempotency-Key": "audit-1"})
    assert queued.status_code == 202, queued.text
    again = service.api.post("/v1/audit", headers=auditor | {"Idempotency-Key": "audit-1"})
    assert again.json()["id"] == queued.json()["id"]  # one job for one key
    job = follow_job(service, queued.json()["id"], auditor)
    assert job["status"] == "done", job["error"]
    result = json.loads(latest.read_text())
    assert job["result"]["block"] == result["audited_at_block"] and job["result"]["checks"] == len(result["checks"])
    assert job["result"]["checks"] > 0 and job["result"]["ok"], [c for c in result["checks"] if not c["ok"]][:3]
    for account in (service.roles.auditor, service.roles.coordinator):
        report = service.api.get("/v1/audit/report", headers=service.headers(account))
        assert report.status_code == 200 and report.headers["content-type"].startswith("text/html")
        assert "default-src 'none'" in report.headers["content-security-policy"]
        assert str(result["audited_at_block"]) in report.text


def _audit_jobs(service) -> int:
    with sqlite3.connect(service.data_dir / "api" / "service.sqlite", isolation_level=None) as db:
        return db.execute("SELECT COUNT(*) FROM jobs WHERE kind = 'audit'").fetchone()[0]


def test_only_auditors_run_the_audit_and_only_overseers_read_it(service):
    before = _audit_jobs(service)
    assert service.api.post("/v1/audit").status_code == 401
    for account in (service.alpha, service.outsider, service.roles.coordinator):
        reply = service.api.post("/v1/audit", headers=service.headers(account))
        assert reply.status_code == 403, reply.text
    assert service.api.get("/v1/audit/report").status_code == 401
    for account in (service.alpha, service.outsider):
        assert service.api.get("/v1/audit/report", headers=service.headers(account)).status_code == 403
    assert _audit_jobs(service) == before


def test_a_malformed_result_on_disk_is_no_report(service):
    latest = service.data_dir / "audit" / "latest.json"
    latest.parent.mkdir(parents=True, exist_ok=True)
    kept = latest.read_bytes() if latest.exists() else None
    try:
        latest.write_text('{"not": "an audit"}')
        reply = service.api.get("/v1/audit/report", headers=service.headers(service.roles.auditor))
        assert reply.status_code == 404 and reply.json()["error"]["code"] == "NotFound", reply.text
    finally:
        if kept is None:
            latest.unlink()
        else:
            latest.write_bytes(kept)


def test_without_an_auditor_key_the_audit_is_503(service):
    server = service.server
    server.stop()
    server.env.pop("LEPTON_API_AUDITOR_KEY")
    try:
        server.start()
        reply = service.api.post("/v1/audit", headers=service.headers(service.roles.auditor))
        assert reply.status_code == 503 and reply.json()["error"]["code"] == "NoAuditorKey", reply.text
    finally:
        server.stop()
        server.env["LEPTON_API_AUDITOR_KEY"] = "auditor"
        server.start()


def test_an_audit_a_restart_without_the_auditor_key_interrupted_fails_naming_the_missing_key(service):
    """An audit running when the service is killed runs again when it starts; started again without an auditor key,
    the job fails with a line that says so (not a Python attribute error)."""
    server, auditor = service.server, service.headers(service.roles.auditor)
    held = audit_state_held(service)  # the audit waits on its state file: still running at the kill
    try:
        job = service.api.post("/v1/audit", headers=auditor | {"Idempotency-Key": "audit-keyless-restart"}).json()
        deadline = time.monotonic() + 60
        while service.api.get(f"/v1/jobs/{job['id']}", headers=auditor).json()["status"] == "queued":
            assert time.monotonic() < deadline, "the audit never started"
            time.sleep(0.05)  # polling the job's status
        server.kill()
        server.env.pop("LEPTON_API_AUDITOR_KEY")
        server.start()
    finally:
        held.close()
    try:
        failed = follow_job(service, job["id"], auditor)
        assert failed["status"] == "failed", failed
        assert failed["error"] == "ConfigurationError: no auditor key is configured to run this audit job", failed
    finally:
        server.stop()
        server.env["LEPTON_API_AUDITOR_KEY"] = "auditor"
        server.start()
