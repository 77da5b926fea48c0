"""``POST /v1/envelopes``: a partner's sealed update, as the raw body. It is opened with the coordinator's key
and checked against the chain (the partner is the caller and a party, the round is open, the base model is the
round's) before anything is stored; then put to the block store, where the partner's ``submitUpdate`` names it.

Uploads are bounded per partner and round: at most ``UPLOADS_PER_ROUND`` distinct envelopes (a re-upload after a
failed submit, a retrained update; so at most that many times the size cap in bytes), and none once the partner's
update is submitted on-chain or its commitment kept for the round's batch (409, nothing stored)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Request
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool

from ...envelope import Expected, OversizeEnvelope
from ...envelope import open as open_envelope
from ...errors import BudgetExceeded
from ...protocol.addressing import artifact_cid, publish
from ...protocol.signatures import chain_signature_check
from ..access import blob_key
from ..deps import Caller, ServiceDep, agreement_of, coordinator_key, round_of
from ..errors import ApiError, conflict, forbidden, responses
from ..idempotency import once
from ..readmodel import Roles
from ..service import Service

router = APIRouter(prefix="/v1/envelopes", tags=["envelopes"])

UPLOADS_PER_ROUND = 4  # distinct envelopes a partner may store for one round (module docstring)


class StoredEnvelope(BaseModel):
    cid: str
    envelope_digest: str
    manifest_digest: str
    cumulative_epsilon: int
    sample_count: int


def _too_large(limit: int) -> ApiError:
    return ApiError(413, "TooLarge", f"an envelope is at most {limit} bytes")


async def _body(request: Request, limit: int) -> bytes:
    """The raw body, refused (413) as soon as it is known to exceed `limit`: before reading, by its declared
    length, else while reading."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise _too_large(limit)
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _too_large(limit)
        chunks.append(chunk)
    return b"".join(chunks)


def open_round_of_party(service: Service, caller: Roles, agreement_id: int, round_id: int) -> dict[str, Any]:
    """The read model's round `round_id` once it is open and the caller an approved party of `agreement_id`.

    Raises:
        ApiError: 403 not an approved party, 404 no such agreement or round, 409 the round is not open.
    """
    terms = agreement_of(service, agreement_id)["terms"]
    if caller.address not in terms.parties:
        raise forbidden(f"{caller.address} is not a party of agreement {agreement_id}")
    if caller.status != "approved":  # the ledger takes commitments from approved partners only: keep nothing
        raise forbidden(f"{caller.address} is {caller.status}, not an approved partner")
    return round_of(service, agreement_id, round_id, open_only=True)


def open_update(service: Service, caller: Roles, agreement_id: int, round_id: int, data: bytes) -> Any:
    """`data` opened with the coordinator's key as the caller's update to the open round `round_id`: the caller an
    approved party, the manifest's chain, ledger, agreement, round, partner and base model the chain's.

    Raises:
        ApiError: 403 not an approved party, 404 no such agreement or round, 409 the round is not open, 413 over
            the size cap, 503 no coordinator key.
        EnvelopeError: tampered, misdirected or not sealed to the coordinator (422).
    """
    identity = coordinator_key(service)
    found = open_round_of_party(service, caller, agreement_id, round_id)
    expected = Expected(
        agreement_id=agreement_id,
        round=round_id,
        partner=caller.address,
        base_model_digest=found["record"].model_digest,
        chain_id=service.chain_id,
        ledger=service.deployment.ledger.address,
    )
    try:
        opened = open_envelope(
            data,
            identity.x25519_private_bytes(),
            expected=expected,
            max_envelope_bytes=service.settings.max_envelope_bytes,
            signature_valid=chain_signature_check(service.w3),
        )
    except OversizeEnvelope as exc:
        raise ApiError(413, "TooLarge", str(exc)) from None
    return opened


def refuse_over_cap(service: Service, agreement_id: int, partner: str, cumulative: int, cap: int) -> None:
    """Raises BudgetExceeded (422) when `cumulative` epsilon passes `cap`: the ledger would refuse its commitment."""
    if cumulative > cap:
        spent = int(service.deployment.ledger.functions.cumulativeEpsilon(agreement_id, partner).call())
        raise BudgetExceeded(partner=partner, agreement=str(agreement_id), spent=spent, would_spend=cumulative, cap=cap)


