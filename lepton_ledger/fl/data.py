"""Data for federated rounds: the real data sets that ship inside scikit-learn, split across partners, a
held-out evaluation set with an on-chain commitment, and adapters for a partner's own data.

Nothing here downloads: ``load_digits``, ``load_breast_cancer`` and ``load_wine`` are files inside the
scikit-learn package.

Evaluation-set commitment (``eval_commitment``), format ``v1``. The digest is SHA-256 over the bytes::

    b"lepton-ledger/eval-set/v1\\n"
    + header + b"\\n"
    + features   (float32, little-endian, C order, shape (n, d))
    + labels     (int64, little-endian, shape (n,))

where ``header`` is the UTF-8 JSON ``{"features":{"dtype":"<f4","shape":[n,d]},"labels":{"dtype":"<i8","shape":[n]}}``
(keys sorted, no spaces). Any change to a value, the order of the rows, the dtype or the shape changes the
digest, so the coordinator can pass it to ``openRound`` before anyone trains and an auditor can recompute it
from the published evaluation set.
"""

from __future__ import annotations

import csv
import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, TensorDataset

from ..errors import ConfigurationError

DATASETS: tuple[str, ...] = ("digits", "breast_cancer", "wine")
COMMITMENT_DOMAIN = b"lepton-ledger/eval-set/v1\n"


class BatchedTensorDataset(TensorDataset):
    """A ``TensorDataset`` whose ``__getitems__`` returns a whole batch, ``(features[idx], labels[idx])``.

    ``DataLoader`` calls ``__getitems__`` with the batch sampler's index list when a dataset has one, then hands
    the result to ``collate_fn``; with ``keep_batch`` as collate the batch is used as fetched. The rows are the
    ones the default path (``__getitem__`` per index, then ``default_collate``) would stack, in the same order,
    so only the cost changes. An empty index list gives tensors with a batch dimension of 0, as Opacus builds
    for an empty Poisson batch.
    """

    def __getitems__(self, indices: list[int]) -> tuple[torch.Tensor, ...]:
        index = torch.as_tensor(indices, dtype=torch.long)
        return tuple(tensor.index_select(0, index) for tensor in self.tensors)


def keep_batch(batch: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, ...]:
    """The ``collate_fn`` for a ``BatchedTensorDataset``: the fetched batch is already collated."""
    return batch


def batch_loader(data: TabularData, *, batch_size: int, seed: int) -> DataLoader:
    """Shuffled batches of `data` (a seeded permutation each epoch), each fetched with one tensor indexing.

    Training starts from this loader on both sides: ``train_nonprivate`` iterates it as it is, and
    ``train_local`` rebuilds it with Opacus's ``DPDataLoader.from_data_loader`` (itself in the "bk" mode, through
    ``make_private`` in Opacus's modes), which keeps its dataset, collate and generator and replaces only the
    sampler with Poisson sampling. DP and non-private training therefore pay
    the same data path, and the Poisson batches are exactly those Opacus draws for a plain ``TensorDataset``.
    """
    return DataLoader(
        data.to_batched_torch(),
        batch_size=batch_size,
        shuffle=True,
        generator=torch.Generator().manual_seed(seed),
        collate_fn=keep_batch,
    )


@dataclass(frozen=True, eq=False)  # eq=False: comparing NumPy arrays with == has no single truth value
class TabularData:
    """Features (float32, shape (n, d)) and integer labels (int64, shape (n,)) of one party."""

    features: np.ndarray
    labels: np.ndarray
    num_classes: int
    modalities: tuple[int, ...] = field(default=())  # feature count of each modality, in column order

    def __post_init__(self) -> None:
        if self.features.ndim != 2 or self.labels.ndim != 1 or len(self.features) != len(self.labels):
            raise ConfigurationError(
                f"features must be (n, d) and labels (n,), got {self.features.shape} and {self.labels.shape}"
            )
        if self.modalities and sum(self.modalities) != self.features.shape[1]:
            raise ConfigurationError(f"modalities {self.modalities} do not add up to {self.features.shape[1]} features")

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def input_dim(self) -> int:
        return int(self.features.shape[1])

    def to_torch(self) -> TensorDataset:
        """The data as a ``TensorDataset`` of (float32 features, int64 labels)."""
        return TensorDataset(torch.from_numpy(self.features), torch.from_numpy(self.labels))

    def to_batched_torch(self) -> BatchedTensorDataset:
        """The data as a ``BatchedTensorDataset``: a ``DataLoader`` over it with ``collate_fn=keep_batch``
        fetches each batch with one tensor indexing instead of one ``__getitem__`` per sample and a collate."""
        return BatchedTensorDataset(torch.from_numpy(self.features), torch.from_numpy(self.labels))

    def label_distribution(self) -> np.ndarray:
        """Fraction of the samples in each class (length ``num_classes``)."""
        counts = np.bincount(self.labels, minlength=self.num_classes).astype(np.float64)
        return counts / max(1, counts.sum())


