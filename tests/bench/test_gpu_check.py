"""bench/gpu_check.py runs as is on any machine: on CPU-only ones it says it skipped and exits 0, on a GPU
machine it runs its checks and exits 0 only when they hold."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import torch

SCRIPT = Path(__file__).resolve().parents[2] / "bench" / "gpu_check.py"


def test_gpu_check_prints_its_json_line_and_exits_cleanly():
    done = subprocess.run([sys.executable, str(SCRIPT), "--repeats", "2"], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["skipped"] is (not torch.cuda.is_available())
    if not result["skipped"]:
        assert result["ok"] and result["gpus_used"] == result["gpus_visible"]
