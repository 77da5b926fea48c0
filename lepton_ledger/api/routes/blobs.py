"""``GET`` / ``HEAD /v1/blobs/{cid}``: an artifact of the block store (models, envelopes, reports), streamed,
every block verified against its CID before its bytes are sent; for the parties of the agreement it belongs to,
the coordinator and auditors (access.py). The root block is read
before the answer starts, so an unknown, malformed or oversize CID is a clean 404/422; a block found damaged
later cuts the stream (the bytes sent so far were verified)."""

from __future__ import annotations

import itertools
from typing import Annotated, Any

from fastapi import APIRouter, Path, Response
from fastapi.responses import StreamingResponse

from ...storage.store import DEFAULT_MAX_FILE_BYTES, BlockNotFound
from ..access import require_blob_reader
from ..deps import Caller, ServiceDep
from ..errors import responses

router = APIRouter(prefix="/v1/blobs", tags=["blobs"])

Cid = Annotated[str, Path(min_length=1, max_length=200, description="A UnixFS CID (v0 Qm..., or v1 base32).")]
_BINARY: dict[int | str, dict[str, Any]] = {
    200: {"content": {"application/octet-stream": {}}, "description": "The artifact's bytes."}
}


def _require_blob(cid: str, caller: Caller, service: ServiceDep) -> None:
    require_blob_reader(service, caller, cid)
    if not service.store.has(cid):
        raise BlockNotFound(cid)


@router.get(
    "/{cid}", operation_id="blob_get", response_class=Response, responses={**_BINARY, **responses(401, 403, 404)}
)
def get_blob(cid: Cid, caller: Caller, service: ServiceDep) -> Response:
    """The artifact's bytes (404: the store holds no such CID; 422: not a CID)."""
    _require_blob(cid, caller, service)
    chunks = service.store.stream(cid, max_bytes=DEFAULT_MAX_FILE_BYTES)
    first = next(chunks, b"")  # the root's checks (size bound, a missing leaf at the start) before answering
    return StreamingResponse(
        itertools.chain([first], chunks), media_type="application/octet-stream", headers={"ETag": f'"{cid}"'}
    )


@router.head("/{cid}", operation_id="blob_head", response_class=Response, responses=responses(401, 403, 404))
def head_blob(cid: Cid, caller: Caller, service: ServiceDep) -> Response:
    """Whether the store holds the artifact (its root block)."""
    _require_blob(cid, caller, service)
    return Response(headers={"ETag": f'"{cid}"'}, media_type="application/octet-stream")
