import weakref

import pytest
import torch

from lepton_ledger.errors import LeptonError
from lepton_ledger.fl.aggregation import (
    AggregationError,
    aggregate,
    coordinate_median,
    fedavg,
    krum,
    krum_scores,
    krum_select,
    multi_krum,
    trimmed_mean,
)


def make_update(seed: int, scale: float = 1.0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {
        "fc.weight": torch.randn(4, 3, generator=g) * scale,
        "fc.bias": torch.randn(4, generator=g) * scale,
    }


def flat(arrays) -> torch.Tensor:
    return torch.cat([arrays[k].reshape(-1).to(torch.float64) for k in sorted(arrays)])


# --- FedAvg ------------------------------------------------------------------------------------------------


def test_fedavg_is_sample_weighted_mean():
    a = {"w": torch.tensor([1.0, 2.0]), "n": torch.tensor(3)}
    b = {"w": torch.tensor([4.0, 8.0]), "n": torch.tensor(7)}
    out = fedavg([(a, 1), (b, 2)])
    assert torch.equal(out["w"], torch.tensor([3.0, 6.0]))
    assert out["w"].dtype == torch.float32
    # integer buffers are averaged and rounded back to their dtype: (3 + 14) / 3 = 5.67 -> 6
    assert out["n"].dtype == torch.int64 and int(out["n"]) == 6
    assert list(out) == ["w", "n"]


def test_fedavg_accumulates_in_float64():
    # In float32, 1e8 + 1 + ... loses the small terms; float64 accumulation keeps them.
    big = {"w": torch.tensor([1e8], dtype=torch.float32)}
    small = {"w": torch.tensor([1.0], dtype=torch.float32)}
    out = fedavg([(big, 1)] + [(small, 1)] * 1000 + [({"w": torch.tensor([-1e8])}, 1)])
    assert out["w"].item() == pytest.approx(1000 / 1002, rel=1e-6)


def test_fedavg_does_not_modify_inputs():
    a, b = make_update(1), make_update(2)
    copies = [{k: v.clone() for k, v in u.items()} for u in (a, b)]
    fedavg([(a, 5), (b, 1)])
    for original, copy in zip((a, b), copies):
        assert all(torch.equal(original[k], copy[k]) for k in copy)


def test_fedavg_is_deterministic():
    updates = [(make_update(i), i + 1) for i in range(7)]
    first, second = fedavg(updates), fedavg(list(updates))
    assert all(torch.equal(first[k], second[k]) for k in first)


def test_fedavg_streams_from_a_generator_holding_one_update_at_a_time():
    # Memory O(model): an implementation that kept the updates (list(updates)) would have all 10 alive.

    alive: list[weakref.ref] = []
    max_alive = 0

    def updates():
        nonlocal max_alive
        for i in range(10):
            tensor = torch.full((1000,), float(i))
            alive.append(weakref.ref(tensor))
            max_alive = max(max_alive, sum(r() is not None for r in alive))
            yield {"w": tensor}, 1
            del tensor

    fedavg(updates())
    # At the moment update i is made, update i-1 may still be referenced by the loop variable: at most 2.
    assert max_alive <= 2


@pytest.mark.parametrize(
    "updates, match",
    [
        ([], "no updates"),
        ([({"w": torch.ones(2)}, 1), ({"v": torch.ones(2)}, 1)], "keys differ"),
        ([({"w": torch.ones(2)}, 1), ({"w": torch.ones(3)}, 1)], "shape"),
        ([({"w": torch.ones(2)}, 1), ({"w": torch.ones(2, dtype=torch.float64)}, 1)], "dtype"),
        ([({"w": torch.ones(2)}, -1)], "weight"),
        ([({"w": torch.ones(2)}, float("nan"))], "weight"),
        ([({"w": torch.ones(2)}, "ten")], "weight"),
        ([({"w": torch.ones(2)}, 0), ({"w": torch.ones(2)}, 0)], "weight 0"),
        ([({"w": [1.0, 2.0]}, 1)], "not a torch.Tensor"),
        ([{"w": torch.ones(2)}], "pair"),
    ],
)
def test_fedavg_refuses_malformed_input(updates, match):
    with pytest.raises(AggregationError, match=match) as info:
        fedavg(updates)
    assert isinstance(info.value, LeptonError) and isinstance(info.value, ValueError)


def test_mismatch_error_names_the_tensor_and_update():
    with pytest.raises(AggregationError, match=r"update 2: 'fc.bias' has shape \(5,\)"):
        bad = make_update(3)
        bad["fc.bias"] = torch.zeros(5)
        fedavg([(make_update(1), 1), (make_update(2), 1), (bad, 1)])


# --- coordinate-wise rules ---------------------------------------------------------------------------------


def test_median_odd_and_even():
    vals = [torch.tensor([1.0, 10.0]), torch.tensor([3.0, -2.0]), torch.tensor([2.0, 0.0])]
    odd = coordinate_median([({"w": v}, 1) for v in vals])
    assert torch.equal(odd["w"], torch.tensor([2.0, 0.0]))
    even = coordinate_median([({"w": v}, 1) for v in vals + [torch.tensor([4.0, 1.0])]])
    assert torch.equal(even["w"], torch.tensor([2.5, 0.5]))


def test_median_ignores_weights_and_order():
    updates = [(make_update(i), w) for i, w in enumerate([1, 1000, 3, 2])]
    a = coordinate_median(updates)
    b = coordinate_median(list(reversed([(u, 1) for u, _ in updates])))
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_trimmed_mean_drops_extremes():
    vals = [0.0, 1.0, 2.0, 3.0, 100.0]
    out = trimmed_mean([({"w": torch.tensor([v])}, 1) for v in vals], trim=0.2)
    assert out["w"].item() == pytest.approx(2.0)
    # trim=0: plain unweighted mean
    out0 = trimmed_mean([({"w": torch.tensor([v])}, 1) for v in vals], trim=0.0)
    assert out0["w"].item() == pytest.approx(21.2)


@pytest.mark.parametrize("trim", [0.5, -0.1, 1, "0.1"])
def test_trimmed_mean_refuses_bad_trim(trim):
    with pytest.raises(AggregationError, match="trim"):
        trimmed_mean([(make_update(i), 1) for i in range(5)], trim=trim)


def test_rules_preserve_dtype_and_device_and_key_order():
    updates = [
        ({"b": torch.ones(2, dtype=torch.float16) * i, "a": torch.ones(3, dtype=torch.float64)}, 1) for i in range(5)
    ]
    for out in (coordinate_median(updates), trimmed_mean(updates, 0.2), krum(updates, 1), multi_krum(updates, 1, 3)):
        assert list(out) == ["b", "a"]
        assert out["b"].dtype == torch.float16 and out["a"].dtype == torch.float64


# --- Krum --------------------------------------------------------------------------------------------------


def test_krum_scores_by_hand():
    # Points on a line: 0, 1, 2, 10, 11. n=5, f=1 -> each scored on its n-f-2 = 2 nearest neighbours.
    points = [0.0, 1.0, 2.0, 10.0, 11.0]
    updates = [({"w": torch.tensor([p])}, 1) for p in points]
    assert krum_scores(updates, f=1) == [1 + 4, 1 + 1, 1 + 4, 1 + 64, 1 + 81]
    assert krum_select(updates, f=1, m=3) == [1, 0, 2]  # tie 0/2 broken by index
    assert krum(updates, f=1)["w"].item() == 1.0
    assert multi_krum(updates, f=1, m=3)["w"].item() == pytest.approx(1.0)


def test_multi_krum_weights_the_selected_updates():
    updates = [({"w": torch.tensor([p])}, w) for p, w in [(0.0, 1), (1.0, 3), (2.0, 1), (50.0, 1), (60.0, 1)]]
    assert multi_krum(updates, f=1, m=3)["w"].item() == pytest.approx((0 + 3 + 2) / 5)


def test_multi_krum_with_all_updates_is_fedavg():
    updates = [(make_update(i), i + 1) for i in range(5)]
    a, b = multi_krum(updates, f=1, m=5), fedavg(updates)
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_krum_returns_a_copy():
    updates = [(make_update(i), 1) for i in range(5)]
    out = krum(updates, f=1)
    chosen = krum_select(updates, f=1)[0]
    out["fc.bias"].add_(1.0)
    assert not torch.equal(out["fc.bias"], updates[chosen][0]["fc.bias"])


@pytest.mark.parametrize("n, f", [(4, 1), (6, 2), (2, 0)])
def test_krum_refuses_f_too_large_for_n(n, f):
    with pytest.raises(AggregationError, match=r"n >= 2f \+ 3"):
        krum([(make_update(i), 1) for i in range(n)], f=f)


@pytest.mark.parametrize("f", [-1, 1.5, True])
def test_krum_refuses_bad_f(f):
    with pytest.raises(AggregationError, match="f "):
        krum([(make_update(i), 1) for i in range(7)], f=f)


@pytest.mark.parametrize("m", [0, 6, 2.0])
def test_multi_krum_refuses_bad_m(m):
    with pytest.raises(AggregationError, match="m "):
        multi_krum([(make_update(i), 1) for i in range(5)], f=1, m=m)


# --- robustness --------------------------------------------------------------------------------------------

HONEST = 7


def honest_updates() -> list[tuple[dict[str, torch.Tensor], int]]:
    g = torch.Generator().manual_seed(42)
    mean = {"fc.weight": torch.randn(16, 8, generator=g), "fc.bias": torch.randn(16, generator=g)}
    return [({k: v + 0.05 * torch.randn(v.shape, generator=g) for k, v in mean.items()}, 100) for _ in range(HONEST)]


ATTACKS = {
    "scaled_x100": lambda u: {k: 100.0 * v for k, v in u.items()},
    "sign_flipped": lambda u: {k: -v for k, v in u.items()},
}
ROBUST = {
    "median": lambda ups: coordinate_median(ups),
    "trimmed_mean": lambda ups: trimmed_mean(ups, trim=0.2),
    "krum": lambda ups: krum(ups, f=1),
    "multi_krum": lambda ups: multi_krum(ups, f=1, m=HONEST - 1),
}


@pytest.mark.parametrize("attack", sorted(ATTACKS))
@pytest.mark.parametrize("rule", sorted(ROBUST))
def test_robust_rule_resists_a_poisoned_update_that_fedavg_does_not(rule, attack):
    honest = honest_updates()
    honest_mean = flat(fedavg(honest))
    scale = float(honest_mean.norm())
    # The attacker claims the same sample count as everyone else.
    poisoned = honest + [(ATTACKS[attack](honest[0][0]), 100)]
    fedavg_error = float((flat(fedavg(poisoned)) - honest_mean).norm()) / scale
    robust_error = float((flat(ROBUST[rule](poisoned)) - honest_mean).norm()) / scale
    assert fedavg_error > 0.2  # FedAvg is dragged at least 20% of the honest mean's norm away (x100: ~12x)
    assert robust_error < 0.06  # the robust rule stays within the honest updates' own spread
    assert robust_error < fedavg_error / 4


def test_aggregate_by_name():
    updates = [(make_update(i), 1) for i in range(5)]
    assert torch.equal(aggregate("krum", updates, f=1)["fc.bias"], krum(updates, f=1)["fc.bias"])
    assert torch.equal(aggregate("trimmed_mean", updates, trim=0.2)["fc.bias"], trimmed_mean(updates, 0.2)["fc.bias"])
    with pytest.raises(AggregationError, match="unknown aggregation rule 'mean'"):
        aggregate("mean", updates)
    with pytest.raises(AggregationError, match="bad parameters"):
        aggregate("fedavg", updates, trim=0.1)
    with pytest.raises(AggregationError, match=r"bad parameters \[\] for rule 'krum'"):
        aggregate("krum", updates)  # f is required


def test_default_params_fit_the_number_of_updates_and_run():
    from lepton_ledger.fl.aggregation import aggregate, default_params

    assert default_params("fedavg", 3) == {} and default_params("trimmed_mean", 3) == {"trim": 0.2}
    assert default_params("krum", 3) == {"f": 0} and default_params("krum", 7) == {"f": 2}
    assert default_params("multi_krum", 7) == {"f": 2, "m": 5}
    updates = [({"w": torch.full((2,), float(i))}, 1.0) for i in range(7)]
    for rule in ("fedavg", "median", "trimmed_mean", "krum", "multi_krum"):
        assert aggregate(rule, updates, **default_params(rule, len(updates)))["w"].shape == (2,)
    with pytest.raises(LeptonError, match="unknown aggregation rule 'mean'"):
        default_params("mean", 3)
