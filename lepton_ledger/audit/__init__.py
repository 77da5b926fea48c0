"""Independent re-verification of the whole ledger (docs/architecture.md, "One round, end to end", step 7).

With nothing but the chain, the block store and the auditor's X25519 key, :func:`audit_deployment` (or
:func:`audit_workdir` for a demo folder) replays every event and re-checks every round; the result,
:class:`AuditResult`, serializes to the JSON documented in ``model``. Modules: ``model`` (results and their
JSON), ``chain_view`` (what the chain says), ``checks/`` (one module per concern), ``state`` (incremental
audits), ``runner`` (the order of it all), ``html`` (the report); the ``audit`` command is in lepton_ledger/commands/. What a
party does with a failed audit (challenges, rulings, forgery proofs) is the ``challenges`` package. Torch loads on
first use.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

_EXPORTS = {
    "AuditResult": "model",
    "CheckResult": "model",
    "RoundSummary": "model",
    "PartnerLine": "model",
    "CHECK_NAMES": "model",
    "AuditCannotRun": "runner",
    "audit_deployment": "runner",
    "audit_workdir": "runner",
    "load_auditor_key": "runner",
}

__all__ = [
    "CHECK_NAMES",
    "AuditCannotRun",
    "AuditResult",
    "CheckResult",
    "PartnerLine",
    "RoundSummary",
    "audit_deployment",
    "audit_workdir",
    "load_auditor_key",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(f".{module}", __name__), name)
