"""``GET /v1/health``: is the chain there, at which block and time, which deployment, does the service mine it.
``GET /v1/health/live``: does the process answer at all."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel, Field

from ..deps import ServiceDep
from ..errors import responses

router = APIRouter(tags=["health"])


class Health(BaseModel):
    status: str
    chain_id: int
    block: int
    time: int = Field(description="The latest block's timestamp: the clock every deadline is read against.")
    contracts: dict[str, str]
    mining: float | None = Field(
        description="Seconds without a block after which the service mines an empty one (a chain it runs itself); "
        "null: it does not mine."
    )


@router.get("/v1/health", operation_id="health", response_model=Health, responses=responses(503))
def health(service: ServiceDep) -> Health:
    """The chain id, the latest block the read model has seen, and the deployment's contracts (503 while the
    chain does not answer)."""
    reads = service.reads
    return Health(
        status="ok",
        chain_id=service.chain_id,
        block=reads.block,
        time=reads.now(),
        contracts=service.deployment.addresses(),
        mining=service.mining,
    )


class Live(BaseModel):
    status: str


@router.get("/v1/health/live", operation_id="health_live", response_model=Live, responses=responses())
async def live() -> Live:
    """The process answers: reads nothing (no chain, no database), for liveness probes and as the benchmark's
    baseline (bench/api.py)."""
    return Live(status="ok")
