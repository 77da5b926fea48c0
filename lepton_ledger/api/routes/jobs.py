"""Round close as a job: ``POST /v1/agreements/{id}/rounds/{n}/close`` queues it (202; 409 while one runs for
the round), ``GET /v1/jobs/{id}`` follows it. Jobs persist and resume after a restart (jobs.py)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Header, Path
from fastapi.encoders import jsonable_encoder
from pydantic import BaseModel, Field

from ...fl.data import DATASETS
from ...rounds.coordinator_steps import AGGREGATIONS, SCORINGS
from ..access import require_job_reader
from ..deps import Caller, ServiceDep, require_coordinator, round_of
from ..errors import not_found, responses
from ..idempotency import once
from .agreements import AgreementId, RoundId

router = APIRouter(tags=["jobs"])


class EvalData(BaseModel):
    """The coordinator's evaluation data, as the data options of ``coordinator open`` and ``close``."""

    dataset: Literal[DATASETS] = "digits"  # type: ignore[valid-type]
    partitions: int = Field(default=1, ge=1, le=1000)
    seed: int = Field(default=0, ge=0, le=2**32 - 1)


class CloseRequest(EvalData):
    """The evaluation data (it must be the set the round committed to) and, optionally, the rules of the close."""

    # the round rules are the terms document's: a choice given here must be the same, or the close is refused
    aggregation: Literal[AGGREGATIONS] | None = None  # type: ignore[valid-type]
    scoring: Literal[SCORINGS] | None = None  # type: ignore[valid-type]


class Job(BaseModel):
    id: int
    kind: str
    agreement_id: int
    round_id: int
    params: dict[str, Any]
    status: Literal["queued", "running", "done", "failed"]
    progress: str
    result: dict[str, Any] | None
    error: str | None
    created_at: float
    updated_at: float


@router.post(
    "/v1/agreements/{agreement_id}/rounds/{round_id}/close",
    operation_id="round_close",
    status_code=202,
    response_model=Job,
    responses=responses(401, 403, 404, 409, 503),
)
def close_round(
    agreement_id: AgreementId,
    round_id: RoundId,
    body: CloseRequest,
    caller: Caller,
    service: ServiceDep,
    idempotency_key: Annotated[str | None, Header(max_length=200)] = None,
) -> Job:
    """Queues the close of an open round (open, validate, aggregate, score, pay, finalize) with the service's
    coordinator key. Only the agreement's coordinator may ask; 409 while the round is not open or a close job for
    it is queued or running."""
    require_coordinator(service, caller, agreement_id)
    params = body.model_dump()
    origin = None if idempotency_key is None else f"{caller.address}/{idempotency_key}"

    def submit() -> dict[str, Any]:
        if origin is None or service.jobs.by_origin(origin) is None:  # else: answered by the job it submitted
            round_of(service, agreement_id, round_id, open_only=True)
        return jsonable_encoder(service.jobs.submit("close", agreement_id, round_id, params, origin))

    job = once(
        service,
        caller.address,
        idempotency_key,
        f"close/{agreement_id}/{round_id}",
        repr(sorted(params.items())).encode(),
        submit,
    )
    return Job.model_validate(job)


@router.get("/v1/jobs/{job_id}", operation_id="job_get", response_model=Job, responses=responses(401, 403, 404))
def get_job(job_id: Annotated[int, Path(ge=1, le=2**63 - 1)], caller: Caller, service: ServiceDep) -> Job:
    """A job's status, progress, and its result or error; for the coordinator, auditors and whoever holds a role
    in the job's agreement."""
    job = service.jobs.get(job_id)
    if job is None:
        raise not_found(f"no job {job_id}")
    require_job_reader(service, caller, job)
    return Job.model_validate(job)
