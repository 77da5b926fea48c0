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


def _hasher_after_import(**env: str) -> str:
    import os

    code = (
        "import lepton_ledger; from eth_utils import keccak; keccak(b''); "
        "from eth_hash.auto import keccak as k; print(type(k.hasher.__self__).__name__)"
    )
    environment = {k: v for k, v in os.environ.items() if k != "ETH_HASH_BACKEND"} | env
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=environment)
    return result.stdout.strip()


def test_keccak_is_the_c_extension_that_keeps_the_interpreter_lock_unless_the_user_chose():
    assert _hasher_after_import() == "PySha3Backend"
    assert _hasher_after_import(ETH_HASH_BACKEND="pycryptodome") == "CryptodomeBackend"


def test_cli_lists_its_commands():
    result = CliRunner().invoke(app, ["--help"])
    assert result.exit_code == 0
    assert "demo" in result.output


def test_cli_refuses_a_nonsense_dispute_window():
    result = CliRunner().invoke(app, ["demo", "--dispute-window", "0"])
    assert result.exit_code != 0
    assert "dispute-window" in result.output
