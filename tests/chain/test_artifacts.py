"""The Python package reads brownie's artifacts: they must be what the sources compile to now."""

import shutil

from lepton_ledger.chain.artifacts import stale_artifacts
from lepton_ledger.settings import PROJECT_ROOT, artifacts_dir


def test_the_build_matches_every_contract_and_interface_source():
    assert stale_artifacts() == []


def test_an_edited_or_new_source_is_reported_stale(tmp_path):
    for folder in ("contracts", "interfaces"):
        shutil.copytree(PROJECT_ROOT / folder, tmp_path / folder)
    edited = tmp_path / "contracts" / "RoundLedger.sol"
    edited.write_text(edited.read_text() + "\n// an edit after the last build\n")
    (tmp_path / "contracts" / "Unbuilt.sol").write_text("// SPDX-License-Identifier: Apache-2.0\n")
    assert stale_artifacts(artifacts_dir(), project_root=tmp_path) == [
        "contracts/RoundLedger.sol",
        "contracts/Unbuilt.sol",
    ]
