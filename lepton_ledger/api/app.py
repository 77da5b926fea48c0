"""``create_app(settings)``: the service's FastAPI application. The chain, deployment, store and database are
opened when the app starts (its lifespan) and closed when it stops."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request, Response

from ..settings import Settings
from . import errors
from .bodycap import BodyCap
from .routes import (
    agreements,
    audit,
    auth,
    blobs,
    challenges,
    commitments,
    coordination,
    dashboard,
    envelopes,
    health,
    jobs,
    metrics,
    partners,
    rewards,
    signatures,
    transactions,
)
from .service import open_service

METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
ROUTERS = (
    health.router,
    auth.router,
    partners.router,
    agreements.router,
    coordination.router,
    signatures.router,
    rewards.router,
    challenges.router,
    blobs.router,
    transactions.router,
    envelopes.router,
    commitments.router,
    jobs.router,
    audit.router,
    metrics.router,
    dashboard.router,
)


def create_app(settings: Settings) -> FastAPI:
    """The application serving `settings`'s chain and deployment.

    Raises (at start-up): CommandError (no or a foreign deployment file), ChainError (the chain does not answer).
    """

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        with open_service(settings) as service:
            app.state.service = service
            yield

    app = FastAPI(
        title="lepton-ledger",
        version="1",
        lifespan=lifespan,
        description="The ledger service: DP federated rounds, budgets and payouts over HTTP.",
    )
    errors.install(app)
    app.add_middleware(BodyCap, limit=settings.max_json_bytes)
    for router in ROUTERS:
        app.include_router(router)

    @app.middleware("http")
    async def count(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        response = await call_next(request)
        route = getattr(request.scope.get("route"), "path", "unmatched")
        # Any token is a method to the HTTP parser: one counter per distinct one would grow without bound.
        method = request.method if request.method in METHODS else "other"
        key = (method, route, response.status_code)
        counts = app.state.service.metrics
        counts[key] = counts.get(key, 0) + 1
        return response

    return app
