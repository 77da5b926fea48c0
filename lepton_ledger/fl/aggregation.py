"""Aggregation rules: pure functions over ``(arrays, weight)`` pairs, as in Flower.

An *update* is a pair ``(arrays, weight)``: ``arrays`` maps tensor names to tensors (a ``state_dict``, or a
model delta with the same keys) and ``weight`` is the partner's sample count. Every rule returns a new
``dict[str, torch.Tensor]`` with the first update's keys, in its order, and each tensor's original dtype and
device; the inputs are never modified.

- :func:`fedavg` is sample-weighted and streaming: it accepts any iterable (a generator that fetches and
  decrypts one update at a time) and holds one float64 accumulator per tensor, so its memory is O(model),
  not O(partners x model).
- :func:`coordinate_median`, :func:`trimmed_mean`, :func:`krum` and :func:`multi_krum` are robust rules.
  They must see every update at once (an order statistic or a pairwise distance needs all of them), so they
  hold O(partners x model). Median, trimmed mean and Krum's selection ignore the weights, as Flower's
  ``FedMedian``/``FedTrimmedAvg``/``Krum`` do: a weight is a claim by the partner, and a robust rule must not
  let one large claim outvote the others. Multi-Krum averages the updates it selects with their weights.

Arithmetic is float64 wherever values are summed or compared, and cast back to each tensor's dtype at the end
(integer tensors, such as BatchNorm's ``num_batches_tracked``, are rounded to the nearest integer). Given the
same updates in the same order, every rule returns bit-identical results.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import torch

from ..errors import LeptonError

Arrays = Mapping[str, torch.Tensor]
Update = tuple[Arrays, float]

__all__ = [
    "AGGREGATORS",
    "AggregationError",
    "Arrays",
    "Update",
    "aggregate",
    "check_params",
    "coordinate_median",
    "default_params",
    "fedavg",
    "krum",
    "krum_scores",
    "krum_select",
    "multi_krum",
    "trimmed_mean",
]


class AggregationError(LeptonError, ValueError):
    """The updates cannot be aggregated: none given, keys/shapes/dtypes that disagree, a bad weight, or a
    rule parameter out of range for the number of updates."""


# ---------------------------------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------------------------------


def _check_weight(weight: Any, index: int) -> float:
    try:
        value = float(weight)
    except (TypeError, ValueError):
        raise AggregationError(f"update {index}: weight must be a number, got {weight!r}") from None
    if not math.isfinite(value) or value < 0:
        raise AggregationError(f"update {index}: weight must be finite and >= 0, got {weight!r}")
    return value


def _check_like(reference: Arrays, arrays: Arrays, index: int) -> None:
    """Raises AggregationError when `arrays` does not have exactly the keys, shapes and dtypes of `reference`."""
    if not isinstance(arrays, Mapping):
        raise AggregationError(
            f"update {index}: arrays must be a mapping of name -> tensor, got {type(arrays).__name__}"
        )
    missing = [k for k in reference if k not in arrays]
    extra = [k for k in arrays if k not in reference]
    if missing or extra:
        raise AggregationError(f"update {index}: keys differ from update 0 (missing {missing}, unexpected {extra})")
    for name, ref in reference.items():
        tensor = arrays[name]
        if not isinstance(tensor, torch.Tensor):
            raise AggregationError(f"update {index}: {name!r} is {type(tensor).__name__}, not a torch.Tensor")
        if tensor.shape != ref.shape:
            raise AggregationError(
                f"update {index}: {name!r} has shape {tuple(tensor.shape)}, update 0 has {tuple(ref.shape)}"
            )
        if tensor.dtype != ref.dtype:
            raise AggregationError(f"update {index}: {name!r} has dtype {tensor.dtype}, update 0 has {ref.dtype}")


def _unpack(update: Any, index: int) -> tuple[Arrays, float]:
    try:
        arrays, weight = update
    except (TypeError, ValueError):
        raise AggregationError(
            f"update {index}: expected an (arrays, weight) pair, got {type(update).__name__}"
        ) from None
    return arrays, _check_weight(weight, index)


def _materialize(updates: Iterable[Update]) -> list[tuple[Arrays, float]]:
    """Reads every update, checking each against the first. Raises AggregationError."""
    result: list[tuple[Arrays, float]] = []
    for index, update in enumerate(updates):
        arrays, weight = _unpack(update, index)
        _check_like(result[0][0] if result else arrays, arrays, index)
        result.append((arrays, weight))
    if not result:
        raise AggregationError("no updates to aggregate")
    return result


def _cast_back(value: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    if like.dtype.is_floating_point or like.dtype.is_complex:
        return value.to(like.dtype)
    if like.dtype == torch.bool:
        return (value >= 0.5).to(torch.bool)
    return torch.round(value).to(like.dtype)


def _f64(tensor: torch.Tensor) -> torch.Tensor:
    return tensor.detach().to(torch.float64)


# ---------------------------------------------------------------------------------------------------------
# FedAvg
# ---------------------------------------------------------------------------------------------------------


def fedavg(updates: Iterable[Update]) -> dict[str, torch.Tensor]:
    """Sample-weighted mean: ``sum(w_i * x_i) / sum(w_i)``, tensor by tensor.

    Streaming: `updates` may be any iterable, read once; only one update and one float64 accumulator per
    tensor are alive at a time (the caller's generator decides how long each update lives).

    Raises:
        AggregationError: no updates; a pair that is not ``(mapping, weight)``; keys, shapes or dtypes that
            differ from the first update; a weight that is negative, not finite or not a number; or all
            weights zero.
    """
    reference: dict[str, torch.Tensor] | None = None  # empty tensors of the first update: shapes and dtypes
    sums: dict[str, torch.Tensor] = {}
    total = 0.0
    count = 0
    for index, update in enumerate(updates):
        arrays, weight = _unpack(update, index)
        if reference is None:
            _check_like(arrays, arrays, index)
            # Keep only metadata of update 0 so that it need not stay alive.
            reference = {k: torch.empty(v.shape, dtype=v.dtype, device="meta") for k, v in arrays.items()}
            sums = {k: torch.zeros(v.shape, dtype=torch.float64, device=v.device) for k, v in arrays.items()}
        else:
            _check_like(reference, arrays, index)
        for name, tensor in arrays.items():
            # add_(alpha=...) avoids a temporary w * x tensor per key.
            sums[name].add_(_f64(tensor).to(sums[name].device), alpha=weight)
        total += weight
        count += 1
    if reference is None:
        raise AggregationError("no updates to aggregate")
    if total <= 0:
        raise AggregationError(f"all {count} updates have weight 0: nothing to average")
    return {name: _cast_back(sums[name].div_(total), reference[name]) for name in reference}


# ---------------------------------------------------------------------------------------------------------
# Coordinate-wise rules
# ---------------------------------------------------------------------------------------------------------


def _stacked(items: Sequence[tuple[Arrays, float]], name: str) -> torch.Tensor:
    device = items[0][0][name].device
    return torch.stack([_f64(arrays[name]).to(device) for arrays, _ in items])


def coordinate_median(updates: Iterable[Update]) -> dict[str, torch.Tensor]:
    """Coordinate-wise median of the updates (unweighted). For an even count, the mean of the two middle
    values, so that the result does not depend on the order of the updates.

    Raises:
        AggregationError: as :func:`fedavg` for malformed input (all-zero weights are allowed here).
    """
    items = _materialize(updates)
    n = len(items)
    result: dict[str, torch.Tensor] = {}
    for name, ref in items[0][0].items():
        ordered = torch.sort(_stacked(items, name), dim=0).values
        if n % 2:
            median = ordered[n // 2]
        else:
            median = (ordered[n // 2 - 1] + ordered[n // 2]) / 2
        result[name] = _cast_back(median, ref)
    return result


def trimmed_mean(updates: Iterable[Update], trim: float) -> dict[str, torch.Tensor]:
    """Coordinate-wise trimmed mean (unweighted): in each coordinate, drop the ``k = floor(trim * n)``
    smallest and ``k`` largest values and average the rest (Flower's ``FedTrimmedAvg`` with ``beta=trim``).

    Raises:
        AggregationError: `trim` outside ``[0, 0.5)`` (too large: nothing would remain); malformed input
            as :func:`fedavg`.
    """
    _check_trim(trim)
    items = _materialize(updates)
    n = len(items)
    k = math.floor(trim * n)  # trim < 0.5 makes 2k < n: at least one value remains
    result: dict[str, torch.Tensor] = {}
    for name, ref in items[0][0].items():
        ordered = torch.sort(_stacked(items, name), dim=0).values
        result[name] = _cast_back(ordered[k : n - k].mean(dim=0), ref)
    return result


# ---------------------------------------------------------------------------------------------------------
# Krum / Multi-Krum (Blanchard et al., NeurIPS 2017)
# ---------------------------------------------------------------------------------------------------------


def _check_trim(trim: float) -> None:
    if not isinstance(trim, (int, float)) or isinstance(trim, bool) or not 0 <= trim < 0.5:
        raise AggregationError(f"trim must be a fraction in [0, 0.5), got {trim!r}")


def _check_kept(m: int, n: int) -> None:
    if not isinstance(m, int) or isinstance(m, bool) or not 1 <= m <= n:
        raise AggregationError(f"m (updates kept by Multi-Krum) must be an integer in [1, {n}], got {m!r}")


def _check_krum(n: int, f: int) -> None:
    if not isinstance(f, int) or isinstance(f, bool) or f < 0:
        raise AggregationError(f"f (number of Byzantine updates tolerated) must be an integer >= 0, got {f!r}")
    # Krum scores each update on its n - f - 2 nearest neighbours and is proven for n >= 2f + 3.
    if n < 2 * f + 3:
        raise AggregationError(f"Krum with f={f} needs at least {2 * f + 3} updates (n >= 2f + 3), got {n}")


def _pairwise_sq_distances(items: Sequence[tuple[Arrays, float]]) -> torch.Tensor:
    n = len(items)
    dist = torch.zeros((n, n), dtype=torch.float64)
    names = list(items[0][0])
    # Direct differences rather than the |a|^2 + |b|^2 - 2ab trick: exact enough to rank, and no cancellation.
    for i in range(n):
        for j in range(i + 1, n):
            d = sum(
                float(torch.sum((_f64(items[i][0][k]) - _f64(items[j][0][k]).to(items[i][0][k].device)) ** 2))
                for k in names
            )
            dist[i, j] = dist[j, i] = d
    return dist


def krum_scores(updates: Iterable[Update], f: int) -> list[float]:
    """Krum score of each update: the sum of squared L2 distances to its ``n - f - 2`` nearest other updates
    (all tensors flattened together). Lower is more central.

    Raises:
        AggregationError: ``n < 2f + 3`` or `f` negative/not an integer; malformed input as :func:`fedavg`.
    """
    items = _materialize(updates)
    return _scores(items, f)


def _scores(items: Sequence[tuple[Arrays, float]], f: int) -> list[float]:
    n = len(items)
    _check_krum(n, f)
    dist = _pairwise_sq_distances(items)
    neighbours = n - f - 2
    scores = []
    for i in range(n):
        others = torch.cat([dist[i, :i], dist[i, i + 1 :]])
        scores.append(float(torch.sort(others).values[:neighbours].sum()))
    return scores


def krum_select(updates: Iterable[Update], f: int, m: int = 1) -> list[int]:
    """Indices of the `m` updates with the lowest Krum scores, best first; ties go to the lower index so that
    the choice is deterministic. Useful for the round report: which updates the aggregate was built from.

    Raises:
        AggregationError: `m` outside ``[1, n]``; as :func:`krum_scores`.
    """
    items = _materialize(updates)
    return _select(items, f, m)


def _select(items: Sequence[tuple[Arrays, float]], f: int, m: int) -> list[int]:
    _check_kept(m, len(items))
    scores = _scores(items, f)
    return sorted(range(len(items)), key=lambda i: (scores[i], i))[:m]


def krum(updates: Iterable[Update], f: int) -> dict[str, torch.Tensor]:
    """The single update with the lowest Krum score, copied.

    Raises:
        AggregationError: as :func:`krum_scores`.
    """
    items = _materialize(updates)
    best = _select(items, f, 1)[0]
    return {name: tensor.detach().clone() for name, tensor in items[best][0].items()}


def multi_krum(updates: Iterable[Update], f: int, m: int) -> dict[str, torch.Tensor]:
    """Sample-weighted FedAvg of the `m` updates with the lowest Krum scores (scores computed once over all
    updates, as Flower's ``Krum(num_clients_to_keep=m)`` does). ``m=1`` is Krum; ``m=n`` is FedAvg.

    Raises:
        AggregationError: `m` outside ``[1, n]``; the selected updates all have weight 0; as
            :func:`krum_scores`.
    """
    items = _materialize(updates)
    chosen = sorted(_select(items, f, m))  # input order, so the sum is the same as FedAvg over that subset
    return fedavg(items[i] for i in chosen)


# ---------------------------------------------------------------------------------------------------------
# by name
# ---------------------------------------------------------------------------------------------------------

AGGREGATORS: dict[str, Callable[..., dict[str, torch.Tensor]]] = {
    "fedavg": fedavg,
    "median": coordinate_median,
    "trimmed_mean": trimmed_mean,
    "krum": krum,
    "multi_krum": multi_krum,
}


def aggregate(rule: str, updates: Iterable[Update], **params: Any) -> dict[str, torch.Tensor]:
    """Applies the rule named `rule` (a key of :data:`AGGREGATORS`, as a round's terms name it) with its
    keyword parameters (``trim=`` for trimmed_mean, ``f=`` and ``m=`` for the Krum rules).

    Raises:
        AggregationError: unknown rule, wrong parameters for it, or as the rule itself raises.
    """
    # Bind first, so that a TypeError raised inside the rule is not mistaken for a bad parameter.
    return _bound_rule(rule, params)(updates, **params)


def _bound_rule(rule: str, params: Mapping[str, Any]) -> Callable[..., dict[str, torch.Tensor]]:
    """`rule`'s function, once `params` bind to its signature.

    Raises:
        AggregationError: unknown rule, or parameters it does not take or lacks.
    """
    try:
        fn = AGGREGATORS[rule]
    except KeyError:
        raise AggregationError(f"unknown aggregation rule {rule!r}; known: {sorted(AGGREGATORS)}") from None
    try:
        inspect.signature(fn).bind((), **params)
    except TypeError as exc:
        raise AggregationError(f"bad parameters {sorted(params)} for rule {rule!r}: {exc}") from None
    return fn


def check_params(rule: str, params: Mapping[str, Any], updates: int) -> None:
    """Refuses what `rule` could never run with on a round of `updates` updates (every party's): parameters it does
    not take or lacks, and the bounds it checks when it runs (Krum's ``n >= 2f + 3`` at the most updates a round
    can have). A round with fewer updates may still be refused when it closes.

    Raises:
        AggregationError: unknown rule, wrong parameters for it, or out of its bounds.
    """
    _bound_rule(rule, params)
    if rule == "trimmed_mean":
        _check_trim(params["trim"])
    if rule in ("krum", "multi_krum"):
        _check_krum(updates, params["f"])
    if rule == "multi_krum":
        _check_kept(params["m"], updates)


def default_params(rule: str, expected_updates: int) -> dict[str, Any]:
    """Parameters for `rule` when a round's terms name only the rule: trimmed_mean trims 20% at each end; Krum
    and Multi-Krum tolerate the most Byzantine updates ``f`` that `expected_updates` allow (``n >= 2f + 3``),
    and Multi-Krum keeps ``n - f``. FedAvg and the coordinate median take none.

    Raises:
        AggregationError: unknown rule.
    """
    if rule not in AGGREGATORS:
        raise AggregationError(f"unknown aggregation rule {rule!r}; known: {sorted(AGGREGATORS)}")
    f = max(0, (expected_updates - 3) // 2)
    return {
        "trimmed_mean": {"trim": 0.2},
        "krum": {"f": f},
        "multi_krum": {"f": f, "m": max(1, expected_updates - f)},
    }.get(rule, {})
