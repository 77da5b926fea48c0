import math

import pytest
import torch
from sklearn.datasets import load_digits

from lepton_ledger.errors import ConfigurationError
from lepton_ledger.fl.aggregation import AggregationError
from lepton_ledger.fl.scoring import (
    EXACT_SHAPLEY_MAX_PARTNERS,
    CachedUtility,
    aggregate_utility,
    apply_delta_to_state,
    exact_shapley,
    leave_one_out,
    tmc_shapley,
)

# --- games with known answers ------------------------------------------------------------------------------

VALUES = {"p1": 0.5, "p2": 0.2, "p3": -0.1, "p4": 0.05}


def additive(subset: frozenset[str]) -> float:
    return sum(VALUES[p] for p in subset)


def majority(subset: frozenset[str]) -> float:
    # Non-additive: worth 1 once two of p1..p3 are in; p4 adds a little on its own.
    return float(len(subset & {"p1", "p2", "p3"}) >= 2) + 0.1 * ("p4" in subset)


def test_additive_game_every_method_returns_the_values():
    for scores in (
        leave_one_out(VALUES, additive),
        exact_shapley(VALUES, additive),
        tmc_shapley(VALUES, additive, permutations=8, seed=3),
    ):
        assert scores == pytest.approx(VALUES)


def test_exact_shapley_of_a_majority_game():
    # p1..p3 are symmetric and share 1; p4 is a dummy worth 0.1 wherever it stands.
    assert exact_shapley(VALUES, majority) == pytest.approx({"p1": 1 / 3, "p2": 1 / 3, "p3": 1 / 3, "p4": 0.1})


@pytest.mark.parametrize("method", [exact_shapley, lambda p, u: tmc_shapley(p, u, permutations=13, seed=1)])
def test_shapley_is_efficient(method):
    # Without truncation, each permutation's marginals sum to U(N) - U({}), so the estimates do too.
    scores = method(VALUES, majority)
    assert sum(scores.values()) == pytest.approx(majority(frozenset(VALUES)) - majority(frozenset()))


def test_tmc_approaches_exact_shapley():
    exact = exact_shapley(VALUES, majority)
    estimate = tmc_shapley(VALUES, majority, permutations=400, seed=0)
    assert max(abs(estimate[p] - exact[p]) for p in VALUES) < 0.05


def test_tmc_is_deterministic_by_seed_and_independent_of_input_order():
    a = tmc_shapley(["p1", "p2", "p3", "p4"], majority, permutations=6, seed=7)
    b = tmc_shapley(["p4", "p3", "p2", "p1"], majority, permutations=6, seed=7)
    c = tmc_shapley(VALUES, majority, permutations=6, seed=8)
    assert a == b
    assert a != c  # 6 permutations of a non-additive game: the seed matters


# --- cost --------------------------------------------------------------------------------------------------


def test_leave_one_out_costs_n_plus_one_evaluations():
    u = CachedUtility(majority)
    leave_one_out(VALUES, u)
    assert u.evaluations == len(VALUES) + 1


def test_exact_shapley_costs_two_to_the_n():
    u = CachedUtility(majority)
    exact_shapley(VALUES, u)
    assert u.evaluations == 2 ** len(VALUES)


def test_tmc_cost_bound_and_truncation():
    n = 6
    names = [f"p{i}" for i in range(n)]
    # Saturating game: any one partner achieves everything, so truncation stops each permutation after
    # its first partner.
    untruncated = CachedUtility(lambda s: float(bool(s)))
    tmc_shapley(names, untruncated, permutations=3, seed=0)
    assert untruncated.evaluations <= 2 + 3 * (n - 1)
    assert untruncated.evaluations > 2 + 3  # without truncation the walks go on past the first partner
    truncated = CachedUtility(lambda s: float(bool(s)))
    scores = tmc_shapley(names, truncated, permutations=3, truncation=1e-9, seed=0)
    # U({}) and U(N), then one new singleton per permutation.
    assert truncated.evaluations == 2 + 3
    assert sum(scores.values()) == pytest.approx(1.0)


def test_cached_utility_evaluates_each_subset_once():
    calls = []
    u = CachedUtility(lambda s: calls.append(s) or len(s))
    assert u(["a", "b"]) == 2 and u(frozenset({"b", "a"})) == 2
    assert calls == [frozenset({"a", "b"})] and u.evaluations == 1 and u.calls == 2
    assert u.cached() == {frozenset({"a", "b"}): 2.0}


