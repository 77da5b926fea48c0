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
from typing import Any

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
