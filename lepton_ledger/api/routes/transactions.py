"""``POST /v1/transactions/prepare`` (the unsigned transaction a party signs with its own key) and
``POST /v1/transactions`` (relays it once signed: signer = caller, allow-listed, an eth_call succeeds).

Both leave to the chain what a partner's standing allows (its own ``isApproved`` checks, met by the estimate
and by the eth_call): one rule, the contracts', so prepare and relay cannot disagree."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Header
from pydantic import BaseModel, Field

from .. import relay
from ..deps import Caller, ServiceDep
from ..errors import responses
from ..idempotency import once

router = APIRouter(prefix="/v1/transactions", tags=["transactions"])


class PrepareRequest(BaseModel):
    contract: str = Field(examples=["RewardVault"])
    function: str = Field(examples=["claim"])
    args: list[Any] = Field(default_factory=list, description="Arguments in ABI order (0x-hex for bytes).")


class UnsignedTransaction(BaseModel):
    type: int
    chainId: int
    from_: str = Field(alias="from")
    to: str
    data: str
    value: int
    nonce: int
    gas: int
    maxFeePerGas: int
    maxPriorityFeePerGas: int

    model_config = {"populate_by_name": True}


class RelayRequest(BaseModel):
    raw: str = Field(
        pattern="^0x([0-9a-fA-F]{2})+$", description="The signed transaction, 0x-hex (EIP-1559 or EIP-2930)."
    )


class Relayed(BaseModel):
    tx_hash: str
    block_number: int
    status: int
    contract: str
    function: str


@router.post(
    "/prepare",
    operation_id="transaction_prepare",
    response_model=UnsignedTransaction,
    response_model_by_alias=True,
    responses=responses(401, 403, 409, 503),
)
def prepare(body: PrepareRequest, caller: Caller, service: ServiceDep) -> UnsignedTransaction:
    """The unsigned transaction of an allow-listed call from the caller, its gas estimated (409: the contract
    would refuse it, with the error's name and arguments). What a suspended partner may send is the contracts'
    rule, as for the relay: it still claims, unstakes and exits; staking or submitting is 409
    ``*PartnerNotApproved``."""
    return UnsignedTransaction.model_validate(
        relay.prepare(service, caller.address, body.contract, body.function, body.args)
    )


@router.post("", operation_id="transaction_relay", response_model=Relayed, responses=responses(401, 403, 409, 503))
def relay_transaction(
    body: RelayRequest,
    caller: Caller,
    service: ServiceDep,
    idempotency_key: Annotated[str | None, Header(max_length=200)] = None,
) -> Relayed:
    """Relays a transaction the caller signed (403: another signer, or not allow-listed; 409: an eth_call of it
    reverts, and nothing is sent). Relaying the same bytes again answers the same receipt."""
    answer = once(
        service,
        caller.address,
        idempotency_key,
        "transactions",
        body.raw.encode(),
        lambda: relay.relay(service, caller.address, body.raw),
    )
    return Relayed.model_validate(answer)