@dataclass(frozen=True, eq=False)
class FederatedSplit:
    """One data set split across partners, plus the held-out evaluation set the coordinator scores on."""

    dataset: str
    partners: tuple[TabularData, ...]
    eval_set: TabularData
    seed: int
    alpha: float | None  # Dirichlet concentration of the label skew; None means IID

    @property
    def num_classes(self) -> int:
        return self.eval_set.num_classes

    @property
    def input_dim(self) -> int:
        return self.eval_set.input_dim

    def pooled(self) -> TabularData:
        """All partners' training data in one set (for a centralized baseline)."""
        return TabularData(
            np.concatenate([p.features for p in self.partners]),
            np.concatenate([p.labels for p in self.partners]),
            self.num_classes,
            self.eval_set.modalities,
        )


def split_modalities(input_dim: int, count: int = 3) -> tuple[int, ...]:
    """Feature counts of `count` contiguous modalities over `input_dim` columns (as even as possible).

    For digits (8x8 images flattened row by row) three modalities are the top, middle and bottom bands.

    Raises:
        ConfigurationError: `count` is not between 1 and `input_dim`.
    """
    if not 1 <= count <= input_dim:
        raise ConfigurationError(f"cannot split {input_dim} features into {count} modalities")
    return tuple(len(part) for part in np.array_split(np.arange(input_dim), count))


def load_dataset(name: str) -> tuple[np.ndarray, np.ndarray]:
    """Raw features (float64) and labels (int64) of a scikit-learn data set.

    Raises:
        ConfigurationError: `name` is not one of ``DATASETS``.
    """
    from sklearn import datasets

    loaders = {
        "digits": datasets.load_digits,
        "breast_cancer": datasets.load_breast_cancer,
        "wine": datasets.load_wine,
    }
    if name not in loaders:
        raise ConfigurationError(f"unknown data set {name!r}; known: {', '.join(DATASETS)}")
    x, y = loaders[name](return_X_y=True)
    return np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.int64)


