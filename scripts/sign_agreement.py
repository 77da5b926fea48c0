"""`brownie run sign_agreement`: on the deployment that scripts/deploy.py wrote, registers the coordinator, the
auditor and the development partners with fresh X25519 keys, approves the partners, proposes an agreement, has
the partners sign it (the first by transaction, the others by relayed EIP-712 signatures), stake, and the
coordinator fund two rounds. Thin: every step is one `lepton_ledger.chain.agreements` call.

Writes agreement.json next to deployment.json, what scripts/run_round.py needs: the agreement id, each party's
development account index and X25519 private key (plain text: development keys, local use only), the block
store, and the data split (digits, one partition per partner, seed 0).
"""

import json
from pathlib import Path

from brownie import web3

from lepton_ledger.chain import agreements
from lepton_ledger.chain.agreements import AgreementTerms
from lepton_ledger.chain.anvil import dev_account
from lepton_ledger.chain.artifacts import load_artifact
from lepton_ledger.chain.deployment import DevRoles
from lepton_ledger.chain.transactions import Transactor
from lepton_ledger.commands.context import bind_deployment
from lepton_ledger.envelope import generate_x25519_keypair
from lepton_ledger.rounds.roles import publish_document
from lepton_ledger.storage.local import LocalStore
from lepton_ledger.units import TOKEN, PayoutRule
from scripts.deploy import OUT, require_local_network

FIRST_PARTNER = 3  # development accounts 3, 4, ... (0-2 and 7 hold the roles)
REWARD_PER_ROUND = 300 * TOKEN
REQUIRED_STAKE = 100 * TOKEN
ROUNDS = 2


def main(deployment: str = OUT, partners: int = 2):
    active = require_local_network()
    path = Path(deployment)
    document = json.loads(path.read_text())
    roles = DevRoles.from_dev_keys()
    accounts = {f"partner{i + 1}": dev_account(FIRST_PARTNER + i) for i in range(partners)}
    tx = Transactor(web3, [*roles.accounts(), *accounts.values()])
    d = bind_deployment(web3, document, path)
    token = web3.eth.contract(address=document["reward_token"], abi=load_artifact("LeptonToken").abi)
    store_dir = path.parent / "store"
    store = LocalStore(store_dir)
    print(
        f"network {active} (chain {web3.eth.chain_id}); sending: register x{partners + 2}, approve x{partners}, "
        f"propose, sign x1 + signBySig x{partners - 1} (relayed by the coordinator), mint/approve/stake "
        f"x{partners}, mint/approve/fund"
    )

    keys = {}
    parties = [("coordinator", roles.coordinator), ("auditor", roles.auditor), *accounts.items()]
    for name, account in parties:
        private, public = generate_x25519_keypair()
        keys[name] = private
        profile = {"name": name, "contact": f"ml@{name}.example"}
        publish_document(store, profile)
        agreements.register(tx, d, account.address, profile, public)
        if name in accounts:
            agreements.approve(tx, d, account.address, roles.coordinator.address)
        print(f"{name} {account.address} registered" + (" and approved" if name in accounts else ""))

    now = web3.eth.get_block("latest")["timestamp"]
    terms = AgreementTerms(
        parties=[a.address for a in accounts.values()],
        reward_token=token.address,
        reward_per_round=REWARD_PER_ROUND,
        epsilon_cap=10.0,
        delta=1e-5,
        required_stake=REQUIRED_STAKE,
        start=now - 1,
        end=now + 30 * 86400,
        max_rounds=ROUNDS,
        coordinator=roles.coordinator.address,
        arbiter=roles.admin.address,
        max_sample_count=100_000,
        payout_rule=PayoutRule.BY_SAMPLE_COUNT,
        document={"task": "digits classification", "model": "logreg", "max_norm": 50.0},
    )
    publish_document(store, dict(terms.document))
    agreement_id = agreements.propose(tx, d, roles.coordinator.address, terms)
    print(f"agreement {agreement_id} proposed: {ROUNDS} rounds, {REWARD_PER_ROUND / TOKEN:g} LRW per round")
    for i, (name, account) in enumerate(accounts.items()):
        agreements.sign(tx, d, agreement_id, account, relayer=roles.coordinator.address if i else None)
        tx.transact(token.functions.mint(account.address, REQUIRED_STAKE), roles.admin.address)
        activated = agreements.stake(tx, d, token, agreement_id, account.address, REQUIRED_STAKE)
        print(
            f"{name} signed ({'relayed EIP-712' if i else 'transaction'}) and staked {REQUIRED_STAKE / TOKEN:g}"
            + (": agreement active" if activated else "")
        )
    funding = REWARD_PER_ROUND * ROUNDS
    tx.transact(token.functions.mint(roles.coordinator.address, funding), roles.admin.address)
    agreements.fund(tx, d, token, agreement_id, roles.coordinator.address, funding)
    print(f"coordinator funded {funding / TOKEN:g} LRW")

    out = path.parent / "agreement.json"
    out.write_text(
        json.dumps(
            {
                "note": "development keys, in plain text: local use only",
                "agreement_id": agreement_id,
                "parties": {
                    name: {
                        "address": a.address,
                        "account_index": _index(a, accounts, roles),
                        "x25519_private_key": keys[name].hex(),
                    }
                    for name, a in parties
                },
                "partners": list(accounts),
                "store": str(store_dir),
                "data": {"dataset": "digits", "partitions": partners, "seed": 0},
            },
            indent=2,
        )
        + "\n"
    )
    print(f"wrote {out}")
    return agreement_id


def _index(account, partners: dict, roles: DevRoles) -> int:
    fixed = {roles.coordinator.address: 1, roles.auditor.address: 2}
    if account.address in fixed:
        return fixed[account.address]
    return FIRST_PARTNER + list(partners.values()).index(account)
