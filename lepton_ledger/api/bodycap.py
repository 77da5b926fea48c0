"""A size cap on every request body but an envelope's (which has its own, ``max_envelope_bytes``): a body over
``max_json_bytes`` is refused with 413 in the one error shape before any route parses it, by its declared length
when it has one, else as soon as the bytes read exceed the cap."""

from __future__ import annotations

from typing import Any

from fastapi.responses import JSONResponse

Scope = dict[str, Any]
EXEMPT = ("/v1/envelopes",)


def _too_large(limit: int) -> JSONResponse:
    return JSONResponse(
        {"error": {"code": "TooLarge", "message": f"a request body is at most {limit} bytes", "detail": {}}},
        status_code=413,
    )


class BodyCap:
    """ASGI middleware: reads the body (at most `limit` bytes) before the app does, then hands it over."""

    def __init__(self, app: Any, limit: int) -> None:
        self.app, self.limit = app, limit

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["path"] in EXEMPT:
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length", b"")
        if declared.isdigit() and int(declared) > self.limit:
            await _too_large(self.limit)(scope, receive, send)
            return
        messages, size, more = [], 0, True
        while more:
            message = await receive()
            messages.append(message)
            if message["type"] != "http.request":  # the client left: let the app see it
                break
            size += len(message.get("body", b""))
            if size > self.limit:
                await _too_large(self.limit)(scope, receive, send)
                return
            more = message.get("more_body", False)

        async def replay() -> Any:
            return messages.pop(0) if messages else await receive()

        await self.app(scope, replay, send)
