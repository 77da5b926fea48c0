"""``GET`` / ``HEAD /v1/blobs/{cid}``: an artifact of the block store (models, envelopes, reports), every block
verified against its CID before a byte is sent; for signed-in parties."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Response

from ...storage.store import DEFAULT_MAX_FILE_BYTES
from ..deps import Caller, ServiceDep
from ..errors import forbidden, responses

router = APIRouter(prefix="/v1/blobs", tags=["blobs"])

Cid = Annotated[str, Path(min_length=1, max_length=200, description="A UnixFS CID (v0 Qm..., or v1 base32).")]
_BINARY = {200: {"content": {"application/octet-stream": {}}, "description": "The artifact's bytes."}}


def _fetch(cid: str, caller: Caller, service: ServiceDep) -> bytes:
    if caller.status == "suspended":
        raise forbidden(f"{caller.address} is suspended")
    return service.store.get(cid, max_bytes=DEFAULT_MAX_FILE_BYTES)


@router.get("/{cid}", operation_id="blob_get", response_class=Response,
            responses={**_BINARY, **responses(401, 403, 404)})  # fmt: skip
def get_blob(cid: Cid, caller: Caller, service: ServiceDep) -> Response:
    """The artifact's bytes (404: the store holds no such CID; 422: not a CID)."""
    data = _fetch(cid, caller, service)
    return Response(data, media_type="application/octet-stream", headers={"ETag": f'"{cid}"'})


@router.head("/{cid}", operation_id="blob_head", response_class=Response, responses=responses(401, 403, 404))
def head_blob(cid: Cid, caller: Caller, service: ServiceDep) -> Response:
    """Whether the store holds the artifact, and its size."""
    data = _fetch(cid, caller, service)
    return Response(headers={"Content-Length": str(len(data)), "ETag": f'"{cid}"'},
                    media_type="application/octet-stream")  # fmt: skip
