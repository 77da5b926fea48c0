"""What one ended round's artifacts and updates give, derived where its updates are opened (an audit worker, or
the auditing process with one worker): every check of the round but the epsilon ones, which compose each
partner's earlier rounds and stay with the process that records.

A round's derivation needs nothing from other rounds: the global model, report and aggregate it anchors
(``cids_resolve``), its envelopes (``cids_resolve``, ``envelope_decrypts``, ``manifest_signature``), the signed
sample counts (``sample_count_bound``), and for a finalized round the report's rules and what re-derives by them
(``rules_as_signed``, ``rejections_recheck``, ``aggregate_recomputed``, ``scores_and_payouts``: the leave-one-out
or Shapley re-evaluations), and the aggregate's accuracy for the round's summary. Only checks, manifests and
figures come back from a worker: the updates' tensors stay where they were opened.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from ..chain.events import IndexedEvent
from ..chain.state import Terms
from ..envelope.tensors import deserialize_tensors
from ..errors import LeptonError
from ..fl.data import TabularData, eval_commitment
from ..rounds.report import MAX_REPORT_BYTES, load_report
from ..rounds.rules import RoundRules
from ..storage.store import Store
from ..units import RoundStatus
from .chain_view import Commitment, RoundRecord
from .checks.artifacts import resolve
from .checks.rewards import check_scores_and_payouts
from .checks.rules import check_rules_as_signed
from .checks.training import RoundMaterial, recheck_rejections, recompute_aggregate
from .evaluation import RememberingEvaluation
from .model import SAMPLE_COUNT_BOUND, CheckResult
from .workers import open_updates

__all__ = ["REPORT_VERSION", "DerivedRound", "RoundDeriver", "RoundTask", "UpdateChecks"]

REPORT_VERSION = 1


@dataclass(frozen=True)
class RoundTask:
    """What deriving a round needs of the chain, read by the auditing process: the round, its commitments in
    order, the terms it ran under and its ``Allocated`` event's args (None when there is none)."""

    record: RoundRecord
    commitments: list[Commitment]
    terms: Terms
    allocation: dict[str, Any] | None


@dataclass
class UpdateChecks:
    """One commitment's checks: its sample count's, its envelope's fetch, and when the envelope resolved, its
    opening's results and the manifest (None when it cannot be trusted)."""

    sample_count: CheckResult
    fetch: CheckResult
    cid: str
    resolved: bool
    results: list[CheckResult]
    manifest: Any = None


@dataclass
class DerivedRound:
    """A round's checks in the order the audit reports them (`head`, then each update's, then `tail`), what
    could not be checked for want of an input (`not_checked`, after the updates'), the finalized aggregate's
    accuracy and the report's line of each partner."""

    head: list[CheckResult]
    updates: list[UpdateChecks]
    tail: list[CheckResult]
    not_checked: list[str]
    accuracy: float | None
    lines: dict[str, dict[str, Any]]


