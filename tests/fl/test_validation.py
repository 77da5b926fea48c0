import json

import pytest
import torch

from lepton_ledger.errors import ConfigurationError
from lepton_ledger.fl.validation import (
    REASON_CODES,
    Rejection,
    update_norm,
    validate_update,
    validate_updates,
)


@pytest.fixture
def base() -> dict[str, torch.Tensor]:
    return {
        "fc1.weight": torch.zeros(4, 3),
        "fc1.bias": torch.zeros(4),
        "bn.num_batches_tracked": torch.tensor(0),
    }


def good(scale: float = 0.1) -> dict[str, torch.Tensor]:
    return {
        "fc1.weight": torch.full((4, 3), scale),
        "fc1.bias": torch.full((4,), scale),
        "bn.num_batches_tracked": torch.tensor(1),
    }


def codes(rejections: list[Rejection]) -> list[tuple[str, str | None]]:
    return [(r.code, r.tensor) for r in rejections]


def test_a_good_update_passes(base):
    assert validate_update(good(), base, max_norm=10.0, weight=50) == []


@pytest.mark.parametrize("bad_value", [float("nan"), float("inf"), float("-inf")])
def test_non_finite_value_is_rejected_naming_the_tensor(base, bad_value):
    update = good()
    update["fc1.weight"][2, 1] = bad_value
    (rejection,) = validate_update(update, base, max_norm=10.0)
    assert rejection.to_dict()["code"] == "non_finite" and rejection.tensor == "fc1.weight"
    assert "fc1.weight" in rejection.message and "1 NaN/Inf" in rejection.message
    assert rejection.detail == {"count": 1, "numel": 12}


def test_shape_mismatch(base):
    update = good()
    update["fc1.bias"] = torch.zeros(5)
    (rejection,) = validate_update(update, base)
    assert codes([rejection]) == [("shape_mismatch", "fc1.bias")]
    assert rejection.detail == {"expected": [4], "actual": [5]}
    assert "'fc1.bias'" in rejection.message


def test_dtype_mismatch(base):
    update = good()
    update["fc1.weight"] = update["fc1.weight"].double()
    assert codes(validate_update(update, base)) == [("dtype_mismatch", "fc1.weight")]


def test_missing_and_unexpected_tensors_are_all_reported(base):
    update = good()
    del update["fc1.bias"]
    update["fc2.weight"] = torch.zeros(1)
    assert codes(validate_update(update, base)) == [("missing_tensor", "fc1.bias"), ("unexpected_tensor", "fc2.weight")]


def test_not_a_tensor_and_not_a_mapping(base):
    update = good()
    update["fc1.bias"] = [0.0] * 4
    assert codes(validate_update(update, base)) == [("not_a_tensor", "fc1.bias")]
    assert codes(validate_update([1, 2], base)) == [("not_a_mapping", None)]


def test_norm_bound(base):
    # norm sqrt(12 + 4) = 4: the integer counter (num_batches_tracked, delta 1) does not count
    update = good(scale=1.0)
    update["bn.num_batches_tracked"] = torch.tensor(1000)
    assert update_norm(update) == pytest.approx(4.0)
    assert validate_update(update, base, max_norm=4.01) == []
    (rejection,) = validate_update(update, base, max_norm=3.99)
    assert rejection.code == "norm_exceeded" and rejection.tensor is None
    assert rejection.detail["largest_tensor"] == "fc1.weight"
    assert rejection.detail["norm"] == pytest.approx(4.0) and rejection.detail["bound"] == 3.99
    assert "fc1.weight" in rejection.message


def test_norm_of_full_weights_is_taken_relative_to_base():
    base = {"w": torch.full((4,), 100.0)}
    weights = {"w": torch.full((4,), 100.5)}  # a delta of norm 1
    assert validate_update(weights, base, max_norm=1.5, delta=False) == []
    assert codes(validate_update(weights, base, max_norm=1.5, delta=True)) == [("norm_exceeded", None)]


def test_norm_is_not_checked_when_values_are_not_finite(base):
    update = good()
    update["fc1.bias"][0] = float("nan")
    assert codes(validate_update(update, base, max_norm=0.001)) == [("non_finite", "fc1.bias")]


@pytest.mark.parametrize("weight", [0, -3, float("nan"), "many"])
def test_invalid_sample_count(base, weight):
    assert codes(validate_update(good(), base, weight=weight)) == [("invalid_weight", None)]


@pytest.mark.parametrize("max_norm", [-1.0, float("inf"), "1"])
def test_bad_bound_is_a_configuration_error(base, max_norm):
    with pytest.raises(ConfigurationError, match="max_norm"):
        validate_update(good(), base, max_norm=max_norm)


def test_validate_updates_splits_and_reports_by_partner(base):
    nan = good()
    nan["fc1.weight"][0, 0] = float("nan")
    result = validate_updates(
        {"0xaa": (good(), 10), "0xbb": (nan, 10), "0xcc": (good(scale=5.0), 10), "0xdd": (good(), 0)},
        base,
        max_norm=1.0,  # good(): sqrt(16 * 0.01) = 0.4; good(5.0): sqrt(16 * 25) = 20
    )
    assert list(result.accepted) == ["0xaa"]
    assert result.accepted["0xaa"][1] == 10.0
    assert {p: codes(r) for p, r in result.rejected.items()} == {
        "0xbb": [("non_finite", "fc1.weight")],
        "0xcc": [("norm_exceeded", None)],
        "0xdd": [("invalid_weight", None)],
    }
    # Reports are JSON-ready, and every code is one of the documented ones.
    report = {p: [r.to_dict() for r in rs] for p, rs in result.rejected.items()}
    assert json.loads(json.dumps(report))["0xbb"][0] == {
        "code": "non_finite",
        "tensor": "fc1.weight",
        "message": "'fc1.weight' has 1 NaN/Inf value(s) out of 12",
        "detail": {"count": 1, "numel": 12},
    }
    assert all(r.code in REASON_CODES for rs in result.rejected.values() for r in rs)
