"""The agreement the round tests start from: active (every partner signed and staked) and funded for one round."""

from __future__ import annotations

from typing import Any

from lepton_ledger import fl
from lepton_ledger.chain import agreements
from lepton_ledger.chain.agreements import TOKEN


def funded_agreement(tx: Any, d: Any, token: Any, roles: Any, partners: list[Any], *,
                     relay_every_second: bool = False) -> int:  # fmt: skip
    """A fresh agreement between `partners` (by-sample-count payouts, epsilon cap 8, 5 rounds), signed (every
    second partner by a relayed EIP-712 signature when asked), staked and funded for one round; its id."""
    now = tx.w3.eth.get_block("latest")["timestamp"]
    terms = agreements.AgreementTerms(
        parties=[a.address for a in partners], reward_token=token.address, reward_per_round=300 * TOKEN,
        epsilon_cap=8.0, delta=1e-5, required_stake=100 * TOKEN, start=now - 1, end=now + 30 * 86400, max_rounds=5,
        coordinator=roles.coordinator.address, arbiter=roles.admin.address, max_sample_count=100_000, payout_rule=fl.PayoutRule.BY_SAMPLE_COUNT, document={"task": "digits classification"},
    )  # fmt: skip
    agreement_id = agreements.propose(tx, d, roles.coordinator.address, terms)
    for i, account in enumerate(partners):
        relayer = roles.coordinator.address if relay_every_second and i % 2 else None
        agreements.sign(tx, d, agreement_id, account, relayer=relayer)
    for account in partners:
        tx.transact(token.functions.mint(account.address, terms.required_stake), roles.admin.address)
        agreements.stake(tx, d, token, agreement_id, account.address, terms.required_stake)
    tx.transact(token.functions.mint(roles.coordinator.address, terms.reward_per_round), roles.admin.address)
    agreements.fund(tx, d, token, agreement_id, roles.coordinator.address, terms.reward_per_round)
    return agreement_id
