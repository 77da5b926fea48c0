"""bench/fl_utility.py: the sweep's JSON line carries accuracy per epsilon within the accountants' budget, and
the validation split a search scores on comes from the partners' data alone."""

from __future__ import annotations

import importlib.util
import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np

from lepton_ledger.fl.data import make_federated

SCRIPT = Path(__file__).resolve().parents[2] / "bench" / "fl_utility.py"


def _run(*argv: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), *argv], capture_output=True, text=True, timeout=600)


def test_sweep_reports_each_epsilon_within_its_budget_beside_the_baseline():
    done = _run("--sweep", "--epsilons", "1", "3", "--rounds", "2", "--seeds", "2")
    assert done.returncode == 0, done.stdout + done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert [entry["epsilon"] for entry in result["sweep"]] == [1.0, 3.0]
    for entry in result["sweep"]:
        assert 0 < entry["epsilon_spent"] <= entry["epsilon"]  # the accountants' figure for the whole schedule
        assert entry["seeds"] == 2
        assert 0 <= entry["accuracy_min"] <= entry["accuracy"] <= 1
    assert 0 < result["baseline_accuracy_min"] <= result["baseline_accuracy"] <= 1
    assert result["settings"]["holdout"] == "eval" and result["settings"]["rounds"] == 2
    assert result["settings"]["clip_features"] == 2.0


def test_bad_settings_are_refused_in_one_line():
    for argv, message in (
        (("--sweep", "--epsilons", "0"), "--delta must be in (0, 1) and every --epsilons value > 0"),
        (("--clip-features", "-1"), "--clip-features must be >= 0 (0: no clipping), got -1.0"),
        (("--noise-multiplier", "-1"), "--noise-multiplier must be >= 0 (0: the --epsilon schedule's), got -1.0"),
    ):
        done = _run(*argv)
        assert done.returncode == 2
        assert done.stderr.strip().splitlines()[-1].endswith(message)


def test_demo_data_and_a_fixed_noise_train_as_the_demo_does():
    done = _run("--demo-data", "--noise-multiplier", "1", "--epsilon", "10", "--rounds", "1", "--clip-features", "0")
    assert done.returncode == 0, done.stdout + done.stderr
    sizes = [int(n) for n in re.search(r"partners \(([\d, ]+) samples\)", done.stdout).group(1).split(", ")]
    assert sizes[0] < sizes[1] < sizes[2]  # the demo's relative sizes 1, 2, 3 (its Dirichlet skew on top)
    assert "federated DP (noise 1.000)" in done.stdout
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["settings"]["demo_data"] is True and result["settings"]["noise_multiplier"] == 1.0
    assert 0 < result["epsilon_max"] <= 10


def test_a_fixed_noise_that_overruns_the_cap_is_refused_in_one_line():
    done = _run("--noise-multiplier", "0.3", "--epsilon", "1", "--rounds", "3")
    assert done.returncode == 1
    assert len(done.stderr.strip().splitlines()) == 1 and done.stderr.startswith("fl_utility: "), done.stderr


def test_the_validation_split_is_cut_from_the_partners_data_and_leaves_the_evaluation_set_out():
    spec = importlib.util.spec_from_file_location("fl_utility", SCRIPT)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    split = make_federated("digits", num_partners=3, seed=0)
    kept, validation = bench.holdout_validation(list(split.partners), seed=0)

    def rows(features: np.ndarray) -> set[bytes]:
        return {row.tobytes() for row in features}

    partner_rows = rows(np.concatenate([p.features for p in split.partners]))
    kept_rows = rows(np.concatenate([p.features for p in kept]))
    assert [len(k) for k in kept] == [len(p) - len(p) // 5 for p in split.partners]
    assert len(validation) == sum(len(p) // 5 for p in split.partners)
    assert rows(validation.features) | kept_rows == partner_rows
    assert not rows(validation.features) & kept_rows
    assert not rows(validation.features) & rows(split.eval_set.features)
