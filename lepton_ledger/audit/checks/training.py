"""``rejections_recheck`` and ``aggregate_recomputed``: what the coordinator made of the round's updates.

Both re-run the coordinator's own functions (``rounds.outcome``) by the rules the report names
(``rounds.rules.RoundRules``, read back from it):

- ``rejections_recheck``, per committed partner: the report's verdict re-derives. An update the auditor could
  not open must be rejected with the error's class name (as the coordinator records it); one that opens must
  be rejected exactly with the codes ``outcome.judge`` finds against the round's base model and the report's
  norm bound, and accepted when it finds none.
- ``aggregate_recomputed``, per round: ``outcome.combine`` of the updates the report accepted (in commitment
  order, weighted by their signed sample counts) onto the base model gives, serialized, the finalized
  ``aggregateDigest``, bit for bit (every rule of ``fl.aggregation`` is deterministic; a rule it does not know
  fails the check).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

from ...envelope.tensors import deserialize_tensors, serialize_tensors
from ...errors import LeptonError
from ...fl.aggregation import AggregationError
from ...rounds.outcome import Update, combine, judge
from ...rounds.report import content_digest
from ...rounds.rules import RoundRules
from ..chain_view import Commitment, RoundRecord
from ..model import AGGREGATE_RECOMPUTED, REJECTIONS_RECHECK, CheckResult

__all__ = ["RoundMaterial", "recheck_rejections", "recompute_aggregate"]


@dataclass
class RoundMaterial:
    """What the auditor fetched and opened for one round, the inputs of the round-level checks."""

    record: RoundRecord
    commitments: list[Commitment]
    report: dict[str, Any] | None = None
    rules: RoundRules | None = None  # the rules the report names (set with the report)
    report_cid: str | None = None
    base: dict[str, torch.Tensor] | None = None
    aggregate_bytes: bytes | None = None  # the finalized aggregate as the store holds it
    aggregate_cid: str | None = None
    opened: dict[str, Any] = field(default_factory=dict)  # partner -> OpenedEnvelope
    open_codes: dict[str, str | None] = field(default_factory=dict)  # partner -> rejection code it deserves
    unchecked: dict[str, str] = field(default_factory=dict)  # partner -> why its update could not be examined

    def report_lines(self) -> dict[str, dict[str, Any]]:
        return {line["partner"]: line for line in (self.report or {}).get("partners", [])}

    def accepted(self) -> list[str]:
        """Partners the report accepted, in commitment order."""
        lines = self.report_lines()
        return [c.partner for c in self.commitments if lines.get(c.partner, {}).get("accepted")]

    def accepted_updates(self) -> dict[str, Update] | None:
        """``{partner: (delta, sample count)}`` of the updates the report accepted, in commitment order; None when
        one of them could not be examined."""
        accepted = self.accepted()
        if any(p in self.unchecked or p not in self.opened for p in accepted):
            return None
        return {p: (self.opened[p].tensors, float(self.opened[p].manifest.sample_count)) for p in accepted}


def recheck_rejections(m: RoundMaterial) -> list[CheckResult]:
    a, r = m.record.agreement_id, m.record.round
    lines = m.report_lines()
    results = []
    committed = {c.partner for c in m.commitments}
    assert m.base is not None and m.rules is not None
    opened = {p: (e.tensors, e.manifest.sample_count) for p, e in m.opened.items() if m.open_codes.get(p) is None}
    _, verdicts = judge(opened, m.base, m.rules)
    for partner in lines.keys() - committed:
        results.append(
            CheckResult(
                REJECTIONS_RECHECK,
                False,
                f"the report has a line for {partner}, who committed nothing in this round",
                a,
                r,
                partner,
                m.report_cid,
                {"report_cid": m.report_cid},
            )
        )
    for c in m.commitments:
        p = c.partner
        if p in m.unchecked:
            continue
        line = lines.get(p)
        if line is None:
            results.append(
                CheckResult(
                    REJECTIONS_RECHECK,
                    False,
                    f"the report leaves out {p}'s committed update",
                    a,
                    r,
                    p,
                    m.report_cid,
                    c.evidence(),
                )
            )
            continue
        if p in opened:
            detail = verdicts.get(p, [])
            expected = sorted(x["code"] for x in detail)
        else:
            expected, detail = [m.open_codes.get(p) or "unopened"], []
        found = sorted(str(reason.get("code")) for reason in line.get("reasons", []))
        verdict_ok = bool(line.get("accepted")) == (not expected)
        ok = verdict_ok and found == expected
        what = "accepted" if not expected else f"rejected for {', '.join(expected)}"
        message = (
            f"re-derived: {what}, as the report says"
            if ok
            else f"re-derived: {what}; the report says {'accepted' if line.get('accepted') else 'rejected'}"
            + (f" for {', '.join(found)}" if found else "")
        )
        results.append(
            CheckResult(
                REJECTIONS_RECHECK,
                ok,
                message,
                a,
                r,
                p,
                m.report_cid,
                {
                    **c.evidence(),
                    "expected": expected,
                    "found": found,
                    "max_norm": m.rules.max_norm,
                    "rederived": detail,
                },
            )
        )
    return results


def recompute_aggregate(m: RoundMaterial) -> tuple[CheckResult | None, dict[str, torch.Tensor] | None]:
    """The round's ``aggregate_recomputed`` result (None when an accepted update could not be examined) and
    the recomputed aggregate model."""
    record, report = m.record, m.report or {}
    a, r = record.agreement_id, record.round
    updates = m.accepted_updates()
    if updates is None:
        return None, None
    accepted = list(updates)
    finalized = record.finalized
    assert finalized is not None and m.base is not None and m.rules is not None
    on_chain = finalized.args["aggregateDigest"]
    rule = m.rules.aggregation
    evidence = {
        "tx_hash": finalized.tx_hash,
        "block": finalized.block_number,
        "rule": rule,
        "accepted": accepted,
        "expected": None,
        "found": on_chain,
        "report_aggregate_digest": report.get("aggregate_digest"),
    }
    if not accepted:
        return CheckResult(
            AGGREGATE_RECOMPUTED,
            False,
            "the round was finalized with no accepted update",
            a,
            r,
            None,
            m.aggregate_cid,
            evidence,
        ), None
    try:
        state = combine(m.base, updates, m.rules)
    except AggregationError as exc:
        return CheckResult(
            AGGREGATE_RECOMPUTED,
            False,
            f"the accepted updates do not aggregate by {rule!r}: {exc}",
            a,
            r,
            None,
            m.aggregate_cid,
            evidence,
        ), None
    digest = "0x" + content_digest(serialize_tensors(state)).hex()
    evidence["expected"] = digest
    if report.get("aggregate_digest") != on_chain:
        return CheckResult(
            AGGREGATE_RECOMPUTED,
            False,
            f"the report's aggregate digest {report.get('aggregate_digest')} is not the finalized {on_chain}",
            a,
            r,
            None,
            m.aggregate_cid,
            evidence,
        ), state
    if digest == on_chain:
        return CheckResult(
            AGGREGATE_RECOMPUTED,
            True,
            f"{rule} of {len(accepted)} accepted update(s) recomputes the finalized aggregate bit for bit",
            a,
            r,
            None,
            m.aggregate_cid,
            evidence,
        ), state
    difference = _max_difference(state, m.aggregate_bytes)
    evidence["max_abs_difference"] = difference
    # Every rule of fl.aggregation is deterministic (same updates in the same order, same bits): any difference
    # is a failure, however small; the difference is reported to tell a slip from a substitution.
    return CheckResult(
        AGGREGATE_RECOMPUTED,
        False,
        f"{rule} of the {len(accepted)} accepted update(s) gives {digest}, "
        f"the round finalized {on_chain}" + (f" (max difference {difference:.3g})" if difference else ""),
        a,
        r,
        None,
        m.aggregate_cid,
        evidence,
    ), state


def _max_difference(state: dict[str, torch.Tensor], published: bytes | None) -> float | None:
    if published is None:
        return None
    try:
        other = deserialize_tensors(published)
        return max(float((state[k].double() - other[k].double()).abs().max()) for k in state)
    except (LeptonError, KeyError, RuntimeError):  # a published aggregate of another shape has no distance
        return None
