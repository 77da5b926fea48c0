"""``GET /dashboard``: the ledger at a glance, for people. Server-rendered (Jinja2, autoescaped: every string
came from the chain or a store), no script, no build step; the audit report's style; plots inlined as PNG
``data:`` URIs; a Content-Security-Policy that lets the page load nothing else. Anonymous, it shows the chain's
facts (what any node shows anyone); with a bearer token, also what the API shows that caller (dashboard.py)."""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Header
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
    responses={200: {"content": {"text/html": {}}, "description": "The dashboard page."}, **html_errors(401)},
)
def dashboard(service: ServiceDep, authorization: Annotated[str | None, Header()] = None) -> HTMLResponse:
    """Agreements, rounds, epsilon per partner against its cap, stakes and challenges (the chain's facts, shown to
    anyone); with `Authorization: Bearer`, also what the API shows the caller: payouts, claimable rewards and plots
    from the round reports and jobs of its agreements, all of them and the latest audit for the coordinator and
    auditors (401: a token that is not valid). As of the latest block (computed once per block)."""
    caller = service.reads.roles(service.auth.address_of(authorization)) if authorization else None
    return HTMLResponse(_template().render(o=overview(service, caller), style=STYLE), headers=HEADERS)
