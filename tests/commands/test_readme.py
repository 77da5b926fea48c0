"""The README's command blocks run as written, as a newcomer runs them: the manual round (new keys funded by the
local node, two partners training at once, time moved past the dispute window, the audit on the commands' own
deployment), the trust-model walk (the arbiter rules, anyone abandons a stale round, the funder reclaims) and the
brownie section (the three scripts on the local node, each `brownie run` attaching to it)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from lepton_ledger.chain import node
from lepton_ledger.chain.anvil import free_port

ROOT = Path(__file__).resolve().parents[2]


def readme_block(name: str) -> str:
    """The ```bash block that follows the README's ``<!-- test: NAME ...-->`` marker."""
    match = re.search(
        rf"<!-- test: {re.escape(name)}\b.*?-->\n```bash\n(.*?)```", (ROOT / "README.md").read_text(), re.DOTALL
    )
    assert match, f"no README block marked {name!r}"
    return match[1]


def run_block(block: str, *, cwd: Path, data_dir: Path, **env: str) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("LEPTON_")}
    environ = {**clean, "PYTHONPATH": str(ROOT), "LEPTON_DATA_DIR": str(data_dir), **env}
    try:
        return subprocess.run(
            ["bash", "-euo", "pipefail", "-c", block],
            cwd=cwd,
            env=environ,
            text=True,
            capture_output=True,
            timeout=900,
            check=False,
        )
    finally:
        node.stop(data_dir)


def test_the_manual_round_runs_as_written(tmp_path):
    done = run_block(readme_block("manual round"), cwd=ROOT, data_dir=tmp_path / "data")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    out = done.stdout
    assert out.count("round 1: submitted ") == 2  # both partners, trained at the same time
    assert len(re.findall(r"claimed [0-9.]+ for round 1 of agreement 1", out)) == 2
    assert "every check holds" in out and "stopped the local node" in out


def test_the_trust_model_walk_runs_as_written(tmp_path):
    done = run_block(readme_block("trust model"), cwd=ROOT, data_dir=tmp_path / "data")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    out = done.stdout
    assert "challenge 1: agreement 1, round 1" in out and "rule by " in out and "challenge 1 dismissed" in out
    assert "abandoned round 1 of agreement 1" in out and "challenge:        1, round 1, Dismissed" in out
    assert "restored round 1 of agreement 1: an entry proven forged gives its epsilon back, signed" in out
    # alice's standing after the restore: her signed update of the abandoned round stays charged on-chain
    (on_chain,) = re.findall(r"epsilon on-chain: ([0-9.]+)", out)
    (local,) = re.findall(r"epsilon local: +([0-9.]+)", out)
    assert float(on_chain) > 0 and abs(float(on_chain) - float(local)) < 2e-6
    assert "left agreement 1" in out and "withdrew 100 of its stake in agreement 1" in out  # alice's stake back
    assert "reclaimed 300 tokens of agreement 1" in out and "stopped the local node" in out


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
def test_the_brownie_section_runs_as_written_on_the_local_node(tmp_path):
    project = tmp_path / "project"  # a copy of the brownie project, so that brownie-out/ lands there
    project.mkdir()
    (project / "tests").mkdir()
    for name in ("contracts", "interfaces", "node_modules", ".toolchain", ".venv", "tests/contracts"):
        (project / name).symlink_to(ROOT / name)
    # copied, not linked: brownie names a script's module after its resolved path, and a checkout in a folder
    # whose name has a dot (mktemp -d gives /tmp/tmp.XXXX) would make that name unimportable
    shutil.copytree(ROOT / "scripts", project / "scripts")
    for name in ("brownie-config.yaml", "brownie.env"):
        shutil.copy(ROOT / name, project / name)
    shutil.copytree(ROOT / "build", project / "build")
    port = free_port()
    done = run_block(readme_block("brownie"), cwd=project, data_dir=tmp_path / "data", LEPTON_NODE_PORT=str(port))
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    out = done.stdout
    assert out.count(f"Attached to local RPC client listening at '127.0.0.1:{port}'") == 3  # no private chains
    assert "agreement active" in out and "round 1 finalized" in out
    assert (project / "brownie-out" / "deployment.json").is_file()