class RoundDeriver:
    """Derives rounds from the `store`, the auditor's `key` and the rebuilt evaluation set."""

    def __init__(self, store: Store, key: bytes, eval_set: TabularData, model_name: str) -> None:
        self.store, self.key, self.eval_set = store, key, eval_set
        self.evaluation = RememberingEvaluation(eval_set, model_name)  # the coordinator's, on the rebuilt set
        self.eval_commitment = "0x" + eval_commitment(eval_set).hex()  # here, once: the workers fork with it

    def derive(self, view: Any, task: RoundTask) -> DerivedRound:
        """`view`: the chain as ``open_updates`` reads it (``chain_id``, ``ledger_address``, ``w3``, ``block``)."""
        record, commitments, terms = task.record, task.commitments, task.terms
        a, r = record.agreement_id, record.round
        head: list[CheckResult] = []
        m = RoundMaterial(record, commitments)
        not_checked: list[str] = []
        finalized = record.status is RoundStatus.FINALIZED and record.finalized is not None
        if finalized:
            assert record.finalized is not None
            m.base = self._fetch_tensors(head, record.model_digest, "global model", record, record.opened)
            self._fetch_report(view, head, m)
            fetched = resolve(
                self.store,
                bytes.fromhex(record.finalized.args["aggregateDigest"][2:]),
                what="aggregate model",
                agreement_id=a,
                round_id=r,
                event=record.finalized,
            )
            head.append(fetched.check)
            m.aggregate_bytes, m.aggregate_cid = fetched.data, fetched.cid
        bound = terms.max_sample_count
        updates: list[UpdateChecks] = []
        for c, update in zip(commitments, open_updates(view, self.store, self.key, record, commitments)):
            p = c.partner
            within = 0 < c.sample_count <= bound  # its weight in FedAvg and in a by-sample-count payout
            sample = CheckResult(
                SAMPLE_COUNT_BOUND,
                within,
                f"sample count {c.sample_count} {'within' if within else 'outside'} the signed bound [1, {bound}]",
                a,
                r,
                p,
                None,
                {**c.evidence(), "bound": bound, "found": c.sample_count},
            )
            checks = UpdateChecks(sample, update.fetch_check, update.cid, update.resolved, update.results)
            updates.append(checks)
            if not update.resolved:
                m.unchecked[p] = "its envelope does not resolve"
                continue
            m.open_codes[p] = update.code
            if update.opened is not None:
                m.opened[p] = update.opened
                checks.manifest = update.opened.manifest
        tail: list[CheckResult] = []
        if finalized and m.rules is not None:
            tail.append(check_rules_as_signed(m, self.store, terms))
        if finalized and m.report is not None and m.base is not None:
            tail += recheck_rejections(m)
            aggregate_check, _ = recompute_aggregate(m)
            if aggregate_check is None:
                not_checked.append("aggregate_recomputed and scores_and_payouts (an accepted update was not examined)")
            else:
                tail.append(aggregate_check)
                tail += check_scores_and_payouts(
                    m,
                    terms,
                    (self.eval_commitment == "0x" + record.eval_commitment.hex(), self.eval_commitment),
                    self.evaluation,
                    task.allocation,
                )
        elif finalized:
            not_checked.append(
                "rejections_recheck, aggregate_recomputed, scores_and_payouts (report or base model unavailable)"
            )
        return DerivedRound(head, updates, tail, not_checked, self._accuracy(m), m.report_lines())

    def _accuracy(self, m: RoundMaterial) -> float | None:
        if m.aggregate_bytes is None:
            return None
        try:  # the finalized aggregate, verified against its on-chain digest
            return float(self.evaluation.accuracy(deserialize_tensors(m.aggregate_bytes)))
        except (LeptonError, RuntimeError):  # not a model of this shape: no accuracy to show
            return None

    def _fetch_tensors(
        self, checks: list[CheckResult], digest: bytes, what: str, record: RoundRecord, event: IndexedEvent
    ) -> dict[str, torch.Tensor] | None:
        fetched = resolve(
            self.store, digest, what=what, agreement_id=record.agreement_id, round_id=record.round, event=event
        )
        checks.append(fetched.check)
        if fetched.data is None:
            return None
        try:
            return deserialize_tensors(fetched.data)
        except LeptonError as exc:
            fetched.check.ok, fetched.check.message = False, f"{what} {fetched.cid} is not safetensors: {exc}"
            return None

    def _fetch_report(self, view: Any, checks: list[CheckResult], m: RoundMaterial) -> None:
        record = m.record
        assert record.finalized is not None
        fetched = resolve(
            self.store,
            bytes.fromhex(record.finalized.args["reportDigest"][2:]),
            what="round report",
            agreement_id=record.agreement_id,
            round_id=record.round,
            event=record.finalized,
            max_bytes=MAX_REPORT_BYTES,
        )
        checks.append(fetched.check)
        m.report_cid = fetched.cid
        if fetched.data is None:
            return
        try:
            report = load_report(fetched.data)
            header = (
                report["version"],
                report["chain_id"],
                report["ledger"],
                report["agreement_id"],
                report["round"],
                report["base_model_digest"],
                report["eval_commitment"],
            )
        except (LeptonError, KeyError) as exc:
            fetched.check.ok, fetched.check.message = False, f"round report {fetched.cid} does not parse: {exc!r}"
            return
        expected = (
            REPORT_VERSION,
            view.chain_id,
            view.ledger_address,
            record.agreement_id,
            record.round,
            "0x" + record.model_digest.hex(),
            "0x" + record.eval_commitment.hex(),
        )
        if header != expected:
            fetched.check.ok = False
            fetched.check.message = f"round report {fetched.cid} is not this round's report (version {REPORT_VERSION})"
            fetched.check.evidence.update(expected=list(expected), found=list(header))
            return
        try:
            m.rules = RoundRules.from_report(report)
        except LeptonError as exc:  # rules the coordinator could not have run: nothing of the round re-derives
            fetched.check.ok, fetched.check.message = (
                False,
                f"round report {fetched.cid} names rules that cannot run: {exc}",
            )
            return
        m.report = report
