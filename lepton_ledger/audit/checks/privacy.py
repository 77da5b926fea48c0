"""``epsilon_recomputed`` and ``epsilon_within_cap``: a partner's cumulative epsilon, re-composed from the DP
parameters of every update it committed under the agreement (each signed manifest's ``dpParams``) with
``fl.accounting.epsilon_from_history`` at the agreement's delta, must be, in on-chain fixed point, exactly the
epsilon committed on-chain (and the one its manifest signs); both must stay within the agreement's cap.
"""

from __future__ import annotations

from typing import Any

from ...chain.state import Terms
from ...errors import ConfigurationError
from ...fl.accounting import epsilon_from_history
from ...units import epsilon_to_fixed, fixed_to_epsilon
from ..chain_view import Commitment
from ..model import EPSILON_RECOMPUTED, EPSILON_WITHIN_CAP, CheckResult

__all__ = ["check_epsilon", "dp_entry"]


def dp_entry(manifest: Any) -> dict[str, Any]:
    """The manifest's DP record as the history keeps it (JSON)."""
    dp = manifest.dp
    return {
        "noise_multiplier": dp.noise_multiplier,
        "sample_rate": dp.sample_rate,
        "steps": dp.steps,
        "delta": dp.delta,
        "accountant": dp.accountant,
    }


def check_epsilon(
    c: Commitment, cid: str, manifest: Any, earlier: list[dict[str, Any]], terms: Terms
) -> tuple[list[CheckResult], float]:
    """Both epsilon checks for one commitment; `earlier` is the partner's DP history before this round, in
    round order. Returns the results and the re-computed cumulative epsilon."""
    a, r, p = c.agreement_id, c.round, c.partner
    delta, cap = terms.delta, terms.epsilon_cap_fixed
    entry = dp_entry(manifest)
    history = [*earlier, entry]
    evidence = {**c.evidence(), "dp_history": history, "agreement_delta": delta}
    try:
        recomputed = epsilon_from_history(history, delta, entry["accountant"])
        fixed = epsilon_to_fixed(recomputed)
    except ConfigurationError as exc:
        return [
            CheckResult(EPSILON_RECOMPUTED, False, f"the DP history does not compose: {exc}", a, r, p, cid, evidence)
        ], fixed_to_epsilon(c.cumulative_epsilon)
    evidence.update(
        expected=fixed, found=c.cumulative_epsilon, manifest=manifest.cumulative_epsilon, recomputed_float=recomputed
    )
    if entry["delta"] != delta:
        ok, message = False, f"the manifest's DP delta {entry['delta']} is not the agreement's {delta}"
    elif fixed != c.cumulative_epsilon or fixed != manifest.cumulative_epsilon:
        ok, message = (
            False,
            (
                f"committed cumulative epsilon {fixed_to_epsilon(c.cumulative_epsilon):.6f} (manifest "
                f"{fixed_to_epsilon(manifest.cumulative_epsilon):.6f}), the DP history of "
                f"{len(history)} round(s) gives {fixed_to_epsilon(fixed):.6f}"
            ),
        )
    else:
        ok, message = True, f"cumulative epsilon {recomputed:.6f} over {len(history)} round(s) equals the committed one"
    results = [CheckResult(EPSILON_RECOMPUTED, ok, message, a, r, p, cid, evidence)]
    worst = max(fixed, c.cumulative_epsilon)
    within = worst <= cap
    results.append(
        CheckResult(
            EPSILON_WITHIN_CAP,
            within,
            f"cumulative epsilon {fixed_to_epsilon(worst):.6f} {'within' if within else 'exceeds'} the cap "
            f"{fixed_to_epsilon(cap):.6f}",
            a,
            r,
            p,
            cid,
            {**c.evidence(), "cap": cap, "committed": c.cumulative_epsilon, "recomputed": fixed},
        )
    )
    return results, recomputed
