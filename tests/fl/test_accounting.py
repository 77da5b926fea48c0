import math
from fractions import Fraction

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from opacus.accountants import PRVAccountant, RDPAccountant

from lepton_ledger.errors import ConfigurationError, LeptonError
from lepton_ledger.fl.accounting import (
    BudgetExceeded,
    PrivacyAccountant,
    Round,
    epsilon_from_history,
)
from lepton_ledger.fl.data import make_federated
from lepton_ledger.fl.models import build_model
from lepton_ledger.fl.training import train_local
from lepton_ledger.units import cap_to_fixed, epsilon_to_fixed

HISTORY = [Round(1.1, 0.1, 30), Round(0.9, 0.05, 40), Round(1.1, 0.1, 10)]


def _opacus(accountant, history):
    for r in history:
        for _ in range(r.steps):
            accountant.step(noise_multiplier=r.noise_multiplier, sample_rate=r.sample_rate)
    return accountant


def test_rdp_matches_opacus_accountant_stepped_one_step_at_a_time():
    expected = _opacus(RDPAccountant(), HISTORY).get_epsilon(1e-5)
    assert epsilon_from_history(HISTORY, 1e-5, "rdp") == pytest.approx(expected, rel=1e-9)


def test_prv_matches_opacus_prv_accountant():
    expected = _opacus(PRVAccountant(), HISTORY).get_epsilon(1e-5)
    assert epsilon_from_history(HISTORY, 1e-5, "prv") == pytest.approx(expected, rel=1e-3)
    assert epsilon_from_history(HISTORY, 1e-5, "prv") < epsilon_from_history(HISTORY, 1e-5, "rdp")


def test_history_entries_may_be_tuples_or_mappings_and_empty_is_zero():
    as_tuples = [(r.noise_multiplier, r.sample_rate, r.steps) for r in HISTORY]
    as_dicts = [
        {"noise_multiplier": r.noise_multiplier, "sample_rate": r.sample_rate, "steps": r.steps} for r in HISTORY
    ]
    assert (
        epsilon_from_history(as_tuples, 1e-5)
        == epsilon_from_history(as_dicts, 1e-5)
        == epsilon_from_history(HISTORY, 1e-5)
    )
    assert epsilon_from_history([], 1e-5) == 0.0
    with pytest.raises(ConfigurationError):
        epsilon_from_history([(0.0, 0.1, 3)], 1e-5)
    with pytest.raises(ConfigurationError):
        epsilon_from_history(HISTORY, 1e-5, "moments")


def test_composition_across_rounds():
    acct = PrivacyAccountant(partner="0xaa", agreement=1, delta=1e-5, epsilon_cap=100.0)
    acct.record(HISTORY[0])
    one = acct.epsilon()
    acct.record(HISTORY[0])
    two = acct.epsilon()
    assert one < two < 2 * one  # RDP composition is sublinear in epsilon
    assert two == pytest.approx(_opacus(RDPAccountant(), [HISTORY[0], HISTORY[0]]).get_epsilon(1e-5), rel=1e-9)


def test_linked_training_records_rounds_like_opacus():
    split = make_federated("wine", num_partners=2, seed=0)
    model = build_model("logreg", split.input_dim, split.num_classes, seed=0)
    acct = PrivacyAccountant(partner="0xaa", agreement="7", delta=1e-5, epsilon_cap=50.0)
    results = [
        train_local(
            model=model, data=split.partners[0], noise_multiplier=nm, batch_size=16, privacy_accountant=acct, seed=i
        )
        for i, nm in enumerate((1.0, 1.5))
    ]
    assert [r.as_round() for r in (res.dp for res in results)] == acct.history
    expected = _opacus(RDPAccountant(), acct.history).get_epsilon(1e-5)
    assert acct.epsilon() == pytest.approx(expected, rel=1e-9)
    assert results[0].epsilon < acct.epsilon()


