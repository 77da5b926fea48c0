"""Privacy accounting per (partner, agreement), separated from training.

Three layers, as in Opacus:

- pure math: ``epsilon_from_history(history, delta, kind)`` recomputes epsilon from recorded rounds; this is
  what an auditor runs on the DP parameters published in the manifests;
- a stateful ``PrivacyAccountant`` per (partner, agreement) whose history persists (``state_dict()`` is
  plain JSON) and composes across rounds; ``check_budget`` refuses a round *before* training;
- one hook linking them: ``training.train_local(..., privacy_accountant=acct)`` checks, trains, records.

Fixed point: the contracts store epsilons as uint32 with 1e6 = 1.0. ``epsilon_to_fixed`` rounds UP (from
the exact binary value of the float, with ``fractions.Fraction``), so a committed spend never understates
the computed epsilon; ``cap_to_fixed`` rounds a cap DOWN, so it never overstates. A consequence of exactness:
``epsilon_to_fixed(0.1) == 100001`` since the float 0.1 is slightly above 1/10. Budget checks compare
the fixed-point values, exactly as the chain does, so a round the accountant accepts the chain accepts too.

RDP (default) composes by adding Renyi divergences over Opacus's default orders and converts with Opacus's
``get_privacy_spent``; PRV (optional) uses Opacus's ``PRVAccountant`` (tighter, numerically approximate
within its ``eps_error``).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np

from ..errors import BudgetExceeded, ConfigurationError
from ..units import UINT32_MAX, AccountantKind, cap_to_fixed, epsilon_to_fixed

STATE_VERSION = 1


@dataclass(frozen=True)
class Round:
    """One DP-SGD run: `steps` Poisson-sampled steps at `sample_rate` with Gaussian `noise_multiplier`."""

    noise_multiplier: float
    sample_rate: float
    steps: int

    def __post_init__(self) -> None:
        if not (self.noise_multiplier > 0 and 0 < self.sample_rate <= 1 and self.steps >= 0):
            raise ConfigurationError(f"invalid DP round {self}")

    @classmethod
    def coerce(cls, value: Round | Sequence[Any] | Mapping[str, Any]) -> Round:
        """Accepts a Round, a (noise_multiplier, sample_rate, steps) triple or a mapping with those keys.

        Raises:
            ConfigurationError: anything else, or values out of range.
        """
        if isinstance(value, Round):
            return value
        try:
            if isinstance(value, Mapping):
                return cls(float(value["noise_multiplier"]), float(value["sample_rate"]), int(value["steps"]))
            nm, q, steps = value
            return cls(float(nm), float(q), int(steps))
        except (KeyError, TypeError, ValueError) as exc:
            raise ConfigurationError(f"not a DP round: {value!r}") from exc


def epsilon_from_history(
    history: Iterable[Round | Sequence[Any] | Mapping[str, Any]], delta: float, kind: str | AccountantKind = "rdp"
) -> float:
    """Epsilon at `delta` of the composition of every round in `history` (0.0 for an empty history). Pure.

    Raises:
        ConfigurationError: `delta` outside (0, 1), an unknown `kind`, or a malformed round.
    """
    if not 0 < delta < 1:
        raise ConfigurationError(f"delta must be in (0, 1), got {delta}")
    kind = AccountantKind.parse(kind)
    rounds = [r for r in (Round.coerce(h) for h in history) if r.steps > 0]
    if not rounds:
        return 0.0
    if kind is AccountantKind.RDP:
        # RDP composes additively and is linear in the step count, so each distinct (q, sigma) is computed
        # once for one step (cached: the fractional orders cost ~0.2 s per pair) and scaled.
        steps: dict[tuple[float, float], int] = {}
        for r in rounds:
            key = (r.sample_rate, r.noise_multiplier)
            steps[key] = steps.get(key, 0) + r.steps
        return _rdp_epsilon(tuple(steps.items()), delta)  # in order: the same sum as ever, to the last bit
    from opacus.accountants import PRVAccountant

    prv = PRVAccountant()
    prv.history = [(r.noise_multiplier, r.sample_rate, r.steps) for r in rounds]
    return float(prv.get_epsilon(delta))


@lru_cache(maxsize=4096)
def _rdp_epsilon(steps: tuple[tuple[tuple[float, float], int], ...], delta: float) -> float:
    """Epsilon at `delta` of ``((sample rate, noise multiplier), steps)`` composed. Cached: a partner's round
    asks it of the same history several times (budget check, the envelope's cumulative epsilon, the recording),
    each ~0.1 ms."""
    from opacus.accountants.analysis.rdp import get_privacy_spent

    rdp = sum(np.asarray(_rdp_one_step(q, sigma)) * n for (q, sigma), n in steps)
    eps, _ = get_privacy_spent(orders=list(_rdp_orders()), rdp=rdp, delta=delta)
    return float(eps)


@lru_cache(maxsize=1)
def _rdp_orders() -> tuple[float, ...]:
    from opacus.accountants.rdp import RDPAccountant

    return tuple(RDPAccountant.DEFAULT_ALPHAS)


@lru_cache(maxsize=1024)
def _rdp_one_step(sample_rate: float, noise_multiplier: float) -> tuple[float, ...]:
    from opacus.accountants.analysis.rdp import compute_rdp

    rdp = compute_rdp(q=sample_rate, noise_multiplier=noise_multiplier, steps=1, orders=list(_rdp_orders()))
    return tuple(float(v) for v in np.atleast_1d(rdp))


class PrivacyAccountant:
    """Composes a partner's DP rounds under one agreement and guards the agreement's epsilon cap."""

    def __init__(
        self,
        *,
        partner: str,
        agreement: str | int,
        delta: float,
        epsilon_cap: float | None = None,
        epsilon_cap_fixed: int | None = None,
        kind: str | AccountantKind = AccountantKind.RDP,
    ) -> None:
        """Give the cap either as a float (`epsilon_cap`, rounded down) or as the on-chain `epsilon_cap_fixed`.

        Raises:
            ConfigurationError: not exactly one cap, a cap out of uint32 range, `delta` outside (0, 1), or
                an unknown `kind`.
        """
        if (epsilon_cap is None) == (epsilon_cap_fixed is None):
            raise ConfigurationError("give exactly one of epsilon_cap and epsilon_cap_fixed")
        cap = cap_to_fixed(epsilon_cap) if epsilon_cap is not None else int(epsilon_cap_fixed)  # type: ignore[arg-type]
        if not 0 < cap <= UINT32_MAX:
            raise ConfigurationError(f"epsilon cap must be in (0, {UINT32_MAX}] fixed point, got {cap}")
        if not 0 < delta < 1:
            raise ConfigurationError(f"delta must be in (0, 1), got {delta}")
        self.partner = str(partner)
        self.agreement = str(agreement)
        self.delta = float(delta)
        self.cap_fixed = cap
        self.kind = AccountantKind.parse(kind)
        self.history: list[Round] = []

    def epsilon(self) -> float:
        """Cumulative epsilon of every recorded round, at the agreement's delta."""
        return epsilon_from_history(self.history, self.delta, self.kind)

    def spent_fixed(self) -> int:
        """Cumulative epsilon in fixed point, as it is committed on-chain."""
        return epsilon_to_fixed(self.epsilon())

    def would_spend(self, round_: Round | Sequence[Any] | Mapping[str, Any]) -> float:
        """Cumulative epsilon if `round_` were added (nothing is recorded)."""
        return epsilon_from_history([*self.history, Round.coerce(round_)], self.delta, self.kind)

    def check_budget(self, round_: Round | Sequence[Any] | Mapping[str, Any]) -> int:
        """Checks, before training, that `round_` keeps the cumulative epsilon within the cap.

        Returns the cumulative epsilon after the round, in fixed point (what the partner will commit).

        Raises:
            BudgetExceeded: the round would take the partner over the cap; nothing is recorded.
            ConfigurationError: a malformed round.
        """
        after = epsilon_to_fixed(self.would_spend(round_))
        if after > self.cap_fixed:
            raise BudgetExceeded(
                partner=self.partner,
                agreement=self.agreement,
                spent=self.spent_fixed(),
                would_spend=after,
                cap=self.cap_fixed,
            )
        return after

    def record(self, round_: Round | Sequence[Any] | Mapping[str, Any]) -> int:
        """Records a round that ran; returns the new cumulative epsilon in fixed point.

        Raises:
            BudgetExceeded: the round takes the partner over the cap (it is not recorded: the update must not
                be committed either).
        """
        after = self.check_budget(round_)
        self.history.append(Round.coerce(round_))
        return after

    # --- persistence ---------------------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to resume, as JSON-compatible values."""
        return {
            "version": STATE_VERSION,
            "partner": self.partner,
            "agreement": self.agreement,
            "delta": self.delta,
            "epsilon_cap_fixed": self.cap_fixed,
            "kind": self.kind.value,
            "history": [[r.noise_multiplier, r.sample_rate, r.steps] for r in self.history],
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restores a ``state_dict()``; it must belong to the same partner, agreement, delta, cap and kind.

        Raises:
            ConfigurationError: unknown version, a mismatch of identity or terms, or a malformed history.
        """
        if state.get("version") != STATE_VERSION:
            raise ConfigurationError(f"unsupported accountant state version {state.get('version')!r}")
        mine = self.state_dict()
        for key in ("partner", "agreement", "delta", "epsilon_cap_fixed", "kind"):
            if state.get(key) != mine[key]:
                raise ConfigurationError(f"accountant state is for {key}={state.get(key)!r}, not {mine[key]!r}")
        self.history = [Round.coerce(r) for r in state["history"]]

    @classmethod
    def from_state_dict(cls, state: Mapping[str, Any]) -> PrivacyAccountant:
        """Builds an accountant from a ``state_dict()``.

        Raises:
            ConfigurationError: as ``load_state_dict``, or missing keys.
        """
        try:
            acct = cls(
                partner=state["partner"],
                agreement=state["agreement"],
                delta=state["delta"],
                epsilon_cap_fixed=state["epsilon_cap_fixed"],
                kind=state["kind"],
            )
        except KeyError as exc:
            raise ConfigurationError(f"accountant state lacks {exc}") from None
        acct.load_state_dict(state)
        return acct

    def to_json(self) -> str:
        return json.dumps(self.state_dict(), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> PrivacyAccountant:
        """Raises: ConfigurationError for malformed JSON or state."""
        try:
            state = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ConfigurationError(f"accountant state is not JSON: {exc}") from None
        return cls.from_state_dict(state)
