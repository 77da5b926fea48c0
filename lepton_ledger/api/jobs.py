"""Jobs: long steps (closing a round, anchoring a round's batch, an audit) persist in the database with their
progress. Each kind runs on a thread of its own (``LANES``), so that no job waits behind a job of another kind: an
anchor due before a round's deadline never waits for a long close or audit. An anchor is a step of the service's
one writer of coordinator transactions (writer.py); a close computes its outcome (fetch and open every envelope,
validate, aggregate, evaluate, score) on its own thread, holding nothing, and only its publication (puts and
``finalizeRound`` through the outbox) is a step of the writer, so that coordinator requests do not wait for the
computation; audits send nothing. A job that was queued or running when the service stopped is run again when it
starts; the coordinator's durable outbox makes that a resumption (a recorded outcome is published and finalized,
never replaced by one computed again).

An anchor job waits, queued, until it is due: every party of its round has committed (through the service or
on-chain), or the chain's time reaches :func:`anchor_time`, shortly before the round's deadline (``commitBatch``
is refused after it). Then it runs: from that moment the round takes no more commitments (``anchor_job``), and it anchors
the commitments kept for the round with the library's ``Coordinator.anchor_batch`` (the batch document put to the
service's store, ``commitBatch`` sent once through the outbox). Run again after a restart, it first asks the chain
which of those partners have a commitment there, and sends nothing for them. One that fails is queued again
(``ANCHOR_RETRY`` seconds later) while its round still takes a batch: the commitments are kept nowhere else.
A commitment the batch cannot carry any more is left out, with the reason in the job's result (``left_out``): its
partner suspended since it committed (``commitBatch`` would refuse the whole batch for it), or its signature no
longer valid (an ERC-1271 wallet that changed its mind: anchored, its entry could be proven forged, voiding the
round). An anchored wallet's commitment is then revealed while the wallet accepts it (``revealed``), since the
ledger judges an unrevealed entry by ECDSA alone."""

from __future__ import annotations

import contextlib
import functools
import json
import threading
import time
from typing import Any

from ..chain.state import Round
from ..errors import ConfigurationError
from ..units import RoundStatus
from .errors import conflict
from .service import Service
from .writer import Writer

ACTIVE = ("queued", "running")
ANCHOR_LEAD = 60  # seconds before a round's deadline when its batch is anchored with the commitments it has
ANCHOR_RETRY = 2.0  # seconds of wall time between two tries of an anchor job that failed
# The job threads and the kinds each runs: no kind waits behind another (module docstring).
LANES = {"lepton-jobs": ("anchor",), "lepton-close": ("close",), "lepton-audit": ("audit",)}


