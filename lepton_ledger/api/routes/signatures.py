"""Agreement signatures relayed by the coordinator: ``POST .../signatures/prepare`` gives a party the EIP-712
typed data of the agreement's current version (its digest is the registry's ``signingDigest``); ``POST
.../signatures`` takes the party's signature and has the coordinator send ``signBySig``, paying the gas."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Header
from pydantic import BaseModel, Field

from ...chain._values import InvalidValue, as_bytes
from ...chain.transactions import decode_revert
from ...chain.typed_data import sign_agreement_digest, sign_agreement_typed_data
from ..deps import Caller, ServiceDep, agreement_of, coordinator_key
from ..errors import ApiError, forbidden, responses
from ..idempotency import once
from ..writer import request_scope
from .agreements import AgreementId

router = APIRouter(prefix="/v1/agreements", tags=["agreements"])


class SignatureRequest(BaseModel):
    ttl: int = Field(default=3600, ge=60, le=30 * 86400, description="Seconds the signature stays valid.")


class TypedData(BaseModel):
    typed_data: dict[str, Any] = Field(description="eth_signTypedData_v4 JSON.")
    digest: str
    deadline: int


class SignedRequest(BaseModel):
    deadline: int = Field(ge=0, le=2**256 - 1)
    signature: str


class SignatureRelayed(BaseModel):
    tx_hash: str
    block_number: int


def _party(service: Any, caller: Caller, agreement_id: int) -> dict[str, Any]:
    agreement = agreement_of(service, agreement_id)
    if caller.address not in agreement["terms"].parties:
        raise forbidden(f"{caller.address} is not a party of agreement {agreement_id}")
    return agreement


@router.post(
    "/{agreement_id}/signatures/prepare",
    operation_id="agreement_signature_prepare",
    response_model=TypedData,
    responses=responses(401, 403, 404),
)
def prepare_signature(
    agreement_id: AgreementId, body: SignatureRequest, caller: Caller, service: ServiceDep
) -> TypedData:
    """The typed data the caller, a party, signs to sign the agreement's current version off-chain."""
    state = _party(service, caller, agreement_id)["state"]
    registry = service.deployment.agreements
    nonce = int(registry.functions.nonces(caller.address).call())
    deadline = service.reads.now() + body.ttl
    args = (
        service.chain_id,
        registry.address,
        agreement_id,
        state.version,
        state.terms_hash,
        caller.address,
        nonce,
        deadline,
    )
    return TypedData(
        typed_data=sign_agreement_typed_data(*args), digest="0x" + sign_agreement_digest(*args).hex(), deadline=deadline
    )


@router.post(
    "/{agreement_id}/signatures",
    operation_id="agreement_signature_relay",
    response_model=SignatureRelayed,
    responses=responses(401, 403, 404, 409),
)
def relay_signature(
    agreement_id: AgreementId,
    body: SignedRequest,
    caller: Caller,
    service: ServiceDep,
    idempotency_key: Annotated[str | None, Header(max_length=200)] = None,
) -> SignatureRelayed:
    """Sends ``signBySig(agreement, caller, deadline, signature)`` from the coordinator once an eth_call of it
    succeeds (409 with the registry's error otherwise: a bad signature, an expired deadline, already signed)."""
    from web3.exceptions import ContractCustomError, ContractLogicError

    identity = coordinator_key(service)
    _party(service, caller, agreement_id)
    try:
        signature = as_bytes(body.signature, "signature")
    except InvalidValue as exc:
        raise ApiError(422, "Malformed", str(exc)) from None
    call = service.deployment.agreements.functions.signBySig(agreement_id, caller.address, body.deadline, signature)

    def send() -> dict[str, Any]:
        try:
            call.call({"from": identity.address})
        except (ContractCustomError, ContractLogicError) as exc:
            raise decode_revert(getattr(exc, "data", None)) or ApiError(409, "Reverted", str(exc)) from None
        receipt = service.writer.tx.transact(call, identity.address)
        return {"tx_hash": receipt["transactionHash"].to_0x_hex(), "block_number": int(receipt["blockNumber"])}

    route, request = f"signatures/{agreement_id}", body.model_dump_json().encode()
    scope = request_scope(caller.address, idempotency_key, route, request)
    return SignatureRelayed.model_validate(
        once(service, caller.address, idempotency_key, route, request, lambda: service.writer.call(send, scope=scope))
    )