# --- errors ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: leave_one_out([], additive), "no partners"),
        (lambda: exact_shapley(["p1", "p1"], additive), "unique"),
        (lambda: tmc_shapley(VALUES, additive, permutations=0), "permutations"),
        (lambda: tmc_shapley(VALUES, additive, truncation=-0.1), "truncation"),
        (lambda: tmc_shapley(VALUES, additive, truncation=float("nan")), "truncation"),
        (lambda: leave_one_out(VALUES, lambda s: float("nan")), "finite"),
        (
            lambda: exact_shapley([f"p{i}" for i in range(EXACT_SHAPLEY_MAX_PARTNERS + 1)], additive),
            "tmc_shapley",
        ),
    ],
)
def test_bad_input_is_refused(call, match):
    with pytest.raises(ConfigurationError, match=match):
        call()


def test_apply_delta_to_state():
    base = {"w": torch.ones(2), "n": torch.tensor(3)}
    out = apply_delta_to_state(base, {"w": torch.tensor([0.5, -1.0]), "n": torch.tensor(1)})
    assert torch.equal(out["w"], torch.tensor([1.5, 0.0])) and int(out["n"]) == 4 and out["n"].dtype == torch.int64
    assert torch.equal(apply_delta_to_state(base, {})["w"], base["w"])
    with pytest.raises(ConfigurationError, match="lacks"):
        apply_delta_to_state(base, {"v": torch.ones(1)})
    with pytest.raises(ConfigurationError, match="shape"):
        apply_delta_to_state(base, {"w": torch.ones(3)})


# --- a real model on real data -----------------------------------------------------------------------------


class Digits:
    """Digits split between partners; a logistic regression trained with plain full-batch SGD from a shared
    base (non-private: fast, and DP noise would only blur what these tests look at)."""

    def __init__(self) -> None:
        features, labels = load_digits(return_X_y=True)
        order = torch.randperm(len(labels), generator=torch.Generator().manual_seed(0))
        self.x = torch.tensor(features / 16.0, dtype=torch.float32)[order]
        self.y = torch.tensor(labels)[order]
        self.eval_x, self.eval_y = self.x[:500], self.y[:500]
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            self.base = {k: v.detach().clone() for k, v in torch.nn.Linear(64, 10).state_dict().items()}

    def part(self, i: int, size: int = 150) -> tuple[torch.Tensor, torch.Tensor]:
        s = slice(500 + i * size, 500 + (i + 1) * size)
        return self.x[s], self.y[s]

    # Each draw has its own seed, so a test's data does not depend on which tests ran before it.
    def shuffled(self, labels: torch.Tensor, seed: int = 1) -> torch.Tensor:
        return labels[torch.randperm(len(labels), generator=torch.Generator().manual_seed(seed))]

    def noisy(self, labels: torch.Tensor, fraction: float, seed: int = 2) -> torch.Tensor:
        labels = labels.clone()
        k = int(fraction * len(labels))
        labels[:k] = torch.randint(0, 10, (k,), generator=torch.Generator().manual_seed(seed))
        return labels

    def model(self, state: dict[str, torch.Tensor]) -> torch.nn.Module:
        m = torch.nn.Linear(64, 10)
        m.load_state_dict(state)
        return m

    def train(self, x: torch.Tensor, y: torch.Tensor, steps: int = 40, lr: float = 0.5) -> tuple[dict, int]:
        m = self.model(self.base)
        opt = torch.optim.SGD(m.parameters(), lr=lr)
        for _ in range(steps):
            opt.zero_grad()
            torch.nn.functional.cross_entropy(m(x), y).backward()
            opt.step()
        return {k: v.detach() - self.base[k] for k, v in m.state_dict().items()}, len(y)

    def accuracy(self, state: dict[str, torch.Tensor]) -> float:
        with torch.no_grad():
            return float((self.model(state)(self.eval_x).argmax(1) == self.eval_y).float().mean())

    def neg_loss(self, state: dict[str, torch.Tensor]) -> float:
        with torch.no_grad():
            return -float(torch.nn.functional.cross_entropy(self.model(state)(self.eval_x), self.eval_y))


@pytest.fixture(scope="module")
def digits() -> Digits:
    return Digits()


@pytest.fixture(scope="module")
def round_updates(digits: Digits) -> dict[str, tuple[dict, int]]:
    # "twin_a"/"twin_b" hold the same data (so, same update); "shuffled" trained on permuted labels.
    x0, y0 = digits.part(0)
    return {
        "twin_a": digits.train(x0, y0),
        "twin_b": digits.train(x0, y0),
        "carol": digits.train(*digits.part(1)),
        "dave": digits.train(*digits.part(2)),
        "shuffled": digits.train(digits.part(3)[0], digits.shuffled(digits.part(3)[1])),
    }


