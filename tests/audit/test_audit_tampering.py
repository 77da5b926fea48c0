"""Each tampering, on a fresh copy of the demo folder, fails exactly the check that covers it -- naming the round,
the partner and the CID -- while every other check stays green:

- one byte of a stored envelope block flipped -> ``cids_resolve``;
- two partners' envelopes swapped in the store (each digest now maps to the other's bytes) -> ``cids_resolve``
  for both, the found digest being the other partner's envelope's;
- a partner commits (and signs) a lower cumulative epsilon than its DP history gives -> ``epsilon_recomputed``;
- the coordinator's report alters a partner's score -> ``scores_and_payouts`` for that partner;
- the coordinator leaves an accepted update out of the aggregate -> ``aggregate_recomputed``.

The last three add a round 3 on the copy's chain (conftest.add_round) and audit incrementally from the clean
audit's state, so rounds 1-2 are not re-checked (and the global checks still run)."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
from typer.testing import CliRunner

from lepton_ledger.audit import AuditResult, audit_workdir
from lepton_ledger.chain.state import Round
from lepton_ledger.commands.audit import audit_app
from lepton_ledger.errors import ConfigurationError
from lepton_ledger.protocol.addressing import cid_for_digest
from lepton_ledger.rounds.rules import RoundRules
from lepton_ledger.storage.cid import b32encode, parse_cid
from lepton_ledger.units import RoundStatus


def block_file(workdir: Path, cid: str) -> Path:
    """Where a LocalStore keeps the block of `cid` (storage/local.py: blocks/<shard>/<base32 multihash>)."""
    key = b32encode(parse_cid(cid).multihash)
    (path,) = (workdir / "store" / "blocks").glob(f"*/{key}")
    return path


def assert_fails_only(result: AuditResult, name: str, expected: set[tuple[int, str | None, str]]) -> None:
    """Every failed check is `name` for one of `expected` (round, partner, cid), each of those failed, and every
    other kind of check ran and held."""
    failed = {(c.name, c.round, c.partner, c.cid) for c in result.failed}
    assert failed == {(name, *e) for e in expected}, [c.to_dict() for c in result.failed]
    others = {c.name for c in result.checks if c.ok}
    assert {"envelope_decrypts", "manifest_signature", "vault_conserves", "event_history"} <= others
    for check in result.failed:
        assert check.message and check.evidence.get("tx_hash", "").startswith("0x")


def test_flipped_byte_in_a_stored_envelope_fails_cids_resolve(demo_single, fresh_copy, demo_summary, tmp_path):
    workdir = fresh_copy(demo_single)
    r2 = demo_summary(workdir)["per_round"][1]
    partner, cid = min(r2["cids"]["envelopes"].items())
    path = block_file(workdir, cid)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))

    result = audit_workdir(workdir, state_path=tmp_path / "state.sqlite")
    assert_fails_only(result, "cids_resolve", {(2, partner, cid)})
    (failure,) = result.failed
    assert "BlockCorrupted" == failure.evidence["error"] and failure.evidence["block"] > 0
    # what the broken envelope kept from being examined is said, not passed
    assert any(partner in item for item in failure.evidence["not_checked"])
    assert not [c for c in result.checks if c.name == "aggregate_recomputed" and c.round == 2]
    assert {c.name for c in result.checks if c.round == 1} >= {"aggregate_recomputed", "scores_and_payouts"}

    out = tmp_path / "audit.json"
    run = CliRunner().invoke(
        audit_app, ["--workdir", str(workdir), "--state", str(tmp_path / "state.sqlite"), "--json-out", str(out)]
    )
    assert run.exit_code == 1 and "1 check(s) failed" in run.output and "cids_resolve" in run.output
    doc = json.loads(out.read_text())
    assert doc["ok"] is False and [c["cid"] for c in doc["checks"] if not c["ok"]] == [cid]


def test_envelopes_swapped_between_partners_fail_cids_resolve_for_both(demo_single, fresh_copy, demo_summary, tmp_path):
    workdir = fresh_copy(demo_single)
    envelopes = demo_summary(workdir)["per_round"][0]["cids"]["envelopes"]
    (a, cid_a), (b, cid_b) = sorted(envelopes.items())
    path_a, path_b = block_file(workdir, cid_a), block_file(workdir, cid_b)
    bytes_a, bytes_b = path_a.read_bytes(), path_b.read_bytes()
    path_a.write_bytes(bytes_b)
    path_b.write_bytes(bytes_a)

    result = audit_workdir(workdir, state_path=tmp_path / "state.sqlite")
    assert_fails_only(result, "cids_resolve", {(1, a, cid_a), (1, b, cid_b)})


def test_partner_committing_less_epsilon_than_its_dp_history_fails_epsilon_recomputed(
    demo_single, clean_audit, fresh_copy, extra_round
):
    workdir = fresh_copy(demo_single, clean_audit[1])
    added = extra_round(workdir, shortfall={1: 0.25})
    cheat = added["partners"][1]

    result = audit_workdir(workdir, state_path=workdir.parent / clean_audit[1].name)
    assert result.rounds_checked == [(1, 3)]
    assert_fails_only(result, "epsilon_recomputed", {(3, cheat, added["envelopes"][cheat])})
    (failure,) = result.failed
    assert failure.evidence["expected"] - failure.evidence["found"] == 250_000  # 0.25 in fixed point
    assert len(failure.evidence["dp_history"]) == 3  # rounds 1-2 from the state, 3 from its manifest
    honest = next(c for c in result.checks if c.name == "epsilon_recomputed" and c.partner == added["partners"][0])
    assert honest.ok


def test_partner_claiming_more_samples_than_the_terms_bound_fails_sample_count_bound(
    demo_single, clean_audit, fresh_copy, extra_round
):
    """A batch anchors what partners signed without reading sample counts: a partner signing 2**64 - 1 samples
    (all of the reward by sample count, and all of the FedAvg weight) is caught by the audit alone."""
    workdir = fresh_copy(demo_single, clean_audit[1])
    added = extra_round(workdir, samples={1: 2**64 - 1})
    cheat = added["partners"][1]

    result = audit_workdir(workdir, state_path=workdir.parent / clean_audit[1].name)
    assert result.rounds_checked == [(1, 3)]
    assert_fails_only(result, "sample_count_bound", {(3, cheat, None)})
    (failure,) = result.failed
    assert failure.evidence["found"] == 2**64 - 1 and failure.evidence["bound"] < 2**64 - 1
    honest = next(c for c in result.checks if c.name == "sample_count_bound" and c.partner == added["partners"][0])
    assert honest.ok


def test_report_with_an_altered_score_fails_scores_and_payouts(
    demo_single, clean_audit, fresh_copy, extra_round, cheating_close
):
    workdir = fresh_copy(demo_single, clean_audit[1])
    favoured = {}

    def close(coordinator, round_id):
        partner = coordinator.commitments(1, round_id)[0].partner
        favoured["partner"] = partner
        cheating_close(coordinator, round_id, score_shift={partner: 0.05})

    added = extra_round(workdir, close=close)
    result = audit_workdir(workdir, state_path=workdir.parent / clean_audit[1].name)
    report_cid = next(c.cid for c in result.checks if c.name == "rejections_recheck" and c.round == added["round"])
    assert_fails_only(result, "scores_and_payouts", {(3, favoured["partner"], report_cid)})
    (failure,) = result.failed
    assert abs(failure.evidence["found"]["score"] - failure.evidence["expected"]["score"] - 0.05) < 1e-9


def test_update_left_out_of_the_aggregate_fails_aggregate_recomputed(
    demo_single, clean_audit, fresh_copy, extra_round, cheating_close
):
    workdir = fresh_copy(demo_single, clean_audit[1])
    dropped = {}

    def close(coordinator, round_id):
        dropped["partner"] = coordinator.commitments(1, round_id)[1].partner
        cheating_close(coordinator, round_id, drop=dropped["partner"])

    extra_round(workdir, close=close)
    result = audit_workdir(workdir, state_path=workdir.parent / clean_audit[1].name)
    aggregate_cid = next(
        c.cid
        for c in result.checks
        if c.name == "cids_resolve" and c.round == 3 and c.evidence["artifact"] == "aggregate model"
    )
    assert_fails_only(result, "aggregate_recomputed", {(3, None, aggregate_cid)})
    (failure,) = result.failed
    assert failure.evidence["accepted"] == [
        c.partner for c in result.checks if c.name == "manifest_signature" and c.round == 3
    ]
    assert dropped["partner"] in failure.evidence["accepted"]
    assert failure.evidence["expected"] != failure.evidence["found"]


def test_update_rejected_for_its_norm_re_derives_and_the_audit_stays_green(
    demo_single, clean_audit, fresh_copy, extra_round
):
    workdir = fresh_copy(demo_single, clean_audit[1])
    added = extra_round(workdir, scale={1: 1000.0})  # a poisoned update: the honest coordinator rejects it
    poisoned = added["partners"][1]

    result = audit_workdir(workdir, state_path=workdir.parent / clean_audit[1].name)
    assert result.ok, [c.to_dict() for c in result.failed]
    recheck = next(c for c in result.checks if c.name == "rejections_recheck" and c.partner == poisoned)
    assert recheck.evidence["expected"] == recheck.evidence["found"] == ["norm_exceeded"]
    (aggregate,) = [c for c in result.checks if c.name == "aggregate_recomputed" and c.round == 3]
    assert aggregate.evidence["accepted"] == [added["partners"][0]]
    assert result.rounds[-1].partners[poisoned].accepted is False and result.rounds[-1].partners[poisoned].payout == 0


def test_valid_update_rejected_by_the_coordinator_fails_rejections_recheck(
    demo_single, clean_audit, fresh_copy, extra_round, cheating_close
):
    workdir = fresh_copy(demo_single, clean_audit[1])
    victim = {}

    def close(coordinator, round_id):
        victim["partner"] = coordinator.commitments(1, round_id)[0].partner
        cheating_close(coordinator, round_id, reject=victim["partner"])

    added = extra_round(workdir, close=close)
    result = audit_workdir(workdir, state_path=workdir.parent / clean_audit[1].name)
    report_cid = next(c.cid for c in result.checks if c.name == "scores_and_payouts" and c.round == added["round"])
    assert_fails_only(result, "rejections_recheck", {(3, victim["partner"], report_cid)})
    (failure,) = result.failed
    assert failure.evidence["expected"] == [] and failure.evidence["found"] == ["norm_exceeded"]


def test_report_naming_rules_that_cannot_run_fails_its_report_and_the_audit_goes_on(
    demo_single, clean_audit, fresh_copy, extra_round, cheating_close
):
    """A negative norm bound: the auditor re-ran validation with it and stopped on a traceback. The rules are read
    back as one validated object: the report fails, naming them, and nothing of the round is judged by them."""
    workdir = fresh_copy(demo_single, clean_audit[1])
    extra_round(
        workdir,
        close=lambda coordinator, round_id: cheating_close(coordinator, round_id, report_fields={"max_norm": -1.0}),
    )
    result = audit_workdir(workdir, state_path=workdir.parent / clean_audit[1].name)
    (failure,) = result.failed
    assert (failure.name, failure.round, failure.evidence["artifact"]) == ("cids_resolve", 3, "round report")
    assert "names rules that cannot run: the norm bound must be a finite number >= 0, not -1.0" in failure.message
    assert not [
        c
        for c in result.checks
        if c.round == 3 and c.name in ("rejections_recheck", "aggregate_recomputed", "scores_and_payouts")
    ]
    assert any("rejections_recheck" in item for item in failure.evidence["not_checked"])


def test_partner_committing_another_partners_envelope_fails_manifest_signature(
    demo_single, clean_audit, fresh_copy, extra_round
):
    workdir = fresh_copy(demo_single, clean_audit[1])
    added = extra_round(workdir, free_rider=1)  # partner 2 commits partner 1's envelope as its own
    honest, rider = added["partners"]
    copied = added["envelopes"][honest]
    assert added["envelopes"][rider] == copied

    result = audit_workdir(workdir, state_path=workdir.parent / clean_audit[1].name)
    assert_fails_only(result, "manifest_signature", {(3, rider, copied)})
    (failure,) = result.failed
    assert (failure.evidence["field"], failure.evidence["expected"], failure.evidence["found"]) == (
        "partner",
        rider,
        honest,
    )
    # the honest coordinator rejected it for that very reason, and the report says so
    recheck = next(c for c in result.checks if c.name == "rejections_recheck" and c.partner == rider)
    assert recheck.ok and recheck.evidence["found"] == ["ManifestMismatch"]


def test_round_closed_by_rules_the_parties_did_not_sign_fails_rules_as_signed(
    demo_single, clean_audit, fresh_copy, extra_round, cheating_close
):
    """The coordinator scores round 3 by exact Shapley where the terms document signs leave-one-out (bypassing its
    own refusal): everything re-derives by the rules its report names, but they are not the signed ones."""
    workdir = fresh_copy(demo_single, clean_audit[1])

    def close(coordinator, round_id):
        coordinator.rules = replace(coordinator.rules, scoring="exact_shapley")
        cheating_close(coordinator, round_id)

    extra_round(workdir, close=close)
    result = audit_workdir(workdir, state_path=workdir.parent / clean_audit[1].name)
    report_cid = next(c.cid for c in result.checks if c.name == "scores_and_payouts" and c.round == 3)
    assert_fails_only(result, "rules_as_signed", {(3, None, report_cid)})
    (failure,) = result.failed
    assert failure.message == (
        "the report's round rules are not the signed ones: scoring 'exact_shapley:accuracy' "
        "(signed 'leave_one_out:accuracy')"
    )
    assert failure.evidence["expected"]["scoring"] == "leave_one_out:accuracy"
    assert failure.evidence["found"]["scoring"] == "exact_shapley:accuracy"


def refused_close(coordinator, round_id: int) -> dict:
    """Closes `round_id` expecting a ConfigurationError: its message, the transactions sent, the round's status."""
    sent = coordinator.tx.w3.eth.get_transaction_count(coordinator.address)
    with pytest.raises(ConfigurationError) as refused:
        coordinator.close_round(1, round_id)
    return {
        "message": str(refused.value),
        "sent": coordinator.tx.w3.eth.get_transaction_count(coordinator.address) - sent,
        "status": Round.read(coordinator.deployment.ledger.functions.round(1, round_id)).status,
    }


