"""Incremental re-audits re-check availability and integrity (issue 11, item 5): after a green audit, one flipped
byte of a stored envelope block used to pass the default (incremental) audit with "every check holds". Now every
anchored artifact of an already verified round is re-fetched and re-hashed; the audit fails ``cids_resolve``
naming round, partner and CID, says what it re-checked and what it took from earlier audits, and the round is
examined in full next time. A ``--workdir`` audit keeps its state in that folder."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from lepton_ledger.audit import audit_workdir
from lepton_ledger.commands.audit import audit_app
from lepton_ledger.storage.car import iter_dag
from lepton_ledger.storage.local import LocalStore


def _flip_a_byte_of_an_envelope(workdir):
    """Flips one byte in the last block of round 1's first envelope; returns (partner, envelope CID, block CID)."""
    summary = json.loads((workdir / "summary.json").read_text())
    partner, cid = next(iter(summary["per_round"][0]["cids"]["envelopes"].items()))
    store = LocalStore(workdir / "store", durable=False)
    block, _ = list(iter_dag(store, cid))[-1]
    path = store._path(block)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))
    return partner, cid, str(block)


def test_incremental_reaudit_after_a_flipped_byte_exits_1_naming_round_partner_and_cid(
    demo_single, clean_audit, fresh_copy
):
    workdir = fresh_copy(demo_single, clean_audit[1])
    state = workdir.parent / clean_audit[1].name
    partner, cid, _ = _flip_a_byte_of_an_envelope(workdir)
    out = workdir.parent / "audit.json"

    run = CliRunner().invoke(
        audit_app, ["--workdir", str(workdir), "--state", str(state), "--json-out", str(out)], env={"COLUMNS": "400"}
    )  # wide enough that no cell of the failures table folds
    assert run.exit_code == 1, run.output
    assert "0 round(s) checked in full, 2 re-checked" in run.output
    (failed,) = [c for c in json.loads(out.read_text())["checks"] if not c["ok"]]
    assert (failed["name"], failed["round"], failed["partner"], failed["cid"]) == ("cids_resolve", 1, partner, cid)
    assert "earlier audit" in failed["evidence"]["scope"]
    assert cid in run.output and partner in run.output

    again = audit_workdir(workdir, state_path=state)  # the round was forgotten: examined in full now
    assert again.rounds_checked == [(1, 1)] and again.rounds_rechecked == [(1, 2)]
    assert not again.ok


def test_reaudit_of_intact_data_rechecks_every_artifact_and_says_so(demo_single, clean_audit, fresh_copy):
    workdir = fresh_copy(demo_single, clean_audit[1])
    result = audit_workdir(workdir, state_path=workdir.parent / clean_audit[1].name)
    assert result.ok and result.rounds_checked == [] and result.rounds_rechecked == [(1, 1), (1, 2)]
    resolved = [c for c in result.checks if c.name == "cids_resolve"]
    # per round: the global model, the report, the aggregate and one envelope per partner
    assert sorted((c.round, c.evidence["artifact"]) for c in resolved) == sorted(
        (r, what)
        for r in (1, 2)
        for what in ("global model", "round report", "aggregate model", "envelope", "envelope")
    )
    doc = result.to_dict()
    assert doc["rounds_checked"] == [] and doc["rounds_rechecked"] == [[1, 1], [1, 2]]


def test_a_workdir_audit_keeps_its_state_in_the_folder(demo_single, fresh_copy, tmp_path, monkeypatch):
    workdir = fresh_copy(demo_single)
    data_dir = tmp_path / "global-data"
    monkeypatch.setenv("LEPTON_DATA_DIR", str(data_dir))
    run = CliRunner().invoke(audit_app, ["--workdir", str(workdir)])
    assert run.exit_code == 0, run.output
    assert (workdir / "audit" / "state.sqlite").exists()
    assert not (data_dir / "audit").exists()
    second = CliRunner().invoke(audit_app, ["--workdir", str(workdir)])
    assert second.exit_code == 0 and "0 round(s) checked in full, 2 re-checked" in second.output
