"""The round's rules as one validated object carried by the report, and the round's outcome as one pure function
(rounds/rules.py, rounds/outcome.py): what the coordinator publishes re-derives from the report alone."""

from __future__ import annotations

import json
import math

import pytest
import torch

from lepton_ledger import fl
from lepton_ledger.errors import ConfigurationError
from lepton_ledger.fl.payouts import PayoutRule
from lepton_ledger.protocol.errors import MalformedDocument
from lepton_ledger.rounds.outcome import (
    Evaluation,
    NoAcceptedUpdates,
    combine,
    judge,
    round_outcome,
    settle,
)
from lepton_ledger.rounds.report import RoundReport
from lepton_ledger.rounds.rules import RoundRules

REWARD = 300 * 10**18

# A round report as the coordinator wrote it before the rules were one object (made by that code; canonical JSON).
OLD_REPORT = (
    b'{"aggregate_cid":null,"aggregate_digest":null,"aggregation_params":{"trim":0.2},"aggregation_rule":"trimmed_mean",'
    b'"agreement_id":1,"base_model_digest":"0x'
    + b"11" * 32
    + b'","chain_id":31337,"eval_commitment":"0x'
    + b"22" * 32
    + b'","ledger":"0x'
    + b"33" * 20
    + b'","max_norm":50.0,"metrics":{"accuracy_after":0.5,"accuracy_before":0.1},'
    b'"partners":[{"accepted":true,"cumulative_epsilon":1.5,"cumulative_epsilon_fixed":1500000,"dp":null,'
    b'"envelope_cid":"Qm'
    + b"a" * 44
    + b'","manifest_digest":"0x'
    + b"55" * 32
    + b'","partner":"0x'
    + b"44" * 20
    + b'","payout":"300","reasons":[],"sample_count":120,"score":0.25}],"payout_rule":"proportional","reward":"300",'
    b'"round":2,"scoring":"tmc_shapley:accuracy","scoring_params":{"seed":2},"version":1}'
)


@pytest.fixture(scope="module")
def round_inputs():
    """A base model, three partners' updates of different sizes (one of them over the norm bound) and the
    evaluation set: everything a round's outcome depends on."""
    split = fl.make_federated("digits", num_partners=3, seed=0)
    base = fl.build_model("logreg", split.input_dim, split.num_classes, seed=0).state_dict()
    generator = torch.Generator().manual_seed(0)
    updates = {}
    for i, (partner, scale) in enumerate((("0xa", 0.5), ("0xb", 1.0), ("0xc", 1000.0))):
        delta = {k: torch.randn(v.shape, generator=generator) * scale for k, v in base.items()}
        updates[partner] = (delta, 100 * (i + 1))
    return base, updates, Evaluation(split.eval_set, "logreg")


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"aggregation": "mean"}, "unknown aggregation rule 'mean'"),
        ({"scoring": "banzhaf"}, "unknown scoring method 'banzhaf'"),
        ({"metric": "loss"}, "scores are computed on accuracy, not 'loss'"),
        ({"max_norm": -1.0}, "the norm bound must be a finite number >= 0, not -1.0"),
        ({"max_norm": math.nan}, "the norm bound must be a finite number >= 0, not nan"),
        ({"max_norm": True}, "the norm bound must be a finite number >= 0, not True"),
        ({"aggregation_params": [("trim", 0.2)]}, "aggregation_params must map parameter names to values"),
    ],
)
def test_round_rules_refuse_what_cannot_run_in_one_line(options, message):
    with pytest.raises(ConfigurationError, match=message) as caught:
        RoundRules(**options)
    assert "\n" not in str(caught.value)


def test_round_rules_go_through_the_report_and_come_back_equal_seeded_for_their_round():
    rules = RoundRules(aggregation="trimmed_mean", aggregation_params={"trim": 0.2}, scoring="tmc_shapley")
    assert rules.for_round(7).scoring_params == {"seed": 7} and rules.scoring_params == {}
    assert rules.for_round(7).for_round(8) == rules.for_round(7)  # a seed once set is the round's
    fields = rules.for_round(7).report_fields()
    assert fields["scoring"] == "tmc_shapley:accuracy" and fields["aggregation_rule"] == "trimmed_mean"
    assert RoundRules.from_report(json.loads(json.dumps(fields))) == rules.for_round(7)
    with pytest.raises(ConfigurationError, match="the round report names no max_norm"):
        RoundRules.from_report({k: v for k, v in fields.items() if k != "max_norm"})


def test_a_report_written_before_the_rules_were_one_object_reads_back_and_rewrites_bit_identically():
    report = RoundReport.from_bytes(OLD_REPORT)
    assert report.rules == RoundRules(
        aggregation="trimmed_mean",
        aggregation_params={"trim": 0.2},
        scoring="tmc_shapley",
        scoring_params={"seed": 2},
        max_norm=50.0,
    )
    assert report.to_bytes() == OLD_REPORT


def test_a_report_naming_rules_that_cannot_run_is_malformed():
    with pytest.raises(MalformedDocument, match="unknown aggregation rule 'mean'"):
        RoundReport.from_bytes(OLD_REPORT.replace(b'"trimmed_mean"', b'"mean"'))