def _lose_terms_document(workdir: Path, terms_digest: str) -> None:
    """The store loses the document whose digest the signed terms carry (an operator's lost disk, a withheld file)."""
    block_file(workdir, cid_for_digest(bytes.fromhex(terms_digest.removeprefix("0x")))).unlink()


def test_a_signed_terms_document_missing_from_the_store_fails_rules_as_signed_not_the_defaults(
    demo_single, clean_audit, fresh_copy
):
    """The demo ran the default rules and signed them in its terms document. With that document gone the signed
    rules are unknown: the audit fails each finalized round naming the digest, instead of checking the report
    against the defaults (which it would pass)."""
    (signed,) = {c.evidence["terms_digest"] for c in clean_audit[0].checks if c.name == "rules_as_signed"}
    workdir = fresh_copy(demo_single)
    _lose_terms_document(workdir, signed)

    result = audit_workdir(workdir, state_path=workdir.parent / "state.sqlite")
    reports = {c.round: c.cid for c in result.checks if c.name == "scores_and_payouts" and c.partner is None}
    assert_fails_only(result, "rules_as_signed", {(r, None, cid) for r, cid in reports.items()})
    assert sorted(reports) == [1, 2]
    for failure in result.failed:
        assert failure.message == (
            f"the signed terms document {signed} is not in the store: the round rules the parties signed are unknown"
        )
        assert failure.evidence["terms_digest"] == signed and failure.evidence["expected"] is None


