"""A clean demo audits green, in both commit modes, and says what it verified; the audit changes nothing in the
folder's chain state; a second audit re-checks no old round (the global checks run every time), ``full``
re-checks them all; the CLI exits 0 / 1 / 2 and writes the JSON."""

from __future__ import annotations

import hashlib
import json

import pytest
from typer.testing import CliRunner

from lepton_ledger.audit import CHECK_NAMES, AuditCannotRun, audit_workdir
from lepton_ledger.chain.anvil import Anvil
from lepton_ledger.commands.audit import audit_app
from lepton_ledger.keys import Keystore
from lepton_ledger.storage.local import LocalStore

ROUND_CHECKS = {
    "cids_resolve",
    "envelope_decrypts",
    "manifest_signature",
    "epsilon_recomputed",
    "epsilon_within_cap",
    "sample_count_bound",
    "rejections_recheck",
    "aggregate_recomputed",
    "scores_and_payouts",
}
GLOBAL_CHECKS = {"vault_conserves", "bonds_conserve", "event_history"}


def test_clean_demo_audits_green_with_every_check(clean_audit, demo_single, demo_summary):
    result, _ = clean_audit
    assert result.ok, [c.to_dict() for c in result.failed]
    names = {c.name for c in result.checks}
    assert names == ROUND_CHECKS | GLOBAL_CHECKS and names <= set(CHECK_NAMES)
    assert result.rounds_checked == [(1, 1), (1, 2)]
    facts = demo_summary(demo_single)
    # one result per (check, round, partner): 2 partners x 2 rounds of envelopes, plus model/report/aggregate CIDs
    per_partner = [c for c in result.checks if c.name == "manifest_signature"]
    assert sorted((c.round, c.partner) for c in per_partner) == sorted(
        (r["round"], p) for r in facts["per_round"] for p in r["partners"]
    )
    assert len([c for c in result.checks if c.name == "cids_resolve"]) == 2 * (3 + 2)
    envelope = next(c for c in result.checks if c.name == "cids_resolve" and c.partner)
    assert envelope.cid == facts["per_round"][envelope.round - 1]["cids"]["envelopes"][envelope.partner]
    assert envelope.evidence["tx_hash"].startswith("0x") and envelope.evidence["block"] > 0


def test_round_summaries_match_what_the_demo_did(clean_audit, demo_single, demo_summary):
    result, _ = clean_audit
    facts = demo_summary(demo_single)
    assert [(r.agreement_id, r.round) for r in result.rounds] == [(1, 1), (1, 2)]
    for audited, ran in zip(result.rounds, facts["per_round"]):
        assert audited.accuracy == ran["accuracy"]
        assert audited.gas_used > 0  # summed from the receipts of the round's transactions
        assert set(audited.partners) == set(ran["partners"])
        for partner, line in audited.partners.items():
            assert line.cumulative_epsilon == ran["partners"][partner]["epsilon"]
            assert str(line.payout) == ran["partners"][partner]["payout"]
            assert line.accepted and line.epsilon_cap == facts["epsilon_cap"]
            assert line.name == ran["partners"][partner]["name"]  # named for the report's plots
    first, second = result.rounds
    assert first.accuracy_before == facts["per_round"][0]["accuracy_before"] and second.accuracy_before is None


def test_json_has_the_agreed_shape(clean_audit):
    result, _ = clean_audit
    doc = json.loads(json.dumps(result.to_dict()))
    assert set(doc) == {
        "ok",
        "chain_id",
        "contracts",
        "audited_at_block",
        "checks",
        "rounds",
        "rounds_checked",
        "rounds_rechecked",
    }
    assert doc["ok"] is True and doc["chain_id"] == 31337 and doc["audited_at_block"] > 0
    assert set(doc["contracts"]) == {
        "PartnerRegistry",
        "AgreementRegistry",
        "RewardVault",
        "RoundLedger",
        "ResultsCourt",
    }
    for check in doc["checks"]:
        assert set(check) == {"name", "ok", "agreement_id", "round", "partner", "cid", "message", "evidence"}
    line = next(iter(doc["rounds"][0]["partners"].values()))
    assert set(line) == {"cumulative_epsilon", "epsilon_cap", "payout", "accepted", "name"}
    assert isinstance(line["payout"], str)
    assert set(doc["rounds"][0]) == {
        "agreement_id",
        "round",
        "accuracy",
        "gas_used",
        "block",
        "partners",
        "accuracy_before",
    }  # the first round only: where the accuracy plot starts
    assert set(doc["rounds"][1]) == set(doc["rounds"][0]) - {"accuracy_before"}


def test_batched_demo_audits_green_from_its_batch_documents(demo_batched, tmp_path, demo_summary):
    result = audit_workdir(demo_batched, state_path=tmp_path / "state.sqlite")
    assert result.ok, [c.to_dict() for c in result.failed]
    batches = [c for c in result.checks if c.name == "batch_document"]
    facts = demo_summary(demo_batched)
    assert [(c.round, c.cid) for c in batches] == [(r["round"], r["cids"]["batch"]) for r in facts["per_round"]]
    assert len([c for c in result.checks if c.name == "epsilon_recomputed"]) == 4
    reports = [json.loads(LocalStore(demo_batched / "store").get(r["cids"]["report"])) for r in facts["per_round"]]
    assert {(r["aggregation_rule"], r["scoring"]) for r in reports} == {("median", "tmc_shapley:accuracy")}
    assert [r["scoring_params"]["seed"] for r in reports] == [1, 2]  # seeded by the round: re-computable


