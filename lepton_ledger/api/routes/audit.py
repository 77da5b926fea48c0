"""The audit as a job: ``POST /v1/audit`` queues ``lepton-ledger audit`` of the deployment with the service's
auditor key (202; follow it at ``GET /v1/jobs/{id}``), which leaves its JSON result in
``<data dir>/audit/latest.json`` (the dashboard's latest audit); ``GET /v1/audit/report`` is that result's HTML
report. For auditors (and, for the report, the coordinator)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Header
from fastapi.encoders import jsonable_encoder
from fastapi.responses import HTMLResponse

from ...protocol.jsonio import FILE_BYTES, load_object, read_bounded
from ..dashboard import LATEST_AUDIT
from ..deps import Caller, ServiceDep
from ..errors import ApiError, forbidden, not_found, responses
from ..idempotency import once
from .dashboard import HEADERS, html_errors
from .jobs import Job

router = APIRouter(prefix="/v1/audit", tags=["audit"])


@router.post("", operation_id="audit_run", status_code=202, response_model=Job, responses=responses(401, 403, 409, 503))
def run_audit(
    caller: Caller, service: ServiceDep, idempotency_key: Annotated[str | None, Header(max_length=200)] = None
) -> Job:
    """Queues an audit of every round with the service's auditor key (503 ``NoAuditorKey`` when it holds none);
    only an auditor may ask; 409 ``JobRunning`` while one is queued or running."""
    if not caller.auditor:
        raise forbidden(f"{caller.address} holds no auditor role: only auditors run the audit")
    if service.auditor is None:
        raise ApiError(503, "NoAuditorKey", "this service holds no auditor key (LEPTON_API_AUDITOR_KEY)")
    origin = None if idempotency_key is None else f"{caller.address}/{idempotency_key}"

    def submit() -> dict[str, Any]:
        return jsonable_encoder(service.jobs.submit("audit", 0, 0, {}, origin))  # type: ignore[no-any-return]

    return Job.model_validate(once(service, caller.address, idempotency_key, "audit", b"", submit))


@router.get(
    "/report",
    operation_id="audit_report",
    response_class=HTMLResponse,
    responses={
        200: {"content": {"text/html": {}}, "description": "The latest audit's HTML report."},
        **html_errors(401, 403, 404),
    },
)
def audit_report(caller: Caller, service: ServiceDep) -> HTMLResponse:
    """The HTML report of the latest audit the service ran (or ``audit --json`` left in the data directory); 404
    while there is none. For auditors and the coordinator."""
    from ...audit.html import render_html

    if not (caller.auditor or caller.coordinator):
        raise forbidden(f"{caller.address} is neither an auditor nor the coordinator")
    path = service.settings.data_dir / "audit" / LATEST_AUDIT
    try:
        result = load_object(read_bounded(path, FILE_BYTES), what=str(path), max_bytes=FILE_BYTES)
        return HTMLResponse(render_html(result), headers=HEADERS)
    except FileNotFoundError:
        raise not_found("no audit has run yet") from None
    except ValueError as exc:  # not JSON, or not an audit result (ReportError)
        raise not_found(f"the latest audit result is not a report: {exc}") from None
