"""Payout rules: how a round's reward is split between partners, in integer token units.

Every rule returns amounts that sum exactly to the reward (when anyone is eligible). Remainder rule
(largest remainder, Hamilton's method): each partner first gets the floor of its exact share; the units
left over go one each to the partners with the largest fractional parts, ties broken by ascending address
(as written, case-insensitive), so the split is deterministic and anyone can recompute it.
"""

from __future__ import annotations

from collections.abc import Mapping

from ..errors import ConfigurationError
from ..units import PayoutRule  # re-exported: the rules computed here


def split_by_weights(total: int, weights: Mapping[str, int]) -> dict[str, int]:
    """Splits `total` proportionally to non-negative integer `weights` by the largest-remainder rule.

    Raises:
        ConfigurationError: `total` is negative, a weight is negative, or all weights are zero while
            `total` is positive.
    """
    if total < 0:
        raise ConfigurationError(f"payout total must be >= 0, got {total}")
    negative = {k: w for k, w in weights.items() if w < 0}
    if negative:
        raise ConfigurationError(f"payout weights must be >= 0, got {negative}")
    weight_sum = sum(weights.values())
    if weight_sum == 0:
        if total:
            raise ConfigurationError("no partner has a positive weight: nobody to pay")
        return {k: 0 for k in weights}
    shares = {k: total * w // weight_sum for k, w in weights.items()}
    left = total - sum(shares.values())
    order = sorted(weights, key=lambda k: (-(total * weights[k] % weight_sum), k.lower()))
    for key in order[:left]:
        shares[key] += 1
    return shares


def split_reward(
    rule: PayoutRule,
    total: int,
    *,
    scores: Mapping[str, float] | None = None,
    sample_counts: Mapping[str, int] | None = None,
    partners: list[str] | None = None,
    score_resolution: int = 10**9,
) -> dict[str, int]:
    """Splits a round's `total` by the agreement's `rule`.

    PROPORTIONAL pays in proportion to positive `scores` (a negative or zero score earns nothing); scores
    are quantized to `score_resolution` steps first, so that the split is exact integer arithmetic.
    EQUAL splits between `partners`; BY_SAMPLE_COUNT in proportion to `sample_counts`.

    Raises:
        ConfigurationError: the input that the rule needs is missing, or invalid as in `split_by_weights`.
    """
    if rule == PayoutRule.PROPORTIONAL:
        if scores is None:
            raise ConfigurationError("the proportional rule needs contribution scores")
        weights = {k: max(0, round(s * score_resolution)) for k, s in scores.items()}
    elif rule == PayoutRule.EQUAL:
        if not partners:
            raise ConfigurationError("the equal rule needs the list of partners")
        weights = {k: 1 for k in partners}
    elif rule == PayoutRule.BY_SAMPLE_COUNT:
        if sample_counts is None:
            raise ConfigurationError("the by-sample-count rule needs sample counts")
        weights = dict(sample_counts)
    else:  # pragma: no cover - IntEnum closes the set
        raise ConfigurationError(f"unknown payout rule {rule!r}")
    return split_by_weights(total, weights)
