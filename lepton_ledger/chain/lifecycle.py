"""The agreement lifecycle on a fresh local chain, step by step: what `make demo` shows until the full
federated rounds exist.

Three partners register with real X25519 keys, sign an agreement (one by transaction, one by a relayed
EIP-712 signature, one through a batched commitment later), stake; the coordinator funds the pool, opens a
round on the digest of real model weights with a commitment to a real held-out evaluation set, the partners
commit their updates with the epsilon an RDP accountant computes for their DP-SGD parameters, the coordinator
aggregates, finalizes with a payout Merkle root, and after the dispute window everyone claims.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from rich.console import Console
from rich.table import Table
from web3 import Web3
from web3.logs import DISCARD

from ..fl.payouts import PayoutRule, split_reward
from .anvil import Anvil, advance_time, dev_account
from .artifacts import load_artifact
from .deployment import Deployment, DevRoles, deploy_with_roles, relay_signature
from .merkle import PayoutTree, PositionalTree, commitment_leaf, pack_entries
from .transactions import Transactor
from .typed_data import UpdateCommitment, sign_digest, update_commitment_digest

TOKEN = 10**18
EPSILON_SCALE = 1_000_000  # on-chain epsilon fixed point: 1e6 = 1.0
DELTA = 1e-5


@dataclass
class LifecycleResult:
    """What the walk produced, for callers and tests."""

    chain_id: int
    addresses: dict[str, str]
    agreement_id: int
    round_id: int
    payouts: dict[str, int]
    pool: dict[str, int]
    claimed: dict[str, int] = field(default_factory=dict)


def sha256(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def rdp_epsilon(noise_multiplier: float, sample_rate: float, steps: int, delta: float) -> float:
    """Epsilon of `steps` Poisson-sampled Gaussian steps, by Opacus's RDP accountant."""
    from opacus.accountants import RDPAccountant  # heavy (torch): imported only when needed

    accountant = RDPAccountant()
    accountant.history = [(noise_multiplier, sample_rate, steps)]
    return accountant.get_epsilon(delta)


def run_lifecycle(out_dir: Path, *, dispute_window: int = 3600, console: Console | None = None) -> LifecycleResult:
    """Runs the whole lifecycle on a fresh anvil and writes ``out_dir/deployment.json``."""
    console = console or Console()
    out_dir.mkdir(parents=True, exist_ok=True)
    with Anvil() as w3:
        return _walk(w3, out_dir, dispute_window, console)


def _step(console: Console, text: str) -> None:
    console.print(f"[bold cyan]>[/] {text}")


def _walk(w3: Web3, out_dir: Path, dispute_window: int, console: Console) -> LifecycleResult:
    roles = DevRoles.from_dev_keys()
    admin, coordinator = roles.admin, roles.coordinator
    partner_accounts = {name: dev_account(i) for name, i in (("alpha", 3), ("beta", 4), ("gamma", 5))}
    tx = Transactor(w3, [*roles.accounts(), *partner_accounts.values()])
    chain_id = w3.eth.chain_id
    _step(console, f"anvil up, chain id {chain_id}, block {w3.eth.block_number}")

    deployment = deploy_with_roles(tx, roles, dispute_window=dispute_window)
    token = tx.deploy(load_artifact("LeptonToken"), "Lepton Reward", "LRW", admin.address, sender=admin.address)
    for name, address in {**deployment.addresses(), "LeptonToken": token.address}.items():
        _step(console, f"deployed {name} at {address}")
    deployment.write(
        out_dir / "deployment.json",
        rpc_url=w3.provider.endpoint_uri,  # type: ignore[attr-defined]
        chain_id=chain_id,
        extra={"reward_token": token.address, "note": "the demo's anvil stops when the demo ends"},
    )

    # Partners register with their own X25519 keys, which encrypted updates will be wrapped to.
    for name, account in partner_accounts.items():
        x25519_public = X25519PrivateKey.generate().public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        profile = json.dumps({"name": name, "contact": f"ml@{name}.example"}, sort_keys=True).encode()
        tx.transact(deployment.partners.functions.register(sha256(profile), x25519_public), account.address)
        tx.transact(deployment.partners.functions.approve(account.address), coordinator.address)
        _step(console, f"partner {name} {account.address} registered (X25519 key {x25519_public.hex()[:16]}...) and approved")

    agreement_id, terms_doc = _propose(w3, tx, deployment, coordinator, token, list(partner_accounts.values()))
    _step(console, f"agreement {agreement_id} proposed: {json.dumps(terms_doc['summary'])}")
    _sign_all(w3, tx, deployment, agreement_id, coordinator, partner_accounts, console)

    stake = terms_doc["required_stake"]
    for name, account in partner_accounts.items():
        tx.transact(token.functions.mint(account.address, 1_000 * TOKEN), admin.address)
        tx.transact(token.functions.approve(deployment.vault.address, stake), account.address)
        receipt = tx.transact(deployment.vault.functions.stake(agreement_id, stake), account.address)
        activated = deployment.agreements.events.AgreementActivated().process_receipt(receipt, errors=DISCARD)
        _step(console, f"{name} staked {stake / TOKEN:g} LRW" + (" -> agreement ACTIVE" if activated else ""))

    funding = 10 * terms_doc["reward_per_round"]
    tx.transact(token.functions.mint(coordinator.address, funding), admin.address)
    tx.transact(token.functions.approve(deployment.vault.address, funding), coordinator.address)
    tx.transact(deployment.vault.functions.fund(agreement_id, funding), coordinator.address)
    _step(console, f"coordinator funded the reward pool with {funding / TOKEN:g} LRW")

    round_id, payouts = _round(w3, tx, deployment, agreement_id, coordinator, partner_accounts, terms_doc, console)

    advance_time(w3, dispute_window + 1)
    _step(console, f"dispute window of {dispute_window}s elapsed (local chain time travel)")
    tree = PayoutTree(agreement_id, round_id, payouts)
    claimed: dict[str, int] = {}
    for name, account in partner_accounts.items():
        before = token.functions.balanceOf(account.address).call()
        amount = payouts[account.address]
        tx.transact(
            deployment.vault.functions.claim(agreement_id, round_id, amount, tree.proof(account.address)),
            account.address,
        )
        claimed[name] = token.functions.balanceOf(account.address).call() - before
        _step(console, f"{name} claimed {claimed[name] / TOKEN:.6f} LRW with its Merkle proof")

    pool = dict(zip(
        ("funded", "allocated", "paid", "slashed", "reclaimed", "staked", "unstaked", "stakeSlashed"),
        deployment.vault.functions.pool(agreement_id).call(),
    ))  # fmt: skip
    pool["claimable"] = deployment.vault.functions.claimable(agreement_id).call()
    pool["unallocated"] = deployment.vault.functions.unallocated(agreement_id).call()
    _print_books(console, pool, tx, deployment, agreement_id, partner_accounts)
    return LifecycleResult(
        chain_id=chain_id,
        addresses=deployment.addresses(),
        agreement_id=agreement_id,
        round_id=round_id,
        payouts=payouts,
        pool=pool,
        claimed=claimed,
    )


