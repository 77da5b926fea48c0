"""Jobs: long steps (closing a round, an audit) run on one thread, the service's one writer of coordinator
transactions, and persist in the database with their progress. A job that was queued or running when the service
stopped is run again when it starts; the coordinator's durable outbox makes that a resumption (a recorded outcome is
published and finalized, never computed twice)."""

from __future__ import annotations

import contextlib
import json
import threading
import time
from typing import Any

from ..errors import LeptonError
from .errors import conflict
from .service import Service

ACTIVE = ("queued", "running")


def _row(row: Any) -> dict[str, Any]:
    job = dict(row)
    job["params"] = json.loads(job["params"])
    job["result"] = json.loads(job["result"]) if job["result"] else None
    return job


class JobRunner:
    def __init__(self, service: Service) -> None:
        self.service = service
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="lepton-jobs", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout=5)

    def submit(
        self, kind: str, agreement_id: int, round_id: int, params: dict[str, Any], origin: str | None = None
    ) -> dict[str, Any]:
        """A new queued job; 409 while a job of this kind for this round is queued or running. A job already
        submitted by `origin` (a caller's Idempotency-Key) is answered instead of a new one: the retry of a request
        whose process died before it answered."""
        now = time.time()
        with self.service.db.transaction() as db:
            earlier = (
                None if origin is None else db.execute("SELECT * FROM jobs WHERE origin = ?", (origin,)).fetchone()
            )
            if earlier is not None:
                return _row(earlier)
            active = db.execute(
                "SELECT id FROM jobs WHERE kind = ? AND agreement_id = ? AND round_id = ? AND status "
                "IN ('queued', 'running')",
                (kind, agreement_id, round_id),
            ).fetchone()
            if active is not None:
                raise conflict(
                    f"job {active['id']} already runs {kind} of round {round_id} of agreement {agreement_id}",
                    code="JobRunning",
                )
            cursor = db.execute(
                "INSERT INTO jobs (kind, agreement_id, round_id, params, status, created_at, "
                "updated_at, origin) VALUES (?, ?, ?, ?, 'queued', ?, ?, ?)",
                (kind, agreement_id, round_id, json.dumps(params), now, now, origin),
            )
            job_id = cursor.lastrowid
        self._wake.set()
        return self.get(int(job_id))  # type: ignore[arg-type,return-value]

    def by_origin(self, origin: str) -> dict[str, Any] | None:
        row = self.service.db.connection().execute("SELECT * FROM jobs WHERE origin = ?", (origin,)).fetchone()
        return _row(row) if row is not None else None

    def get(self, job_id: int) -> dict[str, Any] | None:
        row = self.service.db.connection().execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone()
        return _row(row) if row is not None else None

    def _set(self, job_id: int, **fields: Any) -> None:
        assignments = ", ".join(f"{name} = ?" for name in fields)
        with self.service.db.transaction() as db:
            db.execute(
                f"UPDATE jobs SET {assignments}, updated_at = ? WHERE id = ?", (*fields.values(), time.time(), job_id)
            )

    def _loop(self) -> None:
        while not self._stop.is_set():
            row = (
                self.service.db.connection()
                .execute("SELECT * FROM jobs WHERE status IN ('queued', 'running') ORDER BY id LIMIT 1")
                .fetchone()
            )
            if row is None:
                self._wake.wait(1.0)
                self._wake.clear()
                continue
            job = _row(row)
            self._set(job["id"], status="running", progress="auditing" if job["kind"] == "audit" else "closing")
            try:  # an audit sends no transaction: it does not hold up the coordinator's
                with self.service.writer if job["kind"] == "close" else contextlib.nullcontext():
                    result = self._audit() if job["kind"] == "audit" else self._close(job)
            except LeptonError as exc:
                self._set(job["id"], status="failed", progress="", error=f"{type(exc).__name__}: {exc}")
            except Exception as exc:  # noqa: BLE001 -- the runner outlives any one job; the error is recorded
                self._set(job["id"], status="failed", progress="", error=f"{type(exc).__name__}: {exc}")
            else:
                self._set(job["id"], status="done", progress="finalized", result=json.dumps(result))

    def _close(self, job: dict[str, Any]) -> dict[str, Any]:
        """Closes the round as ``lepton-ledger coordinator close`` does, with the service's coordinator key."""
        from ..errors import CommandError
        from ..fl.data import eval_commitment
        from ..rounds.datasets import eval_data
        from ..rounds.roles import agreement_coordinator

        session, params = self.service.coordinator_session(), job["params"]
        eval_set = eval_data(
            dataset=params["dataset"],
            partitions=params["partitions"],
            seed=params["seed"],
            csv=None,
            label_column="label",
            num_classes=None,
        )
        coordinator = agreement_coordinator(
            session, job["agreement_id"], eval_set, aggregation=params.get("aggregation"), scoring=params.get("scoring")
        )
        _, committed = coordinator.round_state(job["agreement_id"], job["round_id"])
        if eval_commitment(eval_set) != committed:
            raise CommandError("the evaluation set from these data options is not the one the round committed to")
        outcome = coordinator.close_round(job["agreement_id"], job["round_id"])
        report = outcome.report
        return {
            "aggregate_cid": outcome.aggregate_cid,
            "report_cid": outcome.report_cid,
            "accepted": list(report.accepted),
            "rejected": list(report.rejected),
            "payouts": {p: str(a) for p, a in report.payouts.items()},
        }

    def _audit(self) -> dict[str, Any]:
        """Audits the deployment as ``lepton-ledger audit`` does with the service's auditor key (rounds verified
        before are re-checked from ``<data dir>/audit/state.sqlite``) and leaves the result in
        ``<data dir>/audit/latest.json``, where the dashboard reads it."""
        from ..audit.runner import audit_deployment, deployment_contracts
        from .dashboard import LATEST_AUDIT

        service = self.service
        folder = service.settings.data_dir / "audit"
        folder.mkdir(parents=True, exist_ok=True)
        result = audit_deployment(
            service.w3,
            deployment_contracts(service.document),
            service.store,
            service.auditor.x25519_private_bytes(),
            eval_set_spec=service.document.get("eval_set"),
            model_name=service.document.get("model", "logreg"),
            state_path=folder / "state.sqlite",
        )
        partial = folder / f"{LATEST_AUDIT}.partial"
        partial.write_text(json.dumps(result.to_dict(), indent=2) + "\n")
        partial.replace(folder / LATEST_AUDIT)  # readers see the previous result or this one, never half of it
        return {
            "ok": result.ok,
            "checks": len(result.checks),
            "failed": len(result.failed),
            "block": result.audited_at_block,
        }
