"""Challenges of both courts: ``GET /v1/challenges`` lists them, ``GET /v1/challenges/{court}/{id}`` shows one
with its evidence and ruling documents. Court ``update`` is the round ledger's (a partner's update challenged,
``challenges.challenge``), ``results`` the results court's (a round's results, ``challenges.results``).

The records are on-chain, so anyone lists them (as the dashboard shows them). The evidence and ruling documents
are blobs of the store, read under the blobs' rule (access.py): the coordinator role, auditors, and whoever
holds a role in the challenge's agreement; a suspended partner reads none.

``POST /v1/challenges/evidence`` stores the evidence document of a partner's update challenge (court ``update``)
for an auditor or a party of the agreement, as ``challenges.challenge`` writes it (canonical JSON of a non-empty
object, at most ``EVIDENCE_BYTES``), and answers its CID and digest: the ``evidenceDigest`` of the
``RoundLedger.challenge`` transaction the caller signs through ``POST /v1/transactions/prepare`` and relays.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query
from pydantic import BaseModel, Field

from ...challenges.challenge import ChallengeError, challenge_input, read_challenge
from ...challenges.results import read_results_challenge
from ...errors import LeptonError
from ...protocol.addressing import cid_for_digest, publish
from ...protocol.jsonio import load_object
from ..deps import ADDRESS_PATTERN, Caller, ServiceDep, agreement_of
from ..errors import ApiError, forbidden, not_found, responses
from ..readmodel import Roles
from ..service import Service

router = APIRouter(prefix="/v1/challenges", tags=["challenges"])

Court = Literal["update", "results"]
DOCUMENT_BYTES = 1 << 20  # an evidence or ruling document: canonical JSON of a few audit checks, a few KiB
READERS = {"update": read_challenge, "results": read_results_challenge}
COUNTS = {"update": "ledger", "results": "court"}  # the deployment's contract of each court
EVIDENCE_BYTES = 1 << 18  # an uploaded evidence document, canonical: well within what DOCUMENT_BYTES reads back


class Challenge(BaseModel):
    court: Court
    challenge_id: int
    status: str = Field(description="open, upheld, dismissed, executed (update), lapsed (results).")
    agreement_id: int
    round: int
    partner: str | None = Field(description="The challenged partner (court update); null for results.")
    kind: str | None = Field(description="aggregate, payouts or rejections (court results); null for update.")
    challenger: str
    raised_at: int
    evidence_digest: str
    ruling_digest: str


class Challenges(BaseModel):
    challenges: list[Challenge]


class Document(BaseModel):
    cid: str
    document: dict[str, Any] | None = Field(description="The JSON document; null when it cannot be shown.")
    note: str | None = Field(description="Why the document is not shown (not in the store, not JSON...).")


class ChallengeDetail(Challenge):
    evidence: Document
    ruling: Document | None = Field(description="Null until the challenge is ruled on.")


def _challenge(court: str, record: Any) -> Challenge:
    fields = record.to_dict()
    return Challenge(
        court=court,  # type: ignore[arg-type]
        challenge_id=fields["challenge_id"],
        status=record.status.lower(),
        agreement_id=fields["agreement_id"],
        round=fields["round"],
        partner=fields.get("partner"),
        kind=fields.get("kind"),
        challenger=fields["challenger"],
        raised_at=fields["raised_at"],
        evidence_digest=fields["evidence_digest"],
        ruling_digest=fields["ruling_digest"],
    )


def _all(service: Service) -> list[Challenge]:
    """Every challenge of both courts, oldest first per court (once per block)."""

    def compute() -> list[Challenge]:
        found = []
        for court, read in READERS.items():
            contract = getattr(service.deployment, COUNTS[court])
            for challenge_id in range(1, int(contract.functions.challengeCount().call()) + 1):
                found.append(_challenge(court, read(service.deployment, challenge_id)))
        return found

    return service.reads.cached(("challenges",), compute)


def _document(service: Service, digest: str) -> Document:
    """The store's document of an on-chain digest, parsed as bounded JSON; its note says why not, when not."""
    cid = cid_for_digest(bytes.fromhex(digest[2:]))
    try:
        data = service.store.get(cid, max_bytes=DOCUMENT_BYTES)
        return Document(cid=cid, document=load_object(data, what=cid, max_bytes=DOCUMENT_BYTES), note=None)
    except (LeptonError, OSError, ValueError) as exc:  # not in the store, too large, not a JSON object
        return Document(cid=cid, document=None, note=f"{type(exc).__name__}: {exc}")


