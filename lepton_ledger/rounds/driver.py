"""One round driven end to end through the parties' public steps: the demo, the brownie script, the benchmarks and
the tests run rounds through :func:`drive_round`.

The coordinator publishes the global model and opens the round (deadline: the chain's clock plus `window`);
the partners, at the same time as on their own machines (``workers.concurrent.run_each``), train, seal and
commit (``single``) or sign their commitments, which the coordinator anchors in one batch (``batched``), answering
any dispute the batch documents can answer; then the coordinator closes the round. Each step is a crash-safe
call of its party (outbox), so a driver that dies can be run again with the same arguments.

``on_event(name, detail)`` (optional) hears ``opened`` (round, model_cid), ``committed`` (partner, its
submission or signed commitment), ``anchored`` (batch_cid), ``dispute`` (line) and ``close_retried`` (error).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from ..chain.disputes import answer_open_disputes
from ..errors import ChainError, ConfigurationError
from ..workers.concurrent import run_each
from .coordinator import Coordinator, RoundOutcome
from .partner import Partner, SignedCommitment, Submission

__all__ = ["ROUND_WINDOW", "DrivenRound", "drive_round"]

ROUND_WINDOW = 3600  # seconds from opening to the round's deadline
MODES = ("single", "batched")
OnEvent = Callable[[str, dict[str, Any]], None]


@dataclass(frozen=True)
class DrivenRound:
    """What a driven round did: its id, the model it opened on, each partner's envelope, the batch (batched
    mode) and the coordinator's outcome."""

    round_id: int
    model_cid: str
    envelopes: dict[str, str]  # partner address -> envelope CID
    batch_cid: str | None
    outcome: RoundOutcome


def drive_round(
    coordinator: Coordinator,
    partners: Sequence[Partner],
    agreement_id: int,
    state: dict[str, torch.Tensor],
    *,
    recipients: list[str],
    mode: str = "single",
    window: int = ROUND_WINDOW,
    concurrent: bool = True,
    close_retries: int = 0,
    on_event: OnEvent | None = None,
) -> DrivenRound:
    """Runs one round of `agreement_id` on global model `state` (see the module docstring); `recipients` are
    whom the envelopes are sealed to. `concurrent`: False runs the partners one after another (an in-process
    executor trains one task at a time). `close_retries`: how many times a ``close_round`` the node failed
    (``ChainError``) is called again (it resumes the recorded finalize).

    Raises:
        ConfigurationError: an unknown mode.
        As the parties' steps raise (``BudgetExceeded``, ``ContractReverted``, ``NoAcceptedUpdates``...).
    """
    if mode not in MODES:
        raise ConfigurationError(f"mode must be 'single' or 'batched', not {mode!r}")
    say = on_event or (lambda name, detail: None)
    model_cid, model_digest = coordinator.publish_model(state)
    deadline = coordinator.tx.w3.eth.get_block("latest")["timestamp"] + window
    round_id = coordinator.open_round(agreement_id, model_digest, deadline)
    say("opened", {"round": round_id, "model_cid": model_cid})
    batch_cid = None

    def step(p: Partner) -> Submission | SignedCommitment:
        if mode == "single":
            return p.run_round(agreement_id, round_id, recipients)
        return p.run_round_batched(agreement_id, round_id, recipients)

    done = run_each(step, partners) if concurrent else [step(p) for p in partners]
    for p, result in zip(partners, done):
        say("committed", {"partner": p, "result": result})
    if mode == "batched":
        signed = [s for s in done if isinstance(s, SignedCommitment)]  # every result, in batched mode
        batch_cid = coordinator.anchor_batch(agreement_id, round_id, signed)
        say("anchored", {"batch_cid": batch_cid})
        # A partner may dispute its entry; an honest coordinator answers with the signed commitment.
        for line in answer_open_disputes(
            coordinator.tx,
            coordinator.deployment,
            coordinator.store,
            sender=coordinator.address,
            agreement_id=agreement_id,
        ):
            say("dispute", {"line": line})
    for attempt in range(close_retries + 1):
        try:
            outcome = coordinator.close_round(agreement_id, round_id)
            break
        except ChainError as exc:
            if attempt == close_retries:
                raise
            say("close_retried", {"error": exc})
    envelopes = {p.address: r.envelope_cid for p, r in zip(partners, done)}
    return DrivenRound(round_id, model_cid, envelopes, batch_cid, outcome)
