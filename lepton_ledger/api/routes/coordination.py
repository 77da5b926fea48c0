"""The coordinator's steps with the service's coordinator key, for a caller signed in as that coordinator:
``POST /v1/agreements`` proposes from the terms JSON of ``coordinator propose``, ``POST .../fund`` funds the
reward pool, ``POST .../bond`` posts the coordinator's bond and ``POST .../rounds`` opens the next round, each
through the same library calls as the command (rounds/coordinator_steps.py), as a step of the service's one writer
(writer.py). An ``Idempotency-Key`` is required: a retry proposes, funds, posts or opens nothing twice. The retry of
a request a restart interrupted runs it again, its transactions found in the coordinator's outbox under its key:
it answers their outcome, sending none of them twice; where the step's checks refuse it then (a bond or a round
its first run posted or opened), 409 ``Interrupted`` names the transactions the outbox holds for it."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Body, Header
from pydantic import BaseModel, Field

from ...chain.state import AgreementState
from ...rounds.coordinator_steps import (
    agreement_terms,
    eval_set_spec,
    open_next_round,
    payable_token,
    post_bond,
    record_for_audit,
)
from ...rounds.session import parse_tokens, require
from ...units import AgreementStatus
from ..deps import Caller, ServiceDep, agreement_of, require_coordinator
from ..errors import conflict, responses
from ..idempotency import once
from ..readmodel import Roles
from ..service import Service
from ..writer import request_scope
from .agreements import AgreementId
from .jobs import EvalData

router = APIRouter(prefix="/v1/agreements", tags=["agreements"])

IdempotencyKey = Annotated[str, Header(min_length=1, max_length=200, description="Required: a retry does it once.")]
TERMS_EXAMPLE = {
    "parties": ["0x90F79bf6EB2c4f870365E785982E1f101E93b906"],
    "reward_per_round": "300",
    "epsilon_cap": 10.0,
    "required_stake": "100",
    "rounds": 5,
    "days": 365,
    "payout_rule": "by_sample_count",
    "document": {"task": "digits", "model": "logreg", "max_norm": 50.0},
}


def sent(receipt: Any) -> dict[str, Any]:
    """The members of an answer that name the transaction sent (``tx_hash``, ``block_number``)."""
    return {"tx_hash": receipt["transactionHash"].to_0x_hex(), "block_number": int(receipt["blockNumber"])}


def step(
    service: Service, caller: Roles, key: str, route: str, body: bytes, send: Callable[[], dict[str, Any]]
) -> dict[str, Any]:
    """`send()`'s answer, once per Idempotency-Key `key`, `send` run as a step of the writer named by the caller
    and `key` and by the request (module docstring): another request under a reused key never finds its steps'."""
    scope = request_scope(caller.address, key, route, body)
    return once(service, caller.address, key, route, body, lambda: service.writer.call(send, scope=scope))


class Proposed(BaseModel):
    agreement_id: int
    parties: list[str]
    terms_cid: str = Field(description="The terms document (task, model, max norm) in the store.")


class FundRequest(BaseModel):
    amount: str = Field(max_length=100, description='Whole tokens, a decimal string ("300", "12.5").')


class Funded(BaseModel):
    agreement_id: int
    amount: str = Field(description="In the token's smallest unit.")
    tx_hash: str
    block_number: int


class Bonded(BaseModel):
    agreement_id: int
    amount: str = Field(description="Posted now, in the token's smallest unit.")
    bond: str = Field(description="The coordinator's bond held now, in the token's smallest unit.")
    tx_hash: str
    block_number: int


class OpenRequest(EvalData):
    """The evaluation set the round commits to (``close`` must be given the same) and the submission window."""

    model: str | None = Field(default=None, max_length=100, description="Default: the terms document's.")
    round_seconds: int = Field(default=3600, ge=1, le=365 * 86400)


class Opened(BaseModel):
    agreement_id: int
    round: int
    model_cid: str
    previous: int = Field(description="The round whose aggregate the model is; 0 for a fresh model.")
    deadline: int
    restored: list[str] = Field(description="Voided or abandoned rounds restored first, a line each.")
    recorded_for_audit: bool = Field(
        description="Whether the evaluation set and model were written into the deployment file (they differed)."
    )


@router.post("", operation_id="agreement_propose", response_model=Proposed, responses=responses(401, 403, 409))
def propose(
    caller: Caller,
    service: ServiceDep,
    idempotency_key: IdempotencyKey,
    terms: Annotated[dict[str, Any], Body(examples=[TERMS_EXAMPLE])],
) -> Proposed:
    """Publishes the terms document and sends ``AgreementRegistry.propose(terms)`` from the service's coordinator,
    who must be the caller. The body is the JSON terms file of ``coordinator propose``, with its defaults; a party
    that is not an approved partner or a malformed member is 422."""
    require_coordinator(service, caller)

    def send() -> dict[str, Any]:
        from ...chain import agreements
        from ...rounds.roles import publish_document

        s = service.coordinator_session()
        proposal = agreement_terms(s, terms)
        cid = publish_document(s.store, proposal.document)
        agreement_id = agreements.propose(s.tx, s.deployment, s.address, proposal)
        return {"agreement_id": agreement_id, "parties": list(proposal.parties), "terms_cid": cid}

    body = json.dumps(terms, sort_keys=True).encode()
    return Proposed.model_validate(step(service, caller, idempotency_key, "propose", body, send))


