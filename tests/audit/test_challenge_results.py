"""The coordinator's results, challenged: a real round (conftest.add_round: real DP training, the library's
Coordinator) finalized with a payout root that gives the whole reward to one partner, whatever the signed rule
says. The audit fails ``scores_and_payouts``; ``challenge raise --from-audit`` takes it to the results court; the
arbiter upholds; the round's payouts are revoked (no partner can claim them) and the coordinator's bond goes to
the parties, half each.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path

import pytest
from test_challenge import _arbiter, _bind, _chain, _cli, _parties
from web3.exceptions import ContractCustomError

from lepton_ledger.audit import audit_workdir
from lepton_ledger.chain.anvil import advance_time
from lepton_ledger.chain.merkle import PayoutTree
from lepton_ledger.chain.state import Allocation, ResultsChallenge, Round
from lepton_ledger.chain.transactions import decode_revert
from lepton_ledger.challenges.challenge import canonical_json
from lepton_ledger.rounds.demo import COORDINATOR_BOND
from lepton_ledger.rounds.report import content_digest
from lepton_ledger.units import ResultsKind


@pytest.fixture(scope="module")
def cheated(demo_single, extra_round, tmp_path_factory) -> tuple[Path, dict, str, dict]:
    """A copy of the audit tests' demo plus round 3, closed by a coordinator that pays the whole reward to the
    first partner who committed; and the audit of it (JSON), made in time (inside the dispute window)."""
    workdir = tmp_path_factory.mktemp("results") / "demo"
    shutil.copytree(demo_single, workdir)
    favoured: dict[str, str] = {}

    def close(coordinator, round_id):
        first = coordinator.commitments(1, round_id)[0].partner
        favoured["partner"] = first
        honest = coordinator.compute_outcome

        def all_to_first(agreement_id, round_id):
            aggregate, report, _ = honest(agreement_id, round_id)
            for line in report.partners:
                line.payout = report.reward if line.partner == first else 0
            return aggregate, report, PayoutTree(agreement_id, round_id, {first: report.reward})

        coordinator.compute_outcome = all_to_first
        coordinator.close_round(1, round_id)

    added = extra_round(workdir, close=close)
    state = tmp_path_factory.mktemp("results-state") / "state.sqlite"
    return workdir, added, favoured["partner"], audit_workdir(workdir, state_path=state).to_dict()


def assert_upheld_through_the_cli(raised, ruled, shares, shown, kind: str, r: int, checks: list, coordinator: str):
    """`challenge raise --from-audit` raised challenge 1 of `kind` on round `r` with the failed `checks` as
    evidence; the arbiter upheld it, slashing `coordinator`'s bond; both partners took their shares."""
    assert raised.exit_code == 0, raised.output
    (challenge,) = json.loads(raised.output)["challenges"]
    assert (challenge["challenge_id"], challenge["kind"], challenge["round"]) == (1, kind, r)
    evidence = {
        "kind": "lepton-ledger/results-evidence",
        "version": 1,
        "agreement_id": 1,
        "round": r,
        "results_kind": kind,
        "checks": checks,
    }
    assert challenge["evidence_digest"] == "0x" + content_digest(canonical_json(evidence)).hex()
    assert ruled.exit_code == 0, ruled.output
    ruling = json.loads(ruled.output)
    assert ruling["upheld"] and ruling["coordinator"] == coordinator and int(ruling["amount"]) == COORDINATOR_BOND
    assert all(s.exit_code == 0 for s in shares), [s.output for s in shares]
    assert f"results challenge 1: Upheld, {kind} of round {r} of agreement 1" in shown.output, shown.output


