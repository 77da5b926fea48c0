"""The data options shared by ``partner train-and-submit`` and ``coordinator open|close``.

Either a scikit-learn data set split as ``fl.make_federated(dataset, num_partners=N, seed=S)`` splits it (a
partner trains on partition I, the coordinator scores on the split's held-out evaluation set, which depends on
the seed only), or a CSV file with a header row (``fl.data.from_csv``): a partner trains on all of it, the
coordinator evaluates on all of it. ``--num-classes`` fixes the label count of a CSV, so that partners whose
files lack a class still build the same model.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from .context import CommandError

__all__ = [
    "CsvOpt",
    "DatasetOpt",
    "LabelColumnOpt",
    "NumClassesOpt",
    "PartitionOpt",
    "PartitionsOpt",
    "SeedOpt",
    "eval_data",
    "partner_data",
]

DatasetOpt = Annotated[str, typer.Option("--dataset", help="scikit-learn data set: digits, breast_cancer or wine.")]
PartitionOpt = Annotated[int, typer.Option("--partition", min=0, help="This partner's partition (0-based).")]
PartitionsOpt = Annotated[int, typer.Option("--partitions", min=1, help="Number of partitions of the data set.")]
SeedOpt = Annotated[int, typer.Option("--seed", help="Seed of the split (same seed, same split everywhere).")]
CsvOpt = Annotated[Path | None, typer.Option("--csv", help="A CSV file with a header row instead of --dataset.")]
LabelColumnOpt = Annotated[str, typer.Option("--label-column", help="The CSV's label column.")]
NumClassesOpt = Annotated[int | None, typer.Option("--num-classes", min=2, help="Label count of the CSV data.")]


def _split(dataset: str, partitions: int, seed: int) -> Any:
    from ..fl.data import make_federated

    return make_federated(dataset, num_partners=partitions, seed=seed, alpha=None, eval_fraction=0.2)


def partner_data(
    *,
    dataset: str,
    partition: int,
    partitions: int,
    seed: int,
    csv: Path | None,
    label_column: str,
    num_classes: int | None,
) -> Any:
    """The partner's training data (``fl.TabularData``).

    Raises:
        CommandError: `partition` is not below `partitions`.
        ConfigurationError: unknown data set, or a CSV that ``from_csv`` refuses. OSError: unreadable CSV.
    """
    if csv is not None:
        from ..fl.data import from_csv

        return from_csv(csv, label_column=label_column, num_classes=num_classes)
    if partition >= partitions:
        raise CommandError(f"--partition {partition} must be below --partitions {partitions}")
    return _split(dataset, partitions, seed).partners[partition]


def eval_data(
    *, dataset: str, partitions: int, seed: int, csv: Path | None, label_column: str, num_classes: int | None
) -> Any:
    """The coordinator's held-out evaluation set (``fl.TabularData``); raises as :func:`partner_data`."""
    if csv is not None:
        from ..fl.data import from_csv

        return from_csv(csv, label_column=label_column, num_classes=num_classes)
    return _split(dataset, partitions, seed).eval_set
