"""``scores_and_payouts``: contribution scores re-computed on the evaluation set rebuilt from its spec (whose
``fl.eval_commitment`` must be the round's ``evalCommitment``), payouts by the agreement's on-chain rule, and
the payout tree they give against the finalized root and total and the vault's allocation.

One result per partner of the report (its score within :data:`SCORE_TOLERANCE` of the re-computed one, its
payout exactly the re-computed one) and one for the round (evaluation set, reward, payout root and total).
Scores and payouts are ``rounds.outcome.settle`` of the updates the report accepted, by the rules it names
(``rounds.rules.RoundRules``: leave-one-out, TMC-Shapley or exact Shapley, all deterministic for their
parameters), the agreement's reward and payout rule: the function the coordinator ran.
"""

from __future__ import annotations

from typing import Any

from ...chain.merkle import PayoutTree
from ...chain.state import Terms
from ...errors import ConfigurationError
from ...fl.aggregation import AggregationError
from ...rounds.outcome import Evaluation, settle
from ..model import SCORES_AND_PAYOUTS, CheckResult
from .training import RoundMaterial

__all__ = ["SCORE_TOLERANCE", "check_scores_and_payouts"]

# Accuracy is a count over the evaluation set: scores agree exactly unless float summation order differs.
SCORE_TOLERANCE = 1e-6


def check_scores_and_payouts(
    m: RoundMaterial,
    terms: Terms,
    eval_commitment_ok: tuple[bool, str],
    evaluation: Evaluation,
    allocation: dict[str, Any] | None,
) -> list[CheckResult]:
    """`eval_commitment_ok` is (whether the rebuilt evaluation set has the round's commitment, its 0x-hex
    commitment); `allocation` the round's ``Allocated`` event args (None when there is none)."""
    record, report = m.record, m.report or {}
    a, r = record.agreement_id, record.round
    finalized = record.finalized
    assert finalized is not None and m.base is not None and m.rules is not None
    updates = m.accepted_updates()
    if updates is None:
        return []
    scores: dict[str, float] = {}
    payouts: dict[str, int] = {}
    problems: list[str] = []
    commitment_matches, rebuilt_commitment = eval_commitment_ok
    if not commitment_matches:
        problems.append(
            f"the rebuilt evaluation set's commitment {rebuilt_commitment} is not the round's "
            f"0x{record.eval_commitment.hex()}"
        )
    rule, reward = terms.payout_rule, terms.reward_per_round
    if updates and commitment_matches:
        try:
            settled = settle(m.base, updates, evaluation, m.rules, reward=reward, payout_rule=rule)
            scores, payouts = settled.scores, settled.payouts
        except (ConfigurationError, AggregationError) as exc:
            problems.append(f"scores do not re-compute by {m.rules.scoring!r}: {exc}")
    results = []
    for line in report.get("partners", []):
        p = line["partner"]
        if p in m.unchecked:
            continue
        expected_payout = int(payouts.get(p, 0))
        found_payout = int(line.get("payout", 0))
        expected_score = scores.get(p)
        found_score = line.get("score")
        score_ok = (expected_score is None and found_score is None) or (
            expected_score is not None
            and found_score is not None
            and abs(expected_score - found_score) <= SCORE_TOLERANCE
        )
        if not scores and p in updates:
            score_ok = False  # scores could not be re-computed (see the round's result)
        ok = score_ok and expected_payout == found_payout
        message = (
            f"score {found_score} and payout {found_payout} re-compute"
            if ok
            else f"re-computed score {expected_score} and payout {expected_payout} ({rule.name.lower()}); the report "
            f"says score {found_score}, payout {found_payout}"
        )
        results.append(
            CheckResult(
                SCORES_AND_PAYOUTS,
                ok,
                message,
                a,
                r,
                p,
                m.report_cid,
                {
                    "tx_hash": finalized.tx_hash,
                    "block": finalized.block_number,
                    "report_cid": m.report_cid,
                    "expected": {"score": expected_score, "payout": str(expected_payout)},
                    "found": {"score": found_score, "payout": str(found_payout)},
                },
            )
        )
    paid = {p: v for p, v in payouts.items() if v > 0}
    root = "0x" + (PayoutTree(a, r, paid).root if paid else bytes(32)).hex()
    total = sum(paid.values())
    args = finalized.args
    if int(report.get("reward", -1)) != reward:
        problems.append(f"the report's reward {report.get('reward')} is not the agreement's {reward}")
    if (args["payoutRoot"], int(args["payoutTotal"])) != (root, total):
        problems.append(
            f"payout tree of the re-computed payouts has root {root} and total {total}, the round "
            f"finalized {args['payoutRoot']} and {args['payoutTotal']}"
        )
    if total and (allocation is None or (allocation["root"], int(allocation["total"])) != (root, total)):
        problems.append(f"the vault's allocation {allocation} is not the payout root and total")
    evidence = {
        "tx_hash": finalized.tx_hash,
        "block": finalized.block_number,
        "payout_rule": rule.name.lower(),
        "reward": str(reward),
        "eval_commitment": "0x" + record.eval_commitment.hex(),
        "expected": {"payout_root": root, "payout_total": str(total)},
        "found": {"payout_root": args["payoutRoot"], "payout_total": str(args["payoutTotal"])},
    }
    message = "; ".join(problems) or (
        f"evaluation set matches its commitment; payout root and total ({total}) re-compute by {rule.name.lower()}"
    )
    results.append(CheckResult(SCORES_AND_PAYOUTS, not problems, message, a, r, None, m.report_cid, evidence))
    return results
