"""The audit's worker processes (issue 15): the rounds it examines are derived in forked workers (their updates
opened, their rejections, aggregates, scores and payouts re-derived), and the result and the audit state are
those of the audit that derives them itself, check for check and row for row, clean or failing, single or
batched commits. A worker that dies ends the audit with one line and records nothing of the rounds it was
deriving."""

from __future__ import annotations

import json
import os
import sqlite3
import tempfile
from pathlib import Path

import pytest
from test_audit_tampering import block_file

from lepton_ledger.audit import AuditCannotRun, audit_deployment, audit_workdir
from lepton_ledger.audit.runner import deployment_contracts, load_auditor_key
from lepton_ledger.chain.anvil import Anvil
from lepton_ledger.rounds import outcome
from lepton_ledger.storage.local import LocalStore


def audited(folder: Path, state: Path, workers: int) -> tuple[str, list[tuple], list[tuple]]:
    """The audit's result (JSON) and the state's rows (verified rounds, DP history)."""
    result = audit_workdir(folder, state_path=state, full=True, workers=workers)
    with sqlite3.connect(state) as db:
        rounds = db.execute("SELECT agreement_id, round, block, summary FROM verified_rounds ORDER BY 1, 2").fetchall()
        dp = db.execute("SELECT agreement_id, partner, round, entry FROM dp_history ORDER BY 1, 2, 3").fetchall()
    return json.dumps(result.to_dict(), sort_keys=True), rounds, dp


@pytest.mark.parametrize("demo", ["demo_single", "demo_batched"])
def test_workers_give_the_serial_audit_result_and_state(demo, request, tmp_path):
    folder = request.getfixturevalue(demo)
    serial = audited(folder, tmp_path / "serial.sqlite", workers=1)
    parallel = audited(folder, tmp_path / "parallel.sqlite", workers=2)
    assert json.loads(serial[0])["ok"] and len(serial[1]) == 2 and len(serial[2]) == 4
    assert parallel == serial


def test_the_workers_re_evaluate_the_rounds_not_the_auditing_process(demo_single, monkeypatch, tmp_path):
    evaluations = {"here": 0}
    evaluate, here = outcome.evaluate, os.getpid()

    def counted_evaluate(model, data, **kwargs):
        evaluations["here"] += os.getpid() == here  # a worker counts in its own copy, out of this test's sight
        return evaluate(model, data, **kwargs)

    monkeypatch.setattr(outcome, "evaluate", counted_evaluate)
    result = audit_workdir(demo_single, state_path=tmp_path / "state.sqlite", full=True, workers=2)
    assert result.ok and any(c.name == "scores_and_payouts" for c in result.checks)
    assert all(r.accuracy is not None for r in result.rounds)
    # Only the first round's base model, for the report's plot (13 before: scores, settlements and summaries).
    assert evaluations["here"] == 1


def test_workers_give_the_serial_audit_failures(demo_single, fresh_copy, demo_summary, tmp_path):
    workdir = fresh_copy(demo_single)
    partner, cid = min(demo_summary(workdir)["per_round"][1]["cids"]["envelopes"].items())
    path = block_file(workdir, cid)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))
    serial = audited(workdir, tmp_path / "serial.sqlite", workers=1)
    parallel = audited(workdir, tmp_path / "parallel.sqlite", workers=2)
    failed = [(c["name"], c["round"], c["partner"]) for c in json.loads(serial[0])["checks"] if not c["ok"]]
    assert failed == [("cids_resolve", 2, partner)] and [r[1] for r in serial[1]] == [1]
    assert parallel == serial


class DyingStore(LocalStore):
    """A block store that kills the process reading it, unless that is the auditing process: a worker crash."""

    auditor_pid = os.getpid()

    def stream(self, *args, **kwargs):  # every read of a file, whole (get) or streamed
        if os.getpid() != self.auditor_pid:
            os._exit(3)
        return super().stream(*args, **kwargs)


def test_a_worker_that_dies_fails_the_audit_in_one_line_and_records_nothing(demo_single, fresh_copy, tmp_path):
    workdir = fresh_copy(demo_single)
    deployment = json.loads((workdir / "deployment.json").read_text())
    key = load_auditor_key(workdir / "keys" / "dev-keys.json")
    state = tmp_path / "state.sqlite"
    with tempfile.TemporaryDirectory() as tmp:
        copy = Path(tmp) / "chain-state.json"
        copy.write_bytes((workdir / "chain-state.json").read_bytes())
        store = DyingStore(workdir / "store", durable=False)
        with (
            Anvil(state_file=copy, chain_id=int(deployment["chain_id"])) as w3,
            pytest.raises(AuditCannotRun) as failure,
        ):
            audit_deployment(
                w3,
                deployment_contracts(deployment),
                store,
                key,
                eval_set_spec=deployment["eval_set"],
                state_path=state,
                full=True,
                workers=2,
            )
    message = str(failure.value)
    assert "worker process died" in message and "round 1" in message and "\n" not in message
    with sqlite3.connect(state) as db:
        assert db.execute("SELECT COUNT(*) FROM verified_rounds").fetchone() == (0,)
        assert db.execute("SELECT COUNT(*) FROM dp_history").fetchone() == (0,)
    # and the next audit, whose workers live, verifies every round as if nothing had happened
    assert audited(workdir, state, workers=2) == audited(workdir, tmp_path / "serial.sqlite", workers=1)
