"""Poisson sampling on the batched data path: the batches DP training sees are Opacus's, drawn as the privacy
analysis assumes (each sample independently with probability q per step, variable size, empty batches kept).

``train_local``'s Poisson loader is ``DPDataLoader.from_data_loader(batch_loader(...))``, built by
``_train_bookkeeping`` in the default mode and by Opacus's ``make_private`` in Opacus's modes; these tests
build the same loader the same way. Each sample's single feature is its own index, so a batch shows which
samples it holds.
"""

import numpy as np
import pytest
import torch
from opacus.data_loader import DPDataLoader
from torch.utils.data import DataLoader

from lepton_ledger.fl.data import batch_loader, from_arrays
from lepton_ledger.fl.models import build_model
from lepton_ledger.fl.training import train_local


def _indexed(n: int):
    return from_arrays(np.arange(n, dtype=np.float64)[:, None], np.arange(n) % 3, num_classes=3)


def _poisson_steps(data, *, batch_size: int, seed: int, epochs: int) -> list[list[int]]:
    loader = DPDataLoader.from_data_loader(batch_loader(data, batch_size=batch_size, seed=seed))
    return [xb[:, 0].long().tolist() for _ in range(epochs) for xb, _ in loader]


def test_batches_are_exactly_opacus_batches_over_a_plain_tensor_dataset():
    # batch_size 1 on 20 samples: q = 1/20, so about a third of the steps are empty
    data = _indexed(20)
    ours = DPDataLoader.from_data_loader(batch_loader(data, batch_size=1, seed=4))
    plain = DPDataLoader.from_data_loader(
        DataLoader(data.to_torch(), batch_size=1, shuffle=True, generator=torch.Generator().manual_seed(4))
    )
    pairs = list(zip(ours, plain, strict=True))
    assert len(pairs) == 20
    assert any(len(yb) == 0 for (_, yb), _ in pairs)
    for (x, y), (x_ref, y_ref) in pairs:
        assert torch.equal(x, x_ref) and torch.equal(y, y_ref)
        assert (x.dtype, y.dtype, x.shape[1:]) == (x_ref.dtype, y_ref.dtype, x_ref.shape[1:])


def test_batch_sizes_are_binomial():
    n, batch_size = 200, 20  # q = 1 / ceil(200 / 20) = 0.1
    sizes = np.array([len(b) for b in _poisson_steps(_indexed(n), batch_size=batch_size, seed=0, epochs=200)])
    q, steps = 0.1, len(sizes)
    assert steps == 2000
    # 5 standard errors: the mean's is sqrt(nq(1-q)/steps) ~ 0.09, the variance's ~ nq(1-q) sqrt(2/steps) ~ 0.57.
    # Fixed-size shuffled batches would have variance 0.
    assert abs(sizes.mean() - n * q) < 0.5
    assert abs(sizes.var(ddof=1) - n * q * (1 - q)) < 3.0
    assert sizes.min() < batch_size - 5 and sizes.max() > batch_size + 5


def test_each_sample_is_drawn_independently_at_rate_q():
    n, q = 200, 0.1
    steps = _poisson_steps(_indexed(n), batch_size=20, seed=1, epochs=200)
    counts = np.bincount(np.concatenate([np.asarray(s, dtype=np.int64) for s in steps]), minlength=n)
    # every sample ~ Binomial(2000, 0.1): mean 200, sd ~13.4
    assert np.abs(counts - len(steps) * q).max() < 6 * np.sqrt(len(steps) * q * (1 - q))
    # sampling with replacement across steps: unlike a shuffle, some samples appear twice within one epoch
    first_epoch = np.concatenate([np.asarray(s, dtype=np.int64) for s in steps[:10]])
    assert len(first_epoch) > len(np.unique(first_epoch))
    # within a step no sample repeats (a subset, not a draw with replacement)
    assert all(len(s) == len(set(s)) for s in steps)


def test_sampling_is_deterministic_by_seed():
    data = _indexed(50)
    a, b, c = (_poisson_steps(data, batch_size=10, seed=s, epochs=3) for s in (7, 7, 8))
    assert a == b
    assert a != c


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_training_runs_through_empty_batches_and_is_reproducible():
    data = _indexed(20)
    model = build_model("mlp", 1, 3, seed=0)
    kw = {"model": model, "data": data, "batch_size": 1, "noise_multiplier": 1.0}
    a, b, c = train_local(**kw, seed=4), train_local(**kw, seed=4), train_local(**kw, seed=5)
    assert a.dp.steps == 20 and a.dp.sample_rate == 1 / 20
    assert all(torch.isfinite(v).all() for v in a.delta.values())
    assert all(torch.equal(a.delta[k], b.delta[k]) for k in a.delta)
    assert not all(torch.equal(a.delta[k], c.delta[k]) for k in a.delta)
    # the default mode ("bk") steps through empty batches as Opacus does: a noisy step, no gradient
    opacus = train_local(**kw, seed=4, grad_sample_mode="hooks")
    assert a.dp.grad_sample_mode == "bk"
    assert all(torch.allclose(a.delta[k], opacus.delta[k], atol=1e-5) for k in a.delta)