@pytest.fixture(scope="module")
def accuracy_scores(digits, round_updates) -> dict[str, dict[str, float]]:
    u = aggregate_utility(digits.base, round_updates, digits.accuracy)
    # The setting is meaningful: the base model guesses, the round's aggregate classifies.
    assert u(frozenset()) < 0.2
    assert u(frozenset(round_updates)) > 0.8
    return {
        "loo": leave_one_out(round_updates, u),
        "exact": exact_shapley(round_updates, u),
        "tmc": tmc_shapley(round_updates, u, permutations=100, seed=0),
    }


@pytest.mark.parametrize("method", ["loo", "exact", "tmc"])
def test_label_shuffled_partner_scores_lowest(accuracy_scores, method):
    scores = accuracy_scores[method]
    assert min(scores, key=scores.get) == "shuffled"
    assert scores["shuffled"] <= 0


def test_partners_with_identical_data_score_alike(accuracy_scores):
    # Their updates are identical, so LOO and exact Shapley see a symmetric game: equal to the bit.
    for method in ("loo", "exact"):
        assert accuracy_scores[method]["twin_a"] == accuracy_scores[method]["twin_b"]
    # TMC samples permutations: alike within its sampling error (sd ~0.02 at 100 permutations here), and far
    # apart from the partner that brought nothing.
    tmc = accuracy_scores["tmc"]
    assert abs(tmc["twin_a"] - tmc["twin_b"]) < 0.06
    assert min(tmc["twin_a"], tmc["twin_b"]) > tmc["shuffled"] + 0.1


def test_loo_and_shapley_agree_on_a_clear_ordering(digits):
    # Same amount of data, decreasing label quality. Utility: negative eval loss (accuracy saturates, which
    # makes leave-one-out coarse; the loss keeps the ordering graded).
    (x0, y0), (x1, y1), (x2, y2) = digits.part(0, 300), digits.part(1, 300), digits.part(2, 300)
    updates = {
        "clean": digits.train(x0, y0),
        "half_noisy": digits.train(x1, digits.noisy(y1, 0.5)),
        "shuffled": digits.train(x2, digits.shuffled(y2)),
    }
    u = aggregate_utility(digits.base, updates, digits.neg_loss)
    expected = ["clean", "half_noisy", "shuffled"]
    for scores in (leave_one_out(updates, u), exact_shapley(updates, u), tmc_shapley(updates, u, seed=0)):
        assert sorted(scores, key=scores.get, reverse=True) == expected


def test_utility_of_nobody_is_the_base_model(digits, round_updates):
    u = aggregate_utility(digits.base, round_updates, digits.accuracy)
    assert u(frozenset()) == digits.accuracy(digits.base)
    solo = round_updates["carol"][0]
    assert u(frozenset({"carol"})) == digits.accuracy(apply_delta_to_state(digits.base, solo))


def test_robust_rule_falls_back_on_small_subsets(digits, round_updates):
    u = aggregate_utility(digits.base, round_updates, digits.accuracy, rule="krum", params={"f": 1})
    # 5 partners: Krum with f=1 runs; 2 partners: too few for Krum, FedAvg is used.
    pair = frozenset({"carol", "dave"})
    fedavg_u = aggregate_utility(digits.base, round_updates, digits.accuracy)
    assert u(pair) == fedavg_u(pair)
    assert math.isfinite(u(frozenset(round_updates)))
    strict = aggregate_utility(
        digits.base, round_updates, digits.accuracy, rule="krum", params={"f": 1}, fallback_rule=None
    )
    with pytest.raises(AggregationError, match="2f"):
        strict(pair)


def test_aggregate_utility_refuses_unknown_rule_and_no_updates(digits, round_updates):
    with pytest.raises(ConfigurationError, match="unknown aggregation rule"):
        aggregate_utility(digits.base, round_updates, digits.accuracy, rule="mean")
    with pytest.raises(ConfigurationError, match="no updates"):
        aggregate_utility(digits.base, {}, digits.accuracy)


def test_contribution_scores_dispatches_by_name_and_names_what_is_wrong():
    from lepton_ledger.fl.scoring import contribution_scores, leave_one_out, tmc_shapley

    values = {frozenset(): 0.0, frozenset("a"): 0.5, frozenset("b"): 0.25, frozenset("ab"): 0.75}
    utility = values.__getitem__
    assert contribution_scores("leave_one_out", "ab", utility) == leave_one_out("ab", utility)
    assert contribution_scores("tmc_shapley", "ab", utility, seed=3) == tmc_shapley("ab", utility, seed=3)
    with pytest.raises(ConfigurationError, match="unknown scoring method 'banzhaf'"):
        contribution_scores("banzhaf", "ab", utility)
    with pytest.raises(ConfigurationError, match="bad parameters \\['seed'\\] for scoring 'leave_one_out'"):
        contribution_scores("leave_one_out", "ab", utility, seed=1)
