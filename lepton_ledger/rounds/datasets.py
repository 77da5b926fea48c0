"""The data a party's step works on, as the data options name it (the commands' ``--dataset``, ``--partition``,
``--partitions``, ``--seed``, ``--csv``, ``--label-column``, ``--num-classes``; the service's close job).

Either a scikit-learn data set split as ``fl.make_federated(dataset, num_partners=N, seed=S)`` splits it (a
partner trains on partition I, the coordinator scores on the split's held-out evaluation set, which depends on
the seed only), or a CSV file with a header row (``fl.data.from_csv``): a partner trains on all of it, the
coordinator evaluates on all of it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..errors import CommandError

__all__ = ["eval_data", "partner_data"]


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
