"""Batched commitments through the service (``partner train-and-sign`` and ``coordinator anchor``, over HTTP):

- ``POST /v1/agreements/{id}/rounds/{n}/commitments/prepare`` gives a party the EIP-712 typed data of its
  commitment to an envelope it uploaded here (``POST /v1/envelopes``): the fields come from that envelope, opened
  with the coordinator's key; the digest is ``RoundLedger.commitmentDigest``'s.
- ``POST /v1/agreements/{id}/rounds/{n}/commitments`` takes the party's signed commitment (the document
  ``partner train-and-sign`` writes, rounds/roles.py), checks it on arrival and keeps it in the service's database.
  The round's first commitment queues its anchor job (jobs.py), which anchors them all once, with the
  coordinator's key: when every party has committed, or ``ANCHOR_LEAD`` seconds before the round's deadline.

A refused commitment changes nothing: nothing is kept, nothing is sent.
"""

from __future__ import annotations

import json
import time
from typing import Annotated, Any

from fastapi import APIRouter, Body, Header
from pydantic import BaseModel, Field

from ...chain.typed_data import UpdateCommitment, update_commitment_digest, update_commitment_typed_data
from ...protocol.addressing import digest_of_cid
from ...protocol.signatures import chain_signature_check
from ...rounds.roles import RoleStateError, signed_commitment_document, signed_commitment_from_document
from ...storage.store import BlockNotFound
from ..access import blob_key
from ..deps import Caller, ServiceDep, agreement_of
from ..errors import ApiError, conflict, forbidden, responses
from ..idempotency import once
from ..readmodel import Roles
from ..service import Service
from .agreements import AgreementId, RoundId
from .envelopes import open_round_of_party, open_update, refuse_over_cap

router = APIRouter(prefix="/v1/agreements", tags=["commitments"])

DOCUMENT_EXAMPLE = {
    "version": 1,
    "chain_id": 31337,
    "ledger": "0xCf7Ed3AccA5a467e9e704C703E8D87F634fB0Fc9",
    "agreementId": 1,
    "round": 2,
    "partner": "0x90F79bf6EB2c4f870365E785982E1f101E93b906",
    "envelopeDigest": "0x" + "11" * 32,
    "manifestDigest": "0x" + "22" * 32,
    "cumulativeEpsilon": 1500000,
    "sampleCount": 719,
    "signature": "0x" + "33" * 65,
    "envelopeCid": "QmYwAPJzv5CZsnA625s3Xf2nemtYgPpHdWEz79ojWnPbdG",
}


class PrepareRequest(BaseModel):
    envelope_cid: str = Field(max_length=128, description="The CID `POST /v1/envelopes` answered.")


class CommitmentTypedData(BaseModel):
    typed_data: dict[str, Any] = Field(
        description="eth_signTypedData_v4 JSON; its message is the commitment (cumulativeEpsilon fixed point, "
        "1e6 = 1.0, including this update)."
    )
    digest: str = Field(description="RoundLedger.commitmentDigest of the commitment.")


class StoredCommitment(BaseModel):
    commitment: dict[str, Any] = Field(description="The commitment kept, as the typed data's message.")
    envelope_cid: str
    anchor_job: int = Field(description="The job that anchors the round's batch (`GET /v1/jobs/{id}`).")


def _message(service: Service, commitment: UpdateCommitment) -> dict[str, Any]:
    """The commitment as its typed data's message (0x-hex digests)."""
    return update_commitment_typed_data(service.chain_id, service.deployment.ledger.address, commitment)["message"]


