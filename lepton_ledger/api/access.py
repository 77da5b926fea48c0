"""Who may read what the service keeps beside the chain: blobs of the store and jobs.

- The coordinator role and auditors read every blob and job (they oversee every agreement).
- Anyone else reads what belongs to an agreement it holds a role in (party, the agreement's coordinator, its
  arbiter; ``ReadModel.agreement_roles``): a blob the agreement names on-chain (terms document, a round's model,
  aggregate or report) and the agreement's jobs. An envelope uploaded through the service is read by its uploader
  (and the overseers): it is sealed to them, not to the other parties.
- A suspended partner reads no blob.

A blob nobody may show the caller is 403 whether or not the store holds it, so its existence does not leak.
"""

from __future__ import annotations

from typing import Any

from ..protocol.addressing import cid_for_digest, digest_of_cid
from ..storage.cid import parse_cid
from ..storage.store import InvalidCID
from .errors import forbidden
from .readmodel import Roles
from .service import Service


def blob_key(cid: str) -> str:
    """The one spelling of an artifact CID (v0), so v0 and v1 of one artifact are one blob; other CIDs as given.

    Raises:
        InvalidCID: not a CID at all (422).
    """
    parse_cid(cid)
    try:
        return cid_for_digest(digest_of_cid(cid))
    except InvalidCID:  # a CID, but no artifact digest names it (not dag-pb)
        return cid


def require_blob_reader(service: Service, caller: Roles, cid: str) -> None:
    """Raises ApiError 403 unless `caller` may read `cid` (module docstring)."""
    if caller.status == "suspended":
        raise forbidden(f"{caller.address} is suspended")
    key = blob_key(cid)
    if caller.coordinator or caller.auditor:
        return
    reads = service.reads
    for agreement_id in reads.agreement_roles(caller.address):
        if key in {cid_for_digest(d) for d in reads.artifacts(int(agreement_id))}:
            return
    uploaded = (
        service.db.connection()
        .execute("SELECT 1 FROM blobs WHERE cid = ? AND uploader = ?", (key, caller.address))
        .fetchone()
    )
    if uploaded is None:
        raise forbidden(f"{cid} is no artifact of an agreement {caller.address} holds a role in")


def require_job_reader(service: Service, caller: Roles, job: dict[str, Any]) -> None:
    """Raises ApiError 403 unless `caller` may follow `job` (module docstring)."""
    if caller.coordinator or caller.auditor:
        return
    if str(job["agreement_id"]) not in service.reads.agreement_roles(caller.address):
        raise forbidden(
            f"job {job['id']} belongs to agreement {job['agreement_id']}, where {caller.address} holds no role"
        )
