import hashlib
import json

import numpy as np
import pytest
import torch

from lepton_ledger.errors import ConfigurationError
from lepton_ledger.fl.data import (
    batch_loader,
    eval_commitment,
    from_arrays,
    from_csv,
    from_torch_dataset,
    label_skew,
    load_dataset,
    make_federated,
    split_modalities,
)


@pytest.mark.parametrize("name,dim,classes", [("digits", 64, 10), ("breast_cancer", 30, 2), ("wine", 13, 3)])
def test_shipped_datasets_load_and_split(name, dim, classes):
    x, _ = load_dataset(name)
    split = make_federated(name, num_partners=3, seed=0)
    assert split.input_dim == dim and split.num_classes == classes
    assert sum(len(p) for p in split.partners) + len(split.eval_set) == len(x)
    assert all(p.modalities == split_modalities(dim, 3) for p in split.partners)


def test_unknown_dataset_is_refused():
    with pytest.raises(ConfigurationError, match="mnist"):
        make_federated("mnist", num_partners=2)


def test_split_is_deterministic_by_seed():
    a, b = (
        make_federated("digits", num_partners=4, alpha=0.5, seed=3),
        make_federated("digits", num_partners=4, alpha=0.5, seed=3),
    )
    c = make_federated("digits", num_partners=4, alpha=0.5, seed=4)
    for pa, pb in zip(a.partners, b.partners):
        assert np.array_equal(pa.features, pb.features) and np.array_equal(pa.labels, pb.labels)
    assert eval_commitment(a.eval_set) == eval_commitment(b.eval_set)
    assert any(len(pa) != len(pc) for pa, pc in zip(a.partners, c.partners))


def test_training_data_is_standardized_and_partners_disjoint():
    split = make_federated("wine", num_partners=3, seed=0)
    pooled = split.pooled()
    assert np.allclose(pooled.features.mean(axis=0), 0, atol=1e-5)
    assert np.allclose(pooled.features.std(axis=0), 1, atol=1e-4)
    rows = {row.tobytes() for p in split.partners for row in p.features}
    assert len(rows) == len(pooled)  # wine has no duplicate rows, so overlap would shrink the set


def test_clip_features_bounds_standardized_values_and_changes_only_those_beyond():
    plain = make_federated("digits", num_partners=3, seed=0)
    clipped = make_federated("digits", num_partners=3, seed=0, clip_features=2.0)
    for before, after in zip((*plain.partners, plain.eval_set), (*clipped.partners, clipped.eval_set)):
        assert np.abs(after.features).max() == pytest.approx(2.0)
        inside = np.abs(before.features) <= 2.0
        assert np.array_equal(after.features[inside], before.features[inside])
        assert np.array_equal(after.features[~inside], 2.0 * np.sign(before.features[~inside]))
        assert np.array_equal(after.labels, before.labels)
    assert (np.abs(plain.pooled().features) > 2.0).any()  # digits has such values: the clip is not a no-op
    with pytest.raises(ConfigurationError, match="clip_features must be > 0, got 0"):
        make_federated("digits", num_partners=3, clip_features=0)


def test_dirichlet_split_is_skewed_and_iid_is_not():
    iid = make_federated("digits", num_partners=5, seed=0)
    skewed = make_federated("digits", num_partners=5, alpha=0.1, seed=0)
    assert label_skew(iid) < 0.1
    assert label_skew(skewed) > 0.4
    # with alpha=0.1 some partner is missing most classes entirely
    assert min((p.label_distribution() > 0).sum() for p in skewed.partners) <= 6
    assert min(len(p) for p in skewed.partners) >= 10


@pytest.mark.parametrize("alpha", [None, 0.5])
def test_sizes_make_partners_unequal_and_leave_the_eval_set_alone(alpha):
    plain = make_federated("digits", num_partners=3, alpha=alpha, seed=0)
    sized = make_federated("digits", num_partners=3, alpha=alpha, seed=0, sizes=[1, 2, 3])
    small, middle, large = (len(p) for p in sized.partners)
    assert small < middle < large and large > 2 * small
    assert sum(len(p) for p in sized.partners) == sum(len(p) for p in plain.partners)
    assert eval_commitment(sized.eval_set) == eval_commitment(plain.eval_set)  # what the audit rebuilds
    with pytest.raises(ConfigurationError, match="sizes must be 3 positive weights"):
        make_federated("digits", num_partners=3, alpha=alpha, sizes=[1, 0, 2])


def test_bad_split_arguments_are_refused():
    with pytest.raises(ConfigurationError):
        make_federated("digits", num_partners=0)
    with pytest.raises(ConfigurationError):
        make_federated("digits", num_partners=2, alpha=0.0)
    with pytest.raises(ConfigurationError, match="Dirichlet"):
        make_federated("wine", num_partners=10, alpha=0.01, min_samples=14)


