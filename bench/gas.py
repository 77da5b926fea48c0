"""Gas figures of lepton-ledger's contracts, measured on a fresh local anvil.

Prints the gas of every operation, then the on-chain gas per anchored update for one round of N partners in
single-submission mode (each partner sends submitUpdate) and in batched mode (the coordinator anchors all
N signed commitments with one commitBatch), each on a round whose budget words are still empty (the
costlier first round), and the batched steady state (a later round). Gas per update counts whole
transactions, the 21,000 base cost included. Last line, JSON (batched: the first round; batched_later: a later one):
{"partners": N, "gas_per_update_single": ..., "gas_per_update_batched": ..., "gas_per_update_batched_later": ...}

    python bench/gas.py --partners 100
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from eth_account import Account  # noqa: E402
from web3 import Web3  # noqa: E402
from web3.logs import DISCARD  # noqa: E402

from lepton_ledger.chain.anvil import Anvil, advance_time  # noqa: E402
from lepton_ledger.chain.artifacts import load_artifact  # noqa: E402
from lepton_ledger.chain.deployment import DevRoles, deploy_with_roles, relay_signature  # noqa: E402
from lepton_ledger.chain.merkle import PayoutTree, PositionalTree, commitment_leaf, pack_entries  # noqa: E402
from lepton_ledger.chain.transactions import Transactor  # noqa: E402
from lepton_ledger.chain.typed_data import UpdateCommitment, sign_digest, update_commitment_digest  # noqa: E402
from lepton_ledger.units import EPSILON_SCALE as EPS  # noqa: E402
from lepton_ledger.units import TOKEN  # noqa: E402

STAKE = 10 * TOKEN
REWARD = 1_000 * TOKEN
BOND = 100 * TOKEN  # the coordinator bond of each agreement (ResultsCourt)
DISPUTE_WINDOW = 600


class GasBook:
    """Gas used per operation name."""

    def __init__(self) -> None:
        self.samples: dict[str, list[int]] = defaultdict(list)

    def record(self, name: str, receipt) -> int:
        self.samples[name].append(receipt["gasUsed"])
        return receipt["gasUsed"]

    def print(self) -> None:
        print(f"{'operation':<34}{'calls':>7}{'mean gas':>12}{'min':>10}{'max':>10}")
        for name, values in self.samples.items():
            print(f"{name:<34}{len(values):>7}{statistics.mean(values):>12,.0f}{min(values):>10,}{max(values):>10,}")


def digest(text: str) -> bytes:
    return Web3.keccak(text=text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--partners", type=int, default=100, help="partners in the round (1..256)")
    args = parser.parse_args()
    n = args.partners
    if not 1 <= n <= 256:
        parser.error(f"--partners must be within 1..256 (the contracts' MAX_PARTIES), got {n}")

    started = time.monotonic()
    book = GasBook()
    with Anvil(gas_limit=60_000_000) as w3:
        roles = DevRoles.from_dev_keys()
        admin, coordinator, auditor = roles.admin, roles.coordinator, roles.auditor
        partners = [Account.from_key(Web3.keccak(text=f"lepton-bench-partner-{i}")) for i in range(n)]
        for p in partners:
            w3.provider.make_request("anvil_setBalance", [p.address, hex(10**20)])  # type: ignore[arg-type]
        tx = Transactor(w3, [*roles.accounts(), *partners])
        chain_id = w3.eth.chain_id
        d = deploy_with_roles(tx, roles, dispute_window=DISPUTE_WINDOW)
        token = tx.deploy(load_artifact("LeptonToken"), "Bench", "BNC", admin.address, sender=admin.address)

        for i, p in enumerate(partners):
            book.record(
                "PartnerRegistry.register",
                tx.transact(d.partners.functions.register(digest(f"profile{i}"), digest(f"key{i}")), p.address),
            )
            book.record(
                "PartnerRegistry.approve", tx.transact(d.partners.functions.approve(p.address), coordinator.address)
            )
            tx.transact(token.functions.mint(p.address, 2 * STAKE), admin.address)
            tx.transact(token.functions.approve(d.vault.address, 2 * STAKE), p.address)

        def new_agreement(label: str) -> int:
            now = w3.eth.get_block("latest")["timestamp"]
            terms = (
                digest(label),
                [p.address for p in partners],
                token.address,
                REWARD,
                0,
                8 * EPS,
                10**13,
                STAKE,
                now - 1,
                now + 86400 * 30,
                10,
                coordinator.address,
                admin.address,
                100_000,
                BOND,
            )
            receipt = tx.transact(d.agreements.functions.propose(terms), coordinator.address)
            book.record(f"AgreementRegistry.propose ({n} parties)", receipt)
            agreement_id = d.agreements.events.AgreementProposed().process_receipt(receipt, errors=DISCARD)[0]["args"][
                "agreementId"
            ]
            for i, p in enumerate(partners):
                if i % 2:  # half sign by relayed EIP-712 signature, half by transaction
                    receipt = relay_signature(tx, d.agreements, agreement_id, p, coordinator.address)
                    book.record("AgreementRegistry.signBySig", receipt)
                else:
                    book.record(
                        "AgreementRegistry.sign", tx.transact(d.agreements.functions.sign(agreement_id), p.address)
                    )
            for i, p in enumerate(partners):
                label_stake = f"RewardVault.stake (last: activates, {n} parties)" if i == n - 1 else "RewardVault.stake"
                book.record(label_stake, tx.transact(d.vault.functions.stake(agreement_id, STAKE), p.address))
            tx.transact(token.functions.mint(coordinator.address, 3 * REWARD), admin.address)
            tx.transact(token.functions.approve(d.vault.address, 3 * REWARD), coordinator.address)
            book.record(
                "RewardVault.fund", tx.transact(d.vault.functions.fund(agreement_id, 3 * REWARD), coordinator.address)
            )
            tx.transact(token.functions.mint(coordinator.address, BOND), admin.address)
            tx.transact(token.functions.approve(d.court.address, BOND), coordinator.address)
            book.record(
                "ResultsCourt.postBond",
                tx.transact(d.court.functions.postBond(agreement_id, BOND), coordinator.address),
            )
            return agreement_id

        def open_round(agreement_id: int, label: str) -> int:
            deadline = w3.eth.get_block("latest")["timestamp"] + 3600
            receipt = tx.transact(
                d.ledger.functions.openRound(agreement_id, digest(label), deadline, digest("eval")), coordinator.address
            )
            book.record("RoundLedger.openRound", receipt)
            return d.ledger.events.RoundOpened().process_receipt(receipt, errors=DISCARD)[0]["args"]["round"]

        def finalize(agreement_id: int, round_id: int) -> PayoutTree:
            payouts = {p.address: REWARD // n for p in partners}
            tree = PayoutTree(agreement_id, round_id, payouts)
            call = d.ledger.functions.finalizeRound(
                agreement_id, round_id, digest("agg"), digest("report"), tree.root, sum(payouts.values())
            )
            book.record("RoundLedger.finalizeRound", tx.transact(call, coordinator.address))
            return tree

        def batched_round(agreement_id: int, epsilon: int, label: str) -> int:
            round_id = open_round(agreement_id, label)
            signed = []
            for p in partners:
                c = UpdateCommitment(
                    agreement_id,
                    round_id,
                    p.address,
                    digest(f"env{p.address}{round_id}"),
                    digest(f"man{p.address}{round_id}"),
                    epsilon,
                    1000,
                )
                signature = sign_digest(p.key, update_commitment_digest(chain_id, d.ledger.address, c))
                signed.append(commitment_leaf(update_commitment_digest(chain_id, d.ledger.address, c), signature))
            call = d.ledger.functions.commitBatch(
                agreement_id,
                round_id,
                PositionalTree(signed).root,
                digest("batch doc"),
                pack_entries([(i, epsilon) for i in range(n)]),
            )
            gas = book.record(f"RoundLedger.commitBatch ({label})", tx.transact(call, coordinator.address))
            finalize(agreement_id, round_id)
            return gas

        # Single-submission mode: every partner commits its own update, first round of the agreement.
        single = new_agreement("single")
        round_id = open_round(single, "model-1")
        single_total = 0
        for i, p in enumerate(partners):
            call = d.ledger.functions.submitUpdate(
                single, round_id, digest(f"env{i}"), digest(f"man{i}"), 2 * EPS, 1000
            )
            single_total += book.record("RoundLedger.submitUpdate", tx.transact(call, p.address))
        tree = finalize(single, round_id)

        # Batched mode on a fresh agreement (empty budget words), then a later round (steady state).
        batched = new_agreement("batched")
        batched_first = batched_round(batched, 2 * EPS, f"{n} entries, first round")
        batched_later = batched_round(batched, 3 * EPS, f"{n} entries, later round")

        # The rest of the lifecycle, for the table. The batched agreement's last results are challenged and upheld.
        raised = d.court.functions.challengeResults(batched, 2, 1, digest("results evidence"))
        book.record("ResultsCourt.challengeResults", tx.transact(raised, auditor.address))
        book.record(
            "ResultsCourt.ruleResults (upheld)",
            tx.transact(d.court.functions.ruleResults(1, True, digest("ruling")), admin.address),
        )
        book.record(
            "ResultsCourt.claimBondShare", tx.transact(d.court.functions.claimBondShare(batched), partners[0].address)
        )
        advance_time(w3, DISPUTE_WINDOW + 1)
        for p in partners[: min(n, 5)]:
            call = d.vault.functions.claim(single, round_id, REWARD // n, tree.proof(p.address))
            book.record("RewardVault.claim", tx.transact(call, p.address))
        next_round = open_round(single, "model-2")
        call = d.ledger.functions.submitUpdate(single, next_round, digest("e"), digest("m"), 3 * EPS, 1000)
        tx.transact(call, partners[0].address)
        challenge = d.ledger.functions.challenge(single, next_round, partners[0].address, digest("evidence"))
        book.record("RoundLedger.challenge", tx.transact(challenge, auditor.address))
        resolve = d.ledger.functions.resolveChallenge(1, True, digest("ruling"))
        book.record("RoundLedger.resolveChallenge", tx.transact(resolve, admin.address))
        advance_time(w3, 3601)
        finalize(single, next_round)
        advance_time(w3, DISPUTE_WINDOW + 1)
        book.record("RewardVault.slash", tx.transact(d.vault.functions.slash(1), admin.address))
        book.record(
            "AgreementRegistry.terminate",
            tx.transact(d.agreements.functions.terminate(single, digest("end")), coordinator.address),
        )
        book.record("RewardVault.unstake", tx.transact(d.vault.functions.unstake(single, STAKE), partners[1].address))
        book.record("RewardVault.reclaim", tx.transact(d.vault.functions.reclaim(single), coordinator.address))

    book.print()
    per_single = single_total / n
    per_batched = batched_first / n
    print()
    print(f"partners: {n}; wall time {time.monotonic() - started:.1f}s")
    print(f"single-submission: {per_single:,.0f} gas per update (mean submitUpdate transaction)")
    print(f"batched, first round: {batched_first:,} gas for {n} updates = {per_batched:,.0f} gas per update")
    print(f"batched, later round: {batched_later:,} gas for {n} updates = {batched_later / n:,.0f} gas per update")
    print(
        json.dumps(
            {
                "partners": n,
                "gas_per_update_single": round(per_single),
                "gas_per_update_batched": round(per_batched),
                "gas_per_update_batched_later": round(batched_later / n),
            }
        )
    )


if __name__ == "__main__":
    main()
