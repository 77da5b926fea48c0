"""A funded agreement's world, built in one place for the demo, the benchmarks and the tests.

:func:`build_world`: the system deployed with its development roles and a reward token (LeptonToken), the
coordinator, the auditor and every partner registered with a fresh X25519 key, each partner approved by the
coordinator. :meth:`World.join_and_fund`: an agreement proposed by the caller signed by every party (by
transaction, or by an EIP-712 signature the coordinator relays), staked, its pool funded, and the coordinator's
bond posted when its terms ask for one. Tokens are minted by the admin as they are needed (a local chain's token).

``on_step`` (optional) hears one line per step, for a narrating caller (the demo).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from eth_account.signers.local import LocalAccount
from web3 import Web3
from web3.contract import Contract

from ..chain import agreements
from ..chain.agreements import AgreementTerms
from ..chain.artifacts import load_artifact
from ..chain.deployment import Deployment, DevRoles, deploy_with_roles
from ..chain.transactions import Transactor
from ..envelope import generate_x25519_keypair
from ..units import TOKEN

__all__ = ["World", "build_world"]

Say = Callable[[str], None]


def _silent(_: str) -> None:
    pass


@dataclass
class World:
    """A deployed system and its registered parties.

    Attributes:
        partners: the partners' accounts by name (in the order given to :func:`build_world`).
        x25519: X25519 private keys by name: ``"coordinator"``, ``"auditor"`` and each partner's name.
    """

    tx: Transactor  # a Transactor holding the keys of the roles and the partners
    deployment: Deployment
    token: Contract  # the LeptonToken contract
    roles: DevRoles
    partners: dict[str, LocalAccount]
    x25519: dict[str, bytes]

    @property
    def w3(self) -> Web3:
        return self.tx.w3

    def recipients(self) -> list[str]:
        """Whom an update envelope is sealed to: the coordinator and the auditor."""
        return [self.roles.coordinator.address, self.roles.auditor.address]

    def mint(self, to: str, amount: int) -> None:
        self.tx.transact(self.token.functions.mint(to, amount), self.roles.admin.address)

    def join_and_fund(
        self,
        agreement_id: int,
        terms: AgreementTerms,
        *,
        names: list[str] | None = None,
        relayed: Callable[[int], bool] = lambda i: False,
        funded_rounds: int = 1,
        on_step: Say = _silent,
    ) -> None:
        """Partners `names` (default all) sign proposed agreement `agreement_id` (partner ``i`` by a signature
        the coordinator relays when ``relayed(i)``), stake ``terms.required_stake`` (the last stake activates it),
        the coordinator funds ``funded_rounds`` rounds of reward and posts ``terms.coordinator_bond`` if any."""
        tx, d, coordinator = self.tx, self.deployment, self.roles.coordinator.address
        members = {n: self.partners[n] for n in (names if names is not None else self.partners)}
        for i, (name, account) in enumerate(members.items()):
            if relayed(i):
                agreements.sign(tx, d, agreement_id, account, relayer=coordinator)
                on_step(f"{name} signed by EIP-712 signature, relayed by the coordinator (no gas for {name})")
            else:
                agreements.sign(tx, d, agreement_id, account)
                on_step(f"{name} signed by transaction")
        for name, account in members.items():
            self.mint(account.address, terms.required_stake)
            activated = agreements.stake(tx, d, self.token, agreement_id, account.address, terms.required_stake)
            on_step(
                f"{name} staked {terms.required_stake / TOKEN:g} LRW" + (" -> agreement ACTIVE" if activated else "")
            )
        funding = terms.reward_per_round * funded_rounds
        self.mint(coordinator, funding)
        agreements.fund(tx, d, self.token, agreement_id, coordinator, funding)
        on_step(f"coordinator funded the pool with {funding / TOKEN:g} LRW")
        if terms.coordinator_bond:
            self.mint(coordinator, terms.coordinator_bond)
            agreements.post_bond(tx, d, self.token, agreement_id, coordinator, terms.coordinator_bond)
            on_step(
                f"coordinator posted its bond of {terms.coordinator_bond / TOKEN:g} LRW (the parties' if a "
                "challenge of its results is upheld)"
            )


def build_world(
    tx: Transactor,
    partners: Mapping[str, Any],
    *,
    dispute_window: int,
    roles: DevRoles | None = None,
    profile: Callable[[str], Mapping[str, Any]] = lambda who: {"name": who},
    on_step: Say = _silent,
) -> World:
    """Deploys the system and a reward token with `tx` (which holds the keys of `roles` and of `partners`),
    registers the coordinator, the auditor and `partners` (name: account) with fresh X25519 keys and the digest
    of ``profile(name)``, and approves every partner."""
    roles = roles or DevRoles.from_dev_keys()
    deployment = deploy_with_roles(tx, roles, dispute_window=dispute_window)
    token = tx.deploy(
        load_artifact("LeptonToken"), "Lepton Reward", "LRW", roles.admin.address, sender=roles.admin.address
    )
    for name, address in {**deployment.addresses(), "LeptonToken": token.address}.items():
        on_step(f"deployed {name} at {address}")
    x25519: dict[str, bytes] = {}
    for who, account in [("coordinator", roles.coordinator), ("auditor", roles.auditor), *partners.items()]:
        private, public = generate_x25519_keypair()
        x25519[who] = private
        agreements.register(tx, deployment, account.address, profile(who), public)
        if who in partners:
            agreements.approve(tx, deployment, account.address, roles.coordinator.address)
        on_step(
            f"{who} {account.address} registered, X25519 key {public.hex()[:16]}..."
            + (" , approved" if who in partners else "")
        )
    return World(tx, deployment, token, roles, dict(partners), x25519)