def test_wrong_payout_root_is_challenged_upheld_refused_to_claims_and_paid_to_the_parties(cheated, tmp_path):
    source, added, favoured, result = cheated
    workdir = tmp_path / "demo"
    shutil.copytree(source, workdir)
    r = added["round"]
    failed = {(c["name"], c["round"], c["partner"]) for c in result["checks"] if not c["ok"]}
    assert failed == {("scores_and_payouts", r, None), *(("scores_and_payouts", r, p) for p in added["partners"])}
    audit = tmp_path / "audit.json"
    audit.write_text(json.dumps(result))
    parties = _parties(workdir)
    window = int(json.loads((workdir / "deployment.json").read_text())["dispute_window"])
    with _chain(workdir) as w3:
        d, token = _bind(w3, workdir)
        coordinator = parties["coordinator"]["address"]
        before = {p: token.functions.balanceOf(p).call() for p in added["partners"]}
        assert d.court.functions.bondOf(1, coordinator).call() == COORDINATOR_BOND

    raised = _cli("raise", "--from-audit", audit, "--workdir", workdir, "--json")
    again = _cli("raise", "--from-audit", audit, "--workdir", workdir)
    not_arbiter = _arbiter("rule", 1, "--results", "--uphold", "--reason", "x", "--workdir", workdir, "--as", "auditor")
    ruled = _arbiter(
        "rule",
        1,
        "--results",
        "--uphold",
        "--reason",
        "the payout root does not follow the signed rule",
        "--workdir",
        workdir,
        "--json",
    )
    shares = [_cli("claim-bond", 1, "--workdir", workdir, "--as", name) for name in ("partner1", "partner2")]
    shown = _cli("show", "--results", "--workdir", workdir)

    failed_checks = [c for c in result["checks"] if not c["ok"]]
    assert_upheld_through_the_cli(raised, ruled, shares, shown, "payouts", r, failed_checks, coordinator)
    assert again.exit_code == 1 and "already under results challenge 1" in again.output, again.output
    assert not_arbiter.exit_code == 1 and "is not the arbiter of agreement 1" in not_arbiter.output

    with _chain(workdir) as w3:
        d, token = _bind(w3, workdir)
        advance_time(w3, window + 1)
        reward = Round.read(d.ledger.functions.round(1, r)).payout_total
        tree = PayoutTree(1, r, {favoured: reward})
        with pytest.raises(ContractCustomError) as refused:
            d.vault.functions.claim(1, r, reward, tree.proof(favoured)).call({"from": favoured})
        assert decode_revert(refused.value.data).error == "RewardVaultAllocationRevoked"
        assert Allocation.read(d.vault.functions.allocation(1, r)).revoked, "the allocation is revoked"
        assert d.court.functions.bondOf(1, coordinator).call() == 0
        for p in added["partners"]:
            assert token.functions.balanceOf(p).call() - before[p] == COORDINATOR_BOND // 2
        assert token.functions.balanceOf(d.court.address).call() == 0

    after = audit_workdir(workdir, state_path=tmp_path / "after.sqlite").to_dict()
    (bonds,) = [c for c in after["checks"] if c["name"] == "bonds_conserve"]
    assert bonds["ok"], bonds
    assert bonds["evidence"]["books"] == {
        "posted": str(COORDINATOR_BOND),
        "withdrawn": "0",
        "slashed": str(COORDINATOR_BOND),
        "sharesPaid": str(COORDINATOR_BOND),
    }


def test_round_closed_by_unsigned_rules_is_challenged_from_audit_upheld_and_paid_to_the_parties(
    demo_single, extra_round, cheating_close, tmp_path
):
    """The coordinator scores round 3 by exact Shapley where the parties signed leave-one-out (bypassing its own
    refusal). The audit fails ``rules_as_signed`` alone; ``challenge raise --from-audit`` takes its evidence (terms
    digest, expected and found rules) to the court as kind ``rules``; the arbiter upholds; payouts and bond move
    as for the other kinds."""
    workdir = tmp_path / "demo"
    shutil.copytree(demo_single, workdir)

    def close(coordinator, round_id):
        coordinator.rules = replace(coordinator.rules, scoring="exact_shapley")
        cheating_close(coordinator, round_id)

    added = extra_round(workdir, close=close)
    r = added["round"]
    result = audit_workdir(workdir, state_path=tmp_path / "state.sqlite").to_dict()
    (failed,) = [c for c in result["checks"] if not c["ok"]]
    assert (failed["name"], failed["round"], failed["partner"]) == ("rules_as_signed", r, None)
    assert failed["evidence"]["expected"]["scoring"] == "leave_one_out:accuracy"
    assert failed["evidence"]["found"]["scoring"] == "exact_shapley:accuracy"
    audit = tmp_path / "audit.json"
    audit.write_text(json.dumps(result))
    coordinator = _parties(workdir)["coordinator"]["address"]
    with _chain(workdir) as w3:
        d, token = _bind(w3, workdir)
        before = {p: token.functions.balanceOf(p).call() for p in added["partners"]}

    raised = _cli("raise", "--from-audit", audit, "--workdir", workdir, "--json")
    ruled = _arbiter(
        "rule", 1, "--results", "--uphold", "--reason", "scored by rules nobody signed", "--workdir", workdir, "--json"
    )
    shares = [_cli("claim-bond", 1, "--workdir", workdir, "--as", name) for name in ("partner1", "partner2")]
    shown = _cli("show", "--results", "--workdir", workdir)

    assert_upheld_through_the_cli(raised, ruled, shares, shown, "rules", r, [failed], coordinator)

    with _chain(workdir) as w3:
        d, token = _bind(w3, workdir)
        assert ResultsChallenge.read(d.court.functions.challengeOf(1)).kind is ResultsKind.RULES
        assert Allocation.read(d.vault.functions.allocation(1, r)).revoked, "the allocation is revoked"
        assert d.court.functions.bondOf(1, coordinator).call() == 0
        for p in added["partners"]:
            assert token.functions.balanceOf(p).call() - before[p] == COORDINATOR_BOND // 2

    after = audit_workdir(workdir, state_path=tmp_path / "after.sqlite").to_dict()
    (bonds,) = [c for c in after["checks"] if c["name"] == "bonds_conserve"]
    assert bonds["ok"] and bonds["evidence"]["books"]["slashed"] == str(COORDINATOR_BOND), bonds
