"""`lepton-ledger serve` refuses, with one line and before listening, what it cannot serve."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest

from lepton_ledger.chain.anvil import Anvil


def _serve(tmp_path, **env):
    environment = {k: v for k, v in os.environ.items() if not k.startswith("LEPTON_")}
    environment.update({"LEPTON_DATA_DIR": str(tmp_path), **env})
    return subprocess.run(
        [sys.executable, "-m", "lepton_ledger.cli", "serve", "--port", "0"],
        env=environment,
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
    )


def _one_error_line(result) -> str:
    lines = [line for line in (result.stdout + result.stderr).splitlines() if line.strip()]
    assert result.returncode == 1 and len(lines) == 1 and lines[0].startswith("error: "), result
    return lines[0]


def test_without_a_deployment_file(tmp_path):
    assert "no deployment file" in _one_error_line(_serve(tmp_path))


def test_with_a_chain_that_does_not_answer(tmp_path):
    (tmp_path / "deployment.json").write_text('{"chain_id": 31337, "contracts": {}}')
    assert "no Ethereum node answers" in _one_error_line(_serve(tmp_path, LEPTON_RPC_URL="http://127.0.0.1:9"))


@pytest.mark.parametrize(
    ("variable", "value"),
    [("LEPTON_API_TOKEN_TTL", "soon"), ("LEPTON_API_TOKEN_TTL", "0"), ("LEPTON_API_BLOCK_POLL", "-1")],
)
def test_with_a_malformed_setting(tmp_path, variable, value):
    line = _one_error_line(_serve(tmp_path, **{variable: value}))
    assert line.startswith("error: setting ") and variable.removeprefix("LEPTON_API_").lower() in line


def test_a_workdir_that_no_demo_left_is_refused_and_named(tmp_path):
    (tmp_path / "deployment.json").write_text("{}")  # a data directory, not a demo folder (no chain state beside it)
    result = subprocess.run(
        [sys.executable, "-m", "lepton_ledger.cli", "serve", "--workdir", str(tmp_path)],
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
    )
    line = _one_error_line(result)
    assert "--workdir" in line and "not a folder 'lepton-ledger demo' left" in line and "--data-dir" in line


def test_with_a_data_dir_that_is_no_folder(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "lepton_ledger.cli", "serve", "--data-dir", str(tmp_path / "no")],
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert "no such folder" in _one_error_line(result)


def test_a_chain_that_goes_away_is_503(tmp_path, start_server):
    from lepton_ledger.chain.deployment import DevRoles, deploy_with_roles
    from lepton_ledger.chain.transactions import Transactor

    anvil = Anvil()
    w3 = anvil.start()
    try:
        roles = DevRoles.from_dev_keys()
        deploy_with_roles(Transactor(w3, roles.accounts()), roles, dispute_window=600).write(
            tmp_path / "deployment.json", rpc_url=anvil.url, chain_id=w3.eth.chain_id
        )
        server = start_server(tmp_path, LEPTON_RPC_URL=anvil.url, LEPTON_API_COORDINATOR_KEY="")
        assert server.client.get("/v1/health").status_code == 200
    finally:
        anvil.stop()
    deadline = time.monotonic() + 30
    while (health := server.client.get("/v1/health")).status_code == 200:  # until the read model notices
        assert time.monotonic() < deadline
    assert health.status_code == 503 and health.json()["error"]["code"] == "ChainError"
    reply = server.client.get("/v1/agreements/1")
    assert reply.status_code == 503 and set(reply.json()) == {"error"}
    assert "lepton_chain_up 0" in server.client.get("/metrics").text


def _demo_folder(tmp_path, document: dict):
    """A folder that looks like a demo's: `document` as its deployment file, beside an empty chain state."""
    folder = tmp_path / "demo"
    folder.mkdir()
    (folder / "deployment.json").write_text(json.dumps({"chain_id": 31337, "contracts": {}, **document}))
    (folder / "chain-state.json").write_text("{}")
    return folder


def _serve_workdir(folder) -> str:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("LEPTON_")}
    result = subprocess.run(
        [sys.executable, "-m", "lepton_ledger.cli", "serve", "--port", "0", "--workdir", str(folder)],
        env=environment,
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
    )
    return _one_error_line(result)


@pytest.mark.parametrize(
    ("member", "value"),
    [
        ("state_file", "../outside.json"),
        ("state_file", "OUTSIDE/abs.json"),
        ("store", "../outside-store"),
        ("state_file", 5),
    ],
)
def test_a_demo_folder_naming_a_file_outside_itself_is_refused_and_nothing_is_written_there(tmp_path, member, value):
    value = str(tmp_path / "abs.json") if value == "OUTSIDE/abs.json" else value
    line = _serve_workdir(_demo_folder(tmp_path, {member: value}))
    assert member in line and "not a path inside" in line, line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["demo"]  # no chain state, no store beside the folder


def test_a_demo_folder_whose_chain_state_links_outside_is_refused(tmp_path):
    elsewhere = tmp_path / "elsewhere.json"
    elsewhere.write_text("{}")
    folder = _demo_folder(tmp_path, {})
    (folder / "chain-state.json").unlink()
    (folder / "chain-state.json").symlink_to(elsewhere)
    assert "state_file" in _serve_workdir(folder)
    assert elsewhere.read_text() == "{}"


def test_a_demo_folder_whose_api_folder_links_outside_is_refused(tmp_path):
    """The service keeps its database in the folder's api/: a link there must not point it at another's."""
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    folder = _demo_folder(tmp_path, {})
    (folder / "chain-state.json").unlink()
    with Anvil(state_file=folder / "chain-state.json"):  # a real chain state: the old service got past anvil
        pass
    (folder / "api").symlink_to(elsewhere)
    assert "'api' is not a path inside" in _serve_workdir(folder)
    assert list(elsewhere.iterdir()) == []


def test_a_demo_folder_with_a_chain_id_that_is_no_integer_is_one_line(tmp_path):
    assert "chain_id 'abc' is not an integer" in _serve_workdir(_demo_folder(tmp_path, {"chain_id": "abc"}))


def test_a_demo_folder_whose_chain_state_is_not_json_is_one_line(tmp_path):
    folder = _demo_folder(tmp_path, {})
    (folder / "chain-state.json").write_text("not json")
    assert "failed to parse json file" in _serve_workdir(folder)


def test_a_demo_folder_whose_chain_state_is_over_the_cap_is_one_line_and_no_chain_starts(tmp_path):
    """anvil would read the whole file into memory: a folder from elsewhere must not make the service do that."""
    from lepton_ledger.api.serve import MAX_STATE_BYTES

    folder = _demo_folder(tmp_path, {})
    with open(folder / "chain-state.json", "r+b") as state:
        state.truncate(MAX_STATE_BYTES + 1)  # sparse: its size, not its bytes, on disk
    line = _serve_workdir(folder)
    assert "chain-state.json" in line and f"over the {MAX_STATE_BYTES}-byte cap" in line, line