def anchor_time(record: Round) -> int:
    """The chain time from which a round's batch is anchored with the commitments it has: ``ANCHOR_LEAD`` seconds
    before its deadline, or a tenth of the round before it for a round shorter than ten leads (so that its first
    commitment does not make the anchor due at once)."""
    return record.deadline - min(ANCHOR_LEAD, max(1, (record.deadline - record.opened_at) // 10))


def _row(row: Any) -> dict[str, Any]:
    job = dict(row)
    job["params"] = json.loads(job["params"])
    job["result"] = json.loads(job["result"]) if job["result"] else None
    return job


class JobRunner:
    def __init__(self, service: Service) -> None:
        self.service = service
        self._wakes = {kinds: threading.Event() for kinds in LANES.values()}
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._loop, args=(kinds,), name=name, daemon=True) for name, kinds in LANES.items()
        ]

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def wake(self) -> None:
        """Looks for due jobs now (a commitment may have made an anchor job due)."""
        for event in self._wakes.values():
            event.set()

    def anchor_job(self, db: Any, agreement_id: int, round_id: int) -> int:
        """The id of the round's queued anchor job, queued now if it has none, inside the caller's transaction
        `db` (the one that keeps a commitment, so that a commitment and the snapshot the job anchors never cross).

        Raises:
            ApiError: 409 ``BatchAnchored`` once the round's anchor job has started (or done) anchoring.
        """
        row = db.execute(
            "SELECT id, status FROM jobs WHERE kind = 'anchor' AND agreement_id = ? AND round_id = ? AND status != "
            "'failed' ORDER BY id DESC LIMIT 1",
            (agreement_id, round_id),
        ).fetchone()
        if row is not None and row["status"] == "queued":
            return int(row["id"])
        if row is not None:
            raise conflict(
                f"the batch of round {round_id} of agreement {agreement_id} is anchored by job {row['id']}: it "
                "takes no more commitments",
                code="BatchAnchored",
            )
        now = time.time()
        cursor = db.execute(
            "INSERT INTO jobs (kind, agreement_id, round_id, params, status, created_at, updated_at) "
            "VALUES ('anchor', ?, ?, '{}', 'queued', ?, ?)",
            (agreement_id, round_id, now, now),
        )
        return int(cursor.lastrowid)

    def stop(self) -> None:
        self._stop.set()
        self.wake()
        for thread in self._threads:
            thread.join(timeout=5)

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
        self.wake()
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

    def _loop(self, kinds: tuple[str, ...]) -> None:
        wake = self._wakes[kinds]
        while not self._stop.is_set():
            rows = (
                self.service.db.connection()
                .execute(
                    f"SELECT * FROM jobs WHERE status IN ('queued', 'running') AND kind IN ({', '.join('?' * len(kinds))}) "
                    "ORDER BY id",
                    kinds,
                )
                .fetchall()
            )
            job = next((j for j in map(_row, rows) if j["kind"] != "anchor" or self._due(j)), None)
            if job is None:
                wake.wait(1.0)
                wake.clear()
                continue
            kind = job["kind"]
            self._set(
                job["id"], status="running", progress={"audit": "auditing", "anchor": "anchoring"}.get(kind, "closing")
            )
            try:
                if kind == "audit":  # sends no transaction: not a step of the writer
                    result = self._audit()
                elif self.service.writer is None:  # queued before a restart without the key
                    raise ConfigurationError(f"no coordinator key is configured to run this {kind} job")
                elif kind == "close":  # only its publication is a step of the writer
                    result = self._close(job, self.service.writer)
                else:
                    result = self.service.writer.call(functools.partial(self._anchor, job), bounded=False)
            except Exception as exc:  # noqa: BLE001 -- the runner outlives any one job; the error is recorded
                if self._stop.is_set():  # the service stopping under it (the writer refuses): resumed at start
                    return
                # Every party's commitment is kept only here (a resent one is AlreadyCommitted): a failed anchor
                # would strand the round, so it is tried again while the round still takes a batch.
                again = kind == "anchor" and self._takes_batch(job)
                status, progress = ("queued", "retrying") if again else ("failed", "")
                self._set(job["id"], status=status, progress=progress, error=f"{type(exc).__name__}: {exc}")
            else:
                self._set(job["id"], status="done", progress="finalized", result=json.dumps(result), error=None)

    def _close(self, job: dict[str, Any], writer: Writer) -> dict[str, Any]:
        """Closes the round as ``lepton-ledger coordinator close`` does, with the service's coordinator key: its
        outcome computed on this thread, then published and finalized as a step of the writer."""
        from ..errors import CommandError, ContractReverted
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
        agreement_id, round_id = job["agreement_id"], job["round_id"]
        _, committed = coordinator.round_state(agreement_id, round_id)
        if eval_commitment(eval_set) != committed:
            raise CommandError("the evaluation set from these data options is not the one the round committed to")
        computed = None  # a close a restart interrupted after recording its outcome publishes that one
        if not coordinator.outcome_recorded(agreement_id, round_id):
            try:
                coordinator.check_closable(agreement_id, round_id)
                computed = coordinator.compute_outcome(agreement_id, round_id)
            except ContractReverted:  # not closable: close_round says why
                pass
        outcome = writer.call(lambda: coordinator.close_round(agreement_id, round_id, computed=computed), bounded=False)
        report = outcome.report
        return {
            "aggregate_cid": outcome.aggregate_cid,
            "report_cid": outcome.report_cid,
            "accepted": list(report.accepted),
            "rejected": list(report.rejected),
            "payouts": {p: str(a) for p, a in report.payouts.items()},
        }

    def _due(self, job: dict[str, Any]) -> bool:
        """Whether an anchor job runs now (module docstring): started before a restart, every party committed,
        the deadline near, or the round no longer open (the job then fails, saying so)."""
        if job["status"] == "running":
            return True
        if job["error"] and time.time() - job["updated_at"] < ANCHOR_RETRY:
            return False
        agreement_id, round_id = job["agreement_id"], job["round_id"]
        try:
            agreement, found = (
                self.service.reads.agreement(agreement_id),
                self.service.reads.round(agreement_id, round_id),
            )
            if agreement is None or found is None or found["record"].status is not RoundStatus.OPEN:
                return True
            committed = {
                row["partner"]
                for row in self.service.db.connection().execute(
                    "SELECT partner FROM commitments WHERE agreement_id = ? AND round_id = ?", (agreement_id, round_id)
                )
            }
            every = all(p in committed or found["submitted"][p] for p in agreement["terms"].parties)
            return every or self.service.reads.now() >= anchor_time(found["record"])
        except Exception:  # noqa: BLE001 -- the chain does not answer: asked again at the next turn
            return False

    def _takes_batch(self, job: dict[str, Any]) -> bool:
        """Whether the anchor job's round still takes a batch (open, its deadline not passed); True while the
        chain does not answer (the job waits for it)."""
        try:
            found = self.service.reads.round(job["agreement_id"], job["round_id"])
            if found is None:
                return False
            record = found["record"]
            return record.status is RoundStatus.OPEN and self.service.reads.now() <= record.deadline
        except Exception:  # noqa: BLE001 -- the chain does not answer: asked again at the next turn
            return True

    def _anchor(self, job: dict[str, Any]) -> dict[str, Any]:
        """Anchors the round's kept commitments in one batch, as ``lepton-ledger coordinator anchor`` does with the
        service's coordinator key; those a partner already has on-chain (anchored before a restart, or submitted
        by itself) are not sent again, and those the batch cannot carry any more are left out (module docstring)."""
        from ..errors import CommandError
        from ..protocol.addressing import cid_for_digest
        from ..protocol.signatures import chain_signature_check
        from ..rounds.roles import agreement_coordinator, signed_commitment_from_document

        agreement_id, round_id = job["agreement_id"], job["round_id"]
        session = self.service.coordinator_session()
        ledger = session.deployment.ledger
        record = Round.read(ledger.functions.round(agreement_id, round_id))
        rows = self.service.db.connection().execute(
            "SELECT document FROM commitments WHERE agreement_id = ? AND round_id = ? ORDER BY partner",
            (agreement_id, round_id),
        )
        # Every kept document was checked on arrival; its signature is checked again below, against the chain now.
        signed = [
            signed_commitment_from_document(
                json.loads(row["document"]),
                chain_id=self.service.chain_id,
                ledger=ledger.address,
                signature_valid=lambda *_: True,
            )
            for row in rows
        ]
        missing = [
            s for s in signed if not ledger.functions.hasSubmitted(agreement_id, round_id, s.commitment.partner).call()
        ]
        left_out = self._left_out(missing, chain_signature_check(self.service.w3))
        missing = [s for s in missing if s.commitment.partner not in left_out]
        partners = [s.commitment.partner for s in signed if s.commitment.partner not in left_out]
        if missing:
            if record.status is not RoundStatus.OPEN:
                raise CommandError(f"round {round_id} of agreement {agreement_id} closed before its batch was anchored")
            cid = agreement_coordinator(session, agreement_id, None).anchor_batch(agreement_id, round_id, missing)
        else:  # on-chain already: the chain says which batch holds them
            batches = ledger.events.BatchCommitted.get_logs(
                from_block=0, argument_filters={"agreementId": agreement_id, "round": round_id}
            )
            cid = cid_for_digest(bytes(batches[-1]["args"]["batchDocumentDigest"])) if batches else None
        anchored = [s for s in signed if s.commitment.partner not in left_out]
        return {
            "batch_cid": cid,
            "partners": partners,
            "left_out": [{"partner": p, "reason": reason} for p, reason in left_out.items()],
            "revealed": self._reveal_wallets(session, agreement_id, round_id, anchored),
        }

    def _reveal_wallets(self, session: Any, agreement_id: int, round_id: int, signed: list[Any]) -> dict[str, str]:
        """Reveals (``answerDispute`` before any dispute) each anchored commitment that is not its partner's ECDSA
        signature (an ERC-1271 wallet's) while the wallet still accepts it: unrevealed, the ledger judges it by
        ECDSA alone, and any auditor could prove it forged and void the round of every party. Per partner: its
        reveal's transaction, or why there is none. A wallet that turns between the anchor and its reveal stays
        provable: only the ledger judging ERC-1271 within ``commitBatch`` would close that."""
        from ..chain import disputes
        from ..chain.state import EntryDispute
        from ..chain.typed_data import update_commitment_digest
        from ..envelope.errors import BadSignature
        from ..envelope.manifest import recover_signer
        from ..errors import ContractReverted
        from ..units import DisputeStatus

        ledger = session.deployment.ledger
        revealed = {}
        for s in signed:
            partner = s.commitment.partner
            digest = update_commitment_digest(self.service.chain_id, ledger.address, s.commitment)
            with contextlib.suppress(BadSignature):
                if recover_signer(digest, s.signature) == partner:
                    continue  # ECDSA: judged the same at any time, nothing to reveal
            entry = disputes.entry_of(session.deployment, agreement_id, round_id, partner)
            state = EntryDispute.read(ledger.functions.entryDispute(agreement_id, round_id, partner))
            if entry is None or state.status is not DisputeStatus.NONE:  # not in a batch, or revealed or disputed
                continue
            record = disputes.DisputeRecord(
                agreement_id, round_id, partner, "None", entry.batch_index, entry.position, entry.epsilon, 0
            )
            try:
                answer = ledger.functions.answerDispute(*disputes.answer_for(session.deployment, session.store, record))
                receipt = session.tx.transact(answer, session.address)
            except (ContractReverted, disputes.DisputeError) as exc:
                revealed[partner] = f"not revealed: {exc}"
            else:
                revealed[partner] = receipt["transactionHash"].to_0x_hex()
        return revealed

    def _left_out(self, signed: list[Any], signature_valid: Any) -> dict[str, str]:
        """The partners of `signed` commitments that ``commitBatch`` would refuse the whole batch for, with why:
        suspended since they committed, or their signature no longer valid (an ERC-1271 wallet decides anew at
        every call)."""
        from ..chain.typed_data import update_commitment_digest

        approved = self.service.deployment.partners.functions.isApproved
        ledger = self.service.deployment.ledger.address
        left_out = {}
        for s in signed:
            partner = s.commitment.partner
            digest = update_commitment_digest(self.service.chain_id, ledger, s.commitment)
            if not approved(partner).call():
                left_out[partner] = "not an approved partner any more (suspended since it committed)"
            elif not signature_valid(partner, digest, s.signature):
                left_out[partner] = "its commitment's signature is no longer valid for it on-chain (ERC-1271)"
        return left_out

    def _audit(self) -> dict[str, Any]:
        """Audits the deployment as ``lepton-ledger audit`` does with the service's auditor key (rounds verified
        before are re-checked from ``<data dir>/audit/state.sqlite``) and leaves the result in
        ``<data dir>/audit/latest.json``, where the dashboard reads it."""
        from ..audit.runner import audit_deployment, deployment_contracts
        from .dashboard import LATEST_AUDIT

        service = self.service
        if service.auditor is None:  # queued before a restart without the key
            raise ConfigurationError("no auditor key is configured to run this audit job")
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
