"""The chain client against a real anvil: deployment, signed transactions, decoded custom errors, state
that survives a restart."""

from __future__ import annotations

import pytest
from web3 import Web3

from lepton_ledger.chain.anvil import Anvil, advance_time, dev_account
from lepton_ledger.chain.artifacts import load_artifact
from lepton_ledger.chain.deployment import deploy_system
from lepton_ledger.chain.transactions import Transactor
from lepton_ledger.errors import (
    ConfigurationError,
    ContractReverted,
    LeptonError,
    ToolchainError,
)


@pytest.fixture(scope="module")
def chain():
    with Anvil() as w3:
        yield w3


@pytest.fixture(scope="module")
def system(chain):
    admin, coordinator, auditor, treasury, partner = (dev_account(i) for i in (0, 1, 2, 7, 3))
    tx = Transactor(chain, [admin, coordinator, auditor, treasury, partner])
    deployment = deploy_system(
        tx,
        admin=admin.address,
        coordinator=coordinator.address,
        auditors=[auditor.address],
        slash_recipient=treasury.address,
        dispute_window=60,
    )
    return tx, deployment, {"admin": admin, "coordinator": coordinator, "partner": partner}


def test_deploy_binds_contracts_and_grants_roles(system):
    _, d, who = system
    assert d.agreements.functions.vault().call() == d.vault.address
    assert d.vault.functions.roundLedger().call() == d.ledger.address
    assert d.ledger.functions.vault().call() == d.vault.address
    for name in ("COORDINATOR_ROLE", "REGISTRAR_ROLE"):  # the dev operator also vets partners
        role = Web3.keccak(text=name)
        assert d.partners.functions.hasRole(role, who["coordinator"].address).call()
        assert not d.partners.functions.hasRole(role, who["partner"].address).call()


def test_contract_refusal_is_decoded_into_its_custom_error(system):
    tx, d, who = system
    with pytest.raises(ContractReverted) as info:
        tx.transact(d.partners.functions.approve(who["partner"].address), who["partner"].address)
    assert info.value.error == "AccessControlUnauthorizedAccount"
    assert info.value.args_by_name["account"] == who["partner"].address
    with pytest.raises(ContractReverted) as info:
        tx.transact(d.partners.functions.register(b"\x00" * 32, b"\x01" * 32), who["partner"].address)
    assert info.value.error == "PartnerRegistryZeroProfileDigest"
    assert isinstance(info.value, LeptonError)


def test_refused_transaction_consumes_no_nonce(system, chain):
    tx, d, who = system
    sender = who["partner"].address
    before = chain.eth.get_transaction_count(sender)
    with pytest.raises(ContractReverted):
        tx.transact(d.partners.functions.register(b"\x00" * 32, b"\x01" * 32), sender)
    tx.transact(d.partners.functions.register(b"\x01" * 32, b"\x02" * 32), sender)
    assert chain.eth.get_transaction_count(sender) == before + 1


def test_nobody_sends_for_an_account_without_its_key(system):
    tx, d, _ = system
    stranger = dev_account(9).address
    with pytest.raises(ConfigurationError, match="no key for"):
        tx.transact(d.partners.functions.register(b"\x01" * 32, b"\x02" * 32), stranger)


def test_missing_artifact_names_the_fix(tmp_path):
    with pytest.raises(ToolchainError, match="make build"):
        load_artifact("NoSuchContract", directory=tmp_path)


def test_state_file_survives_a_restart(tmp_path):
    state = tmp_path / "chain-state.json"
    admin = dev_account(0)
    with Anvil(state_file=state) as w3:
        tx = Transactor(w3, [admin])
        registry = tx.deploy(load_artifact("PartnerRegistry"), admin.address, sender=admin.address)
        advance_time(w3, 10)
    assert state.exists()
    with Anvil(state_file=state) as w3:
        restored = w3.eth.contract(address=registry.address, abi=load_artifact("PartnerRegistry").abi)
        assert restored.functions.hasRole(b"\x00" * 32, admin.address).call()


def test_a_nonce_used_by_another_transactor_is_re_read_and_the_call_goes_through(system, chain):
    tx, d, who = system
    coordinator = who["coordinator"].address
    tx.transact(d.partners.functions.grantRole(b"\x01" * 32, coordinator), who["admin"].address)  # nonce cached
    other = Transactor(chain, [who["admin"]])  # another process sending from the same account
    other.transact(d.partners.functions.grantRole(b"\x02" * 32, coordinator), who["admin"].address)
    receipt = tx.transact(d.partners.functions.grantRole(b"\x03" * 32, coordinator), who["admin"].address)
    assert receipt["status"] == 1 and d.partners.functions.hasRole(b"\x03" * 32, coordinator).call()
