"""Connecting by RPC URL or to the data directory's local node, which every command shares and whose chain
survives restarts; the node commands."""

import os
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from lepton_ledger.chain import node
from lepton_ledger.chain.anvil import Anvil, dev_account, free_port
from lepton_ledger.chain.artifacts import load_artifact
from lepton_ledger.chain.connection import connect
from lepton_ledger.chain.transactions import Transactor
from lepton_ledger.commands.node import node_app
from lepton_ledger.errors import ChainError


def test_the_local_node_keeps_its_contracts_across_commands_and_restarts(tmp_path, monkeypatch):
    monkeypatch.delenv("LEPTON_RPC_URL", raising=False)
    monkeypatch.setenv("LEPTON_DATA_DIR", str(tmp_path))
    admin = dev_account(0)
    with connect() as w3:  # no node runs: the first command starts the data directory's node
        registry = Transactor(w3, [admin]).deploy(load_artifact("PartnerRegistry"), admin.address, sender=admin.address)
    started = node.status()
    assert started is not None
    with connect() as w3:  # the next command finds the same node, not a private chain
        assert w3.provider.endpoint_uri == started.url
    assert node.stop() == started and node.status() is None
    assert (tmp_path / "chain" / "anvil-state.json").exists()  # written as it stopped
    with connect() as w3:
        restored = w3.eth.contract(address=registry.address, abi=registry.abi)
        assert restored.functions.hasRole(b"\x00" * 32, admin.address).call()
    node.stop()


def test_two_processes_starting_the_node_at_once_get_one_node(tmp_path):
    env = {**os.environ, "LEPTON_DATA_DIR": str(tmp_path)}
    env.pop("LEPTON_RPC_URL", None)
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "lepton_ledger.cli", "node", "start"], env=env, stdout=subprocess.PIPE, text=True
        )
        for _ in range(3)
    ]
    outputs = [p.communicate(timeout=120)[0] for p in procs]
    try:
        assert [p.returncode for p in procs] == [0, 0, 0]
        assert sum(out.startswith("started local node") for out in outputs) == 1, outputs
        info = node.status(tmp_path)
        assert info is not None and all(info.url in out for out in outputs)
    finally:
        node.stop(tmp_path)
    assert node.status(tmp_path) is None


def test_node_time_and_fund_are_refused_on_another_chain(monkeypatch):
    monkeypatch.setenv("LEPTON_RPC_URL", "http://127.0.0.1:9")
    for args, what in ((["time", "--mine"], "node time"), (["fund", dev_account(5).address], "node fund")):
        result = CliRunner().invoke(node_app, args)
        assert result.exit_code == 1
        assert result.output.strip() == (
            f"error: {what} works on the local node only; commands here use the chain "
            "at http://127.0.0.1:9 ($LEPTON_RPC_URL or --rpc-url): unset it to use the "
            "local node"
        )


def test_node_fund_and_time_on_the_local_node(tmp_path, monkeypatch):
    monkeypatch.delenv("LEPTON_RPC_URL", raising=False)
    monkeypatch.setenv("LEPTON_DATA_DIR", str(tmp_path))
    try:
        newcomer = "0x00000000000000000000000000000000000000aa"
        assert "now holds 2.5 ether" in CliRunner().invoke(node_app, ["fund", newcomer, "--ether", "2.5"]).output
        with connect() as w3:
            assert w3.eth.get_balance(w3.to_checksum_address(newcomer)) == 25 * 10**17
            before = w3.eth.get_block("latest")["timestamp"]
        result = CliRunner().invoke(node_app, ["time", "--advance", "1h"])
        assert result.exit_code == 0 and "(1h later)" in result.output
        with connect() as w3:
            assert w3.eth.get_block("latest")["timestamp"] >= before + 3600
        bad = CliRunner().invoke(node_app, ["time", "--advance", "soon"])
        assert bad.exit_code == 1 and "--advance takes a positive duration such as 90s, 15m, 1h or 2d" in bad.output
        for absurd in ("99999999999999999999h", "1000000000h"):  # reported success unmoved / broke every date
            far = CliRunner().invoke(node_app, ["time", "--advance", absurd])
            assert far.exit_code == 1 and "is more than 36500 days" in far.output, far.output
        with connect() as w3:
            assert w3.eth.get_block("latest")["timestamp"] < before + 2 * 3600  # nothing moved
    finally:
        node.stop()


def test_an_rpc_url_is_used_as_given(monkeypatch):
    with Anvil(chain_id=4242) as node:
        url = node.provider.endpoint_uri
        monkeypatch.setenv("LEPTON_RPC_URL", url)
        with connect() as w3:
            assert w3.eth.chain_id == 4242


def test_a_dead_rpc_url_is_named_in_the_error():
    url = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(ChainError, match=url), connect(url):
        pass
