"""The service's read model on a real anvil: views are cached per block, and a lookup about to answer "no such
agreement" or "no such round" first catches up with the node, so that what a caller's own transaction just
created is found even before the poller looks (under load the service once answered 404 for an agreement
proposed a moment earlier)."""

from __future__ import annotations

from lepton_ledger.api.readmodel import ReadModel
from lepton_ledger.chain import agreements
from lepton_ledger.chain.agreements import AgreementTerms
from lepton_ledger.chain.anvil import Anvil, dev_account
from lepton_ledger.chain.deployment import DevRoles
from lepton_ledger.chain.transactions import Transactor
from lepton_ledger.rounds.world import build_world


def test_an_agreement_proposed_a_moment_ago_is_found_before_the_poller_looks():
    with Anvil() as w3:
        roles, partner = DevRoles.from_dev_keys(), dev_account(5)
        tx = Transactor(w3, [*roles.accounts(), partner])
        world = build_world(tx, {"alpha": partner}, dispute_window=600)
        reads = ReadModel(w3, world.deployment, poll=3600)  # its poller is not started: only lookups catch up
        assert reads.agreement(1) is None
        before = reads.block
        assert reads.agreement_count() == 0  # cached at that block
        now = int(w3.eth.get_block("latest")["timestamp"])
        terms = AgreementTerms(
            parties=[partner.address],
            reward_token=world.token.address,
            reward_per_round=10,
            epsilon_cap=8.0,
            delta=1e-5,
            required_stake=1,
            start=now,
            end=now + 86_400,
            max_rounds=3,
            coordinator=roles.coordinator.address,
            arbiter=roles.admin.address,
            max_sample_count=1_000,
        )
        agreement_id = agreements.propose(tx, world.deployment, roles.coordinator.address, terms)
        found = reads.agreement(agreement_id)
        assert found is not None and reads.block > before
        assert reads.round(agreement_id, 1) is None  # no round yet, at the latest block too
        assert reads.agreement(agreement_id + 1) is None