def test_second_audit_rechecks_no_old_round_and_full_rechecks_all(demo_single, clean_audit, fresh_copy):
    workdir = fresh_copy(demo_single, clean_audit[1])
    state = workdir.parent / clean_audit[1].name
    chain_state = hashlib.sha256((workdir / "chain-state.json").read_bytes()).hexdigest()

    again = audit_workdir(workdir, state_path=state)
    assert again.ok and again.rounds_checked == [] and again.rounds_rechecked == [(1, 1), (1, 2)]
    # vault and history run every time; the old rounds' artifacts are re-fetched and re-hashed
    assert {c.name for c in again.checks} == GLOBAL_CHECKS | {"cids_resolve"}
    assert [(r.agreement_id, r.round) for r in again.rounds] == [(1, 1), (1, 2)]  # still reported

    full = audit_workdir(workdir, state_path=state, full=True)
    assert full.ok and full.rounds_checked == [(1, 1), (1, 2)]
    assert hashlib.sha256((workdir / "chain-state.json").read_bytes()).hexdigest() == chain_state


def test_cli_exits_0_and_writes_the_json_and_the_html(demo_single, clean_audit, fresh_copy):
    workdir = fresh_copy(demo_single, clean_audit[1])
    out, page = workdir.parent / "audit.json", workdir.parent / "audit.html"
    run = CliRunner().invoke(
        audit_app,
        [
            "--workdir",
            str(workdir),
            "--state",
            str(workdir.parent / clean_audit[1].name),
            "--json-out",
            str(out),
            "--html",
            str(page),
        ],
    )
    assert run.exit_code == 0, run.output
    assert "every check holds" in run.output and "vault_conserves" in run.output
    assert json.loads(out.read_text())["ok"] is True
    assert "data:image/png;base64," in page.read_text()  # html.py renders the same result with its plots


def test_cli_exits_2_with_one_error_line_when_it_cannot_run(tmp_path):
    run = CliRunner().invoke(audit_app, ["--workdir", str(tmp_path)])
    assert run.exit_code == 2
    expected = f"error: audit could not run: {tmp_path} has no deployment.json: not a demo folder"
    assert run.output.strip().splitlines() == [expected]
    run = CliRunner().invoke(audit_app, ["--rpc-url", "http://127.0.0.1:9"])
    assert run.exit_code == 2 and "give --workdir DIR, or the auditor's key: --key NAME" in run.output


def test_cli_audits_a_live_deployment_by_rpc_with_a_key_file_or_a_keystore_identity(
    demo_single, clean_audit, fresh_copy, monkeypatch
):
    workdir = fresh_copy(demo_single, clean_audit[1])
    state = workdir.parent / clean_audit[1].name
    keys = workdir / "keys" / "dev-keys.json"
    auditor = json.loads(keys.read_text())["parties"]["auditor"]
    keystore = workdir.parent / "keystore"
    Keystore(keystore, scrypt_n=2**10).import_key(
        "auditor",
        auditor["ethereum_private_key"],
        "pw",
        x25519_private_key=bytes.fromhex(auditor["x25519_private_key"]),
    )
    monkeypatch.setenv("LEPTON_KEYSTORE_DIR", str(keystore))
    monkeypatch.setenv("LEPTON_KEYSTORE_PASSWORD", "pw")
    node = Anvil(state_file=workdir / "chain-state.json")
    with node:
        live = [
            "--rpc-url",
            node.url,
            "--deployment",
            str(workdir / "deployment.json"),
            "--ipfs",
            str(workdir / "store"),
            "--state",
            str(state),
        ]
        by_file = CliRunner().invoke(audit_app, [*live, "--key-file", str(keys), "--json-out", str(workdir / "a.json")])
        by_name = CliRunner().invoke(audit_app, [*live, "--key", "auditor", "--full"])
        wrong_store = CliRunner().invoke(audit_app, [*live[:5], str(workdir), "--key-file", str(keys)])
    assert by_file.exit_code == 0, by_file.output
    assert json.loads((workdir / "a.json").read_text())["ok"] is True
    assert by_name.exit_code == 0, by_name.output
    assert "2 round(s) checked" in by_name.output and "envelope_decrypts" in by_name.output
    assert wrong_store.exit_code == 2 and "is not a block store: wrong store location" in wrong_store.output


def test_bad_inputs_stop_the_audit_with_a_named_error_and_change_nothing(demo_single, clean_audit, fresh_copy):
    workdir = fresh_copy(demo_single, clean_audit[1])
    state = workdir.parent / clean_audit[1].name
    before = state.read_bytes()
    document = json.loads((workdir / "deployment.json").read_text())
    document["eval_set"]["dataset"] = "no-such-data"
    (workdir / "deployment.json").write_text(json.dumps(document))
    with pytest.raises(AuditCannotRun, match="no-such-data"):
        audit_workdir(workdir, state_path=state, full=True)
    assert state.read_bytes() == before  # not even the full audit's reset happened

    keys = workdir / "keys" / "dev-keys.json"
    keys.write_text(json.dumps({"parties": {"auditor": {"x25519_private_key": "00" * 31}}}))
    with pytest.raises(AuditCannotRun, match="32 bytes, got 31"):
        audit_workdir(workdir, state_path=state)
