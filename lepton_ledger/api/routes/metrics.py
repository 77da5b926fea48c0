"""``GET /metrics``: Prometheus text format (version 0.0.4), written here: a few counters and gauges need no
client library."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import PlainTextResponse

from ..deps import ServiceDep

router = APIRouter(tags=["metrics"])


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def render(service: ServiceDep) -> str:
    lines = [
        "# HELP lepton_http_requests_total Requests answered, by method, route and status.",
        "# TYPE lepton_http_requests_total counter",
    ]
    for (method, route, status), count in sorted(service.metrics.items()):
        lines.append(
            f'lepton_http_requests_total{{method="{_label(method)}",route="{_label(route)}",status="{status}"}} {count}'
        )
    lines += [
        "# HELP lepton_chain_block The latest block the read model has seen.",
        "# TYPE lepton_chain_block gauge",
        f"lepton_chain_block {service.reads.block}",
        "# HELP lepton_chain_up Whether the chain answers (1) or not (0).",
        "# TYPE lepton_chain_up gauge",
        f"lepton_chain_up {int(service.reads.chain_ok)}",
    ]
    return "\n".join(lines) + "\n"


@router.get(
    "/metrics",
    operation_id="metrics",
    response_class=PlainTextResponse,
    responses={200: {"content": {"text/plain": {}}, "description": "Prometheus text format."}},
)
def metrics(service: ServiceDep) -> PlainTextResponse:
    """Request counts by route and status, the read model's block, whether the chain answers."""
    return PlainTextResponse(render(service), media_type="text/plain; version=0.0.4")