def _propose(w3, tx, deployment: Deployment, coordinator, token, parties) -> tuple[int, dict]:
    now = w3.eth.get_block("latest")["timestamp"]
    terms_doc = {
        "summary": {"task": "digits classification", "rounds": 5, "epsilon_cap": 8.0, "delta": DELTA},
        "required_stake": 100 * TOKEN,
        "reward_per_round": 300 * TOKEN,
        "payout_rule": "by_sample_count",
    }
    terms = (
        sha256(json.dumps(terms_doc, sort_keys=True).encode()),
        [p.address for p in parties],
        token.address,
        terms_doc["reward_per_round"],
        int(PayoutRule.BY_SAMPLE_COUNT),
        8 * EPSILON_SCALE,
        int(DELTA * 10**18),
        terms_doc["required_stake"],
        now - 1,
        now + 30 * 86400,
        5,
    )
    receipt = tx.transact(deployment.agreements.functions.propose(terms), coordinator.address)
    (event,) = deployment.agreements.events.AgreementProposed().process_receipt(receipt, errors=DISCARD)
    return event["args"]["agreementId"], terms_doc


def _sign_all(w3, tx, deployment: Deployment, agreement_id, coordinator, partner_accounts, console) -> None:
    agreements = deployment.agreements.functions
    for name, account in partner_accounts.items():
        if name == "beta":
            # beta signs off-chain (EIP-712) and the coordinator relays the signature; beta pays no gas.
            relay_signature(tx, deployment.agreements, agreement_id, account, coordinator.address)
            _step(console, f"{name} signed by EIP-712 signature, relayed by the coordinator")
        else:
            tx.transact(agreements.sign(agreement_id), account.address)
            _step(console, f"{name} signed by transaction")


