"""``GET /v1/agreements/{id}`` and ``GET /v1/agreements/{id}/rounds/{n}``: read from the per-block read model."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path
from pydantic import BaseModel

from ..deps import ServiceDep, agreement_of, round_of
from ..errors import responses

router = APIRouter(prefix="/v1/agreements", tags=["agreements"])

AgreementId = Annotated[int, Path(ge=1, le=2**256 - 1, description="Agreement id (from 1).")]
RoundId = Annotated[int, Path(ge=1, le=2**64 - 1, description="Round id (from 1).")]


class Agreement(BaseModel):
    agreement_id: int
    status: str
    version: int
    coordinator: str
    arbiter: str
    parties: list[str]
    signed: dict[str, bool]
    terms_digest: str
    reward_token: str
    reward_per_round: str
    payout_rule: str
    epsilon_cap: float
    delta: float
    required_stake: str
    start: int
    end: int
    max_rounds: int
    rounds: int
    pool_funded: str


class Round(BaseModel):
    agreement_id: int
    round: int
    status: str
    submissions: int
    submitted: dict[str, bool]
    opened_at: int
    deadline: int
    finalized_at: int
    model_digest: str
    aggregate_digest: str
    report_digest: str
    payout_root: str
    payout_total: str


def _hex(value: bytes) -> str:
    return "0x" + bytes(value).hex()


@router.get("/{agreement_id}", operation_id="agreement_get", response_model=Agreement, responses=responses(404, 503))
def get_agreement(agreement_id: AgreementId, service: ServiceDep) -> Agreement:
    """The agreement's state, terms (amounts in the token's smallest unit, as strings), who signed its current
    version, how many rounds it has had and what its pool received."""
    found = agreement_of(service, agreement_id)
    state, terms = found["state"], found["terms"]
    return Agreement(
        agreement_id=agreement_id,
        status=state.status.name.lower(),
        version=state.version,
        coordinator=state.coordinator,
        arbiter=found["arbiter"],
        parties=list(terms.parties),
        signed=found["signed"],
        terms_digest=_hex(terms.terms_digest),
        reward_token=terms.reward_token,
        reward_per_round=str(terms.reward_per_round),
        payout_rule=terms.payout_rule.name.lower(),
        epsilon_cap=terms.epsilon_cap,
        delta=terms.delta,
        required_stake=str(terms.required_stake),
        start=terms.start,
        end=terms.end,
        max_rounds=terms.max_rounds,
        rounds=found["rounds"],
        pool_funded=str(found["pool"].funded),
    )


@router.get(
    "/{agreement_id}/rounds/{round_id}", operation_id="round_get", response_model=Round, responses=responses(404, 503)
)
def get_round(agreement_id: AgreementId, round_id: RoundId, service: ServiceDep) -> Round:
    """The round's status, deadline, digests and which parties have submitted."""
    found = round_of(service, agreement_id, round_id)
    r = found["record"]
    return Round(
        agreement_id=agreement_id,
        round=round_id,
        status=r.status.name.lower(),
        submissions=r.submissions,
        submitted=found["submitted"],
        opened_at=r.opened_at,
        deadline=r.deadline,
        finalized_at=r.finalized_at,
        model_digest=_hex(r.model_digest),
        aggregate_digest=_hex(r.aggregate_digest),
        report_digest=_hex(r.report_digest),
        payout_root=_hex(r.payout_root),
        payout_total=str(r.payout_total),
    )