def make_federated(
    name: str,
    *,
    num_partners: int,
    alpha: float | None = None,
    eval_fraction: float = 0.2,
    seed: int = 0,
    min_samples: int = 10,
    modalities: int = 3,
    clip_features: float | None = None,
    sizes: Sequence[float] | None = None,
) -> FederatedSplit:
    """Splits a scikit-learn data set across `num_partners` partners and a held-out evaluation set.

    The evaluation set is a stratified `eval_fraction` of the data. The rest is split IID (`alpha` None: a
    seeded permutation cut into near-equal parts) or with Dirichlet label skew (`alpha` > 0: each class is
    divided among partners in proportions drawn from Dir(alpha); smaller alpha, stronger skew). `sizes` (one
    positive weight per partner) makes the partners' sizes unequal on top of that: the IID cut, or each class's
    Dirichlet shares, are weighted by them. Features are
    standardized with the mean and standard deviation of the training part: a simulation convenience, since
    real partners would agree on a scaling in the agreement's terms. With `clip_features`, standardized values
    are then clipped to ``[-clip_features, clip_features]`` (training and evaluation alike): under DP-SGD a rare
    pixel standardized to 20+ would dominate its sample's gradient norm, so that clipping the gradient shrinks
    the rest of it (bench/fl_utility.py). Same arguments, same split.

    Raises:
        ConfigurationError: unknown data set, `num_partners` < 1, `alpha` <= 0, `eval_fraction` outside (0, 1),
            `clip_features` <= 0, `sizes` not one positive weight per partner, or no Dirichlet draw in 100 gave
            every partner at least `min_samples` samples.
    """
    from sklearn.model_selection import train_test_split

    if num_partners < 1:
        raise ConfigurationError(f"num_partners must be >= 1, got {num_partners}")
    if alpha is not None and not alpha > 0:
        raise ConfigurationError(f"Dirichlet alpha must be > 0, got {alpha}")
    if not 0 < eval_fraction < 1:
        raise ConfigurationError(f"eval_fraction must be in (0, 1), got {eval_fraction}")
    if clip_features is not None and not clip_features > 0:
        raise ConfigurationError(f"clip_features must be > 0, got {clip_features}")
    weights = None if sizes is None else np.asarray(sizes, dtype=np.float64)
    if weights is not None and (weights.shape != (num_partners,) or not (weights > 0).all()):
        raise ConfigurationError(f"sizes must be {num_partners} positive weights, got {list(sizes or [])}")
    x, y = load_dataset(name)
    num_classes = int(y.max()) + 1
    x_train, x_eval, y_train, y_eval = train_test_split(x, y, test_size=eval_fraction, random_state=seed, stratify=y)
    mean, std = x_train.mean(axis=0), x_train.std(axis=0)
    std[std == 0] = 1.0  # constant pixels in digits: leave them at zero instead of dividing by zero
    x_train = ((x_train - mean) / std).astype(np.float32)
    x_eval = ((x_eval - mean) / std).astype(np.float32)
    if clip_features is not None:
        x_train, x_eval = (np.clip(x, -clip_features, clip_features) for x in (x_train, x_eval))
    mods = split_modalities(x.shape[1], modalities)

    rng = np.random.default_rng(seed)
    if alpha is None and weights is None:
        parts = np.array_split(rng.permutation(len(y_train)), num_partners)
    elif alpha is None:
        parts = np.split(rng.permutation(len(y_train)), _cuts(weights / weights.sum(), len(y_train)))
    else:
        parts = _dirichlet_parts(y_train, num_partners, alpha, rng, min_samples, weights)
    partners = tuple(TabularData(x_train[np.sort(idx)], y_train[np.sort(idx)], num_classes, mods) for idx in parts)
    return FederatedSplit(name, partners, TabularData(x_eval, y_eval, num_classes, mods), seed, alpha)


def _cuts(shares: np.ndarray, n: int) -> np.ndarray:
    """Where to cut `n` items into parts in proportion to `shares` (which sum to 1)."""
    return (np.cumsum(shares)[:-1] * n).astype(int)


def _dirichlet_parts(
    labels: np.ndarray,
    num_partners: int,
    alpha: float,
    rng: np.random.Generator,
    min_samples: int,
    weights: np.ndarray | None = None,
) -> list[np.ndarray]:
    for _ in range(100):
        parts: list[list[int]] = [[] for _ in range(num_partners)]
        for cls in np.unique(labels):
            idx = rng.permutation(np.flatnonzero(labels == cls))
            shares = rng.dirichlet(np.full(num_partners, alpha))
            if weights is not None:
                shares = shares * weights / (shares * weights).sum()
            cuts = _cuts(shares, len(idx))
            for part, chunk in zip(parts, np.split(idx, cuts)):
                part.extend(chunk.tolist())
        if min(len(p) for p in parts) >= min_samples:
            return [np.asarray(p, dtype=np.int64) for p in parts]
    raise ConfigurationError(
        f"no Dirichlet(alpha={alpha}) split gave all {num_partners} partners >= {min_samples} samples in 100 draws"
    )


def label_skew(split: FederatedSplit) -> float:
    """Mean total-variation distance between each partner's label distribution and the pooled one (0 = IID)."""
    pooled = split.pooled().label_distribution()
    return float(np.mean([0.5 * np.abs(p.label_distribution() - pooled).sum() for p in split.partners]))


def eval_commitment(eval_set: TabularData) -> bytes:
    """The 32-byte SHA-256 commitment to an evaluation set (format ``v1``, see the module docstring)."""
    features = np.ascontiguousarray(eval_set.features, dtype="<f4")
    labels = np.ascontiguousarray(eval_set.labels, dtype="<i8")
    header = json.dumps(
        {
            "features": {"dtype": "<f4", "shape": list(features.shape)},
            "labels": {"dtype": "<i8", "shape": list(labels.shape)},
        },
        sort_keys=True,
        separators=(",", ":"),
    ).encode()
    digest = hashlib.sha256(COMMITMENT_DOMAIN)
    digest.update(header + b"\n")
    digest.update(features.tobytes())
    digest.update(labels.tobytes())
    return digest.digest()


