"""One error shape for every refusal, and the mapping of the library's errors onto status codes.

``{"error": {"code": "...", "message": "...", "detail": {...}}}``:

- 422: malformed input (a LeptonError that is not one of the below, request validation);
- 404: a LeptonError that is also a LookupError (unknown CID, no payout leaf, an artifact missing);
- 409: a contract revert (``code`` is the custom error's name, ``detail`` its arguments) or a state conflict;
- 503: the chain does not answer (a ChainError that is no revert, a connection failure);
- 401/403/413/429: raised by the routes themselves as ``ApiError``.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from requests.exceptions import RequestException
from starlette.exceptions import HTTPException as StarletteHTTPException

from ..errors import ChainError, ContractReverted, LeptonError


class ErrorDetail(BaseModel):
    code: str
    message: str
    detail: dict[str, Any] = {}


class ErrorBody(BaseModel):
    """What every refused request answers."""

    error: ErrorDetail


class ApiError(Exception):
    """A refusal a route decides itself (401, 403, 404, 409, 413...)."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        detail: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message
        self.detail, self.headers = detail or {}, headers


def unauthorized(message: str) -> ApiError:
    return ApiError(401, "Unauthorized", message, headers={"WWW-Authenticate": "Bearer"})


def forbidden(message: str) -> ApiError:
    return ApiError(403, "Forbidden", message)


def not_found(message: str) -> ApiError:
    return ApiError(404, "NotFound", message)


def conflict(message: str, code: str = "Conflict") -> ApiError:
    return ApiError(409, code, message)


_TEXT = {
    401: "not signed in",
    403: "not allowed",
    404: "not found",
    409: "conflict",
    413: "body too large",
    422: "malformed request",
    429: "too many requests",
    503: "the chain does not answer",
}


def responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """The error responses a route documents (OpenAPI), all in the one shape: `statuses`, and 422 and 503, which
    any route may answer (malformed input; the chain gone while reading roles or views)."""
    return {status: {"model": ErrorBody, "description": _TEXT[status]} for status in sorted({*statuses, 422, 503})}


def _body(
    status: int, code: str, message: str, detail: dict[str, Any] | None = None, headers: dict[str, str] | None = None
) -> JSONResponse:
    return JSONResponse(
        {"error": {"code": code, "message": message, "detail": detail or {}}}, status_code=status, headers=headers
    )


def status_of(exc: LeptonError) -> int:
    """The status code of a library error (module docstring)."""
    if isinstance(exc, ContractReverted):
        return 409
    if isinstance(exc, ChainError):
        return 503
    if isinstance(exc, LookupError):
        return 404
    return 422


def install(app: FastAPI) -> None:
    """Registers the handlers that give every error the one shape."""

    @app.exception_handler(ApiError)
    async def _api(_: Request, exc: ApiError) -> JSONResponse:
        return _body(exc.status, exc.code, exc.message, exc.detail, exc.headers)

    @app.exception_handler(LeptonError)
    async def _lepton(_: Request, exc: LeptonError) -> JSONResponse:
        if isinstance(exc, ContractReverted):
            return _body(409, exc.error, str(exc), {k: str(v) for k, v in exc.args_by_name.items()})
        return _body(status_of(exc), type(exc).__name__, str(exc))

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {"loc": (), "msg": "malformed request"}
        where = ".".join(str(part) for part in first.get("loc", ()))
        return _body(422, "Malformed", f"{where}: {first.get('msg')}" if where else str(first.get("msg")))

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        if exc.status_code == 400:  # FastAPI's "error parsing the body" (not JSON): malformed, as documented
            return _body(422, "Malformed", str(exc.detail))
        # Starlette's 405 names the route's methods in `Allow` (RFC 9110 requires it): kept.
        code = "NotFound" if exc.status_code == 404 else "HTTPError"
        return _body(exc.status_code, code, str(exc.detail), headers=exc.headers)

    @app.exception_handler(RequestException)
    async def _unreachable(_: Request, exc: RequestException) -> JSONResponse:
        # web3's HTTP transport: the node went away (or timed out) under a call.
        return _body(503, "ChainUnreachable", f"the chain does not answer: {type(exc).__name__}")
