"""Contribution scores on the committed evaluation set.

Everything here works on a *utility*: ``utility(subset: frozenset[str]) -> float``, the value of what a set of
partners built together. The usual one (:func:`aggregate_utility`) is the evaluation-set accuracy of
``base + aggregate(updates of the subset)``, with ``utility(frozenset()) = evaluate(base)``: a *reconstruction*
utility, as in GTG-Shapley, that reuses the round's updates instead of retraining on every subset.
:class:`CachedUtility` evaluates each subset at most once and counts evaluations, so costs below are counted
in distinct subsets evaluated.

Scores:

- :func:`leave_one_out`: ``U(N) - U(N \\ {i})``. Cost: ``n + 1`` evaluations. Cheap, but two partners
  holding the same data each look redundant and both score about 0.
- :func:`exact_shapley`: the Shapley value by enumerating all subsets. Cost: ``2**n`` evaluations; refused
  above :data:`EXACT_SHAPLEY_MAX_PARTNERS`.
- :func:`tmc_shapley`: truncated Monte Carlo Shapley (Ghorbani & Zou, "Data Shapley", ICML 2019) with
  balanced sampling in the spirit of GTG-Shapley's guided sampling (Liu et al., 2022): permutations come in
  blocks of ``2n``, the ``n`` cyclic rotations of one seeded random permutation and the ``n`` rotations of
  its reverse. Within a block every partner appears exactly twice in every position (the first position,
  where marginals are largest, in particular) and every partner precedes every other exactly half of the
  time, which removes most of the variance between partners who bring the same thing. Along each
  permutation the marginal ``U(prefix + i) - U(prefix)`` is credited to ``i``; once
  ``|U(N) - U(prefix)| < truncation`` the remaining partners of that permutation get marginal 0 without
  being evaluated. Cost, with ``P`` permutations: at most ``min(2**n, 2 + P * (n - 1))`` evaluations
  (``U({})`` and ``U(N)`` once, then at most ``n - 1`` new prefixes per permutation); with truncation
  tolerance ``t``, a permutation stops after the first prefix within ``t`` of ``U(N)``. Standard error of
  each estimate falls as ``1/sqrt(P)``; ``P = k * 2n`` makes the balance exact.

All of them are deterministic: partners are sorted by name before anything is drawn, and the only randomness
is ``random.Random(seed)``.
"""

from __future__ import annotations

import inspect
import math
import random
from collections.abc import Callable, Iterable, Mapping, Sequence
from itertools import combinations
from typing import Any

import torch

from ..errors import ConfigurationError
from .aggregation import AGGREGATORS, AggregationError, Arrays

__all__ = [
    "EXACT_SHAPLEY_MAX_PARTNERS",
    "SCORERS",
    "CachedUtility",
    "Utility",
    "aggregate_utility",
    "apply_delta_to_state",
    "contribution_scores",
    "exact_shapley",
    "leave_one_out",
    "tmc_shapley",
]

Utility = Callable[[frozenset[str]], float]

EXACT_SHAPLEY_MAX_PARTNERS = 16  # 65,536 evaluations: beyond that, use tmc_shapley


class CachedUtility:
    """Wraps a utility so that each subset is evaluated once.

    Attributes:
        evaluations: distinct subsets evaluated so far (the cost figure quoted in this module).
        calls: calls answered, cached or not.
    """

    def __init__(self, fn: Utility) -> None:
        self._fn = fn
        self._cache: dict[frozenset[str], float] = {}
        self.evaluations = 0
        self.calls = 0

    def __call__(self, subset: Iterable[str]) -> float:
        """Returns the (cached) utility of `subset`.

        Raises:
            ConfigurationError: the wrapped utility returned something that is not a finite number.
            Whatever the wrapped utility raises, unchanged.
        """
        key = subset if isinstance(subset, frozenset) else frozenset(subset)
        self.calls += 1
        if key not in self._cache:
            value = float(self._fn(key))
            if not math.isfinite(value):
                raise ConfigurationError(f"utility of {sorted(key)} is {value}: it must be a finite number")
            self._cache[key] = value
            self.evaluations += 1
        return self._cache[key]

    def cached(self) -> dict[frozenset[str], float]:
        """A copy of every value computed so far (for the round report)."""
        return dict(self._cache)