def test_budget_check_refuses_before_training(monkeypatch):
    split = make_federated("wine", num_partners=2, seed=0)
    model = build_model("mlp", split.input_dim, split.num_classes, seed=0)
    acct = PrivacyAccountant(partner="0xaa", agreement="7", delta=1e-5, epsilon_cap=8.0)
    kw = {
        "model": model,
        "data": split.partners[0],
        "noise_multiplier": 1.0,
        "batch_size": 16,
        "privacy_accountant": acct,
    }
    train_local(**kw)
    spent, state = acct.spent_fixed(), acct.state_dict()
    before = {k: v.clone() for k, v in model.state_dict().items()}

    import opacus

    def must_not_run(*args, **kwargs):
        raise AssertionError("training started although the budget check should refuse")

    monkeypatch.setattr(opacus.PrivacyEngine, "make_private", must_not_run)
    with pytest.raises(BudgetExceeded) as info:
        train_local(**kw, epochs=10)
    err = info.value
    assert isinstance(err, LeptonError) and isinstance(err, ValueError)
    assert (err.partner, err.agreement, err.spent, err.cap) == ("0xaa", "7", spent, 8_000_000)
    assert err.would_spend > err.cap
    assert "0xaa" in str(err) and "8.000000" in str(err)
    assert acct.state_dict() == state
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_cap_boundary_is_exact_in_fixed_point():
    round_ = Round(1.0, 0.1, 50)
    after = epsilon_to_fixed(epsilon_from_history([round_], 1e-5))
    assert (
        PrivacyAccountant(partner="p", agreement=1, delta=1e-5, epsilon_cap_fixed=after).check_budget(round_) == after
    )
    tight = PrivacyAccountant(partner="p", agreement=1, delta=1e-5, epsilon_cap_fixed=after - 1)
    with pytest.raises(BudgetExceeded):
        tight.record(round_)
    assert tight.history == []


def test_json_round_trip_keeps_history_and_terms():
    acct = PrivacyAccountant(partner="0xaa", agreement=3, delta=1e-6, epsilon_cap=8.0, kind="prv")
    for r in HISTORY:
        acct.record(r)
    again = PrivacyAccountant.from_json(acct.to_json())
    assert again.state_dict() == acct.state_dict() and again.kind.value == "prv"
    assert again.epsilon() == acct.epsilon()
    other = PrivacyAccountant(partner="0xbb", agreement=3, delta=1e-6, epsilon_cap=8.0, kind="prv")
    with pytest.raises(ConfigurationError, match="partner"):
        other.load_state_dict(acct.state_dict())
    with pytest.raises(ConfigurationError):
        PrivacyAccountant.from_json("{not json")


def test_accountant_refuses_bad_terms():
    with pytest.raises(ConfigurationError, match="exactly one"):
        PrivacyAccountant(partner="p", agreement=1, delta=1e-5)
    with pytest.raises(ConfigurationError):
        PrivacyAccountant(partner="p", agreement=1, delta=1e-5, epsilon_cap=5000.0)  # over uint32 fixed point
    with pytest.raises(ConfigurationError):
        PrivacyAccountant(partner="p", agreement=1, delta=0.0, epsilon_cap=1.0)


def test_fixed_point_rounds_spend_up_and_caps_down():
    assert epsilon_to_fixed(1.0) == 1_000_000 and epsilon_to_fixed(0.0) == 0
    assert epsilon_to_fixed(1.0000001) == 1_000_001
    assert epsilon_to_fixed(0.1) == 100_001  # the float 0.1 is slightly above 1/10
    assert cap_to_fixed(0.1) == 100_000 and cap_to_fixed(8.0) == 8_000_000
    with pytest.raises(ConfigurationError):
        epsilon_to_fixed(math.inf)


@given(st.floats(min_value=0, max_value=4000, allow_nan=False))
def test_fixed_point_never_understates(eps):
    fixed = epsilon_to_fixed(eps)
    assert Fraction(fixed, 10**6) >= Fraction(eps) > Fraction(fixed - 1, 10**6)  # smallest value not below
