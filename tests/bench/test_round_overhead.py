"""Smoke test of bench/round_overhead.py: a tiny run (2 partners, 1 timed round) on a real anvil, real Opacus and
real envelopes prints its JSON line, and both sides really did the same ML work. Timings are not asserted."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench" / "round_overhead.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("round_overhead", BENCH)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up by name
    spec.loader.exec_module(module)
    yield module
    sys.modules.pop(spec.name, None)


def test_main_prints_the_ratio_as_its_last_line(bench, capsys):
    summary = bench.main(["--partners", "2", "--rounds", "1", "--warmup", "0"])  # no warm-up: a smoke test
    last = capsys.readouterr().out.strip().splitlines()[-1]
    printed = json.loads(last)
    assert printed == summary
    assert set(printed) == {
        "partners",
        "mode",
        "model",
        "epochs",
        "rounds",
        "warmup",
        "ratio",
        "ratio_median",
        "ledger_s",
        "bare_s",
        "same_result",
        "setup_s",
        "rpc_requests",
        "rpc_requests_per_partner",
        "rpc_requests_close",
        "receipt_polls_pending",
        "workers",
        "close_ms_per_partner",
        "ledger_cpu_ms",
        "bare_cpu_ms",
        *(("cores", "ledger_all_cpu_ms", "bare_all_cpu_ms", "ratio_floor") if bench.processes_cpu_s() else ()),
    }
    assert (printed["partners"], printed["mode"], printed["rounds"], printed["warmup"]) == (2, "single", 1, 0)
    assert printed["ratio"] > 0 and printed["ledger_s"] > 0 and printed["bare_s"] > 0
    # Seeded training: the ledger's round and the bare round must reach the same aggregate and payouts.
    assert printed["same_result"] is True
    # A partner's round is three requests (its reads, the send, the receipt), within the round's.
    assert printed["rpc_requests_per_partner"] == 3
    assert 2 * 3 + printed["rpc_requests_close"] < printed["rpc_requests"]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the per-thread scheduler figures are Linux's")
def test_the_cpu_of_every_process_counts_a_live_childs_work(bench):
    before = bench.processes_cpu_s()
    burn = "import time\nt = time.process_time()\nwhile time.process_time() - t < 0.3: pass\nprint('burnt', flush=True)\ninput()"
    child = subprocess.Popen([sys.executable, "-c", burn], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline() == "burnt\n"
        after = bench.processes_cpu_s()  # the child still lives, waiting for its input
    finally:
        child.communicate("")
    assert after - before >= 0.3


@pytest.mark.parametrize(
    ("kwargs", "named"),
    [
        ({"partners": 0, "rounds": 1, "mode": "single"}, "partners"),
        ({"partners": 2, "rounds": 0, "mode": "single"}, "rounds"),
        ({"partners": 2, "rounds": 1, "mode": "parallel"}, "mode"),
    ],
)
def test_bad_settings_are_refused_before_anything_starts(bench, kwargs, named):
    with pytest.raises(ValueError, match=named):
        bench.run(**kwargs)


def test_batched_mode_prints_the_anchoring_throughput(bench, capsys):
    summary = bench.main(["--partners", "2", "--rounds", "1", "--warmup", "0", "--mode", "batched"])
    printed = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert printed == summary and printed["same_result"] is True
    assert printed["anchored_per_s"] == pytest.approx(2 / printed["anchor_s"], rel=0.01)  # both printed rounded
    assert 0 < printed["anchor_s"] <= printed["first_signed_to_anchored_s"]
    assert printed["anchored_per_s_from_first_signed"] == pytest.approx(
        2 / printed["first_signed_to_anchored_s"], rel=0.01
    )
    assert printed["rpc_requests"] > 0 and printed["close_ms_per_partner"] > 0
    assert printed["rpc_requests_per_partner"] == 1 and printed["rpc_requests_anchor"] > 0  # its reads, one batch