def _partners(partners: Iterable[str]) -> list[str]:
    names = list(partners)
    if not names:
        raise ConfigurationError("no partners to score")
    if len(set(names)) != len(names):
        raise ConfigurationError(f"partner names must be unique, got {names}")
    return sorted(names)


def _cached(utility: Utility) -> CachedUtility:
    return utility if isinstance(utility, CachedUtility) else CachedUtility(utility)


# ---------------------------------------------------------------------------------------------------------
# scores
# ---------------------------------------------------------------------------------------------------------


def leave_one_out(partners: Iterable[str], utility: Utility) -> dict[str, float]:
    """``U(N) - U(N \\ {i})`` for each partner ``i``; ``n + 1`` evaluations.

    Raises:
        ConfigurationError: no partners, duplicate names, or a non-finite utility.
    """
    names = _partners(partners)
    u = _cached(utility)
    everyone = frozenset(names)
    full = u(everyone)
    return {name: full - u(everyone - {name}) for name in names}


def exact_shapley(partners: Iterable[str], utility: Utility) -> dict[str, float]:
    """The exact Shapley value, enumerating all ``2**n`` subsets.

    Raises:
        ConfigurationError: no partners, duplicate names, more than :data:`EXACT_SHAPLEY_MAX_PARTNERS`,
            or a non-finite utility.
    """
    names = _partners(partners)
    n = len(names)
    if n > EXACT_SHAPLEY_MAX_PARTNERS:
        raise ConfigurationError(
            f"exact Shapley over {n} partners needs 2**{n} evaluations; use tmc_shapley above "
            f"{EXACT_SHAPLEY_MAX_PARTNERS}"
        )
    u = _cached(utility)
    values = dict.fromkeys(names, 0.0)
    for name in names:
        others = [p for p in names if p != name]
        for size in range(n):
            # Shapley weight |S|! (n - |S| - 1)! / n! for each coalition S not containing `name`.
            weight = 1.0 / (n * math.comb(n - 1, size))
            for subset in combinations(others, size):
                s = frozenset(subset)
                values[name] += weight * (u(s | {name}) - u(s))
    return values


def _guided_permutations(names: Sequence[str], count: int, seed: int) -> Iterable[list[str]]:
    rng = random.Random(seed)
    n = len(names)
    produced = 0
    while produced < count:
        order = list(names)
        rng.shuffle(order)
        for base in (order, order[::-1]):
            for shift in range(n):
                if produced == count:
                    return
                yield base[shift:] + base[:shift]
                produced += 1


def tmc_shapley(
    partners: Iterable[str],
    utility: Utility,
    *,
    permutations: int | None = None,
    truncation: float = 0.0,
    seed: int = 0,
) -> dict[str, float]:
    """Truncated Monte Carlo Shapley with guided (rotation-balanced) permutations; see the module docstring
    for the method and its cost (at most ``min(2**n, 2 + permutations * (n - 1))`` evaluations).

    Args:
        permutations: how many permutations to average over; default ``max(4 * n, 40)`` rounded up to a
            multiple of ``2n`` (one balanced block).
        truncation: absolute tolerance, in utility units, below which the rest of a permutation is skipped;
            0 disables truncation.
        seed: seeds the permutations; same seed, same scores.

    Raises:
        ConfigurationError: no partners, duplicate names, `permutations` < 1, `truncation` negative or not
            finite, or a non-finite utility.
    """
    names = _partners(partners)
    n = len(names)
    if permutations is None:
        permutations = 2 * n * math.ceil(max(4 * n, 40) / (2 * n))
    if not isinstance(permutations, int) or isinstance(permutations, bool) or permutations < 1:
        raise ConfigurationError(f"permutations must be an integer >= 1, got {permutations!r}")
    if not isinstance(truncation, (int, float)) or not math.isfinite(truncation) or truncation < 0:
        raise ConfigurationError(f"truncation must be a finite number >= 0, got {truncation!r}")
    u = _cached(utility)
    full = u(frozenset(names))
    empty = u(frozenset())
    totals = dict.fromkeys(names, 0.0)
    for order in _guided_permutations(names, permutations, seed):
        prefix: frozenset[str] = frozenset()
        previous = empty
        for name in order:
            if truncation > 0 and abs(full - previous) < truncation:
                break  # the rest of this permutation adds (about) nothing: marginal 0, not evaluated
            prefix = prefix | {name}
            current = u(prefix)
            totals[name] += current - previous
            previous = current
    return {name: total / permutations for name, total in totals.items()}


