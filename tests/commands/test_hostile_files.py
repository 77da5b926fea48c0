"""JSON files handed to the commands (a deployment document, a relayed signature, a terms file, the audit's
deployment) are read through the protocol layer's bounded reader (issue 11): a deeply nested or oversized file is
one error line, never a RecursionError traceback."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from lepton_ledger.audit.cli import audit_app
from lepton_ledger.commands.context import CommandError, load_deployment_document
from lepton_ledger.commands.coordinator import coordinator_app

NESTED = b"[" * 100_000 + b"]" * 100_000


@pytest.fixture
def nested(tmp_path):
    path = tmp_path / "nested.json"
    path.write_bytes(NESTED)
    return path


def test_a_nested_deployment_document_is_a_command_error(nested):
    with pytest.raises(CommandError, match="not valid JSON"):
        load_deployment_document(nested)


@pytest.mark.parametrize("args", [["relay-signature", "{file}", "--key", "nobody"],
                                  ["propose", "--terms-file", "{file}", "--key", "nobody"]])  # fmt: skip
def test_a_nested_file_given_to_a_coordinator_command_is_one_error_line(nested, args):
    run = CliRunner().invoke(coordinator_app, [a.format(file=nested) for a in args])
    assert run.exit_code != 0 and not isinstance(run.exception, RecursionError), run.output
    assert "Traceback" not in run.output and "error" in run.output.lower()


def test_a_nested_deployment_file_stops_the_audit_with_exit_2(nested, tmp_path):
    key = tmp_path / "key.json"
    key.write_text('{"x25519_private_key": "' + "11" * 32 + '"}')
    (tmp_path / "store" / "blocks").mkdir(parents=True)
    run = CliRunner().invoke(audit_app, ["--rpc", "http://127.0.0.1:9", "--deployment", str(nested), "--ipfs",
                                         str(tmp_path / "store"), "--key", str(key)])  # fmt: skip
    assert run.exit_code == 2 and "nested deeper" in run.output and run.output.count("\n") <= 2, run.output