def test_coordinator_refuses_to_close_when_the_signed_terms_document_is_missing_and_sends_nothing(
    demo_single, clean_audit, fresh_copy, extra_round
):
    """The coordinator's own rules are the signed ones, but it cannot produce the document the parties signed:
    refused in one line naming the digest (not closed by the defaults), nothing sent."""
    (signed,) = {c.evidence["terms_digest"] for c in clean_audit[0].checks if c.name == "rules_as_signed"}
    workdir = fresh_copy(demo_single)
    seen = {}

    def close(coordinator, round_id):
        _lose_terms_document(workdir, signed)
        seen.update(refused_close(coordinator, round_id))

    extra_round(workdir, close=close)
    assert seen == {
        "message": f"agreement 1 cannot close: the signed terms document {signed} is not in the store: the round "
        "rules the parties signed are unknown",
        "sent": 0,
        "status": RoundStatus.OPEN,
    }


def test_coordinator_given_rules_the_parties_did_not_sign_refuses_to_close_and_sends_nothing(
    demo_single, fresh_copy, extra_round
):
    """A norm bound that would reject the honest updates: refused in one line naming it, no transaction sent."""
    workdir = fresh_copy(demo_single)
    seen = {}

    def close(coordinator, round_id):
        coordinator.rules = RoundRules(max_norm=0.001)
        seen.update(refused_close(coordinator, round_id))

    extra_round(workdir, close=close)
    assert seen == {
        "message": "agreement 1 signed other round rules: max_norm 0.001 (signed 50.0)",
        "sent": 0,
        "status": RoundStatus.OPEN,
    }
