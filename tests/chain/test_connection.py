"""Connecting by RPC URL or to the embedded anvil, whose chain survives between commands."""

import pytest

from lepton_ledger.chain.anvil import Anvil, dev_account, free_port
from lepton_ledger.chain.artifacts import load_artifact
from lepton_ledger.chain.connection import connect
from lepton_ledger.chain.transactions import Transactor
from lepton_ledger.errors import ChainError


def test_embedded_chain_keeps_its_contracts_between_commands(tmp_path, monkeypatch):
    monkeypatch.delenv("LEPTON_RPC_URL", raising=False)
    monkeypatch.setenv("LEPTON_DATA_DIR", str(tmp_path))
    admin = dev_account(0)
    with connect() as w3:
        registry = Transactor(w3, [admin]).deploy(load_artifact("PartnerRegistry"), admin.address, sender=admin.address)
    assert (tmp_path / "chain" / "anvil-state.json").exists()
    with connect() as w3:
        restored = w3.eth.contract(address=registry.address, abi=registry.abi)
        assert restored.functions.hasRole(b"\x00" * 32, admin.address).call()


def test_an_rpc_url_is_used_as_given(monkeypatch):
    with Anvil(chain_id=4242) as node:
        url = node.provider.endpoint_uri
        monkeypatch.setenv("LEPTON_RPC_URL", url)
        with connect() as w3:
            assert w3.eth.chain_id == 4242


def test_a_dead_rpc_url_is_named_in_the_error():
    url = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(ChainError, match=url):
        with connect(url):
            pass
