"""The round report, and how round artifacts are addressed in the store and on the chain.

Content addressing (one rule for every artifact of a round: global model, envelopes, aggregate, report).
Artifacts are put with CIDv1 (raw leaves, as ``ipfs add --cid-version=1``), and the bytes32 the chain holds
is the **CID's sha2-256 digest** (``parse_cid(cid).digest``). For an artifact of one chunk (<= 256 KiB: every
model and envelope of the tests and the demo) the CID is a single raw block and its digest *is* SHA-256 of
the bytes; for a larger one it is the root dag-pb node's hash. Either way the CID is recoverable from the
digest alone (try codec raw, then dag-pb: :func:`cid_for_digest`), so nothing but the chain is needed to find
an artifact, and the store verifies every block it returns against its CID.

Report format (version 1): canonical JSON (sorted keys, no spaces, UTF-8) of :meth:`RoundReport.to_dict`;
the ``reportDigest`` finalized on-chain is its CID digest. Amounts are decimal strings (uint256 does not fit a
JSON number everywhere); digests are 0x-hex. ``aggregation_rule`` with ``aggregation_params`` and ``scoring`` with
``scoring_params`` name exactly what the coordinator ran (``fl.aggregate``, ``fl.contribution_scores``), so that
an auditor re-runs the same.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

from ..errors import LeptonError
from ..storage.cid import DAG_PB, RAW, cid_from_digest, cid_to_str, parse_cid
from ..storage.unixfs import import_file

__all__ = [
    "REPORT_VERSION",
    "ArtifactNotFound",
    "PartnerOutcome",
    "RoundReport",
    "cid_for_digest",
    "content_digest",
    "fetch_by_digest",
    "publish",
]

REPORT_VERSION = 1


class ArtifactNotFound(LeptonError, LookupError):
    """No CID with this digest (raw or dag-pb, CIDv1) is in the store."""


def publish(store: Any, data: bytes) -> tuple[str, bytes]:
    """Puts `data` as CIDv1 and returns ``(cid, digest)``, the digest being what goes on-chain."""
    cid = store.put(data, cid_version=1)
    return cid, parse_cid(cid).digest


def content_digest(data: bytes) -> bytes:
    """The digest :func:`publish` would put on-chain for `data`, computed without a store."""
    return parse_cid(import_file(data, cid_version=1).cid).digest


def cid_for_digest(store: Any, digest: bytes) -> str:
    """The CIDv1 (raw, else dag-pb) with this sha2-256 digest that the store holds.

    Raises:
        ArtifactNotFound: neither is in the store.
    """
    for codec in (RAW, DAG_PB):
        cid = cid_to_str(cid_from_digest(bytes(digest), version=1, codec=codec))
        if store.has(cid):
            return cid
    raise ArtifactNotFound(f"no artifact with digest 0x{bytes(digest).hex()} in the store")


def fetch_by_digest(store: Any, digest: bytes) -> bytes:
    """The bytes whose CID digest is `digest` (verified block by block by the store).

    Raises:
        ArtifactNotFound: the store holds no such CID.
    """
    return store.get(cid_for_digest(store, digest))


@dataclass
class PartnerOutcome:
    """One partner's line in the report: its commitment, and what the coordinator made of it."""

    partner: str
    envelope_cid: str
    manifest_digest: str
    sample_count: int
    cumulative_epsilon_fixed: int
    accepted: bool
    reasons: list[dict[str, Any]] = field(default_factory=list)  # Rejection.to_dict() or an envelope error
    dp: dict[str, Any] | None = None  # the manifest's DP parameters (DPRecord fields)
    cumulative_epsilon: float | None = None
    score: float | None = None
    payout: int = 0


@dataclass
class RoundReport:
    """What the coordinator publishes for one round (see the module docstring for the format)."""

    chain_id: int
    ledger: str
    agreement_id: int
    round: int
    base_model_digest: str
    eval_commitment: str
    aggregation_rule: str
    max_norm: float
    scoring: str  # "<method>:accuracy", method a key of fl.scoring.SCORERS
    payout_rule: str
    reward: int
    partners: list[PartnerOutcome]
    aggregation_params: dict[str, Any] = field(default_factory=dict)  # fl.aggregate's keyword parameters
    scoring_params: dict[str, Any] = field(default_factory=dict)  # fl.contribution_scores' keyword parameters
    aggregate_cid: str | None = None
    aggregate_digest: str | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    version: int = REPORT_VERSION

    def to_dict(self) -> dict[str, Any]:
        doc = asdict(self)
        doc["reward"] = str(self.reward)
        for line in doc["partners"]:
            line["payout"] = str(line["payout"])
        return doc

    def to_bytes(self) -> bytes:
        return json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"), allow_nan=False).encode()

    @classmethod
    def from_bytes(cls, data: bytes) -> RoundReport:
        """The report :meth:`to_bytes` wrote (a restarted coordinator reuses the one it already published).

        Raises:
            ValueError: not a version-1 report.
        """
        doc = json.loads(data)
        if not isinstance(doc, dict) or doc.get("version") != REPORT_VERSION:
            raise ValueError(f"not a version {REPORT_VERSION} round report")
        lines = [PartnerOutcome(**{**line, "payout": int(line["payout"])}) for line in doc.pop("partners")]
        return cls(**{**doc, "reward": int(doc["reward"]), "partners": lines})

    @property
    def payouts(self) -> dict[str, int]:
        return {p.partner: p.payout for p in self.partners if p.payout}

    @property
    def accepted(self) -> list[str]:
        return [p.partner for p in self.partners if p.accepted]

    @property
    def rejected(self) -> dict[str, list[dict[str, Any]]]:
        return {p.partner: p.reasons for p in self.partners if not p.accepted}
