"""One federated round end to end on anvil and a LocalStore (docs/architecture.md, "One round, end to end", steps 1-6):
the coordinator publishes and opens, partners train in worker processes, seal, put and commit, the
coordinator opens, validates, aggregates, scores, pays and finalizes, partners claim. Plus: a partner whose
budget is spent is refused before it trains; a poisoned update is rejected with its reason in the report."""

from __future__ import annotations

import dataclasses
import json

import pytest
from agreement_setup import (
    DISPUTE_WINDOW,
    NAMES,
    audit,
    make_coordinator,
    make_partner,
    new_agreement,
    open_round,
    recipients,
)

from lepton_ledger import fl
from lepton_ledger.chain.anvil import advance_time
from lepton_ledger.chain.state import Round
from lepton_ledger.errors import ConfigurationError, ContractReverted
from lepton_ledger.fl.accounting import BudgetExceeded
from lepton_ledger.rounds.partner import Partner
from lepton_ledger.rounds.report import fetch_by_digest
from lepton_ledger.rounds.rules import RoundRules
from lepton_ledger.units import TOKEN


class Poisoned(Partner):
    """Scales its honest update by 1000 before sealing it."""

    def train(self, model_bytes, **kwargs):
        result = super().train(model_bytes, **kwargs)
        return dataclasses.replace(result, delta={k: v * 1000 for k, v in result.delta.items()})


class NaNPoisoned(Partner):
    """Puts a NaN in its update before sealing it."""

    def train(self, model_bytes, **kwargs):
        result = super().train(model_bytes, **kwargs)
        delta = {k: v.clone() for k, v in result.delta.items()}
        next(iter(delta.values())).view(-1)[0] = float("nan")
        return dataclasses.replace(result, delta=delta)


def test_one_round_end_to_end(world, executor):
    d, token, store = world["d"], world["token"], world["store"]
    agreement_id = new_agreement(world)
    coordinator = make_coordinator(world, "e2e")
    round_id, model_cid = open_round(world, coordinator, agreement_id)
    partners = [make_partner(world, n, agreement_id, executor) for n in NAMES]
    submissions = {p.address: p.run_round(agreement_id, round_id, recipients(world)) for p in partners}
    # What the partners fetched and trained on is the CID the coordinator published, named by its digest.
    record = Round.read(d.ledger.functions.round(agreement_id, round_id))
    assert fetch_by_digest(store, record.model_digest) == store.get(model_cid)

    outcome = coordinator.close_round(agreement_id, round_id)
    report = outcome.report
    assert report.accepted == [p.address for p in partners] and not report.rejected
    assert sum(report.payouts.values()) == 300 * TOKEN
    record = Round.read(d.ledger.functions.round(agreement_id, round_id))  # finalized now
    assert record.aggregate_digest == outcome.aggregate_digest

    stored = json.loads(fetch_by_digest(store, record.report_digest))
    assert stored["aggregate_cid"] == outcome.aggregate_cid and stored["base_model_digest"].startswith("0x")
    for line in stored["partners"]:
        assert line["accepted"] and line["score"] is not None and int(line["payout"]) == report.payouts[line["partner"]]
        assert (
            line["dp"]["noise_multiplier"] == 1.0 and line["envelope_cid"] == submissions[line["partner"]].envelope_cid
        )

    advance_time(world["w3"], 3600 + DISPUTE_WINDOW + 1)
    for p in partners:
        before = token.functions.balanceOf(p.address).call()
        amount = report.payouts[p.address]
        p.claim(agreement_id, round_id, amount, outcome.tree.proof(p.address))
        assert token.functions.balanceOf(p.address).call() - before == amount
        assert d.ledger.functions.cumulativeEpsilon(agreement_id, p.address).call() == p.accountant.spent_fixed() > 0


class Spy:
    """An executor that records what it was asked to run and runs nothing."""

    def __init__(self):
        self.calls = []

    def submit(self, fn, *args, **kwargs):
        self.calls.append(fn)
        raise AssertionError("a partner over its budget must not train")


