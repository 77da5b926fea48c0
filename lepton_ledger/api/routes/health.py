"""``GET /v1/health``: is the chain there, at which block, which deployment."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel

from ..deps import ServiceDep
from ..errors import responses

router = APIRouter(tags=["health"])


class Health(BaseModel):
    status: str
    chain_id: int
    block: int
    contracts: dict[str, str]


@router.get("/v1/health", operation_id="health", response_model=Health, responses=responses(503))
def health(service: ServiceDep) -> Health:
    """The chain id, the latest block the read model has seen, and the deployment's contracts (503 while the
    chain does not answer)."""
    service.reads.require_chain()
    return Health(
        status="ok", chain_id=service.chain_id, block=service.reads.block, contracts=service.deployment.addresses()
    )