def _round(w3, tx, deployment: Deployment, agreement_id, coordinator, partner_accounts, terms_doc, console):
    from sklearn.datasets import load_digits

    rng = np.random.default_rng(7)
    model = {"w": rng.normal(0, 0.01, size=(64, 10)).astype(np.float32), "b": np.zeros(10, np.float32)}
    model_digest = sha256(b"".join(a.tobytes() for a in model.values()))
    digits = load_digits()
    held_out = np.ascontiguousarray(digits.data[-300:], dtype=np.float32)
    eval_commitment = sha256(held_out.tobytes() + digits.target[-300:].astype(np.int64).tobytes())
    deadline = w3.eth.get_block("latest")["timestamp"] + 3600
    receipt = tx.transact(
        deployment.ledger.functions.openRound(agreement_id, model_digest, deadline, eval_commitment),
        coordinator.address,
    )
    (opened,) = deployment.ledger.events.RoundOpened().process_receipt(receipt, errors=DISCARD)
    round_id = opened["args"]["round"]
    _step(console, f"round {round_id} opened on model {model_digest.hex()[:16]}..., eval set commitment {eval_commitment.hex()[:16]}...")

    samples = {"alpha": 500, "beta": 450, "gamma": 547}
    updates: dict[str, dict[str, np.ndarray]] = {}
    batched: list[tuple[int, int, UpdateCommitment, bytes]] = []
    for position, (name, account) in enumerate(partner_accounts.items()):
        noise, batch, steps = 1.1, 25, 60
        sample_rate = batch / samples[name]
        epsilon = rdp_epsilon(noise, sample_rate, steps, DELTA)
        cumulative = int(np.ceil(epsilon * EPSILON_SCALE))
        delta_update = {k: rng.normal(0, 0.001, size=v.shape).astype(np.float32) for k, v in model.items()}
        updates[name] = delta_update
        envelope_digest = sha256(b"".join(a.tobytes() for a in delta_update.values()))
        manifest = {"partner": account.address, "noise_multiplier": noise, "sample_rate": sample_rate,
                    "steps": steps, "delta": DELTA, "epsilon": epsilon, "samples": samples[name]}
        manifest_digest = sha256(json.dumps(manifest, sort_keys=True).encode())
        if name == "gamma":
            commitment = UpdateCommitment(agreement_id, round_id, account.address, envelope_digest,
                                          manifest_digest, cumulative, samples[name])
            digest = update_commitment_digest(w3.eth.chain_id, deployment.ledger.address, commitment)
            batched.append((position, cumulative, commitment, sign_digest(account.key, digest)))
            _step(console, f"{name} signed its commitment (EIP-712) for the batched anchor: epsilon {epsilon:.3f}")
            continue
        tx.transact(
            deployment.ledger.functions.submitUpdate(agreement_id, round_id, envelope_digest, manifest_digest,
                                                     cumulative, samples[name]),
            account.address,
        )
        _step(console, f"{name} committed its update: epsilon {epsilon:.3f} (cap 8.0), {samples[name]} samples")

    leaves = [commitment_leaf(update_commitment_digest(w3.eth.chain_id, deployment.ledger.address, c), sig)
              for _, _, c, sig in batched]
    batch_doc = json.dumps([{"commitment": c.__dict__, "signature": sig.hex()} for _, _, c, sig in batched],
                           default=lambda v: v.hex() if isinstance(v, bytes) else v, sort_keys=True).encode()
    receipt = tx.transact(
        deployment.ledger.functions.commitBatch(agreement_id, round_id, PositionalTree(leaves).root, sha256(batch_doc),
                                                pack_entries([(p, eps) for p, eps, _, _ in batched])),
        coordinator.address,
    )
    _step(console, f"coordinator anchored the batch of {len(batched)} signed commitment(s), gas {receipt['gasUsed']}")

    total_samples = sum(samples.values())
    aggregate = {k: sum(updates[n][k] * samples[n] for n in updates) / total_samples for k in model}
    aggregate_digest = sha256(b"".join(a.astype(np.float32).tobytes() for a in aggregate.values()))
    reward = terms_doc["reward_per_round"]
    payouts = split_reward(PayoutRule.BY_SAMPLE_COUNT, reward,
                           sample_counts={partner_accounts[n].address: s for n, s in samples.items()})
    report = {"round": round_id, "aggregate": aggregate_digest.hex(), "payouts": payouts, "rule": "by_sample_count"}
    report_digest = sha256(json.dumps(report, sort_keys=True).encode())
    tree = PayoutTree(agreement_id, round_id, payouts)
    advance_time(w3, 3601)
    tx.transact(
        deployment.ledger.functions.finalizeRound(agreement_id, round_id, aggregate_digest, report_digest,
                                                  tree.root, sum(payouts.values())),
        coordinator.address,
    )
    _step(console, f"round {round_id} finalized: aggregate {aggregate_digest.hex()[:16]}..., payout root {tree.root.hex()[:16]}..., total {sum(payouts.values()) / TOKEN:g} LRW")
    return round_id, payouts


def _print_books(console, pool, tx, deployment, agreement_id, partner_accounts) -> None:
    table = Table(title=f"reward vault, agreement {agreement_id}")
    for column in ("funded", "paid", "claimable", "slashed", "unallocated", "reclaimed"):
        table.add_column(column, justify="right")
    table.add_row(*(f"{pool[c] / TOKEN:.6f}" for c in ("funded", "paid", "claimable", "slashed", "unallocated", "reclaimed")))
    console.print(table)
    balanced = pool["funded"] == pool["paid"] + pool["claimable"] + pool["slashed"] + pool["unallocated"] + pool["reclaimed"]
    _step(console, "books balance: funded == paid + claimable + slashed + unallocated + reclaimed" if balanced
          else "[red]books do NOT balance[/]")
    for name, account in partner_accounts.items():
        eps = deployment.ledger.functions.cumulativeEpsilon(agreement_id, account.address).call()
        _step(console, f"{name}: cumulative epsilon on-chain {eps / EPSILON_SCALE:.6f} of cap 8.0")