def test_partner_over_budget_is_refused_before_training(world):
    agreement_id = new_agreement(world)
    coordinator = make_coordinator(world, "budget")
    round_id, _ = open_round(world, coordinator, agreement_id)
    spy = Spy()
    partner = make_partner(world, "gamma", agreement_id, spy, cap=0.05)
    with pytest.raises(BudgetExceeded):
        partner.run_round(agreement_id, round_id, recipients(world))
    assert spy.calls == [] and partner.accountant.history == []
    assert not world["d"].ledger.functions.hasSubmitted(agreement_id, round_id, partner.address).call()


def test_poisoned_update_is_rejected_with_its_reason_in_the_report(world, executor):
    d, store = world["d"], world["store"]
    agreement_id = new_agreement(world)
    coordinator = make_coordinator(world, "poison")
    round_id, _ = open_round(world, coordinator, agreement_id)
    honest = make_partner(world, "alpha", agreement_id, executor)
    nan = make_partner(world, "beta", agreement_id, executor, cls=NaNPoisoned)
    poisoned = make_partner(world, "gamma", agreement_id, executor, cls=Poisoned)
    for p in (honest, nan, poisoned):
        p.run_round(agreement_id, round_id, recipients(world))

    outcome = coordinator.close_round(agreement_id, round_id)
    assert outcome.report.accepted == [honest.address]
    (reason,) = outcome.report.rejected[poisoned.address]
    assert reason["code"] == "norm_exceeded"
    assert "non_finite" in {r["code"] for r in outcome.report.rejected[nan.address]}
    record = Round.read(d.ledger.functions.round(agreement_id, round_id))
    stored = json.loads(fetch_by_digest(store, record.report_digest))
    line = next(x for x in stored["partners"] if x["partner"] == poisoned.address)
    assert not line["accepted"] and line["reasons"][0]["code"] == "norm_exceeded" and line["payout"] == "0"
    assert outcome.report.payouts == {honest.address: 300 * TOKEN}


def test_one_round_batched_mode(world, executor):
    d, token = world["d"], world["token"]
    agreement_id = new_agreement(world)
    coordinator = make_coordinator(world, "batched")
    round_id, _ = open_round(world, coordinator, agreement_id)
    partners = [make_partner(world, n, agreement_id, executor) for n in reversed(NAMES)]
    signed = [p.run_round_batched(agreement_id, round_id, recipients(world)) for p in partners]
    coordinator.anchor_batch(agreement_id, round_id, signed)
    for p in partners:
        assert d.ledger.functions.hasSubmitted(agreement_id, round_id, p.address).call()

    outcome = coordinator.close_round(agreement_id, round_id)
    assert sorted(outcome.report.accepted) == sorted(p.address for p in partners)
    assert sum(outcome.report.payouts.values()) == 300 * TOKEN
    advance_time(world["w3"], 3600 + DISPUTE_WINDOW + 1)
    for p in partners:
        before = token.functions.balanceOf(p.address).call()
        amount = outcome.report.payouts[p.address]
        p.claim(agreement_id, round_id, amount, outcome.tree.proof(p.address))
        assert token.functions.balanceOf(p.address).call() - before == amount
        assert d.ledger.functions.cumulativeEpsilon(agreement_id, p.address).call() == p.accountant.spent_fixed()


@pytest.mark.parametrize(
    ("sealed_to", "code"),
    [
        ("auditor", "NotARecipient"),  # the coordinator cannot open it
        ("coordinator", "AuditorNotARecipient"),  # the auditor could not verify it (issue 11, item 4)
    ],
)
def test_envelope_not_sealed_to_coordinator_and_auditor_is_rejected_with_the_error_name(
    world, executor, sealed_to, code
):
    agreement_id = new_agreement(world)
    coordinator = make_coordinator(world, f"unreadable-{sealed_to}")
    round_id, _ = open_round(world, coordinator, agreement_id)
    partners = [make_partner(world, n, agreement_id, executor) for n in NAMES]
    for p in partners[:2]:
        p.run_round(agreement_id, round_id, recipients(world))
    partners[2].run_round(agreement_id, round_id, [getattr(world["roles"], sealed_to).address])

    outcome = coordinator.close_round(agreement_id, round_id)
    assert outcome.report.accepted == [p.address for p in partners[:2]]
    (reason,) = outcome.report.rejected[partners[2].address]
    assert reason["code"] == code
    assert partners[2].address not in outcome.report.payouts


