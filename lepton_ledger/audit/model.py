"""What an audit produces: one :class:`CheckResult` per (check, round, partner or artifact), and the
:class:`AuditResult` that gathers them with a per-round summary.

JSON format (:meth:`AuditResult.to_dict`; the HTML report and the ``challenge`` command read it)::

    {"ok": bool, "chain_id": int, "contracts": {name: address}, "audited_at_block": int,
     "checks": [{"name": str, "ok": bool, "agreement_id": int|null, "round": int|null, "partner": str|null,
                 "cid": str|null, "message": str, "evidence": {...}}],
     "rounds": [{"agreement_id": int, "round": int, "accuracy": float|null, "gas_used": int, "block": int,
                 "partners": {"0xaddr": {"cumulative_epsilon": float, "epsilon_cap": float,
                                         "payout": "decimal str", "accepted": bool}}}],
     "rounds_checked": [[agreement, round]], "rounds_rechecked": [[agreement, round]]}

``evidence`` holds what a person or a challenge needs to see the fault: the transaction hash and block of the
event concerned, CIDs and digests (0x-hex), and the values expected and found. Amounts are decimal strings.
``checks`` lists the checks run by this audit: every check of the rounds in ``rounds_checked`` (new ones, or all
with ``--full``); for the rounds in ``rounds_rechecked`` (verified by an earlier audit) the re-fetch and re-hash of
every artifact they anchor (``cids_resolve``, ``batch_document``, evidence ``scope`` says so), their other checks
taken from that audit; and the global checks. ``rounds`` lists every finalized round verified so far.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "AGGREGATE_RECOMPUTED",
    "BATCH_DOCUMENT",
    "BONDS_CONSERVE",
    "CHECK_NAMES",
    "CIDS_RESOLVE",
    "ENVELOPE_DECRYPTS",
    "EPSILON_RECOMPUTED",
    "EPSILON_WITHIN_CAP",
    "EVENT_HISTORY",
    "MANIFEST_SIGNATURE",
    "REJECTIONS_RECHECK",
    "SAMPLE_COUNT_BOUND",
    "SCORES_AND_PAYOUTS",
    "VAULT_CONSERVES",
    "AuditResult",
    "CheckResult",
    "PartnerLine",
    "RoundSummary",
]

CIDS_RESOLVE = "cids_resolve"
BATCH_DOCUMENT = "batch_document"
ENVELOPE_DECRYPTS = "envelope_decrypts"
MANIFEST_SIGNATURE = "manifest_signature"
EPSILON_RECOMPUTED = "epsilon_recomputed"
EPSILON_WITHIN_CAP = "epsilon_within_cap"
SAMPLE_COUNT_BOUND = "sample_count_bound"
AGGREGATE_RECOMPUTED = "aggregate_recomputed"
REJECTIONS_RECHECK = "rejections_recheck"
SCORES_AND_PAYOUTS = "scores_and_payouts"
VAULT_CONSERVES = "vault_conserves"
BONDS_CONSERVE = "bonds_conserve"
EVENT_HISTORY = "event_history"

CHECK_NAMES = (
    CIDS_RESOLVE,
    BATCH_DOCUMENT,
    ENVELOPE_DECRYPTS,
    MANIFEST_SIGNATURE,
    EPSILON_RECOMPUTED,
    EPSILON_WITHIN_CAP,
    SAMPLE_COUNT_BOUND,
    AGGREGATE_RECOMPUTED,
    REJECTIONS_RECHECK,
    SCORES_AND_PAYOUTS,
    VAULT_CONSERVES,
    BONDS_CONSERVE,
    EVENT_HISTORY,
)


@dataclass
class CheckResult:
    """One check of one thing: pass or fail, a sentence for people, and the evidence behind it."""

    name: str
    ok: bool
    message: str
    agreement_id: int | None = None
    round: int | None = None
    partner: str | None = None
    cid: str | None = None
    evidence: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "ok": self.ok,
            "agreement_id": self.agreement_id,
            "round": self.round,
            "partner": self.partner,
            "cid": self.cid,
            "message": self.message,
            "evidence": dict(self.evidence),
        }


@dataclass
class PartnerLine:
    """One partner in one round, as the audit established it."""

    cumulative_epsilon: float
    epsilon_cap: float
    payout: int
    accepted: bool
    name: str | None = None  # the partner's name, from its registered profile (or a demo's keys): for people only

    def to_dict(self) -> dict[str, Any]:
        return {
            "cumulative_epsilon": self.cumulative_epsilon,
            "epsilon_cap": self.epsilon_cap,
            "payout": str(self.payout),
            "accepted": self.accepted,
            **({"name": self.name} if self.name is not None else {}),
        }

    @classmethod
    def from_dict(cls, doc: dict[str, Any]) -> PartnerLine:
        return cls(
            float(doc["cumulative_epsilon"]),
            float(doc["epsilon_cap"]),
            int(doc["payout"]),
            bool(doc["accepted"]),
            doc.get("name"),
        )


@dataclass
class RoundSummary:
    """One finalized round: accuracy of its aggregate on the evaluation set, gas, block, partners."""

    agreement_id: int
    round: int
    accuracy: float | None
    gas_used: int
    block: int
    partners: dict[str, PartnerLine] = field(default_factory=dict)
    accuracy_before: float | None = None  # of the round's base model: set on an agreement's first round

    def to_dict(self) -> dict[str, Any]:
        return {
            "agreement_id": self.agreement_id,
            "round": self.round,
            "accuracy": self.accuracy,
            "gas_used": self.gas_used,
            "block": self.block,
            "partners": {p: line.to_dict() for p, line in self.partners.items()},
            **({"accuracy_before": self.accuracy_before} if self.accuracy_before is not None else {}),
        }

    @classmethod
    def from_dict(cls, doc: dict[str, Any]) -> RoundSummary:
        return cls(
            int(doc["agreement_id"]),
            int(doc["round"]),
            doc["accuracy"],
            int(doc["gas_used"]),
            int(doc["block"]),
            {p: PartnerLine.from_dict(v) for p, v in doc["partners"].items()},
        )


@dataclass
class AuditResult:
    """Everything one audit found (see the module docstring for the JSON form)."""

    chain_id: int
    contracts: dict[str, str]
    audited_at_block: int
    checks: list[CheckResult] = field(default_factory=list)
    rounds: list[RoundSummary] = field(default_factory=list)
    rounds_checked: list[tuple[int, int]] = field(default_factory=list)  # (agreement, round) checked in full now
    rounds_rechecked: list[tuple[int, int]] = field(default_factory=list)  # artifacts re-hashed, rest from before

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.checks)

    @property
    def failed(self) -> list[CheckResult]:
        return [c for c in self.checks if not c.ok]

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "chain_id": self.chain_id,
            "contracts": dict(self.contracts),
            "audited_at_block": self.audited_at_block,
            "checks": [c.to_dict() for c in self.checks],
            "rounds": [r.to_dict() for r in self.rounds],
            "rounds_checked": [list(k) for k in self.rounds_checked],
            "rounds_rechecked": [list(k) for k in self.rounds_rechecked],
        }