@router.post(
    "/{agreement_id}/fund",
    operation_id="agreement_fund",
    response_model=Funded,
    responses=responses(401, 403, 404, 409),
)
def fund(
    agreement_id: AgreementId, body: FundRequest, caller: Caller, service: ServiceDep, idempotency_key: IdempotencyKey
) -> Funded:
    """Sends, from the agreement's coordinator (the caller): ``approve(RewardVault, amount)`` on the reward token,
    then ``RewardVault.fund(agreement, amount)``; 422 for an amount that is not positive or more than it holds,
    409 once the agreement has ended."""
    require_coordinator(service, caller, agreement_id)
    value = parse_tokens(body.amount, "amount")
    require(value > 0, "amount must be positive")
    end = agreement_of(service, agreement_id)["terms"].end
    if service.reads.now() > end:  # checked here: the vault refuses only after the token's approve was sent
        raise conflict(f"agreement {agreement_id} ended at {end}: its pool takes no more funds", code="AgreementEnded")

    def send() -> dict[str, Any]:
        from ...chain import agreements

        s = service.coordinator_session()
        token = payable_token(s, agreement_id, value, "fund")
        receipt = agreements.fund(s.tx, s.deployment, token, agreement_id, s.address, value)
        return {
            "agreement_id": agreement_id,
            "amount": str(value),
            **sent(receipt),
        }

    return Funded.model_validate(
        step(service, caller, idempotency_key, f"fund/{agreement_id}", body.model_dump_json().encode(), send)
    )


@router.post(
    "/{agreement_id}/bond",
    operation_id="agreement_bond",
    response_model=Bonded,
    responses=responses(401, 403, 404, 409),
)
def bond(
    agreement_id: AgreementId, body: FundRequest, caller: Caller, service: ServiceDep, idempotency_key: IdempotencyKey
) -> Bonded:
    """Posts the coordinator's bond as ``coordinator bond`` does, from the agreement's coordinator (the caller):
    ``approve(ResultsCourt, amount)`` on the reward token, then ``ResultsCourt.postBond(agreement, amount)``; 422
    for an amount that is not positive or more than it holds, 409 once the agreement is terminated
    (``ResultsCourtAgreementTerminated``) or ended (``AgreementEnded``), or while the bond the terms require is
    already held (``BondAlreadyPosted``)."""
    require_coordinator(service, caller, agreement_id)
    value = parse_tokens(body.amount, "amount")
    require(value > 0, "amount must be positive")
    terms = agreement_of(service, agreement_id)["terms"]
    d = service.deployment

    def send() -> dict[str, Any]:
        # Checked before anything is sent (the court refuses only after the token's approve, or takes a bond that
        # is of no use), and in the step: a retry with the same key answers the first answer.
        state = AgreementState.decode(d.agreements.functions.agreementState(agreement_id).call())
        if state.status is AgreementStatus.TERMINATED:
            raise conflict(f"agreement {agreement_id} is terminated", code="ResultsCourtAgreementTerminated")
        if service.reads.now() > terms.end:
            raise conflict(f"agreement {agreement_id} ended at {terms.end}", code="AgreementEnded")
        bonded, required = d.agreements.functions.coordinatorBondOf(agreement_id).call()
        held = int(d.court.functions.bondOf(agreement_id, bonded).call())
        if held >= required:
            raise conflict(
                f"the coordinator of agreement {agreement_id} already holds {held} of bond, its terms require "
                f"{required}",
                code="BondAlreadyPosted",
            )
        s = service.coordinator_session()
        receipt, now_held = post_bond(s, payable_token(s, agreement_id, value, "post"), agreement_id, value)
        return {
            "agreement_id": agreement_id,
            "amount": str(value),
            "bond": str(now_held),
            **sent(receipt),
        }

    return Bonded.model_validate(
        step(service, caller, idempotency_key, f"bond/{agreement_id}", body.model_dump_json().encode(), send)
    )


@router.post(
    "/{agreement_id}/rounds", operation_id="round_open", response_model=Opened, responses=responses(401, 403, 404, 409)
)
def open_round(
    agreement_id: AgreementId, body: OpenRequest, caller: Caller, service: ServiceDep, idempotency_key: IdempotencyKey
) -> Opened:
    """Opens the agreement's next round as ``coordinator open`` does, from its coordinator (the caller): on the
    last finalized aggregate (else a fresh model of the terms' model), committing to the evaluation set of the
    body, which it then records in the deployment file for the audit as the command does. 409 while a round is
    open, 422 while the coordinator's bond is not posted."""
    require_coordinator(service, caller, agreement_id)

    def send() -> dict[str, Any]:
        from ...rounds.datasets import eval_data

        open_round = int(service.deployment.ledger.functions.openRoundOf(agreement_id).call())
        if open_round:
            raise conflict(
                f"round {open_round} of agreement {agreement_id} is still open (close it first)", code="RoundStillOpen"
            )

        eval_set = eval_data(
            dataset=body.dataset,
            partitions=body.partitions,
            seed=body.seed,
            csv=None,
            label_column="label",
            num_classes=None,
        )
        s = service.coordinator_session()
        opened = open_next_round(s, agreement_id, eval_set, model=body.model, round_seconds=body.round_seconds)
        recorded = record_for_audit(s, eval_set_spec(body.dataset, body.seed), opened.model_name)
        return {
            "agreement_id": agreement_id,
            "round": opened.round_id,
            "model_cid": opened.model_cid,
            "previous": opened.previous,
            "deadline": opened.deadline,
            "restored": list(opened.restored),
            "recorded_for_audit": recorded,
        }

    return Opened.model_validate(
        step(service, caller, idempotency_key, f"open/{agreement_id}", body.model_dump_json().encode(), send)
    )