def _require_reader(service: Service, caller: Roles, agreement_id: int) -> None:
    """The blobs' rule (access.py) for one agreement's documents."""
    if caller.status == "suspended":
        raise forbidden(f"{caller.address} is suspended")
    if caller.coordinator or caller.auditor or str(agreement_id) in service.reads.agreement_roles(caller.address):
        return
    raise forbidden(f"{caller.address} holds no role in agreement {agreement_id}, whose challenge this is")


class EvidenceRequest(BaseModel):
    agreement_id: int = Field(ge=1, le=2**256 - 1)
    round: int = Field(ge=1, le=2**64 - 1)
    partner: str = Field(pattern=ADDRESS_PATTERN, description="The partner whose update is challenged.")
    evidence: dict[str, Any] = Field(
        description="The failed check as the audit's JSON result wrote it, or any non-empty JSON object.",
        examples=[{"name": "update_norm", "ok": False, "message": "the update's norm is over the bound"}],
    )


class StoredEvidence(BaseModel):
    cid: str = Field(description="The evidence document in the store (canonical JSON).")
    evidence_digest: str = Field(description="RoundLedger.challenge's evidenceDigest, 0x-hex.")
    partner: str = Field(description="The challenged partner, checksummed.")


@router.post(
    "/evidence",
    operation_id="challenge_evidence_upload",
    response_model=StoredEvidence,
    responses=responses(401, 403, 404, 413),
)
def upload_evidence(body: EvidenceRequest, caller: Caller, service: ServiceDep) -> StoredEvidence:
    """Stores the evidence document of a challenge of `partner`'s update in `round` of `agreement_id`, for an
    auditor or a party of the agreement (403 otherwise, and for a suspended partner): 422 when it is no non-empty
    JSON object, 413 over 256 KiB as canonical JSON. Nothing is stored when it is refused. Its digest is the
    ``evidenceDigest`` of ``RoundLedger.challenge``, which the caller prepares, signs and relays
    (``/v1/transactions``)."""
    if caller.status == "suspended":
        raise forbidden(f"{caller.address} is suspended")
    agreement_of(service, body.agreement_id)  # 404 for none
    roles = service.reads.agreement_roles(caller.address).get(str(body.agreement_id), [])
    if not (caller.auditor or "party" in roles):
        raise forbidden(f"{caller.address} is neither an auditor nor a party of agreement {body.agreement_id}")
    partner, document = challenge_input(body.agreement_id, body.round, body.partner, body.evidence)
    if len(document) > EVIDENCE_BYTES:
        raise ApiError(413, "TooLarge", f"an evidence document is at most {EVIDENCE_BYTES} bytes of canonical JSON")
    cid, digest = publish(service.store, document)
    return StoredEvidence(cid=cid, evidence_digest="0x" + digest.hex(), partner=partner)


@router.get("", operation_id="challenge_list", response_model=Challenges, responses=responses(503))
def list_challenges(
    service: ServiceDep,
    agreement_id: Annotated[int | None, Query(ge=1, le=2**256 - 1, description="Only this agreement's.")] = None,
    court: Annotated[Court | None, Query(description="Only this court's.")] = None,
) -> Challenges:
    """Every challenge of the round ledger (court ``update``) and of the results court (``results``), as the chain
    records them: anyone may list them."""
    return Challenges(
        challenges=[
            c
            for c in _all(service)
            if (agreement_id is None or c.agreement_id == agreement_id) and (court is None or c.court == court)
        ]
    )


@router.get(
    "/{court}/{challenge_id}",
    operation_id="challenge_get",
    response_model=ChallengeDetail,
    responses=responses(401, 403, 404, 503),
)
def get_challenge(
    court: Court,
    challenge_id: Annotated[int, Path(ge=1, le=2**256 - 1)],
    caller: Caller,
    service: ServiceDep,
) -> ChallengeDetail:
    """One challenge with its evidence and ruling documents from the store (404: no such challenge in that
    court). For the coordinator, auditors and whoever holds a role in the challenge's agreement."""
    try:
        record = READERS[court](service.deployment, challenge_id)
    except ChallengeError as exc:
        raise not_found(str(exc)) from None
    found = _challenge(court, record)
    _require_reader(service, caller, found.agreement_id)
    ruled = int(found.ruling_digest, 16) != 0
    return ChallengeDetail(
        **found.model_dump(),
        evidence=_document(service, found.evidence_digest),
        ruling=_document(service, found.ruling_digest) if ruled else None,
    )
