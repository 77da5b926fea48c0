"""JSON files handed to the commands (a deployment document, a relayed signature, a terms file, the audit's
deployment) are read through the protocol layer's bounded reader (issue 11): a deeply nested or oversized file is
one error line, never a RecursionError traceback."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from lepton_ledger.commands.audit import audit_app
from lepton_ledger.commands.context import CommandError, load_deployment_document
from lepton_ledger.commands.coordinator import coordinator_app

NESTED = b"[" * 100_000 + b"]" * 100_000


@pytest.fixture
def nested(tmp_path):
    path = tmp_path / "nested.json"
    path.write_bytes(NESTED)
    return path


def test_an_endless_deployment_file_is_refused_without_being_read_whole():
    # /dev/zero never ends: reading it whole before checking the bound used all memory
    with pytest.raises(CommandError, match="more than"):
        load_deployment_document(Path("/dev/zero"))


@pytest.mark.parametrize("content", [b'{"history": [', b"[1]", b'{"accountant": {"kind": 7}}'])
def test_a_damaged_accountant_file_is_one_command_error_naming_it(tmp_path, content):
    from lepton_ledger.commands.partner.standing import _local_epsilon

    path = tmp_path / "1-0xabc.json"
    path.write_bytes(content)
    with pytest.raises(CommandError, match=str(path)):
        _local_epsilon(path)


def test_a_nested_deployment_document_is_a_command_error(nested):
    with pytest.raises(CommandError, match="not valid JSON"):
        load_deployment_document(nested)


@pytest.mark.parametrize(
    "args", [["relay-signature", "{file}", "--key", "nobody"], ["propose", "--terms-file", "{file}", "--key", "nobody"]]
)
def test_a_nested_file_given_to_a_coordinator_command_is_one_error_line(nested, args):
    run = CliRunner().invoke(coordinator_app, [a.format(file=nested) for a in args])
    assert run.exit_code != 0 and not isinstance(run.exception, RecursionError), run.output
    assert "Traceback" not in run.output and "error" in run.output.lower()


def test_a_nested_deployment_file_stops_the_audit_with_exit_2(nested, tmp_path):
    key = tmp_path / "key.json"
    key.write_text('{"x25519_private_key": "' + "11" * 32 + '"}')
    (tmp_path / "store" / "blocks").mkdir(parents=True)
    run = CliRunner().invoke(
        audit_app,
        [
            "--rpc-url",
            "http://127.0.0.1:9",
            "--deployment",
            str(nested),
            "--ipfs",
            str(tmp_path / "store"),
            "--key",
            str(key),
        ],
    )
    assert run.exit_code == 2 and "nested deeper" in run.output and run.output.count("\n") <= 2, run.output


@pytest.mark.parametrize("deadline", [10**79, -5])
def test_a_signature_file_with_an_out_of_range_number_is_one_error_line(tmp_path, deadline):
    # web3 used to refuse it while encoding the call, with a 52-line traceback
    path = tmp_path / "sig.json"
    path.write_text(
        '{"version": 1, "agreement_id": 1, "deadline": %d, "party": "0x%s", "signature": "0x00"}'
        % (deadline, "11" * 20)
    )
    run = CliRunner().invoke(coordinator_app, ["relay-signature", str(path), "--key", "nobody"])
    assert run.exit_code == 1 and "must be in [0, 2^256)" in run.output and "Traceback" not in run.output, run.output


@pytest.mark.parametrize(("field", "value"), [("end", 2**64), ("max_rounds", 2**32), ("reward_per_round", 2**256)])
def test_terms_out_of_their_on_chain_range_are_refused_by_name(field, value):
    from lepton_ledger.chain.agreements import AgreementTerms
    from lepton_ledger.errors import ConfigurationError

    fields = {
        "parties": ["0x" + "11" * 20],
        "reward_token": "0x" + "22" * 20,
        "reward_per_round": 1,
        "epsilon_cap": 1.0,
        "delta": 1e-5,
        "required_stake": 0,
        "start": 1,
        "end": 2,
        "max_rounds": 1,
        "coordinator": "0x" + "33" * 20,
        "arbiter": "0x" + "44" * 20,
        "max_sample_count": 10,
    }
    with pytest.raises(ConfigurationError, match="must be"):
        AgreementTerms(**{**fields, field: value})
