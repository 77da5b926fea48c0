"""``GET /dashboard``: the ledger at a glance, for people. Server-rendered (Jinja2, autoescaped: every string
came from the chain or a store), no script, no build step; the audit report's style; plots inlined as PNG
``data:`` URIs; a Content-Security-Policy that lets the page load nothing else. Anonymous: it shows what the
chain shows anyone, and the service's jobs."""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

from fastapi import APIRouter
from fastapi.responses import HTMLResponse

from ...audit.html import STYLE, TOKEN_DECIMALS, format_tokens
from ...chain.transactions import utc_text
from ..dashboard import overview
from ..deps import ServiceDep
from ..errors import responses

router = APIRouter(tags=["dashboard"])

CSP = (
    "default-src 'none'; img-src data:; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'; "
    "frame-ancestors 'none'"
)
HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


@cache
def _template() -> Any:
    from jinja2 import Environment, FileSystemLoader, select_autoescape

    env = Environment(
        loader=FileSystemLoader(Path(__file__).resolve().parent.parent / "templates"),
        autoescape=select_autoescape(default=True),
        auto_reload=False,
    )
    env.filters["utc"] = utc_text
    env.filters["tokens"] = lambda amount: format_tokens(int(amount), TOKEN_DECIMALS)
    return env.get_template("dashboard.html")


def html_errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """The refusals of an HTML page: the one JSON error shape (documented as such, not as the page's type)."""
    return {
        status: {
            "description": doc["description"],
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}},
        }
        for status, doc in responses(*statuses).items()
    }


@router.get(
    "/dashboard",
    operation_id="dashboard",
    response_class=HTMLResponse,
    responses={200: {"content": {"text/html": {}}, "description": "The dashboard page."}, **html_errors()},
)
def dashboard(service: ServiceDep) -> HTMLResponse:
    """Agreements, rounds, epsilon per partner against its cap, stakes, payouts, challenges, jobs, the latest
    audit and the plots, as of the latest block (computed once per block)."""
    return HTMLResponse(_template().render(o=overview(service), style=STYLE), headers=HEADERS)
