"""A whole round from Python in a handful of calls: split, train with DP under a budget, validate, aggregate,
score on the committed evaluation set, pay out exactly."""

import copy

import pytest
import torch

from lepton_ledger import fl
from lepton_ledger.fl.training import apply_delta_to_model as apply_to_model


def test_a_round_in_a_handful_of_calls():
    split = fl.make_federated("digits", num_partners=3, seed=0)
    model = fl.build_model("logreg", split.input_dim, split.num_classes, seed=0)
    base = {k: v.clone() for k, v in model.state_dict().items()}
    partners = ["0xA", "0xB", "0xC"]
    accountants = {p: fl.PrivacyAccountant(partner=p, agreement=1, delta=1e-5, epsilon_cap=8.0) for p in partners}

    results = {
        p: fl.train_local(
            model=model,
            data=split.partners[i],
            noise_multiplier=1.0,
            batch_size=64,
            seed=i,
            privacy_accountant=accountants[p],
        )
        for i, p in enumerate(partners)
    }
    checked = fl.validate_updates({p: (r.delta, r.sample_count) for p, r in results.items()}, base, max_norm=100.0)
    aggregate = fl.fedavg(checked.accepted.values())

    def accuracy(state: dict[str, torch.Tensor]) -> float:
        scored = copy.deepcopy(model)
        scored.load_state_dict(state)
        return fl.evaluate(scored, split.eval_set)["accuracy"]

    scores = fl.leave_one_out(checked.accepted, fl.aggregate_utility(base, checked.accepted, accuracy))
    reward = 300 * 10**18
    payouts = fl.split_reward(
        fl.PayoutRule.BY_SAMPLE_COUNT, reward, sample_counts={p: r.sample_count for p, r in results.items()}
    )

    assert checked.rejected == {}
    assert set(scores) == set(partners)
    assert sum(payouts.values()) == reward
    # The base model was not touched, the aggregate improves on it, and every partner's spend is on record.
    assert all(torch.equal(model.state_dict()[k], base[k]) for k in base)
    improved = apply_to_model(copy.deepcopy(model), aggregate)
    assert fl.evaluate(improved, split.eval_set)["accuracy"] > fl.evaluate(model, split.eval_set)["accuracy"]
    for p in partners:
        assert 0 < accountants[p].epsilon() <= 8.0
        assert accountants[p].spent_fixed() == fl.epsilon_to_fixed(accountants[p].epsilon())


def test_unknown_name_is_an_attribute_error():
    with pytest.raises(AttributeError, match="no attribute"):
        fl.no_such_thing  # noqa: B018
