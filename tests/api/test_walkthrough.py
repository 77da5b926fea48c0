"""The README's "Walk it over HTTP" block runs as written on a finished demo's copy: the demo's keys put in its
keystore, `lepton-ledger serve --workdir demo-out` started with them, and examples/walkthrough.py taking every
party through a new agreement over HTTP alone (sign-in, proposal, relayed signatures, stakes, funding, a round
trained and uploaded by the partners, the close job, claims, the audit job and its report)."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from rich.console import Console

from lepton_ledger.rounds.demo import run_demo

ROOT = Path(__file__).resolve().parents[2]
STEPS = (
    "service",
    "sign-in",
    "propose",
    "sign",
    "stake",
    "fund",
    "open",
    "update",
    "close",
    "claim",
    "audit",
    "report",
)


def _block() -> str:
    match = re.search(r"<!-- test: walk\b.*?-->\n```bash\n(.*?)```", (ROOT / "README.md").read_text(), re.DOTALL)
    assert match, "the README has no walk block"
    return match.group(1)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> Path:
    """The smallest demo whose partners both earn (no free-rider), with no dispute window to wait out (the
    service's chain mines only when sent a transaction)."""
    out = tmp_path_factory.mktemp("walk-demo") / "demo-out"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("LEPTON_DATA_DIR", str(tmp_path_factory.mktemp("walk-data")))
        run_demo(out, partners=2, rounds=1, free_rider=False, dispute_window=0, console=Console(quiet=True))
    return out


def test_the_readme_walk_over_http_runs_as_written(demo, tmp_path):
    (tmp_path / "examples").symlink_to(ROOT / "examples")  # the block runs from a checkout holding demo-out
    subprocess.run(["cp", "-r", str(demo), str(tmp_path / "demo-out")], check=True)
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("LEPTON_")},
        "PYTHONPATH": str(ROOT),
        "LEPTON_API_PORT": str(_free_port()),
        "PATH": f"{ROOT / '.venv' / 'bin'}:{os.environ['PATH']}",
    }
    # Files, not pipes: the service the block starts may outlive bash by a moment, holding a pipe open.
    with open(tmp_path / "out", "w") as out, open(tmp_path / "err", "w") as err:
        done = subprocess.run(
            ["bash", "-e", "-c", _block()], cwd=tmp_path, env=env, stdout=out, stderr=err, timeout=600, check=False
        )
    stdout, stderr = (tmp_path / "out").read_text(), (tmp_path / "err").read_text()
    assert done.returncode == 0, stdout[-3000:] + stderr[-3000:]
    lines = [line for line in stdout.splitlines() if not line.startswith(("coordinator:", "auditor:"))]
    assert {line.split()[0] for line in lines} == set(STEPS), stdout  # one line per step, every step
    assert re.search(r"^propose +agreement 2 between partner1, partner2", stdout, re.MULTILINE)
    assert re.search(r"^stake +partner2 staked 1 LRW .*: active$", stdout, re.MULTILINE)  # the last stake activates
    assert len(re.findall(r"^update +partner\d trained", stdout, re.MULTILINE)) == 2
    assert re.search(r"^close +round 1 finalized: 2 accepted", stdout, re.MULTILINE)
    assert len(re.findall(r"^claim +partner\d claimed [0-9.]+ LRW", stdout, re.MULTILINE)) == 2
    assert re.search(r"^audit +\d+ checks at block \d+, 0 failed$", stdout, re.MULTILINE)
    assert "<title>" in (tmp_path / "audit-report.html").read_text()


def test_a_refusal_is_one_error_line_and_exit_code_1(demo, tmp_path):
    """Nothing answers at the URL: the first request is refused, in one line."""
    done = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "walkthrough.py"), f"http://127.0.0.1:{_free_port()}"]
        + ["--workdir", str(demo)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert done.returncode == 1 and done.stdout == ""
    assert re.fullmatch(r"error: the service at http://127\.0\.0\.1:\d+ does not answer: .*\n", done.stderr)
