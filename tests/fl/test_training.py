import math

import pytest
import torch
from torch import nn

from lepton_ledger.errors import ConfigurationError
from lepton_ledger.fl.accounting import epsilon_from_history
from lepton_ledger.fl.data import make_federated
from lepton_ledger.fl.models import build_model
from lepton_ledger.fl.training import (
    DEFAULT_GRAD_SAMPLE_MODE,
    FALLBACK_GRAD_SAMPLE_MODE,
    supports_bookkeeping,
    train_local,
    train_nonprivate,
)


@pytest.fixture(scope="module")
def split():
    return make_federated("digits", num_partners=3, seed=0)


def _norm(delta):
    return math.sqrt(sum(float(v.pow(2).sum()) for v in delta.values()))


def test_same_seed_same_delta_other_seed_other_delta(split):
    model = build_model("mlp", split.input_dim, split.num_classes, seed=0)
    kw = {"model": model, "data": split.partners[0], "noise_multiplier": 1.0, "batch_size": 64}
    a, b, c = train_local(**kw, seed=5), train_local(**kw, seed=5), train_local(**kw, seed=6)
    assert a.delta.keys() == model.state_dict().keys()
    assert all(torch.equal(a.delta[k], b.delta[k]) for k in a.delta)
    assert a.metrics == b.metrics
    assert not all(torch.equal(a.delta[k], c.delta[k]) for k in a.delta)


def test_nonprivate_same_seed_same_delta_other_seed_other_delta(split):
    model = build_model("mlp", split.input_dim, split.num_classes, seed=0)
    kw = {"model": model, "data": split.partners[0], "batch_size": 64}
    a, b, c = train_nonprivate(**kw, seed=5), train_nonprivate(**kw, seed=5), train_nonprivate(**kw, seed=6)
    assert all(torch.equal(a.delta[k], b.delta[k]) for k in a.delta) and a.metrics == b.metrics
    assert not all(torch.equal(a.delta[k], c.delta[k]) for k in a.delta)


def test_base_model_is_untouched(split):
    model = build_model("logreg", split.input_dim, split.num_classes, seed=0)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    result = train_local(model=model, data=split.partners[1], noise_multiplier=1.0)
    assert _norm(result.delta) > 0
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert not hasattr(model, "_module") and not any(hasattr(p, "grad_sample") for p in model.parameters())


def test_dp_parameters_are_recorded(split):
    data = split.partners[2]
    model = build_model("mlp", split.input_dim, split.num_classes, seed=0)
    result = train_local(
        model=model, data=data, epochs=2, batch_size=50, noise_multiplier=1.3, max_grad_norm=0.7, delta=1e-6
    )
    per_epoch = math.ceil(len(data) / 50)
    dp = result.dp
    assert (dp.noise_multiplier, dp.max_grad_norm, dp.delta, dp.accountant) == (1.3, 0.7, 1e-6, "rdp")
    assert dp.sample_rate == 1 / per_epoch and dp.steps == 2 * per_epoch and dp.epochs == 2
    assert dp.grad_sample_mode == DEFAULT_GRAD_SAMPLE_MODE == "bk"
    assert result.sample_count == len(data)
    assert result.epsilon == epsilon_from_history([(1.3, 1 / per_epoch, 2 * per_epoch)], 1e-6, "rdp")
    assert set(result.metrics) == {"loss", "train_accuracy"} and 0 <= result.metrics["train_accuracy"] <= 1
    assert result.device == ("cuda" if torch.cuda.is_available() else "cpu")


def test_target_epsilon_is_met_for_the_round(split):
    model = build_model("logreg", split.input_dim, split.num_classes, seed=0)
    result = train_local(model=model, data=split.partners[0], epochs=2, target_epsilon=3.0, accountant="prv")
    assert result.dp.accountant == "prv"
    assert 3.0 * 0.97 <= result.epsilon <= 3.0 + 0.02  # Opacus searches within 0.01; PRV is approximate


def test_ghost_clipping_computes_the_same_update_as_per_sample_hooks(split):
    model = build_model("mlp", split.input_dim, split.num_classes, seed=0)
    kw = {"model": model, "data": split.partners[0], "noise_multiplier": 0.8, "max_grad_norm": 0.5, "seed": 3}
    ghost, hooks = train_local(**kw, grad_sample_mode="ghost"), train_local(**kw, grad_sample_mode="hooks")
    for key in ghost.delta:
        assert torch.allclose(ghost.delta[key], hooks.delta[key], atol=1e-5), key


@pytest.mark.parametrize("name", ["mlp", "logreg", "fusion"])
def test_bookkeeping_computes_the_same_noisy_update_as_opacus(split, name):
    # same seed: same Poisson batches and the same noise draws, so clipping, noise and scaling must all agree
    # (fusion's last Linear sees (batch, classes, modalities): the several-positions-per-sample path)
    model = build_model(name, split.input_dim, split.num_classes, seed=0)
    kw = {"model": model, "data": split.partners[0], "noise_multiplier": 1.0, "max_grad_norm": 0.5, "seed": 3}
    bk, hooks = train_local(**kw), train_local(**kw, grad_sample_mode="hooks")
    assert bk.dp.grad_sample_mode == "bk" and supports_bookkeeping(model)
    for key in hooks.delta:
        assert torch.allclose(bk.delta[key], hooks.delta[key], atol=1e-6), key
    assert bk.metrics == pytest.approx(hooks.metrics, rel=1e-6)


