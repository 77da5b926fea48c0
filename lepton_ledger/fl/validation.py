"""Update validation before aggregation.

Each update is checked against the round's base model (its ``state_dict``): the same tensor names, shapes and
dtypes; every value finite; the update's L2 norm (all floating-point tensors flattened together) within
the agreement's bound. A failed check is a :class:`Rejection` with a machine-readable ``code`` (one of :data:`REASON_CODES`),
the tensor it concerns (``None`` when it concerns the whole update) and a message for people, so that the
round report can say exactly why a partner's update was left out and an auditor can re-run the check.

Updates are model *deltas* by default (what partners' training returns). Pass ``delta=False`` when they hold
full weights: the norm is then taken of ``update - base``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, TypedDict

import torch

from ..errors import ConfigurationError

__all__ = [
    "REASON_CODES",
    "Reason",
    "Rejection",
    "ValidationResult",
    "update_norm",
    "validate_update",
    "validate_updates",
]

REASON_CODES = frozenset(
    {
        "not_a_mapping",  # the update is not a name -> tensor mapping
        "not_a_tensor",  # a value is not a torch.Tensor
        "missing_tensor",  # a base-model tensor is absent from the update
        "unexpected_tensor",  # the update has a tensor the base model does not
        "shape_mismatch",
        "dtype_mismatch",
        "non_finite",  # NaN or +/-Inf somewhere in the tensor
        "norm_exceeded",  # L2 norm of the whole update above the bound
        "invalid_weight",  # sample count not a finite number > 0
    }
)


class Reason(TypedDict):
    """One reason an update was rejected, as round reports write it: a :class:`Rejection`, or an envelope that
    could not be fetched or opened (its error's class name as the code)."""

    code: str
    tensor: str | None
    message: str
    detail: dict[str, Any]


@dataclass(frozen=True)
class Rejection:
    """Why (part of) an update was refused.

    Attributes:
        code: one of :data:`REASON_CODES`.
        tensor: the tensor concerned, or ``None`` for the whole update.
        message: a sentence for people, naming the tensor.
        detail: machine-readable values behind the message (expected/actual shape, norm and bound...).
    """

    code: str
    tensor: str | None
    message: str
    detail: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> Reason:
        """JSON-ready form for round reports: ``{"code", "tensor", "message", "detail"}``."""
        return {"code": self.code, "tensor": self.tensor, "message": self.message, "detail": dict(self.detail)}


@dataclass(frozen=True)
class ValidationResult:
    """Outcome of :func:`validate_updates`: accepted updates by partner and rejections by partner."""

    accepted: dict[str, tuple[Mapping[str, torch.Tensor], float]]
    rejected: dict[str, list[Rejection]]


def update_norm(update: Mapping[str, torch.Tensor], base: Mapping[str, torch.Tensor] | None = None) -> float:
    """L2 norm of all floating-point tensors of `update` flattened together (of ``update - base`` when
    `base` is given), computed in float64. Integer buffers (BatchNorm's ``num_batches_tracked``) are counters,
    not parameters: their delta is the number of steps taken and would swamp any bound, so they are left out.

    Raises:
        KeyError: `base` is given and lacks one of `update`'s tensors.
    """
    total = 0.0
    for name, tensor in update.items():
        if not (tensor.dtype.is_floating_point or tensor.dtype.is_complex):
            continue
        value = tensor.detach().to(torch.float64)
        if base is not None:
            value = value - base[name].detach().to(device=value.device, dtype=torch.float64)
        total += float(torch.sum(value * value))
    return math.sqrt(total)


def validate_update(
    update: Any,
    base: Mapping[str, torch.Tensor],
    *,
    max_norm: float | None = None,
    delta: bool = True,
    weight: Any = None,
) -> list[Rejection]:
    """Checks one update against the base model; returns every problem found (empty list: accepted).

    Structural problems (names, shapes, dtypes) are all reported; the finiteness check runs on every tensor
    that has the right shape; the norm check runs only when everything else passed, since a norm over
    mismatched or non-finite tensors means nothing. When `weight` is given, it must be a finite number > 0.

    Raises:
        ConfigurationError: `max_norm` is given and not a finite number >= 0.
    """
    if max_norm is not None and (not isinstance(max_norm, (int, float)) or not math.isfinite(max_norm) or max_norm < 0):
        raise ConfigurationError(f"max_norm must be a finite number >= 0, got {max_norm!r}")
    problems: list[Rejection] = []
    if weight is not None:
        try:
            w = float(weight)
        except (TypeError, ValueError):
            w = float("nan")
        if not math.isfinite(w) or w <= 0:
            problems.append(
                Rejection(
                    "invalid_weight",
                    None,
                    f"sample count must be a finite number > 0, got {weight!r}",
                    {"weight": repr(weight)},
                )
            )
    if not isinstance(update, Mapping):
        problems.append(
            Rejection("not_a_mapping", None, f"update must map tensor names to tensors, got {type(update).__name__}")
        )
        return problems

    for name in base:
        if name not in update:
            problems.append(Rejection("missing_tensor", name, f"tensor {name!r} of the base model is missing"))
    for name in update:
        if name not in base:
            problems.append(Rejection("unexpected_tensor", str(name), f"tensor {name!r} is not in the base model"))

    for name, expected in base.items():
        if name not in update:
            continue
        tensor = update[name]
        if not isinstance(tensor, torch.Tensor):
            problems.append(
                Rejection(
                    "not_a_tensor",
                    name,
                    f"{name!r} is a {type(tensor).__name__}, not a tensor",
                    {"type": type(tensor).__name__},
                )
            )
            continue
        if tensor.dtype != expected.dtype:
            problems.append(
                Rejection(
                    "dtype_mismatch",
                    name,
                    f"{name!r} has dtype {tensor.dtype}, base model has {expected.dtype}",
                    {"expected": str(expected.dtype), "actual": str(tensor.dtype)},
                )
            )
        if tensor.shape != expected.shape:
            problems.append(
                Rejection(
                    "shape_mismatch",
                    name,
                    f"{name!r} has shape {list(tensor.shape)}, base model has {list(expected.shape)}",
                    {"expected": list(expected.shape), "actual": list(tensor.shape)},
                )
            )
            continue
        if tensor.dtype.is_floating_point or tensor.dtype.is_complex:
            bad = int((~torch.isfinite(tensor)).sum())
            if bad:
                problems.append(
                    Rejection(
                        "non_finite",
                        name,
                        f"{name!r} has {bad} NaN/Inf value(s) out of {tensor.numel()}",
                        {"count": bad, "numel": tensor.numel()},
                    )
                )

    if not problems and max_norm is not None:
        norm = update_norm(update, None if delta else base)
        if norm > max_norm:
            # Name the tensor that weighs most, so that a person knows where to look.
            parts = {n: update_norm({n: update[n]}, None if delta else {n: base[n]}) for n in update}
            worst = max(parts, key=lambda n: (parts[n], n))
            problems.append(
                Rejection(
                    "norm_exceeded",
                    None,
                    f"update L2 norm {norm:.6g} exceeds the bound {max_norm:.6g} "
                    f"(largest part: {worst!r}, norm {parts[worst]:.6g})",
                    {"norm": norm, "bound": float(max_norm), "largest_tensor": worst},
                )
            )
    return problems


def validate_updates(
    updates: Mapping[str, tuple[Any, Any]],
    base: Mapping[str, torch.Tensor],
    *,
    max_norm: float | None = None,
    delta: bool = True,
) -> ValidationResult:
    """Validates ``{partner: (arrays, sample_count)}`` and splits them into accepted and rejected, both keyed
    by partner, in the order given.

    Raises:
        ConfigurationError: `max_norm` is given and not a finite number >= 0.
    """
    accepted: dict[str, tuple[Mapping[str, torch.Tensor], float]] = {}
    rejected: dict[str, list[Rejection]] = {}
    for partner, pair in updates.items():
        try:
            arrays, weight = pair
        except (TypeError, ValueError):
            rejected[partner] = [Rejection("not_a_mapping", None, "expected an (arrays, sample_count) pair")]
            continue
        problems = validate_update(arrays, base, max_norm=max_norm, delta=delta, weight=weight)
        if problems:
            rejected[partner] = problems
        else:
            accepted[partner] = (arrays, float(weight))
    return ValidationResult(accepted=accepted, rejected=rejected)