# --- adapters for a partner's own data ---------------------------------------------------------------


def from_arrays(
    features: np.ndarray | Sequence[Sequence[float]],
    labels: np.ndarray | Sequence[int],
    *,
    num_classes: int | None = None,
    modalities: tuple[int, ...] = (),
) -> TabularData:
    """Wraps NumPy arrays (or nested sequences) as ``TabularData``; images are flattened to rows.

    Raises:
        ConfigurationError: lengths differ, the set is empty, a feature is NaN/Inf, a label is negative,
            not an integer, or not below `num_classes`.
    """
    x = np.asarray(features, dtype=np.float64)
    y_raw = np.asarray(labels)
    if x.ndim == 0 or len(x) == 0:
        raise ConfigurationError("a partner's data set must not be empty")
    x = x.reshape(len(x), -1)  # one row per sample: images and 1-D features alike
    if y_raw.ndim != 1 or len(y_raw) != len(x):
        raise ConfigurationError(f"expected {len(x)} labels in one dimension, got shape {y_raw.shape}")
    if not np.isfinite(x).all():
        raise ConfigurationError("features contain NaN or Inf")
    if y_raw.dtype.kind == "f" and not np.all(np.mod(y_raw, 1) == 0):
        raise ConfigurationError("labels must be integers")
    if y_raw.dtype.kind not in "iuf":
        raise ConfigurationError(f"labels must be integers, got dtype {y_raw.dtype}")
    y = y_raw.astype(np.int64)
    if y.min() < 0:
        raise ConfigurationError("labels must be >= 0")
    classes = int(y.max()) + 1 if num_classes is None else num_classes
    if y.max() >= classes:
        raise ConfigurationError(f"label {int(y.max())} is not below num_classes={classes}")
    return TabularData(x.astype(np.float32), y, classes, modalities)


def from_csv(
    path: str | Path,
    *,
    label_column: str | int = "label",
    num_classes: int | None = None,
    delimiter: str = ",",
    modalities: tuple[int, ...] = (),
) -> TabularData:
    """Reads a CSV file with a header row; every column but `label_column` (a name, or an index) is a feature.

    Raises:
        ConfigurationError: the file is empty, the label column is missing, a value is not a number, or
            anything ``from_arrays`` refuses. ``OSError`` when the file cannot be read.
    """
    with open(path, newline="") as handle:
        rows = list(csv.reader(handle, delimiter=delimiter))
    if len(rows) < 2:
        raise ConfigurationError(f"{path}: needs a header row and at least one data row")
    header, body = rows[0], [r for r in rows[1:] if r]
    if isinstance(label_column, int):
        col = label_column
        if not -len(header) <= col < len(header):
            raise ConfigurationError(f"{path}: no column {col} (there are {len(header)})")
        col %= len(header)
    elif label_column in header:
        col = header.index(label_column)
    else:
        raise ConfigurationError(f"{path}: no column named {label_column!r} in {header}")
    try:
        table = np.array([[float(v) for v in row] for row in body], dtype=np.float64)
    except ValueError as exc:
        raise ConfigurationError(f"{path}: {exc}") from exc
    if table.shape[1] != len(header):
        raise ConfigurationError(f"{path}: rows have {table.shape[1]} values, header has {len(header)}")
    return from_arrays(np.delete(table, col, axis=1), table[:, col], num_classes=num_classes, modalities=modalities)


def from_torch_dataset(
    dataset: Dataset, *, num_classes: int | None = None, modalities: tuple[int, ...] = ()
) -> TabularData:
    """Materializes a map-style torch ``Dataset`` of ``(features, label)`` items (features are flattened).

    Raises:
        ConfigurationError: an item is not a (features, label) pair, or anything ``from_arrays`` refuses.
    """
    xs, ys = [], []
    for i in range(len(dataset)):  # type: ignore[arg-type]
        item = dataset[i]
        if not isinstance(item, (tuple, list)) or len(item) != 2:
            raise ConfigurationError(f"item {i} is not a (features, label) pair")
        x, y = item
        xs.append(torch.as_tensor(x).detach().cpu().reshape(-1).numpy())
        ys.append(int(torch.as_tensor(y).item()))
    if not xs:
        raise ConfigurationError("a partner's data set must not be empty")
    return from_arrays(np.stack(xs), np.asarray(ys), num_classes=num_classes, modalities=modalities)