def _reserve_upload(service: Service, cid: str, agreement_id: int, round_id: int, partner: str) -> bool:
    """Records `cid` as `partner`'s upload for the round (what lets it read the blob back) unless that passes the
    round's limits (module docstring); whether the record is new (an envelope uploaded before passes again).

    Raises:
        ApiError: 409 ``AlreadySubmitted``, ``AlreadyCommitted`` or ``UploadLimit``; nothing is recorded.
    """
    key, where = blob_key(cid), (agreement_id, round_id, partner)
    if service.deployment.ledger.functions.hasSubmitted(*where).call():
        raise conflict(f"{partner} has already submitted to round {round_id} on-chain", code="AlreadySubmitted")
    with service.db.transaction() as db:  # counted and recorded at once: concurrent uploads cannot both pass
        if db.execute(
            "SELECT 1 FROM blobs WHERE cid = ? AND agreement_id = ? AND uploader = ?", (key, agreement_id, partner)
        ).fetchone():
            return False
        if db.execute(
            "SELECT 1 FROM commitments WHERE agreement_id = ? AND round_id = ? AND partner = ?", where
        ).fetchone():
            raise conflict(
                f"{partner} has already committed to round {round_id} of agreement {agreement_id}",
                code="AlreadyCommitted",
            )
        (count,) = db.execute(
            "SELECT COUNT(*) FROM blobs WHERE agreement_id = ? AND round_id = ? AND uploader = ?", where
        ).fetchone()
        if count >= UPLOADS_PER_ROUND:
            raise conflict(
                f"{partner} has uploaded {count} envelopes for round {round_id} of agreement {agreement_id}, "
                f"the most a partner may per round",
                code="UploadLimit",
            )
        db.execute(
            "INSERT INTO blobs (cid, agreement_id, uploader, round_id) VALUES (?, ?, ?, ?)",
            (key, agreement_id, partner, round_id),
        )
    return True


def _accept(service: Service, caller: Roles, agreement_id: int, round_id: int, data: bytes) -> dict:
    opened = open_update(service, caller, agreement_id, round_id, data)
    terms = agreement_of(service, agreement_id)["terms"]
    m = opened.manifest
    refuse_over_cap(service, agreement_id, caller.address, m.cumulative_epsilon, terms.epsilon_cap_fixed)
    cid = artifact_cid(data)
    new = _reserve_upload(service, cid, agreement_id, round_id, caller.address)
    try:
        publish(service.store, data)
    except BaseException:
        if new:  # not stored: its place is not taken
            with service.db.transaction() as db:
                db.execute(
                    "DELETE FROM blobs WHERE cid = ? AND agreement_id = ? AND uploader = ?",
                    (blob_key(cid), agreement_id, caller.address),
                )
        raise
    return {
        "cid": cid,
        "envelope_digest": "0x" + opened.envelope_digest.hex(),
        "manifest_digest": "0x" + opened.manifest_digest.hex(),
        "cumulative_epsilon": int(m.cumulative_epsilon),
        "sample_count": int(m.sample_count),
    }


_RAW = {
    "requestBody": {
        "required": True,
        "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}},
    }
}


@router.post(
    "",
    operation_id="envelope_upload",
    response_model=StoredEnvelope,
    openapi_extra=_RAW,
    responses=responses(401, 403, 404, 409, 413, 503),
)
async def upload(
    request: Request,
    caller: Caller,
    service: ServiceDep,
    agreement_id: Annotated[int, Query(ge=1, le=2**256 - 1)],
    round_id: Annotated[int, Query(alias="round", ge=1, le=2**64 - 1)],
    idempotency_key: Annotated[str | None, Header(max_length=200)] = None,
) -> StoredEnvelope:
    """Stores the caller's sealed update for `round` of `agreement_id` once it opens with the coordinator's key and
    matches the chain (422 names what is wrong: tampered, another round, not sealed to the coordinator...; 413
    beyond the size cap). A partner stores at most four envelopes per round, and none once its update is
    submitted on-chain or committed here (409 ``UploadLimit``, ``AlreadySubmitted``, ``AlreadyCommitted``).
    Nothing is stored when it is refused."""
    data = await _body(request, service.settings.max_envelope_bytes)
    answer = await run_in_threadpool(
        once,
        service,
        caller.address,
        idempotency_key,
        f"envelopes/{agreement_id}/{round_id}",
        data,
        lambda: _accept(service, caller, agreement_id, round_id, data),
    )
    return StoredEnvelope.model_validate(answer)
