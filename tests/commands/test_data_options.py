"""The data options of the role commands: a partition of a scikit-learn split, or a CSV file."""

from __future__ import annotations

import numpy as np
import pytest

from lepton_ledger.commands.context import CommandError
from lepton_ledger.commands.data import eval_data, partner_data
from lepton_ledger.errors import ConfigurationError
from lepton_ledger.fl.data import eval_commitment, make_federated

DIGITS = {"dataset": "digits", "partitions": 3, "seed": 1, "csv": None, "label_column": "label", "num_classes": None}


def test_a_partition_and_the_eval_set_are_those_of_the_split():
    split = make_federated("digits", num_partners=3, seed=1)
    mine = partner_data(partition=2, **DIGITS)
    assert np.array_equal(mine.features, split.partners[2].features)
    assert eval_commitment(eval_data(**DIGITS)) == eval_commitment(split.eval_set)


def test_a_partition_out_of_range_is_named():
    with pytest.raises(CommandError, match="--partition 3 must be below --partitions 3"):
        partner_data(partition=3, **DIGITS)


def test_csv_data_with_a_fixed_class_count(tmp_path):
    path = tmp_path / "mine.csv"
    path.write_text("a,b,y\n0.5,1.0,0\n1.5,2.0,1\n2.5,3.0,1\n")
    options = {**DIGITS, "csv": path, "label_column": "y", "num_classes": 4}
    data = partner_data(partition=0, **options)
    assert (len(data), data.input_dim, data.num_classes) == (3, 2, 4)
    assert eval_commitment(eval_data(**options)) == eval_commitment(data)
    with pytest.raises(ConfigurationError, match="no column named 'label'"):
        partner_data(partition=0, **{**options, "label_column": "label"})