def test_coordinator_pays_by_the_agreements_rule_and_refuses_another(world, executor):
    agreement_id = new_agreement(world)
    coordinator = make_coordinator(world, "coordinator-rule")
    assert coordinator.agreement_payout_rule(agreement_id) == fl.PayoutRule.BY_SAMPLE_COUNT
    coordinator.payout_rule = fl.PayoutRule.EQUAL
    with pytest.raises(ConfigurationError, match="pays by by_sample_count, not by equal"):
        coordinator.agreement_payout_rule(agreement_id)


def test_round_rules_refuse_an_unknown_rule_or_scoring_method(world):
    with pytest.raises(ConfigurationError, match="unknown aggregation rule 'mean'"):
        make_coordinator(world, "bad-rule", rules=RoundRules(aggregation="mean"))
    with pytest.raises(ConfigurationError, match="unknown scoring method 'banzhaf'"):
        make_coordinator(world, "bad-scoring", rules=RoundRules(scoring="banzhaf"))


def test_signed_rules_go_into_the_report_and_the_auditor_re_derives_by_them(world, executor, tmp_path):
    """The rules the terms document signs are the coordinator's RoundRules: the report carries them as run (seeded
    for the round) and the auditor, reading them back, finds them signed and re-runs the same functions."""
    rules = RoundRules(
        aggregation="trimmed_mean",
        aggregation_params={"trim": 0.2},
        scoring="tmc_shapley",
        scoring_params={"permutations": 6},
        max_norm=50.0,
    )
    agreement_id = new_agreement(world, rules)
    coordinator = make_coordinator(world, "coordinator-rules", rules=rules)
    round_id, _ = open_round(world, coordinator, agreement_id)
    for p in [make_partner(world, n, agreement_id, executor) for n in NAMES]:
        p.run_round(agreement_id, round_id, recipients(world))
    report = coordinator.close_round(agreement_id, round_id).report
    assert report.rules == rules.for_round(round_id) and report.rules.scoring_params["seed"] == round_id

    result = audit(world, tmp_path / "audit.sqlite")
    mine = [c for c in result.checks if (c.agreement_id, c.round) == (agreement_id, round_id)]
    names = {c.name for c in mine}
    assert {"rules_as_signed", "rejections_recheck", "aggregate_recomputed", "scores_and_payouts"} <= names
    assert all(c.ok for c in mine), [c.to_dict() for c in mine if not c.ok]


def test_a_commitment_the_ledger_refuses_still_counts_its_epsilon(world, executor):
    """The envelope was put where its recipients can read it: its privacy is spent even though the chain refused
    the commitment (the round's deadline had passed), so the partner's own accountant counts it."""
    agreement_id = new_agreement(world)
    coordinator = make_coordinator(world, "coordinator-late")
    round_id, _ = open_round(world, coordinator, agreement_id)
    partner = make_partner(world, "alpha", agreement_id, executor)
    advance_time(world["w3"], 3601)
    with pytest.raises(ContractReverted):
        partner.run_round(agreement_id, round_id, recipients(world))
    ledger = world["d"].ledger.functions
    assert ledger.cumulativeEpsilon(agreement_id, partner.address).call() == 0
    assert len(partner.accountant.history) == 1 and partner.accountant.spent_fixed() > 0
    spent = partner.accountant.spent_fixed()
    assert partner.reconcile(agreement_id) == spent and len(partner.accountant.history) == 1  # counted once


def test_partners_train_in_ray_tasks_when_ray_is_configured(world, monkeypatch):
    """$LEPTON_RAY_ADDRESS selects Ray for partners' training ("local" starts a cluster here; a real deployment
    names its head node): the same round, every update trained in a Ray task, accepted and paid."""
    from lepton_ledger.workers import RayExecutor, open_executor

    monkeypatch.setenv("LEPTON_RAY_ADDRESS", "local")
    agreement_id = new_agreement(world)
    coordinator = make_coordinator(world, "coordinator-ray")
    round_id, _ = open_round(world, coordinator, agreement_id)
    with open_executor() as executor:
        assert isinstance(executor, RayExecutor)
        for name in NAMES:
            make_partner(world, name, agreement_id, executor).run_round(agreement_id, round_id, recipients(world))
    outcome = coordinator.close_round(agreement_id, round_id)
    assert sorted(outcome.report.accepted) == sorted(a.address for a in world["accounts"].values())
    assert sum(outcome.report.payouts.values()) == 300 * TOKEN
