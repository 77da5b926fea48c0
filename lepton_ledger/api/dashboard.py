"""What the dashboard shows, gathered from the read model and the store once per block: agreements and their
rounds, each party's on-chain epsilon against its cap, stake and rewards, payouts per round (from the round
reports), challenges, the service's jobs, the latest audit, and the audit report's plots drawn from the round
reports. Rendering is the template's (templates/dashboard.html); nothing here writes HTML.

Who sees what is the API's rule (:func:`overview`): the chain's facts (agreements, parties, signatures, on-chain
epsilon, stakes, claimed rewards, rounds, challenges) anyone reads from any node, so the page shows them to
anyone; what only the service holds is shown to whom the API shows it: a round report's payouts, the claimable
rewards and the plots drawn from the reports to the agreement's role holders (the blobs' rule), its jobs likewise,
the latest audit to auditors and the coordinator; the coordinator role and auditors see everything.
"""

from __future__ import annotations

import base64
from typing import Any

from eth_utils import is_address

from ..audit.html import plot_accuracy, plot_epsilon, plot_payouts
from ..chain.state import Challenge, ResultsChallenge
from ..errors import LeptonError
from ..protocol.jsonio import FILE_BYTES, load_object, read_bounded
from ..rounds.report import MAX_REPORT_BYTES, fetch_by_digest, load_report
from ..rounds.roles import standing
from ..units import EPSILON_SCALE, RoundStatus
from .readmodel import Roles
from .service import Service

JOBS_SHOWN = 20
LATEST_AUDIT = "latest.json"  # under <data dir>/audit/: an AuditResult.to_dict() (``audit --json``)


def overview(service: Service, caller: Roles | None = None) -> dict[str, Any]:
    """What the dashboard shows `caller` (None: anonymous; module docstring). The whole page's data is computed
    at most once per block; the plots once per block for each set of agreements a caller may see."""
    whole = service.reads.cached(("dashboard",), lambda: _overview(service))
    if caller is not None and (caller.coordinator or caller.auditor):
        readable = {a["id"] for a in whole["agreements"]}
    elif caller is not None and caller.status != "suspended":  # a suspended partner reads no blob
        readable = {int(a) for a in service.reads.agreement_roles(caller.address)}
    else:
        readable = set()
    shown = frozenset(readable)
    agreements = [a if a["id"] in shown else _chain_only(a) for a in whole["agreements"]]
    plotted = [r for a in agreements for r in a["rounds"] if a["id"] in shown and r["report"] is not None]
    overseer = caller is not None and (caller.coordinator or caller.auditor)
    return {
        **whole,
        "agreements": agreements,
        "jobs": [j for j in whole["jobs"] if j["agreement_id"] in shown or overseer],
        "audit": whole["audit"] if overseer else None,
        "plots": service.reads.cached(("dashboard-plots", shown), lambda: _plots(plotted, whole["caps"])),
        "caller": caller.address if caller is not None else None,
        "overseer": overseer,
    }


def _chain_only(agreement: dict[str, Any]) -> dict[str, Any]:
    """`agreement` without what its round reports say (payouts, claimable rewards): the chain's facts alone."""
    parties = [{**p, "claimable": None} for p in agreement["parties"]]
    rounds = [{**r, "report": None, "payouts": None} for r in agreement["rounds"]]
    return {**agreement, "parties": parties, "rounds": rounds}


def _overview(service: Service) -> dict[str, Any]:
    reads = service.reads
    agreements, caps = [], {}
    for agreement_id in range(1, reads.agreement_count() + 1):
        agreement = reads.agreement(agreement_id)
        assert agreement is not None
        rounds = [_round(service, agreement_id, n) for n in range(1, agreement["rounds"] + 1)]
        terms = agreement["terms"]
        parties = []
        for party in terms.parties:
            signed = agreement["signed"].get(party, False)
            try:
                held = standing(service.deployment, service.store, agreement_id, party, reads.now())
            except LeptonError as exc:  # a round report missing or malformed: said on its row, not the page's 500
                parties.append({"address": party, "signed": signed, "error": str(exc)})
                continue
            parties.append(
                {
                    "address": party,
                    "epsilon": held.epsilon_fixed / EPSILON_SCALE,
                    "cap": held.epsilon_cap_fixed / EPSILON_SCALE,
                    "stake": held.stake,
                    "required_stake": held.required_stake,
                    "claimable": held.claimable,
                    "claimed": held.claimed,
                    "signed": signed,
                }
            )
        state = agreement["state"]
        agreements.append(
            {
                "id": agreement_id,
                "status": state.status.name.lower(),
                "version": state.version,
                "coordinator": state.coordinator,
                "arbiter": agreement["arbiter"],
                "pool": agreement["pool"].funded,
                "reward_per_round": terms.reward_per_round,
                "parties": parties,
                "rounds": rounds,
            }
        )
        caps[agreement_id] = terms.epsilon_cap
    return {
        "block": reads.block,
        "chain_id": service.chain_id,
        "agreements": agreements,
        "caps": caps,
        "challenges": _challenges(service),
        "jobs": _jobs(service),
        "audit": _latest_audit(service),
    }