def test_the_auditors_pieces_give_the_coordinators_outcome_by_the_rules_read_back_from_the_report(round_inputs):
    base, updates, evaluation = round_inputs
    rules = RoundRules(aggregation="median", scoring="tmc_shapley", scoring_params={"permutations": 6}, max_norm=50.0)
    outcome = round_outcome(
        base,
        updates,
        evaluation,
        rules,
        round_id=3,
        reward=REWARD,
        payout_rule=PayoutRule.BY_SAMPLE_COUNT,
        refused={"0xd": [{"code": "ArtifactNotFound"}]},
    )
    assert list(outcome.accepted) == ["0xa", "0xb"]
    assert [r["code"] for r in outcome.rejected["0xc"]] == ["norm_exceeded"] and "0xd" in outcome.rejected
    assert outcome.rules == rules.for_round(3) and sum(outcome.settlement.payouts.values()) == REWARD

    read_back = RoundRules.from_report(json.loads(json.dumps(outcome.rules.report_fields())))
    accepted, rejected = judge({p: updates[p] for p in ("0xa", "0xb", "0xc")}, base, read_back)
    assert accepted == outcome.accepted and rejected == {"0xc": outcome.rejected["0xc"]}
    aggregate = combine(base, accepted, read_back)
    settled = settle(base, accepted, evaluation, read_back, reward=REWARD, payout_rule=PayoutRule.BY_SAMPLE_COUNT)
    for k in base:
        assert torch.equal(aggregate[k], outcome.settlement.aggregate[k])
        assert torch.equal(settled.aggregate[k], outcome.settlement.aggregate[k])
    assert (settled.scores, settled.payouts) == (outcome.settlement.scores, outcome.settlement.payouts)

    # Rules changed in one place change the outcome (the aggregate of FedAvg is not the median's).
    fedavg = round_outcome(
        base,
        updates,
        evaluation,
        RoundRules(max_norm=50.0),
        round_id=3,
        reward=REWARD,
        payout_rule=PayoutRule.PROPORTIONAL,
    )
    assert any(not torch.equal(fedavg.settlement.aggregate[k], aggregate[k]) for k in base)


def test_no_accepted_update_leaves_nothing_to_settle(round_inputs):
    base, updates, evaluation = round_inputs
    with pytest.raises(NoAcceptedUpdates):
        round_outcome(
            base,
            {"0xc": updates["0xc"]},
            evaluation,
            RoundRules(max_norm=50.0),
            round_id=1,
            reward=REWARD,
            payout_rule=PayoutRule.EQUAL,
        )


def test_the_signed_rules_are_the_terms_documents_else_the_defaults_with_its_norm_bound():
    """A terms document names the round rules in the report's fields; one without them signs fedavg and
    leave-one-out with its max_norm; a rule named without parameters gets its defaults for the party count."""
    named = RoundRules(aggregation="krum", scoring="tmc_shapley", max_norm=7.0)
    assert RoundRules.from_terms({"rules": named.report_fields()}, 5) == RoundRules(
        aggregation="krum", aggregation_params={"f": 1}, scoring="tmc_shapley", max_norm=7.0
    )
    assert RoundRules.from_terms({"model": "logreg", "max_norm": 9.0}, 2) == RoundRules(max_norm=9.0)
    assert RoundRules.from_terms(None, 2) == RoundRules()
    assert RoundRules(max_norm=1.0, scoring="exact_shapley").differences(RoundRules()) == [
        "scoring 'exact_shapley:accuracy' (signed 'leave_one_out:accuracy')",
        "max_norm 1.0 (signed 50.0)",
    ]
    with pytest.raises(ConfigurationError, match="^the terms document's rules must be an object, not 'fedavg'$"):
        RoundRules.from_terms({"rules": "fedavg"}, 2)
    with pytest.raises(ConfigurationError, match="^the terms document's rules object names no scoring$"):
        RoundRules.from_terms({"rules": {"aggregation_rule": "fedavg"}}, 2)


@pytest.mark.parametrize(
    ("aggregation", "params", "parties", "why"),
    [
        ("krum", {"f": 100}, 5, "Krum with f=100 needs at least 203 updates"),
        ("multi_krum", {"f": 1, "m": 9}, 5, "m (updates kept by Multi-Krum) must be an integer in [1, 5]"),
        ("trimmed_mean", {"trim": 0.5}, 4, "trim must be a fraction in [0, 0.5)"),
        ("fedavg", {"f": 1}, 4, "bad parameters ['f'] for rule 'fedavg'"),
    ],
)
def test_signed_rules_that_could_never_run_for_the_parties_are_refused(aggregation, params, parties, why):
    """Terms whose rounds could never close (Krum tolerating more faulty updates than the parties allow) are
    refused when read, so that no coordinator proposes them and no party signs them."""
    rules = {**RoundRules(aggregation=aggregation).report_fields(), "aggregation_params": params}
    with pytest.raises(ConfigurationError, match=f"^the {aggregation} rule cannot run for {parties} parties: ") as e:
        RoundRules.from_terms({"rules": rules}, parties)
    assert why in str(e.value)
    with pytest.raises(ConfigurationError, match="^krum needs at least 3 partners"):
        RoundRules.from_terms({"rules": RoundRules(aggregation="krum").report_fields()}, 2)


def test_evaluating_leaves_the_process_torch_threads_alone_even_while_it_runs(round_inputs):
    """The service closes rounds in a thread beside its request handlers: an evaluation must not change the
    process's torch thread count (set once where a process starts: workers.use_evaluation_threads)."""
    base, _, evaluation = round_inputs
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    seen = []
    hook = evaluation._model.register_forward_pre_hook(lambda module, args: seen.append(torch.get_num_threads()))
    try:
        evaluation.accuracy(base)
        after = torch.get_num_threads()
    finally:
        hook.remove()
        torch.set_num_threads(before)
    assert seen and set(seen) == {2} and after == 2
