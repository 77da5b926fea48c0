import pytest
import torch
from opacus.validators import ModuleValidator

from lepton_ledger.errors import ConfigurationError
from lepton_ledger.fl.data import make_federated
from lepton_ledger.fl.models import LateFusion, build_model, model_names, register_model
from lepton_ledger.fl.training import apply_delta_to_model, evaluate, train_local


@pytest.mark.parametrize("name", ["logreg", "mlp", "cnn", "fusion"])
def test_every_model_builds_and_is_opacus_compatible(name):
    assert name in model_names()
    model = build_model(name, 64, 10, seed=0)
    assert model(torch.zeros(5, 64)).shape == (5, 10)
    assert ModuleValidator.validate(model, strict=False) == []


def test_same_seed_same_initial_weights():
    a, b = build_model("mlp", 30, 2, seed=7), build_model("mlp", 30, 2, seed=7)
    c = build_model("mlp", 30, 2, seed=8)
    assert all(torch.equal(a.state_dict()[k], b.state_dict()[k]) for k in a.state_dict())
    assert not torch.equal(a.state_dict()["0.weight"], c.state_dict()["0.weight"])


def test_bad_names_and_shapes_are_refused():
    with pytest.raises(ConfigurationError, match="known: .*mlp"):
        build_model("resnet", 64, 10)
    with pytest.raises(ConfigurationError, match="square"):
        build_model("cnn", 30, 2)
    with pytest.raises(ConfigurationError, match="add up"):
        build_model("fusion", 10, 2, modality_dims=(3, 3))
    with pytest.raises(ConfigurationError, match="already"):
        register_model("mlp")(lambda d, c: torch.nn.Linear(d, c))


def test_fusion_is_a_weighted_sum_of_modality_encoders():
    model = build_model("fusion", 10, 3, modality_dims=(4, 3, 3), seed=0)
    assert isinstance(model, LateFusion)
    assert torch.allclose(model.fusion_weights, torch.full((3,), 1 / 3))
    with torch.no_grad():
        model.fusion.weight.copy_(torch.tensor([[0.5, -2.0, 3.0]]))
    x = torch.randn(4, 10, generator=torch.Generator().manual_seed(0))
    parts = torch.split(x, (4, 3, 3), dim=1)
    expected = sum(w * enc(p) for w, enc, p in zip((0.5, -2.0, 3.0), model.encoders, parts))
    assert torch.allclose(model(x), expected, atol=1e-6)


def test_fusion_model_trains_with_dp_on_modalities():
    split = make_federated("digits", num_partners=2, seed=0)
    model = build_model("fusion", split.input_dim, split.num_classes, modality_dims=split.eval_set.modalities, seed=0)
    before = evaluate(model, split.eval_set)["accuracy"]
    result = train_local(model=model, data=split.partners[0], epochs=4, noise_multiplier=0.7, lr=1.0, seed=0)
    trained = apply_delta_to_model(model, result.delta)
    assert evaluate(trained, split.eval_set)["accuracy"] > max(0.6, before + 0.3)
    assert not torch.equal(trained.fusion_weights, model.fusion_weights)  # the weights are learned


def test_cnn_trains_with_dp_in_the_fallback_mode():
    # convolutions and GroupNorm are outside book-keeping clipping: train_local picks Opacus's ghost clipping
    split = make_federated("digits", num_partners=3, seed=0)
    model = build_model("cnn", split.input_dim, split.num_classes, channels=4, groups=2, seed=0)
    result = train_local(model=model, data=split.partners[0], batch_size=128, noise_multiplier=1.0, seed=0)
    assert result.dp.grad_sample_mode == "ghost"
    assert result.delta.keys() == model.state_dict().keys()
    assert all(torch.isfinite(v).all() for v in result.delta.values())
    assert all(v.abs().sum() > 0 for v in result.delta.values())
