"""The round report, and how round artifacts are addressed in the store and on the chain.

Content addressing: every artifact of a round (global model, envelopes, aggregate, report) is addressed by
``protocol.addressing`` (one fixed codec, so the on-chain digest names exactly one CID, for any size).

Report format (version 1): canonical JSON (sorted keys, no spaces, UTF-8) of :meth:`RoundReport.to_dict`;
the ``reportDigest`` finalized on-chain is its CID digest. Amounts are decimal strings (uint256 does not fit a
JSON number everywhere); digests are 0x-hex. ``aggregation_rule`` with ``aggregation_params``, ``scoring`` with
``scoring_params``, and ``max_norm`` are the round's :class:`~lepton_ledger.rounds.outcome.RoundRules` as run
(outcome.py writes and reads them), so that an auditor re-runs the same.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from ..errors import ConfigurationError
from ..protocol.addressing import (
    ArtifactNotFound,
    cid_for_digest,
    content_digest,
    publish,
)
from ..protocol.addressing import fetch as fetch_by_digest
from ..protocol.errors import MalformedDocument
from ..protocol.jsonio import canonical_json, load_object
from .rules import RoundRules

if TYPE_CHECKING:  # fl.validation loads torch; a report is read without it
    from ..fl.validation import Reason

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
MAX_REPORT_BYTES = 16 << 20  # a report is ~1 KB a partner


def load_report(data: bytes) -> dict[str, Any]:
    """A round report's JSON object, bounded, of version 1 (its fields are checked by who reads them).

    Raises:
        DocumentTooLarge: over MAX_REPORT_BYTES.
        MalformedDocument: not a version-1 report.
    """
    doc = load_object(data, what="round report", max_bytes=MAX_REPORT_BYTES, max_depth=6)
    if doc.get("version") != REPORT_VERSION:
        raise MalformedDocument(f"not a version {REPORT_VERSION} round report")
    _check_fields(doc, _REPORT_FIELDS, "round report")
    for line in doc["partners"]:
        if not isinstance(line, dict):
            raise MalformedDocument("a round report line is not an object")
        _check_fields(line, _LINE_FIELDS, "round report line")
        if not all(isinstance(r, dict) for r in line["reasons"]):
            raise MalformedDocument("a round report line's reasons are not objects")
    return doc


_NUMBER = (int, float)
# An amount: a string of digits (uint256 does not fit a JSON number everywhere).
_DECIMAL: Literal["decimal"] = "decimal"
FieldKind = type | tuple[type, ...] | Literal["decimal"]  # what a field's JSON value must be
_REPORT_FIELDS: dict[str, FieldKind] = {
    "version": int,
    "chain_id": int,
    "ledger": str,
    "agreement_id": int,
    "round": int,
    "base_model_digest": str,
    "eval_commitment": str,
    "aggregation_rule": str,
    "max_norm": _NUMBER,
    "scoring": str,
    "payout_rule": str,
    "reward": _DECIMAL,
    "partners": list,
    "aggregation_params": dict,
    "scoring_params": dict,
    "aggregate_cid": (str, type(None)),
    "aggregate_digest": (str, type(None)),
    "metrics": dict,
}
_LINE_FIELDS: dict[str, FieldKind] = {
    "partner": str,
    "envelope_cid": str,
    "manifest_digest": str,
    "sample_count": int,
    "cumulative_epsilon_fixed": int,
    "accepted": bool,
    "reasons": list,
    "dp": (dict, type(None)),
    "cumulative_epsilon": (*_NUMBER, type(None)),
    "score": (*_NUMBER, type(None)),
    "payout": _DECIMAL,
}


def _check_fields(doc: dict[str, Any], fields: dict[str, FieldKind], what: str) -> None:
    if set(doc) != set(fields):
        raise MalformedDocument(f"{what} fields are not {sorted(fields)}")
    for name, kind in fields.items():
        value = doc[name]
        if isinstance(kind, str):  # _DECIMAL
            ok = isinstance(value, str) and value.isdecimal() and len(value) <= 78
        else:
            ok = isinstance(value, kind) and not (isinstance(value, bool) and kind is not bool)
        if not ok:
            raise MalformedDocument(f"{what} field {name} is not of the expected type")


@dataclass
class PartnerOutcome:
    """One partner's line in the report: its commitment, and what the coordinator made of it."""

    partner: str
    envelope_cid: str
    manifest_digest: str
    sample_count: int
    cumulative_epsilon_fixed: int
    accepted: bool
    reasons: list[Reason] = field(default_factory=list)  # Rejection.to_dict() or an envelope error
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
    rules: RoundRules  # written as the report's aggregation_rule, aggregation_params, scoring, scoring_params, max_norm
    payout_rule: str
    reward: int
    partners: list[PartnerOutcome]
    aggregate_cid: str | None = None
    aggregate_digest: str | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    version: int = REPORT_VERSION

    def to_dict(self) -> dict[str, Any]:
        doc = {**asdict(self), **self.rules.report_fields()}
        del doc["rules"]
        doc["reward"] = str(self.reward)
        for line in doc["partners"]:
            line["payout"] = str(line["payout"])
        return doc

    def to_bytes(self) -> bytes:
        return canonical_json(self.to_dict())

    @classmethod
    def from_bytes(cls, data: bytes) -> RoundReport:
        """The report :meth:`to_bytes` wrote (a restarted coordinator reuses the one it already published).

        Raises:
            MalformedDocument, DocumentTooLarge: not a version-1 report, over MAX_REPORT_BYTES, or rules that
                cannot run.
        """
        doc = load_report(data)
        try:
            rules = RoundRules.from_report(doc)
            lines = [PartnerOutcome(**{**line, "payout": int(line["payout"])}) for line in doc.pop("partners")]
            header = {k: v for k, v in doc.items() if k not in rules.report_fields()}
            return cls(**{**header, "rules": rules, "reward": int(doc["reward"]), "partners": lines})
        except (KeyError, TypeError, ValueError, ConfigurationError) as exc:
            raise MalformedDocument(f"round report does not parse: {exc}") from None

    @property
    def payouts(self) -> dict[str, int]:
        return {p.partner: p.payout for p in self.partners if p.payout}

    @property
    def accepted(self) -> list[str]:
        return [p.partner for p in self.partners if p.accepted]

    @property
    def rejected(self) -> dict[str, list[Reason]]:
        return {p.partner: p.reasons for p in self.partners if not p.accepted}
