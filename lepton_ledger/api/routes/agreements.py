"""``GET /v1/agreements/{id}`` and ``GET /v1/agreements/{id}/rounds/{n}``: read from the per-block read model."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path
from pydantic import BaseModel

from ..deps import ServiceDep, agreement_of, round_of
from ..errors import responses
from ..readmodel import AGREEMENT_STATUS, ROUND_STATUS

router = APIRouter(prefix="/v1/agreements", tags=["agreements"])

AgreementId = Annotated[int, Path(ge=1, le=2**256 - 1, description="Agreement id (from 1).")]
PAYOUT_RULES = ("proportional", "equal", "by_sample_count")  # IAgreementRegistry.PayoutRule
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


@router.get("/{agreement_id}", operation_id="agreement_get", response_model=Agreement,
            responses=responses(404, 503))  # fmt: skip
def get_agreement(agreement_id: AgreementId, service: ServiceDep) -> Agreement:
    """The agreement's state, terms (amounts in the token's smallest unit, as strings), who signed its current
    version, how many rounds it has had and what its pool received."""
    found = agreement_of(service, agreement_id)
    state, terms = found["state"], found["terms"]
    return Agreement(agreement_id=agreement_id, status=AGREEMENT_STATUS[int(state[0])], version=int(state[1]),
                     coordinator=state[5], arbiter=found["arbiter"], parties=terms.parties, signed=found["signed"],
                     terms_digest=_hex(terms.terms_digest), reward_token=terms.reward_token,
                     reward_per_round=str(terms.reward_per_round), payout_rule=PAYOUT_RULES[terms.payout_rule],
                     epsilon_cap=terms.epsilon_cap, delta=terms.delta, required_stake=str(terms.required_stake),
                     start=terms.start, end=terms.end, max_rounds=terms.max_rounds, rounds=found["rounds"],
                     pool_funded=str(found["pool"][0]))  # fmt: skip


@router.get("/{agreement_id}/rounds/{round_id}", operation_id="round_get", response_model=Round,
            responses=responses(404, 503))  # fmt: skip
def get_round(agreement_id: AgreementId, round_id: RoundId, service: ServiceDep) -> Round:
    """The round's status, deadline, digests and which parties have submitted."""
    found = round_of(service, agreement_id, round_id)
    r = found["record"]
    return Round(agreement_id=agreement_id, round=round_id, status=ROUND_STATUS[int(r[0])], submissions=int(r[2]),
                 submitted=found["submitted"], opened_at=int(r[3]), deadline=int(r[4]), finalized_at=int(r[5]),
                 model_digest=_hex(r[6]), aggregate_digest=_hex(r[8]), report_digest=_hex(r[9]),
                 payout_root=_hex(r[10]), payout_total=str(r[11]))  # fmt: skip
