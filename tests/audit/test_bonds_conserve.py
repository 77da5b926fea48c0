"""``bonds_conserve`` compares the results court's token balance with what it owes in that token over every
agreement, as ``vault_conserves`` does for the vault: two agreements bonded in one token, and a court that holds
less than their bonds together but more than either alone, fail the check for both. On a real chain: the court's
tokens are moved out behind its books (anvil impersonates it), the one way its balance can fall short here."""

from __future__ import annotations

from lepton_ledger.audit.chain_view import ChainView
from lepton_ledger.audit.checks.books import check_bonds
from lepton_ledger.chain import agreements
from lepton_ledger.chain.agreements import AgreementTerms
from lepton_ledger.chain.anvil import Anvil, dev_account
from lepton_ledger.chain.artifacts import load_artifact
from lepton_ledger.chain.deployment import DevRoles, deploy_with_roles
from lepton_ledger.chain.transactions import Transactor
from lepton_ledger.units import TOKEN

BOND = 500 * TOKEN


def test_a_court_short_of_its_bonds_over_agreements_in_one_token_fails_bonds_conserve(tmp_path):
    with Anvil() as w3:
        roles = DevRoles.from_dev_keys()
        tx = Transactor(w3, roles.accounts())
        d = deploy_with_roles(tx, roles, dispute_window=600)
        token = tx.deploy(
            load_artifact("LeptonToken"), "Lepton Reward", "LRW", roles.admin.address, sender=roles.admin.address
        )
        coordinator = roles.coordinator.address
        now = w3.eth.get_block("latest")["timestamp"]
        terms = AgreementTerms(
            parties=[dev_account(3).address, dev_account(4).address],
            reward_token=token.address,
            reward_per_round=300 * TOKEN,
            epsilon_cap=8.0,
            delta=1e-5,
            required_stake=0,
            start=now,
            end=now + 86400,
            max_rounds=1,
            coordinator=coordinator,
            arbiter=roles.admin.address,
            max_sample_count=1000,
            coordinator_bond=BOND,
        )
        tx.transact(token.functions.mint(coordinator, 2 * BOND), roles.admin.address)
        for _ in range(2):
            agreements.post_bond(tx, d, token, agreements.propose(tx, d, coordinator, terms), coordinator, BOND)

        court = d.court.address
        w3.provider.make_request("anvil_impersonateAccount", [court])
        w3.provider.make_request("anvil_setBalance", [court, hex(10**18)])
        w3.eth.wait_for_transaction_receipt(
            token.functions.transfer(roles.admin.address, BOND // 2).transact({"from": court})
        )
        assert token.functions.balanceOf(court).call() == BOND * 3 // 2  # above each bond, below both

        view = ChainView(w3, d.addresses(), tmp_path / "events.sqlite", w3.eth.block_number)
        results = check_bonds(view)
    assert [r.agreement_id for r in results] == [1, 2]
    for r in results:
        assert not r.ok, r.message
        assert f"the court holds {BOND * 3 // 2} of {token.address}, owes {2 * BOND} in bonds and shares" in r.message
