"""The rules a coordinator runs a round by, as one validated object the round report carries.

:class:`RoundRules`: the ``fl.aggregate`` rule and its parameters, the ``fl.contribution_scores`` method and its
parameters, the utility it scores on (accuracy) and the L2 bound of an update. The report writes them
(:meth:`RoundRules.report_fields`) and the auditor reads them back (:meth:`RoundRules.from_report`): this is the
one place that joins and splits the report's ``scoring`` as ``"<method>:accuracy"``. The parties sign them too:
the terms document's ``"rules"`` object, in the same fields (:meth:`RoundRules.from_terms`); the coordinator runs
those and the audit checks the report's against them (:meth:`RoundRules.differences`). Importing this module does
not import torch (the report parser and the command line use it); making rules does, to check the names.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from ..errors import ConfigurationError

__all__ = ["DEFAULT_MAX_NORM", "SCORING_METRIC", "RoundRules"]

SCORING_METRIC = "accuracy"  # the utility every scoring method is computed on
DEFAULT_MAX_NORM = 50.0  # L2 bound on an update (logreg on digits: honest updates stay well below it)
SEEDED_SCORERS = frozenset({"tmc_shapley"})  # their seed defaults to the round id


@dataclass(frozen=True)
class RoundRules:
    """How a round's updates are checked, combined, scored: validated when made (``ConfigurationError``)."""

    aggregation: str = "fedavg"
    aggregation_params: dict[str, Any] = field(default_factory=dict)
    scoring: str = "leave_one_out"
    scoring_params: dict[str, Any] = field(default_factory=dict)
    max_norm: float = DEFAULT_MAX_NORM
    metric: str = SCORING_METRIC

    def __post_init__(self) -> None:
        from ..fl.aggregation import AGGREGATORS  # torch: only once rules are made
        from ..fl.scoring import SCORERS

        if self.aggregation not in AGGREGATORS:
            raise ConfigurationError(f"unknown aggregation rule {self.aggregation!r}; known: {sorted(AGGREGATORS)}")
        if self.scoring not in SCORERS:
            raise ConfigurationError(f"unknown scoring method {self.scoring!r}; known: {sorted(SCORERS)}")
        if self.metric != SCORING_METRIC:
            raise ConfigurationError(f"scores are computed on {SCORING_METRIC}, not {self.metric!r}")
        norm = self.max_norm
        if isinstance(norm, bool) or not isinstance(norm, (int, float)) or not math.isfinite(norm) or norm < 0:
            raise ConfigurationError(f"the norm bound must be a finite number >= 0, not {norm!r}")
        for name in ("aggregation_params", "scoring_params"):
            params = getattr(self, name)
            if not isinstance(params, Mapping) or not all(isinstance(k, str) for k in params):
                raise ConfigurationError(f"{name} must map parameter names to values, not {params!r}")
            object.__setattr__(self, name, dict(params))  # a copy: the caller's dict cannot change the rules

    def for_round(self, round_id: int) -> RoundRules:
        """The rules as run on `round_id`: a seeded scoring method gets the round id as its default seed."""
        if self.scoring not in SEEDED_SCORERS or "seed" in self.scoring_params:
            return self
        return replace(self, scoring_params={**self.scoring_params, "seed": round_id})

    def report_fields(self) -> dict[str, Any]:
        """The round report's fields that name these rules (report.py's format, version 1)."""
        return {
            "aggregation_rule": self.aggregation,
            "aggregation_params": dict(self.aggregation_params),
            "scoring": f"{self.scoring}:{self.metric}",
            "scoring_params": dict(self.scoring_params),
            "max_norm": self.max_norm,
        }

    @classmethod
    def from_report(cls, doc: Mapping[str, Any], what: str = "the round report") -> RoundRules:
        """The rules a round report names (its fields as :meth:`report_fields` writes them).

        Raises:
            ConfigurationError: a field is missing, or names a rule, method or bound that cannot run.
        """
        try:
            scoring, _, metric = str(doc["scoring"]).partition(":")
            return cls(
                aggregation=str(doc["aggregation_rule"]),
                aggregation_params=doc["aggregation_params"],
                scoring=scoring,
                scoring_params=doc["scoring_params"],
                max_norm=doc["max_norm"],
                metric=metric,
            )
        except KeyError as exc:
            raise ConfigurationError(f"{what} names no {exc.args[0]}") from None

    @classmethod
    def from_terms(cls, document: Mapping[str, Any] | None, parties: int) -> RoundRules:
        """The rules the parties signed: the terms document's ``"rules"`` object, in the fields
        :meth:`report_fields` writes. A document without one (or no document) signs the defaults -- ``fedavg``
        and ``leave_one_out`` -- with the document's ``"max_norm"``, else ``DEFAULT_MAX_NORM``. A rule named
        without parameters takes ``fl.aggregation.default_params`` for the agreement's `parties`.

        Raises:
            ConfigurationError: ``"rules"`` is not an object, lacks a field, or names rules that cannot run.
        """
        from ..fl.aggregation import default_params

        document = document or {}
        if "rules" not in document:
            rules = cls(max_norm=document.get("max_norm", DEFAULT_MAX_NORM))
        elif isinstance(document["rules"], Mapping):
            rules = cls.from_report(document["rules"], "the terms document's rules object")
        else:
            raise ConfigurationError(f"the terms document's rules must be an object, not {document['rules']!r}")
        if not rules.aggregation_params:
            rules = replace(rules, aggregation_params=default_params(rules.aggregation, parties))
        rules.check_partners(parties)
        return rules

    def choosing(
        self, parties: int, *, aggregation: str | None = None, scoring: str | None = None, max_norm: float | None = None
    ) -> RoundRules:
        """These rules with the choices given (not None) replaced: another aggregation rule takes its default
        parameters for `parties`, another scoring method none. ConfigurationError: as :meth:`check_partners`."""
        from ..fl.aggregation import default_params

        rules = self
        if aggregation is not None and aggregation != rules.aggregation:
            rules = replace(rules, aggregation=aggregation, aggregation_params=default_params(aggregation, parties))
        if scoring is not None and scoring != rules.scoring:
            rules = replace(rules, scoring=scoring, scoring_params={})
        rules = rules if max_norm is None else replace(rules, max_norm=max_norm)
        rules.check_partners(parties)
        return rules

    def differences(self, signed: RoundRules) -> list[str]:
        """Each field in which these rules differ from `signed`, as ``"<field> <mine> (signed <theirs>)"``."""
        mine, theirs = self.report_fields(), signed.report_fields()
        return [f"{k} {mine[k]!r} (signed {theirs[k]!r})" for k in mine if mine[k] != theirs[k]]

    def check_partners(self, partners: int) -> None:
        """Refuses, before a round runs (or the parties sign them), rules that cannot run on `partners` updates.

        Raises:
            ConfigurationError: Krum with fewer than 3 partners, aggregation parameters the rule does not take or
                out of its bounds for `partners` (Krum tolerating more faulty updates than they allow), exact
                Shapley over too many.
        """
        from ..fl.aggregation import AggregationError, check_params
        from ..fl.scoring import EXACT_SHAPLEY_MAX_PARTNERS

        if self.aggregation in ("krum", "multi_krum") and partners < 3:
            raise ConfigurationError(f"{self.aggregation} needs at least 3 partners (n >= 2f + 3), not {partners}")
        try:
            check_params(self.aggregation, self.aggregation_params, partners)
        except AggregationError as exc:
            raise ConfigurationError(f"the {self.aggregation} rule cannot run for {partners} parties: {exc}") from None
        if self.scoring == "exact_shapley" and partners > EXACT_SHAPLEY_MAX_PARTNERS:
            raise ConfigurationError(
                f"exact_shapley enumerates 2**n subsets: at most {EXACT_SHAPLEY_MAX_PARTNERS} "
                f"partners, not {partners} (use tmc_shapley)"
            )
