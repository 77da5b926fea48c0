"""Fixtures of the round tests: a chain with the system deployed and three approved partners, and a worker pool."""

from __future__ import annotations

import pytest
from agreement_setup import DISPUTE_WINDOW, NAMES

from lepton_ledger import fl
from lepton_ledger.chain.anvil import Anvil, dev_account
from lepton_ledger.chain.deployment import DevRoles
from lepton_ledger.chain.transactions import Transactor
from lepton_ledger.rounds.world import build_world
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
        built = build_world(tx, accounts, dispute_window=DISPUTE_WINDOW, roles=roles)
        split = fl.make_federated("digits", num_partners=3, seed=0)
        store = LocalStore(tmp_path_factory.mktemp("store"), durable=False)
        yield {
            "w3": w3,
            "tx": tx,
            "d": built.deployment,
            "token": built.token,
            "roles": roles,
            "accounts": accounts,
            "keys": built.x25519,
            "split": split,
            "store": store,
            "tmp": tmp_path_factory,
        }
