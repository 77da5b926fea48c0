"""Round orchestration: the coordinator's and the partners' steps, and the durable outbox through which every
side effect (IPFS put, transaction) goes so that a crash at any point loses nothing and repeats nothing.

``coordinator`` (steps 1 and 5 of the round in docs/architecture.md), ``partner`` (steps 2-4 and 6), ``rules`` (the
round's rules, one validated object), ``outcome`` (the round's outcome as one pure function, which the auditor
re-runs), ``report`` (the round report and how round artifacts are content-addressed on-chain), ``outbox`` (the durable operations table and
crash-safe transactions), ``effects`` (round side effects through the outbox: keys, kinds, checkpoints),
``accountant_file`` (a partner's privacy accountant persisted, each round recorded exactly once), ``world`` (a
deployed system with registered parties and funded agreements), ``driver`` (one round driven end to end),
``roles`` (the parties' objects and the steps around a round that the commands and scripts share). A step called
again with the same arguments after a crash resumes it. The round classes import torch: they load on first use.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

_EXPORTS = {
    "AccountantBehindChain": "partner",
    "AccountantFile": "accountant_file",
    "Coordinator": "coordinator",
    "OpenRoundConflict": "coordinator",
    "Outbox": "outbox",
    "OutboxError": "outbox",
    "PreparedUpdate": "partner",
    "RoundEffects": "effects",
    "RoundOutcome": "coordinator",
    "NoAcceptedUpdates": "outcome",
    "Evaluation": "outcome",
    "Outcome": "outcome",
    "round_outcome": "outcome",
    "RoundRules": "rules",
    "World": "world",
    "build_world": "world",
    "DrivenRound": "driver",
    "drive_round": "driver",
    "Partner": "partner",
    "TrainingSettings": "partner",
    "SignedCommitment": "partner",
    "ModelDigestMismatch": "partner",
    "RoundReport": "report",
    "ArtifactNotFound": "report",
}

__all__ = [
    "AccountantBehindChain",
    "AccountantFile",
    "ArtifactNotFound",
    "Coordinator",
    "DrivenRound",
    "Evaluation",
    "ModelDigestMismatch",
    "NoAcceptedUpdates",
    "OpenRoundConflict",
    "Outbox",
    "OutboxError",
    "Outcome",
    "Partner",
    "PreparedUpdate",
    "RoundEffects",
    "RoundOutcome",
    "RoundReport",
    "RoundRules",
    "SignedCommitment",
    "TrainingSettings",
    "World",
    "build_world",
    "drive_round",
    "round_outcome",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(f".{module}", __name__), name)
