"""The README's service section runs as written, on a data directory where a round was run."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
from pathlib import Path

from service_world import PASSWORD, build_world

from lepton_ledger.chain import node

ROOT = Path(__file__).resolve().parents[2]


def _block() -> str:
    match = re.search(r"<!-- test: serve\b.*?-->\n```bash\n(.*?)```", (ROOT / "README.md").read_text(), re.DOTALL)
    assert match, "the README has no serve block"
    return match.group(1)


def test_the_readme_service_section_runs_as_written(tmp_path, monkeypatch):
    monkeypatch.setenv("LEPTON_DATA_DIR", str(tmp_path))
    info, _ = node.start(tmp_path)
    try:
        build_world(tmp_path, info.url)
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        env = {
            **os.environ,
            "LEPTON_DATA_DIR": str(tmp_path),
            "LEPTON_KEYSTORE_PASSWORD": PASSWORD,
            "LEPTON_API_PORT": str(port),
            "PATH": f"{ROOT / '.venv' / 'bin'}:{os.environ['PATH']}",
        }
        # Files, not pipes: the service the block starts may outlive bash by a moment, holding a pipe open.
        with open(tmp_path / "out", "w") as out, open(tmp_path / "err", "w") as err:
            done = subprocess.run(
                ["bash", "-e", "-c", _block()], cwd=ROOT, env=env, stdout=out, stderr=err, timeout=120, check=False
            )
    finally:
        node.stop(tmp_path)
    assert done.returncode == 0, (tmp_path / "err").read_text()[-3000:]
    lines = (tmp_path / "out").read_text().splitlines()
    health, round_ = (json.loads(line) for line in lines[:2])
    assert health["status"] == "ok" and round_["status"] == "finalized" and round_["submissions"] == 2
    assert lines[2].startswith("<title>lepton-ledger: chain 31337, block ")
