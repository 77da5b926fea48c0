"""Federated learning: data, models, DP-SGD training, privacy accounting, aggregation, contribution scores
and payout rules.

A round in a handful of calls (see tests/fl/test_workflow.py)::

    split = make_federated("digits", num_partners=3, seed=0)
    model = build_model("mlp", split.input_dim, split.num_classes, seed=0)
    accountant = PrivacyAccountant(partner="0x..", agreement=1, delta=1e-5, epsilon_cap=8.0)
    result = train_local(model=model, data=split.partners[0], noise_multiplier=1.0, privacy_accountant=accountant)
    checked = validate_updates({"0x..": (result.delta, result.sample_count)}, model.state_dict(), max_norm=10)
    aggregate = fedavg(checked.accepted.values())
    scores = leave_one_out(checked.accepted, aggregate_utility(model.state_dict(), checked.accepted, evaluate_fn))
    payouts = split_reward(PayoutRule.PROPORTIONAL, reward, scores=scores)

Submodules import torch; this package's own import stays light by loading them on first use.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the names as typed, for the type checker; at run time __getattr__ loads each on first use
    from ..errors import BudgetExceeded as BudgetExceeded
    from ..units import PayoutRule as PayoutRule
    from ..units import epsilon_to_fixed as epsilon_to_fixed
    from .accounting import PrivacyAccountant as PrivacyAccountant
    from .accounting import epsilon_from_history as epsilon_from_history
    from .aggregation import aggregate as aggregate
    from .aggregation import coordinate_median as coordinate_median
    from .aggregation import fedavg as fedavg
    from .aggregation import krum as krum
    from .aggregation import multi_krum as multi_krum
    from .aggregation import trimmed_mean as trimmed_mean
    from .bookkeeping import supports_bookkeeping as supports_bookkeeping
    from .data import batch_loader as batch_loader
    from .data import eval_commitment as eval_commitment
    from .data import from_arrays as from_arrays
    from .data import from_csv as from_csv
    from .data import from_torch_dataset as from_torch_dataset
    from .data import make_federated as make_federated
    from .models import build_model as build_model
    from .payouts import split_reward as split_reward
    from .scoring import aggregate_utility as aggregate_utility
    from .scoring import apply_delta_to_state as apply_delta_to_state
    from .scoring import contribution_scores as contribution_scores
    from .scoring import exact_shapley as exact_shapley
    from .scoring import leave_one_out as leave_one_out
    from .scoring import tmc_shapley as tmc_shapley
    from .training import apply_delta_to_model as apply_delta_to_model
    from .training import evaluate as evaluate
    from .training import train_local as train_local
    from .training import train_nonprivate as train_nonprivate
    from .validation import validate_updates as validate_updates

_EXPORTS = {
    "make_federated": "data",
    "eval_commitment": "data",
    "from_arrays": "data",
    "from_csv": "data",
    "from_torch_dataset": "data",
    "batch_loader": "data",
    "build_model": "models",
    "train_local": "training",
    "train_nonprivate": "training",
    "supports_bookkeeping": "bookkeeping",
    "evaluate": "training",
    "apply_delta_to_model": "training",
    "apply_delta_to_state": "scoring",
    "PrivacyAccountant": "accounting",
    "BudgetExceeded": "accounting",  # defined in errors, re-exported there,
    "epsilon_from_history": "accounting",
    "epsilon_to_fixed": "accounting",  # declared in units, re-exported by accounting
    "fedavg": "aggregation",
    "aggregate": "aggregation",
    "coordinate_median": "aggregation",
    "trimmed_mean": "aggregation",
    "krum": "aggregation",
    "multi_krum": "aggregation",
    "validate_updates": "validation",
    "aggregate_utility": "scoring",
    "leave_one_out": "scoring",
    "tmc_shapley": "scoring",
    "exact_shapley": "scoring",
    "contribution_scores": "scoring",
    "split_reward": "payouts",
    "PayoutRule": "payouts",
}

__all__ = [*sorted(_EXPORTS)]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(f".{module}", __name__), name)