def test_models_bookkeeping_does_not_cover_fall_back_to_ghost(split):
    model = nn.Sequential(nn.Linear(split.input_dim, 16), nn.LayerNorm(16), nn.Linear(16, split.num_classes))
    assert not supports_bookkeeping(model)
    result = train_local(model=model, data=split.partners[0], noise_multiplier=1.0, batch_size=128)
    assert result.dp.grad_sample_mode == FALLBACK_GRAD_SAMPLE_MODE == "ghost"
    with pytest.raises(ConfigurationError, match=r"bk.*not in one: 1\.weight, 1\.bias"):
        train_local(model=model, data=split.partners[0], noise_multiplier=1.0, grad_sample_mode="bk")


class _SharedLinear(nn.Module):
    def __init__(self, dim: int, classes: int) -> None:
        super().__init__()
        self.shared, self.head = nn.Linear(dim, dim), nn.Linear(dim, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.shared(torch.relu(self.shared(x))))


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda d, c: _SharedLinear(d, c), "called once"),
        (lambda d, c: nn.Sequential(nn.Linear(d, 16), nn.ReLU(inplace=True), nn.Linear(16, c)), "in-place"),
    ],
)
def test_bookkeeping_refuses_what_would_make_its_gradients_wrong(split, make, message):
    model = make(split.input_dim, split.num_classes)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(ConfigurationError, match=message):
        train_local(model=model, data=split.partners[0], noise_multiplier=1.0, grad_sample_mode="bk")
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_gradients_are_really_clipped(split):
    model = build_model("mlp", split.input_dim, split.num_classes, seed=0)
    kw = {"model": model, "data": split.partners[0], "lr": 0.5, "batch_size": 64, "seed": 0}
    clip = 1e-3
    dp = train_local(**kw, noise_multiplier=1e-6, max_grad_norm=clip)
    plain = train_nonprivate(**kw)
    # each step moves by lr * (sum of clipped grads) / expected batch; a Poisson batch is < 2x the expected size
    assert _norm(dp.delta) <= dp.dp.steps * 0.5 * clip * 2
    assert _norm(plain.delta) > 100 * _norm(dp.delta)


def test_bad_settings_are_refused(split):
    model = build_model("logreg", split.input_dim, split.num_classes, seed=0)
    data = split.partners[0]
    with pytest.raises(ConfigurationError, match="exactly one"):
        train_local(model=model, data=data)
    with pytest.raises(ConfigurationError, match="exactly one"):
        train_local(model=model, data=data, noise_multiplier=1.0, target_epsilon=1.0)
    with pytest.raises(ConfigurationError, match="grad_sample_mode"):
        train_local(model=model, data=data, noise_multiplier=1.0, grad_sample_mode="fast")
    with pytest.raises(ConfigurationError, match="accountant"):
        train_local(model=model, data=data, noise_multiplier=1.0, accountant="gdp2")
    with pytest.raises(ConfigurationError, match="delta"):
        train_local(model=model, data=data, noise_multiplier=1.0, delta=0)


def test_a_train_result_leaves_a_worker_process_as_arrays_not_as_shared_memory():
    """A worker pool pickles results with torch's reductions registered: a tensor would travel as a shared-memory
    file descriptor fetched over a socket from the busy parent; the delta travels as plain arrays, unchanged."""
    import pickle
    from multiprocessing.reduction import ForkingPickler

    import torch.multiprocessing  # noqa: F401  # registers torch's reductions, as in a worker pool

    from lepton_ledger.fl.training import TrainResult

    delta = {"layer.weight": torch.randn(4, 3), "layer.bias": torch.randn(4).to(torch.float64)}
    result = TrainResult(delta, None, 7, {"loss": 0.5}, math.inf)
    data = bytes(ForkingPickler.dumps(result))
    assert b"rebuild_storage" not in data and b"rebuild_tensor" not in data
    back = pickle.loads(data)
    assert back.delta.keys() == delta.keys()
    assert all(back.delta[k].dtype == v.dtype and torch.equal(back.delta[k], v) for k, v in delta.items())
    assert (back.dp, back.sample_count, back.metrics, back.epsilon, back.device) == (
        None,
        7,
        {"loss": 0.5},
        math.inf,
        "cpu",
    )
    # a dtype numpy lacks stays a tensor
    bf16 = pickle.loads(pickle.dumps(TrainResult({"w": torch.ones(2, dtype=torch.bfloat16)}, None, 1, {}, 1.0)))
    assert bf16.delta["w"].dtype == torch.bfloat16 and torch.equal(bf16.delta["w"], torch.ones(2, dtype=torch.bfloat16))