def _uploaded_commitment(
    service: Service, caller: Roles, agreement_id: int, round_id: int, envelope_cid: str
) -> UpdateCommitment:
    """The commitment the caller's envelope `envelope_cid` gives, once it was uploaded here by the caller for this
    agreement and opens with the coordinator's key as its update to this round (``envelopes.open_update``).

    Raises:
        ApiError: 422 ``EnvelopeNotUploaded``; as ``open_update`` otherwise.
        InvalidCID, EnvelopeError: not a CID, an envelope that does not open for this round (422).
    """
    key = blob_key(envelope_cid)
    uploaded = (
        service.db.connection()
        .execute(
            "SELECT 1 FROM blobs WHERE cid = ? AND agreement_id = ? AND uploader = ?",
            (key, agreement_id, caller.address),
        )
        .fetchone()
    )
    if uploaded is None:
        raise ApiError(
            422,
            "EnvelopeNotUploaded",
            f"{caller.address} uploaded no envelope {envelope_cid} for agreement {agreement_id} to this service",
        )
    try:
        data = service.store.get(envelope_cid, max_bytes=service.settings.max_envelope_bytes)
    except BlockNotFound:
        raise ApiError(422, "EnvelopeNotUploaded", f"the store no longer holds {envelope_cid}") from None
    opened = open_update(service, caller, agreement_id, round_id, data)
    m = opened.manifest
    return UpdateCommitment(
        agreement_id,
        round_id,
        caller.address,
        digest_of_cid(envelope_cid),
        opened.manifest_digest,
        m.cumulative_epsilon,
        m.sample_count,
    )


@router.post(
    "/{agreement_id}/rounds/{round_id}/commitments/prepare",
    operation_id="commitment_prepare",
    response_model=CommitmentTypedData,
    responses=responses(401, 403, 404, 409),
)
def prepare_commitment(
    agreement_id: AgreementId, round_id: RoundId, body: PrepareRequest, caller: Caller, service: ServiceDep
) -> CommitmentTypedData:
    """The typed data the caller, a party, signs to commit to the envelope it uploaded for the open round (422
    ``EnvelopeNotUploaded`` for another one, or one that does not open as its update to this round)."""
    open_round_of_party(service, caller, agreement_id, round_id)
    commitment = _uploaded_commitment(service, caller, agreement_id, round_id, body.envelope_cid)
    ledger = service.deployment.ledger.address
    return CommitmentTypedData(
        typed_data=update_commitment_typed_data(service.chain_id, ledger, commitment),
        digest="0x" + update_commitment_digest(service.chain_id, ledger, commitment).hex(),
    )


def _checked(service: Service, caller: Roles, agreement_id: int, round_id: int, document: Any) -> Any:
    """The signed commitment of `document`, after the checks of :func:`submit_commitment`, in its order.

    Raises:
        ApiError, LeptonError: the refusal (module docstring of errors.py for the statuses).
    """
    deadline = open_round_of_party(service, caller, agreement_id, round_id)["record"].deadline
    if service.reads.now() > deadline:
        raise conflict(
            f"round {round_id} of agreement {agreement_id} took commitments until {deadline}", "DeadlinePassed"
        )
    terms = agreement_of(service, agreement_id)["terms"]
    ledger = service.deployment.ledger
    try:
        signed = signed_commitment_from_document(
            document,
            chain_id=service.chain_id,
            ledger=ledger.address,
            signature_valid=chain_signature_check(service.w3),
        )
    except RoleStateError as exc:
        raise ApiError(422, "CommitmentRefused", str(exc)) from None
    c = signed.commitment
    if c.partner != caller.address:
        raise forbidden(f"{caller.address} may not commit for {c.partner}: a partner commits only for itself")
    if (c.agreement_id, c.round) != (agreement_id, round_id):
        raise ApiError(
            422,
            "WrongRound",
            f"the commitment is for round {c.round} of agreement {c.agreement_id}, not round {round_id} of "
            f"agreement {agreement_id}",
        )
    refuse_over_cap(service, agreement_id, c.partner, c.cumulative_epsilon, terms.epsilon_cap_fixed)
    spent = int(ledger.functions.cumulativeEpsilon(agreement_id, c.partner).call())
    if c.cumulative_epsilon <= spent:  # the ledger takes only a growing cumulative epsilon
        raise ApiError(
            422, "EpsilonNotIncreasing", f"cumulative epsilon {c.cumulative_epsilon} is not above the {spent} spent"
        )
    if not 0 < c.sample_count <= terms.max_sample_count:
        raise ApiError(
            422,
            "SampleCountOutOfBounds",
            f"sample count {c.sample_count} is not within (0, {terms.max_sample_count}], the terms' bound",
        )
    expected = _uploaded_commitment(service, caller, agreement_id, round_id, signed.envelope_cid)
    if c != expected:
        given, uploaded = _message(service, c), _message(service, expected)
        differ = [name for name, value in given.items() if uploaded[name] != value]
        raise ApiError(
            422,
            "CommitmentMismatch",
            f"the commitment's {', '.join(differ)} differ from envelope {signed.envelope_cid}",
        )
    if ledger.functions.hasSubmitted(agreement_id, round_id, c.partner).call():
        raise conflict(f"{c.partner} has already submitted to round {round_id} on-chain", code="AlreadySubmitted")
    return signed


