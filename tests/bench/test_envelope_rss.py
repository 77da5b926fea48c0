"""Smoke test of bench/envelope_rss.py: a small envelope is fetched from a real LocalStore and opened in a child
process, which checks that every value came back; the last line is the JSON of figures. Memory is not asserted."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "bench" / "envelope_rss.py"


def test_prints_its_figures_as_a_json_last_line():
    out = subprocess.run([sys.executable, str(BENCH), "--mb", "2"], check=True, capture_output=True, text=True).stdout
    figures = json.loads(out.strip().splitlines()[-1])
    assert set(figures) == {"envelope_mb", "baseline_rss_mb", "peak_rss_mb", "peak_over_baseline_mb", "ratio_over_size"}
    assert figures["envelope_mb"] >= 2 and figures["peak_rss_mb"] >= figures["baseline_rss_mb"] > 0
