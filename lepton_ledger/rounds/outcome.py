"""One round's outcome, computed the same way by the coordinator and by the auditor.

:func:`round_outcome` is a pure function of the round's inputs (base model, opened updates in commitment order,
evaluation set, :class:`~lepton_ledger.rounds.rules.RoundRules`, reward, payout rule) and nothing else: it reads
no chain and no store. It is
:func:`judge` (each update accepted or rejected with its ``fl.validation`` reasons) followed by :func:`settle`
(:func:`combine`'s aggregate, contribution scores, payouts by the agreement's rule, accuracy before and after).
The coordinator calls :func:`round_outcome`; the auditor calls the same pieces on what the report states:
:func:`judge` to re-derive each verdict, :func:`combine` and :func:`settle` on the updates the report accepted, so
that a wrong verdict fails only the verdict's check and a wrong aggregate, score or payout only its own.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property

import torch

from ..errors import ConfigurationError, LeptonError
from ..fl.aggregation import aggregate as aggregate_rule
from ..fl.data import TabularData
from ..fl.models import build_model
from ..fl.payouts import split_reward
from ..fl.scoring import aggregate_utility, apply_delta_to_state, contribution_scores
from ..fl.training import evaluate
from ..fl.validation import Reason, validate_updates
from ..units import PayoutRule
from .rules import RoundRules

__all__ = [
    "Evaluation",
    "NoAcceptedUpdates",
    "Outcome",
    "RoundRules",
    "Settlement",
    "combine",
    "judge",
    "round_outcome",
    "settle",
]

Tensors = dict[str, torch.Tensor]
Update = tuple[Mapping[str, torch.Tensor], float]  # (delta, sample count)


class NoAcceptedUpdates(LeptonError, RuntimeError):
    """Every update of the round was rejected (or none was committed): there is nothing to aggregate."""


@dataclass
class Evaluation:
    """The committed evaluation set and the model it scores: the utility every outcome is measured by."""

    eval_set: TabularData
    model_name: str = "logreg"

    @cached_property
    def _model(self) -> torch.nn.Module:
        # Built once: every evaluation loads a full state_dict into it (building one cost ~1 ms, 11 a round).
        return build_model(self.model_name, self.eval_set.input_dim, self.eval_set.num_classes, seed=0)

    def accuracy(self, state: Mapping[str, torch.Tensor]) -> float:
        """Accuracy of a full ``state_dict`` on the evaluation set, on the process's torch threads: a process that
        evaluates rounds sets them once where it starts (``workers.use_evaluation_threads``), not around each call."""
        self._model.load_state_dict(state)
        return evaluate(self._model, self.eval_set, device="cpu")["accuracy"]


@dataclass(frozen=True)
class Settlement:
    """What the accepted updates give: aggregate model, scores, payouts, accuracy before and after."""

    aggregate: Tensors
    scores: dict[str, float]
    payouts: dict[str, int]
    accuracy_before: float
    accuracy_after: float


@dataclass(frozen=True)
class Outcome:
    """One round's outcome: the verdicts, the rules as run (seeded for the round), and the settlement."""

    accepted: dict[str, Update]  # in commitment order
    rejected: dict[str, list[Reason]]  # reasons as the report writes them
    rules: RoundRules
    reward: int
    payout_rule: PayoutRule
    settlement: Settlement


def judge(
    updates: Mapping[str, tuple[Mapping[str, torch.Tensor], int]], base: Tensors, rules: RoundRules
) -> tuple[dict[str, Update], dict[str, list[Reason]]]:
    """``(accepted, rejected)`` of ``{partner: (delta, sample count)}`` (in commitment order): accepted updates
    weighted by their sample counts, rejected ones with the ``fl.validation`` reasons they fail."""
    checked = validate_updates(updates, base, max_norm=rules.max_norm)
    return checked.accepted, {p: [r.to_dict() for r in reasons] for p, reasons in checked.rejected.items()}


def combine(base: Tensors, accepted: Mapping[str, Update], rules: RoundRules) -> Tensors:
    """`base` plus the ``rules.aggregation`` of the `accepted` updates (in the order given): the new global model.

    Raises:
        NoAcceptedUpdates: `accepted` is empty.
        AggregationError: the updates do not aggregate by the rule and its parameters.
    """
    if not accepted:
        raise NoAcceptedUpdates("no update accepted: nothing to aggregate")
    return apply_delta_to_state(base, aggregate_rule(rules.aggregation, accepted.values(), **rules.aggregation_params))


def settle(
    base: Tensors,
    accepted: Mapping[str, Update],
    evaluation: Evaluation,
    rules: RoundRules,
    *,
    reward: int,
    payout_rule: PayoutRule,
) -> Settlement:
    """Aggregates `accepted` (in the order given) onto `base`, scores each by ``rules.scoring`` and splits
    `reward` by `payout_rule` over them (nobody with a positive score under the proportional rule: nothing paid).

    Raises:
        NoAcceptedUpdates: `accepted` is empty.
        AggregationError, ConfigurationError: the updates do not aggregate or score by the rules.
    """
    aggregate = combine(base, accepted, rules)
    utility = aggregate_utility(
        base, accepted, evaluation.accuracy, rule=rules.aggregation, params=rules.aggregation_params
    )
    scores = contribution_scores(rules.scoring, list(accepted), utility, **rules.scoring_params)
    try:
        payouts = split_reward(
            PayoutRule(payout_rule),
            reward,
            scores=scores,
            partners=list(accepted),
            sample_counts={p: int(w) for p, (_, w) in accepted.items()},
        )
    except ConfigurationError:
        payouts = {}
    return Settlement(aggregate, scores, payouts, evaluation.accuracy(base), evaluation.accuracy(aggregate))


def round_outcome(
    base: Tensors,
    updates: Mapping[str, tuple[Mapping[str, torch.Tensor], int]],
    evaluation: Evaluation,
    rules: RoundRules,
    *,
    round_id: int,
    reward: int,
    payout_rule: PayoutRule,
    refused: Mapping[str, list[Reason]] | None = None,
) -> Outcome:
    """The outcome of round `round_id`: :func:`judge` then :func:`settle`, by `rules` as run on that round.
    `updates` are the opened ones, ``{partner: (delta, sample count)}`` in commitment order; `refused` the
    reasons of those that could not be opened (they are rejected as they are).

    Raises:
        NoAcceptedUpdates: no update is accepted.
        AggregationError, ConfigurationError: the accepted updates do not aggregate or score by the rules.
    """
    rules = rules.for_round(round_id)
    accepted, rejected = judge(updates, base, rules)
    settlement = settle(base, accepted, evaluation, rules, reward=reward, payout_rule=payout_rule)
    return Outcome(accepted, {**(refused or {}), **rejected}, rules, reward, PayoutRule(payout_rule), settlement)