@router.post(
    "/{agreement_id}/rounds/{round_id}/commitments",
    operation_id="commitment_submit",
    response_model=StoredCommitment,
    responses=responses(401, 403, 404, 409),
)
def submit_commitment(
    agreement_id: AgreementId,
    round_id: RoundId,
    caller: Caller,
    service: ServiceDep,
    document: Annotated[dict[str, Any], Body(examples=[DOCUMENT_EXAMPLE])],
    idempotency_key: Annotated[str | None, Header(max_length=200)] = None,
) -> StoredCommitment:
    """Keeps the caller's signed commitment for the round's batch. Checked one by one: the caller an approved party
    (403), the round open and before its deadline (404, 409), its document (this chain and ledger, a signature by
    the partner: 422 ``CommitmentRefused``), the caller's own (403), this agreement and round (422), the epsilon
    growing within the cap (422 ``BudgetExceeded``), the sample count within the terms' bound (422), an envelope the
    caller uploaded here that opens as its update to this round and gives these fields (422), not submitted
    on-chain, not committed before (409 ``AlreadyCommitted``; 409 ``BatchAnchored`` once the round's batch is
    being anchored). Nothing is kept or sent when it is refused."""

    def keep() -> dict[str, Any]:
        signed = _checked(service, caller, agreement_id, round_id, document)
        text = json.dumps(
            signed_commitment_document(signed, chain_id=service.chain_id, ledger=service.deployment.ledger.address),
            sort_keys=True,
        )
        with service.db.transaction() as db:
            kept = db.execute(
                "SELECT document FROM commitments WHERE agreement_id = ? AND round_id = ? AND partner = ?",
                (agreement_id, round_id, caller.address),
            ).fetchone()
            # A retry (same Idempotency-Key) of a request a restart interrupted after it kept the commitment.
            if kept is not None and not (idempotency_key is not None and kept["document"] == text):
                raise conflict(
                    f"{caller.address} has already committed to round {round_id} of agreement {agreement_id}",
                    code="AlreadyCommitted",
                )
            job = service.jobs.anchor_job(db, agreement_id, round_id)
            if kept is None:
                db.execute(
                    "INSERT INTO commitments (agreement_id, round_id, partner, document, created_at) "
                    "VALUES (?, ?, ?, ?, ?)",
                    (agreement_id, round_id, caller.address, text, time.time()),
                )
        service.jobs.wake()
        return {
            "commitment": _message(service, signed.commitment),
            "envelope_cid": signed.envelope_cid,
            "anchor_job": job,
        }

    body = json.dumps(document, sort_keys=True).encode()
    answer = once(service, caller.address, idempotency_key, f"commitments/{agreement_id}/{round_id}", body, keep)
    return StoredCommitment.model_validate(answer)