# ---------------------------------------------------------------------------------------------------------
# utility from a round's updates
# ---------------------------------------------------------------------------------------------------------


def apply_delta_to_state(base: Arrays, delta: Arrays) -> dict[str, torch.Tensor]:
    """``base + delta`` tensor by tensor, in base's dtypes (tensors absent from `delta` are copied).

    Raises:
        ConfigurationError: `delta` has a tensor that `base` lacks, or a shape that differs.
    """
    extra = [k for k in delta if k not in base]
    if extra:
        raise ConfigurationError(f"delta has tensors the base model lacks: {extra}")
    result: dict[str, torch.Tensor] = {}
    for name, tensor in base.items():
        if name not in delta:
            result[name] = tensor.detach().clone()
            continue
        d = delta[name]
        if d.shape != tensor.shape:
            raise ConfigurationError(f"delta {name!r} has shape {list(d.shape)}, base has {list(tensor.shape)}")
        summed = tensor.detach().to(torch.float64) + d.detach().to(device=tensor.device, dtype=torch.float64)
        if tensor.dtype.is_floating_point:
            result[name] = summed.to(tensor.dtype)
        else:
            result[name] = torch.round(summed).to(tensor.dtype)
    return result


def aggregate_utility(
    base: Arrays,
    updates: Mapping[str, tuple[Arrays, float]],
    evaluate: Callable[[dict[str, torch.Tensor]], float],
    *,
    rule: str = "fedavg",
    params: Mapping[str, Any] | None = None,
    fallback_rule: str | None = "fedavg",
) -> CachedUtility:
    """Builds ``U(S) = evaluate(base + aggregate(rule, [updates[p] for p in sorted(S)]))``, with
    ``U({}) = evaluate(base)``, cached. `updates` are deltas ``{partner: (delta, sample_count)}`` and
    `evaluate` scores a full ``state_dict`` on the committed evaluation set (e.g. its accuracy).

    A robust rule cannot always run on a small subset (Krum needs ``n >= 2f + 3``, a trimmed mean needs
    something left after trimming); such subsets are aggregated with `fallback_rule` (FedAvg by default),
    or raise when it is ``None``.

    Raises:
        ConfigurationError: `updates` is empty, or `rule`/`fallback_rule` is not a known rule.
        AggregationError: (when the utility is called) the subset's updates cannot be aggregated.
        KeyError: (when called) the subset names a partner that has no update.
    """
    if not updates:
        raise ConfigurationError("no updates: nothing to score")
    for name in (rule, fallback_rule):
        if name is not None and name not in AGGREGATORS:
            raise ConfigurationError(f"unknown aggregation rule {name!r}; known: {sorted(AGGREGATORS)}")
    kwargs = dict(params or {})

    def utility(subset: frozenset[str]) -> float:
        if not subset:
            return float(evaluate(dict(base)))
        chosen = [updates[p] for p in sorted(subset)]
        try:
            delta = AGGREGATORS[rule](chosen, **kwargs)
        except AggregationError:
            if fallback_rule is None:
                raise
            delta = AGGREGATORS[fallback_rule](chosen)
        return float(evaluate(apply_delta_to_state(base, delta)))

    return CachedUtility(utility)


SCORERS: dict[str, Callable[..., dict[str, float]]] = {
    "leave_one_out": leave_one_out,
    "tmc_shapley": tmc_shapley,
    "exact_shapley": exact_shapley,
}


def contribution_scores(method: str, partners: Iterable[str], utility: Utility, **params: Any) -> dict[str, float]:
    """The scores of the method named `method` (a key of :data:`SCORERS`, as a round report names it) with its
    keyword parameters (``permutations=``, ``truncation=``, ``seed=`` for tmc_shapley).

    Raises:
        ConfigurationError: unknown method or parameters it does not take, or as the method itself raises.
    """
    try:
        fn = SCORERS[method]
    except KeyError:
        raise ConfigurationError(f"unknown scoring method {method!r}; known: {sorted(SCORERS)}") from None
    try:
        inspect.signature(fn).bind(partners, utility, **params)
    except TypeError as exc:
        raise ConfigurationError(f"bad parameters {sorted(params)} for scoring {method!r}: {exc}") from None
    return fn(partners, utility, **params)