def _round(service: Service, agreement_id: int, round_id: int) -> dict[str, Any]:
    found = service.reads.round(agreement_id, round_id)
    assert found is not None
    record = found["record"]
    report = None
    if record.status is RoundStatus.FINALIZED:
        try:
            report = load_report(fetch_by_digest(service.store, record.report_digest, max_bytes=MAX_REPORT_BYTES))
        except (
            LeptonError,
            LookupError,
        ):  # the store lacks it or holds no well-formed report: shown as missing
            report = None
    return {
        "round": round_id,
        "agreement_id": agreement_id,
        "status": record.status.name.lower(),
        "submissions": record.submissions,
        "deadline": record.deadline,
        "finalized_at": record.finalized_at,
        "report": report,
        "payouts": {line["partner"]: int(line["payout"]) for line in (report or {}).get("partners", [])},
    }


def _plotted(r: dict[str, Any], cap: float) -> dict[str, Any]:
    """A round in the shape the audit report's plots take. The report is the coordinator's word (only its digest
    is on-chain): a line naming no address, or an accuracy that is no number in [0, 1], is left out of the plots
    (a label is read as TeX, an axis cannot span 1e308)."""
    metrics = r["report"].get("metrics", {})
    partners = {
        line["partner"]: {
            "cumulative_epsilon": int(line["cumulative_epsilon_fixed"]) / EPSILON_SCALE,
            "epsilon_cap": cap,
            "payout": int(line["payout"]),
            "accepted": bool(line["accepted"]),
            "name": None,
        }
        for line in r["report"]["partners"]
        if is_address(line["partner"])
    }
    return {
        "agreement_id": r["agreement_id"],
        "round": r["round"],
        "accuracy": _accuracy(metrics.get("accuracy_after")),
        "gas_used": 0,
        "block": 0,
        "partners": partners,
        "accuracy_before": _accuracy(metrics.get("accuracy_before")) if r["round"] == 1 else None,
    }


def _accuracy(value: Any) -> float | None:
    if isinstance(value, int | float) and not isinstance(value, bool) and 0 <= value <= 1:
        return float(value)
    return None


def _plots(reported: list[dict[str, Any]], caps: dict[int, float]) -> list[dict[str, str]]:
    """The plots of the `reported` rounds as ``data:`` URIs (the page loads nothing else); none without a round."""
    if not reported:
        return []
    rounds = [_plotted(r, caps[r["agreement_id"]]) for r in reported]
    drawn = (
        ("accuracy", "Accuracy of the global model", plot_accuracy(rounds)),
        ("epsilon", "Cumulative epsilon per partner against its cap", plot_epsilon(rounds)),
        ("payouts", "Payout per partner per round", plot_payouts(rounds)),
    )
    return [
        {"id": f"plot-{name}", "alt": alt, "src": "data:image/png;base64," + base64.b64encode(png).decode()}
        for name, alt, png in drawn
    ]


def _challenges(service: Service) -> list[dict[str, Any]]:
    found = []
    courts: tuple[tuple[str, Any, type[Challenge | ResultsChallenge]], ...] = (
        ("update", service.deployment.ledger, Challenge),
        ("results", service.deployment.court, ResultsChallenge),
    )
    for court, contract, struct in courts:
        for challenge_id in range(1, int(contract.functions.challengeCount().call()) + 1):
            c = struct.read(contract.functions.challengeOf(challenge_id))
            found.append(
                {
                    "court": court,
                    "id": challenge_id,
                    "status": c.status.name.lower(),
                    "round": c.round,
                    "agreement_id": c.agreement_id,
                    "challenger": c.challenger,
                }
            )
    return found


def _jobs(service: Service) -> list[dict[str, Any]]:
    rows = (
        service.db.connection()
        .execute(
            "SELECT id, kind, agreement_id, round_id, status, progress, error FROM jobs ORDER BY id DESC LIMIT ?",
            (JOBS_SHOWN,),
        )
        .fetchall()
    )
    return [dict(row) for row in rows]


def _latest_audit(service: Service) -> dict[str, Any] | None:
    """The latest audit result left in ``<data dir>/audit/latest.json``, summed up; None when there is none or it
    is not an audit result."""
    path = service.settings.data_dir / "audit" / LATEST_AUDIT
    try:
        result = load_object(read_bounded(path, FILE_BYTES), what=str(path), max_bytes=FILE_BYTES)
        checks = result["checks"]
        failed = [c for c in checks if not c["ok"]]
        return {
            "ok": not failed,
            "checks": len(checks),
            "failed": len(failed),
            "block": int(result["audited_at_block"]),
            "first_failure": failed[0]["message"] if failed else None,
        }
    except (OSError, LeptonError, ValueError, KeyError, TypeError):
        return None


__all__ = ["overview"]
