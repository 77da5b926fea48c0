"""Fixtures of the round tests: a chain with the system deployed and three approved partners, and a worker pool."""

from __future__ import annotations

import pytest
from agreement_setup import DISPUTE_WINDOW, NAMES

from lepton_ledger import fl
from lepton_ledger.chain.anvil import Anvil, dev_account
from lepton_ledger.chain.artifacts import load_artifact
from lepton_ledger.chain.deployment import DevRoles, deploy_with_roles
from lepton_ledger.chain.transactions import Transactor
from lepton_ledger.envelope import generate_x25519_keypair
from lepton_ledger.storage.local import LocalStore
from lepton_ledger.workers.local import LocalExecutor


@pytest.fixture(scope="module")
def executor():
    with LocalExecutor(max_workers=1, gpus=[], threads_per_worker=1) as ex:
        yield ex


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A chain with the system deployed, a token, three approved partners and X25519 keys for all parties."""
    with Anvil() as w3:
        roles = DevRoles.from_dev_keys()
        accounts = {name: dev_account(i) for name, i in zip(NAMES, (3, 4, 5))}
        tx = Transactor(w3, [*roles.accounts(), *accounts.values()])
        deployment = deploy_with_roles(tx, roles, dispute_window=DISPUTE_WINDOW)
        token = tx.deploy(load_artifact("LeptonToken"), "Lepton Reward", "LRW", roles.admin.address,
                          sender=roles.admin.address)  # fmt: skip
        keys = {}
        for who, account in [("coordinator", roles.coordinator), ("auditor", roles.auditor), *accounts.items()]:
            private, public = generate_x25519_keypair()
            keys[who] = private
            tx.transact(deployment.partners.functions.register(bytes([7]) * 32, public), account.address)
        for account in accounts.values():
            tx.transact(deployment.partners.functions.approve(account.address), roles.coordinator.address)
        split = fl.make_federated("digits", num_partners=3, seed=0)
        store = LocalStore(tmp_path_factory.mktemp("store"), durable=False)
        yield {"w3": w3, "tx": tx, "d": deployment, "token": token, "roles": roles, "accounts": accounts,
               "keys": keys, "split": split, "store": store, "tmp": tmp_path_factory}  # fmt: skip
