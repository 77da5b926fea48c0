import pytest
from hypothesis import given
from hypothesis import strategies as st

from lepton_ledger.errors import ConfigurationError, LeptonError
from lepton_ledger.fl.payouts import split_by_weights, split_reward
from lepton_ledger.units import PayoutRule

addresses = st.text(alphabet="0123456789abcdef", min_size=4, max_size=8).map(lambda s: "0x" + s)


@given(
    total=st.integers(0, 10**30), weights=st.dictionaries(addresses, st.integers(0, 10**12), min_size=1, max_size=12)
)
def test_split_sums_exactly_to_total(total, weights):
    if sum(weights.values()) == 0 and total:
        with pytest.raises(ConfigurationError):
            split_by_weights(total, weights)
        return
    shares = split_by_weights(total, weights)
    assert sum(shares.values()) == total
    assert set(shares) == set(weights)
    weight_sum = sum(weights.values())
    for key, weight in weights.items():
        exact = total * weight / weight_sum if weight_sum else 0
        assert abs(shares[key] - exact) < 1 + 1e-9 * max(1, exact)  # never more than one unit from exact
        if weight == 0:
            assert shares[key] == 0


def test_remainder_goes_to_largest_fraction_then_lowest_address():
    # 10 split 1:1:1 -> 3.33 each; one unit left, all fractions equal: lowest address gets it.
    assert split_by_weights(10, {"0xbb": 1, "0xaa": 1, "0xcc": 1}) == {"0xaa": 4, "0xbb": 3, "0xcc": 3}
    # 10 split 1:2 -> 3.33 / 6.67: the larger fraction (.67) takes the unit.
    assert split_by_weights(10, {"0xaa": 1, "0xbb": 2}) == {"0xaa": 3, "0xbb": 7}


def test_proportional_pays_nothing_for_non_positive_scores():
    shares = split_reward(PayoutRule.PROPORTIONAL, 1000, scores={"0xa": 0.3, "0xb": -0.2, "0xc": 0.1})
    assert shares == {"0xa": 750, "0xb": 0, "0xc": 250}


def test_equal_and_by_sample_count():
    assert split_reward(PayoutRule.EQUAL, 7, partners=["0xa", "0xb"]) == {"0xa": 4, "0xb": 3}
    assert split_reward(PayoutRule.BY_SAMPLE_COUNT, 100, sample_counts={"0xa": 1, "0xb": 3}) == {"0xa": 25, "0xb": 75}


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"rule": PayoutRule.PROPORTIONAL, "total": 1}, "contribution scores"),
        ({"rule": PayoutRule.EQUAL, "total": 1}, "list of partners"),
        ({"rule": PayoutRule.BY_SAMPLE_COUNT, "total": 1}, "sample counts"),
        ({"rule": PayoutRule.PROPORTIONAL, "total": 5, "scores": {"0xa": -1.0}}, "nobody to pay"),
        ({"rule": PayoutRule.BY_SAMPLE_COUNT, "total": -1, "sample_counts": {"0xa": 1}}, ">= 0"),
        ({"rule": PayoutRule.BY_SAMPLE_COUNT, "total": 1, "sample_counts": {"0xa": -1}}, "weights must be"),
    ],
)
def test_bad_input_names_what_is_wrong(kwargs, message):
    rule = kwargs.pop("rule")
    total = kwargs.pop("total")
    with pytest.raises(ConfigurationError, match=message) as info:
        split_reward(rule, total, **kwargs)
    assert isinstance(info.value, (LeptonError, ValueError))
