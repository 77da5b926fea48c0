"""The package's promises about itself."""

import subprocess
import sys

from typer.testing import CliRunner

from lepton_ledger.cli import app


def test_importing_the_package_and_its_chain_layer_does_not_import_brownie():
    code = (
        "import sys, lepton_ledger, lepton_ledger.chain.deployment, lepton_ledger.chain.agreements, "
        "lepton_ledger.chain.merkle, lepton_ledger.chain.typed_data, lepton_ledger.cli; "
        "print('brownie' in sys.modules)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"


def test_cli_lists_its_commands():
    result = CliRunner().invoke(app, ["--help"])
    assert result.exit_code == 0
    assert "demo" in result.output


def test_cli_refuses_a_nonsense_dispute_window():
    result = CliRunner().invoke(app, ["demo", "--dispute-window", "0"])
    assert result.exit_code != 0
    assert "dispute-window" in result.output
