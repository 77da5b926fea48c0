"""``vault_conserves`` and ``bonds_conserve``.

``vault_conserves``, per agreement, at the audit block: the vault's books add up
(``funded == paid + claimable + slashed + unallocated + reclaimed``, stakes ``staked == unstaked + slashed +
held``), every figure of the books equals the sum of the events that moved it (``Funded``, ``Allocated`` less
``AllocationRevoked``, ``Claimed``, ``RewardForfeited``, ``Reclaimed``, ``Staked``, ``Unstaked``, ``Slashed``),
no round paid out more than it allocated, and the vault's token balance covers what it owes in that token
(claimable + unallocated + stakes held, over every agreement paid in it).

``bonds_conserve``, per agreement, at the audit block: the results court's books of the coordinator bonds add up
(``posted == withdrawn + slashed + held``, ``slashed == shares paid + shares owed``), each figure equals the sum
of the events that moved it (``BondPosted``, ``BondWithdrawn``, ``BondSlashed``, ``BondShareClaimed``), every
upheld results challenge slashed a bond and revoked its round's allocation, and the court's token balance covers
the bonds held and the shares owed (over every agreement bonded in that token).
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any, cast

from eth_typing import ABI, ChecksumAddress

from ...chain.state import Allocation, Bonds, Pool
from ..chain_view import ChainView
from ..model import BONDS_CONSERVE, VAULT_CONSERVES, CheckResult

__all__ = ["check_bonds", "check_vault"]

_BALANCE_OF_ABI: ABI = [
    {
        "type": "function",
        "name": "balanceOf",
        "stateMutability": "view",
        "inputs": [{"name": "account", "type": "address"}],
        "outputs": [{"name": "", "type": "uint256"}],
    }
]


def _sum(view: ChainView, event: str, agreement_id: int, field: str) -> int:
    return sum(int(e.args[field]) for e in view.events(event, agreement_id=agreement_id))


def check_vault(view: ChainView) -> list[CheckResult]:
    vault = view.deployment.vault.functions
    block = view.block
    books: dict[int, dict[str, int]] = {}
    tokens: dict[int, str] = {}
    for a in view.agreement_ids():
        fields, claimable, unallocated = view.call_many([vault.pool(a), vault.claimable(a), vault.unallocated(a)])
        pool: dict[str, int] = Pool.decode(fields).by_solidity_name()
        pool["claimable"], pool["unallocated"] = int(claimable), int(unallocated)
        books[a] = pool
        tokens[a] = view.terms(a, 1).reward_token  # the registry refuses a change of reward token
    owed: dict[str, int] = defaultdict(int)
    for a, pool in books.items():
        owed[tokens[a]] += (
            pool["claimable"] + pool["unallocated"] + pool["staked"] - pool["unstaked"] - pool["stakeSlashed"]
        )
    balances = {token: _balance_of(view, token, view.deployment.vault.address, block) for token in owed}
    results = []
    for a, pool in books.items():
        problems = []
        right = pool["paid"] + pool["claimable"] + pool["slashed"] + pool["unallocated"] + pool["reclaimed"]
        if pool["funded"] != right:
            problems.append(f"funded {pool['funded']} != paid + claimable + slashed + unallocated + reclaimed {right}")
        held = pool["staked"] - pool["unstaked"] - pool["stakeSlashed"]
        if held < 0:
            problems.append(f"stakes: unstaked + slashed exceed staked by {-held}")
        from_events = {
            "funded": _sum(view, "Funded", a, "amount"),
            "allocated": _sum(view, "Allocated", a, "total")
            - _sum(view, "AllocationRevoked", a, "total")
            - _sum(view, "AllocationExpired", a, "total"),
            "paid": _sum(view, "Claimed", a, "amount"),
            "slashed": _sum(view, "RewardForfeited", a, "amount"),
            "reclaimed": _sum(view, "Reclaimed", a, "amount"),
            "staked": _sum(view, "Staked", a, "amount"),
            "unstaked": _sum(view, "Unstaked", a, "amount"),
            "stakeSlashed": _sum(view, "Slashed", a, "amount"),
        }
        for name, value in from_events.items():
            if pool[name] != value:
                problems.append(f"{name}: the vault's books say {pool[name]}, its events add up to {value}")
        allocated = {int(e.args["round"]): int(e.args["total"]) for e in view.events("Allocated", agreement_id=a)}
        claimed: dict[int, int] = defaultdict(int)
        for e in view.events(["Claimed", "RewardForfeited"], agreement_id=a):
            claimed[int(e.args["round"])] += int(e.args["amount"])
        for r, amount in sorted(claimed.items()):
            if amount > allocated.get(r, 0):
                problems.append(f"round {r} paid {amount}, more than its allocation {allocated.get(r, 0)}")
        token = tokens[a]
        if balances[token] < owed[token]:
            problems.append(f"the vault holds {balances[token]} of {token}, owes {owed[token]}")
        evidence: dict[str, Any] = {
            "block": block,
            "token": token,
            "books": {k: str(v) for k, v in pool.items()},
            "from_events": {k: str(v) for k, v in from_events.items()},
            "token_balance": str(balances[token]),
            "owed_in_token": str(owed[token]),
        }
        message = "; ".join(problems) or (
            f"funded {pool['funded']} = paid {pool['paid']} + claimable "
            f"{pool['claimable']} + slashed {pool['slashed']} + unallocated "
            f"{pool['unallocated']} + reclaimed {pool['reclaimed']}, as the events "
            "say; the token balance covers it"
        )
        results.append(CheckResult(VAULT_CONSERVES, not problems, message, a, None, None, None, evidence))
    return results


def _bond_books(view: ChainView, agreement_id: int) -> tuple[dict[str, int], int, int]:
    """The court's books of the agreement's bonds, the bonds still held and the shares still owed."""
    court = view.deployment.court.functions
    holders = sorted({e.args["coordinator"] for e in view.events("BondPosted", agreement_id=agreement_id)})
    parties = view.terms(agreement_id, 1).parties  # the registry refuses a change of parties
    # One batch request: a request a party and a holder before.
    fields, *amounts = view.call_many(
        [
            court.bonds(agreement_id),
            *(court.bondOf(agreement_id, h) for h in holders),
            *(court.bondShareOf(agreement_id, p) for p in parties),
        ]
    )
    held, owed = sum(map(int, amounts[: len(holders)])), sum(map(int, amounts[len(holders) :]))
    return Bonds.decode(fields).by_solidity_name(), held, owed


def check_bonds(view: ChainView) -> list[CheckResult]:
    block = view.block
    figures = {a: _bond_books(view, a) for a in view.agreement_ids()}
    tokens = {a: view.terms(a, 1).reward_token for a in figures}  # the registry refuses a change of token
    # One balance holds the bonds of every agreement in a token: it must cover them together, not each alone.
    owed_in: dict[str, int] = defaultdict(int)
    for a, (_, held, owed) in figures.items():
        owed_in[tokens[a]] += held + owed
    results = []
    for a, (books, held, owed) in figures.items():
        problems = []
        if books["posted"] != books["withdrawn"] + books["slashed"] + held:
            problems.append(
                f"posted {books['posted']} != withdrawn {books['withdrawn']} + slashed {books['slashed']} + held {held}"
            )
        if books["slashed"] != books["sharesPaid"] + owed:
            problems.append(f"slashed {books['slashed']} != shares paid {books['sharesPaid']} + owed {owed}")
        from_events = {
            name: _sum(view, event, a, "amount")
            for name, event in (
                ("posted", "BondPosted"),
                ("withdrawn", "BondWithdrawn"),
                ("slashed", "BondSlashed"),
                ("sharesPaid", "BondShareClaimed"),
            )
        }
        for name, value in from_events.items():
            if books[name] != value:
                problems.append(f"{name}: the court's books say {books[name]}, its events add up to {value}")
        revoked = {int(e.args["round"]) for e in view.events("AllocationRevoked", agreement_id=a)}
        slashed_by = {int(e.args["challengeId"]) for e in view.events("BondSlashed", agreement_id=a)}
        upheld = {int(e.args["challengeId"]) for e in view.events("ResultsChallengeResolved") if e.args["upheld"]}
        for e in view.events("ResultsChallengeRaised", agreement_id=a):
            cid, r = int(e.args["challengeId"]), int(e.args["round"])
            if cid not in upheld:
                continue
            allocated = Allocation.read(view.deployment.vault.functions.allocation(a, r), block=block).root != bytes(32)
            if cid not in slashed_by or (allocated and r not in revoked):
                problems.append(
                    f"results challenge {cid} of round {r} was upheld without slashing the bond and "
                    "revoking the round's payouts"
                )
        token = tokens[a]
        balance = _balance_of(view, token, view.deployment.court.address, block)
        if balance < owed_in[token]:
            problems.append(f"the court holds {balance} of {token}, owes {owed_in[token]} in bonds and shares")
        evidence = {
            "block": block,
            "token": token,
            "books": {k: str(v) for k, v in books.items()},
            "from_events": {k: str(v) for k, v in from_events.items()},
            "held": str(held),
            "owed": str(owed),
            "token_balance": str(balance),
        }
        message = "; ".join(problems) or (
            f"bonds posted {books['posted']} = withdrawn {books['withdrawn']} + "
            f"slashed {books['slashed']} + held {held}, as the events say; every "
            "upheld results challenge slashed and revoked"
        )
        results.append(CheckResult(BONDS_CONSERVE, not problems, message, a, None, None, None, evidence))
    return results


def _balance_of(view: ChainView, token: str, holder: str, block: int) -> int:
    """`holder`'s balance of the ERC-20 at `token` at `block`."""
    erc20 = view.w3.eth.contract(address=cast(ChecksumAddress, token), abi=_BALANCE_OF_ABI)
    return int(erc20.functions.balanceOf(holder).call(block_identifier=block))
