"""The data options shared by ``partner train-and-submit`` and ``coordinator open|close``; what they select is
rounds/datasets.py's (a split of a scikit-learn data set, or a CSV file). ``--num-classes`` fixes the label
count of a CSV, so that partners whose files lack a class still build the same model.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ..rounds.datasets import eval_data, partner_data

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