def test_eval_commitment_follows_the_documented_format():
    split = make_federated("wine", num_partners=2, seed=1)
    ev = split.eval_set
    header = json.dumps(
        {
            "features": {"dtype": "<f4", "shape": list(ev.features.shape)},
            "labels": {"dtype": "<i8", "shape": [len(ev)]},
        },
        sort_keys=True,
        separators=(",", ":"),
    ).encode()
    expected = hashlib.sha256(
        b"lepton-ledger/eval-set/v1\n"
        + header
        + b"\n"
        + ev.features.astype("<f4").tobytes()
        + ev.labels.astype("<i8").tobytes()
    ).digest()
    assert eval_commitment(ev) == expected and len(expected) == 32


def test_eval_commitment_changes_with_any_value_or_order():
    ev = make_federated("wine", num_partners=2, seed=1).eval_set
    base = eval_commitment(ev)
    feats = ev.features.copy()
    feats[3, 2] = np.nextafter(feats[3, 2], np.float32(np.inf))
    assert eval_commitment(from_arrays(feats, ev.labels, num_classes=3)) != base
    labels = ev.labels.copy()
    labels[0] = (labels[0] + 1) % 3
    assert eval_commitment(from_arrays(ev.features, labels, num_classes=3)) != base
    order = np.arange(len(ev))[::-1]
    assert eval_commitment(from_arrays(ev.features[order], ev.labels[order], num_classes=3)) != base


def test_from_arrays_validates():
    data = from_arrays(np.ones((4, 2, 2)), [0, 1, 2, 1])
    assert data.features.shape == (4, 4) and data.num_classes == 3 and data.features.dtype == np.float32
    with pytest.raises(ConfigurationError, match="NaN"):
        from_arrays([[1.0], [np.nan]], [0, 1])
    with pytest.raises(ConfigurationError, match=">= 0"):
        from_arrays([[1.0], [2.0]], [0, -1])
    with pytest.raises(ConfigurationError, match="labels"):
        from_arrays([[1.0], [2.0]], [0])
    with pytest.raises(ConfigurationError, match="integers"):
        from_arrays([[1.0], [2.0]], [0, 0.5])
    with pytest.raises(ConfigurationError, match="num_classes"):
        from_arrays([[1.0], [2.0]], [0, 3], num_classes=3)
    with pytest.raises(ConfigurationError, match="empty"):
        from_arrays(np.zeros((0, 3)), [])


def test_from_csv_reads_named_or_indexed_label(tmp_path):
    path = tmp_path / "mine.csv"
    path.write_text("a,label,b\n1.5,1,2\n-3,0,4.25\n")
    data = from_csv(path)
    assert data.features.tolist() == [[1.5, 2.0], [-3.0, 4.25]] and data.labels.tolist() == [1, 0]
    assert from_csv(path, label_column=1).labels.tolist() == [1, 0]
    with pytest.raises(ConfigurationError, match="target"):
        from_csv(path, label_column="target")
    bad = tmp_path / "bad.csv"
    bad.write_text("a,label\nx,1\n")
    with pytest.raises(ConfigurationError, match="bad.csv"):
        from_csv(bad)


def test_from_torch_dataset_matches_arrays():
    x = torch.randn(6, 2, 3, generator=torch.Generator().manual_seed(0))
    y = torch.tensor([0, 1, 1, 0, 2, 2])
    data = from_torch_dataset(torch.utils.data.TensorDataset(x, y))
    assert np.array_equal(data.features, x.reshape(6, -1).numpy()) and data.labels.tolist() == y.tolist()
    with pytest.raises(ConfigurationError, match="pair"):
        from_torch_dataset([torch.zeros(3)])


def test_batch_loader_fetches_the_same_shuffled_batches_as_a_plain_loader():
    data = make_federated("wine", num_partners=2, seed=0).partners[0]
    ours = list(batch_loader(data, batch_size=16, seed=3))
    plain = list(
        torch.utils.data.DataLoader(
            data.to_torch(), batch_size=16, shuffle=True, generator=torch.Generator().manual_seed(3)
        )
    )
    assert len(ours) == len(plain) == -(-len(data) // 16)
    for (x, y), (x_ref, y_ref) in zip(ours, plain):
        assert torch.equal(x, x_ref) and torch.equal(y, y_ref) and (x.dtype, y.dtype) == (torch.float32, torch.int64)
    # one epoch is a permutation: every sample exactly once
    indexed = from_arrays(np.arange(50, dtype=np.float64)[:, None], np.arange(50) % 2)
    seen = torch.cat([x[:, 0] for x, _ in batch_loader(indexed, batch_size=16, seed=3)])
    assert sorted(seen.long().tolist()) == list(range(50))
