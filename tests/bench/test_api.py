"""Smoke test of bench/api.py: a tiny run (one second per route, two connections) against a real `serve
--workdir` on a fresh demo prints its settings, its figures and, last, the JSON line. Timings are not asserted."""

from __future__ import annotations

import importlib.util
import json
import shutil
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench" / "api.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench_api", BENCH)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    yield module
    sys.modules.pop(spec.name, None)


@pytest.mark.skipif(shutil.which("wrk") is None, reason="wrk is absent (Debian package `wrk`)")
def test_main_prints_the_ratio_as_its_last_line(bench, capsys):
    summary = bench.main(["--duration", "1", "--connections", "2"])
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0].startswith("bench/api.py: serve --workdir") and "wrk -t1 -c2 -d1s" in lines[0]
    printed = json.loads(lines[-1])
    assert printed == summary and set(printed) == {"rps_round_status", "rps_trivial", "ratio"}
    assert printed["rps_round_status"] > 0 and printed["rps_trivial"] > 0
    assert printed["ratio"] == pytest.approx(printed["rps_round_status"] / printed["rps_trivial"], rel=0.01)


@pytest.mark.parametrize("setting", ["duration", "connections", "threads", "repeats"])
def test_a_setting_below_one_is_refused_before_anything_starts(bench, setting):
    settings = {"duration": 1, "connections": 1, "threads": 1, "repeats": 1, "demo": None, setting: 0}
    with pytest.raises(ValueError, match=setting):
        bench.run(**settings)
