"""Deploys a complete lepton-ledger system and describes it for other processes."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, cast

from eth_account.signers.local import LocalAccount
from eth_typing import ChecksumAddress
from web3 import Web3
from web3.contract import Contract
from web3.types import TxReceipt

from .artifacts import Artifact, load_artifact
from .transactions import Transactor
from .typed_data import sign_digest

COORDINATOR_ROLE = Web3.keccak(text="COORDINATOR_ROLE")
AUDITOR_ROLE = Web3.keccak(text="AUDITOR_ROLE")
REGISTRAR_ROLE = Web3.keccak(text="REGISTRAR_ROLE")

CONTRACTS = ("PartnerRegistry", "AgreementRegistry", "RewardVault", "RoundLedger", "ResultsCourt")
# RoundLedger's external libraries (its disputes and challenges run there, on its storage): deployed first, and
# their addresses written into its bytecode where the compiler left a placeholder for each.
LEDGER_LIBRARIES = ("BatchDisputes", "ChallengeDesk")


@dataclass
class Deployment:
    """The five contracts of one deployment, bound to a Web3."""

    partners: Contract
    agreements: Contract
    vault: Contract
    ledger: Contract
    court: Contract

    def addresses(self) -> dict[str, str]:
        return {
            "PartnerRegistry": self.partners.address,
            "AgreementRegistry": self.agreements.address,
            "RewardVault": self.vault.address,
            "RoundLedger": self.ledger.address,
            "ResultsCourt": self.court.address,
        }

    def write(self, path: Path, *, rpc_url: str, chain_id: int, extra: dict[str, Any] | None = None) -> None:
        """Writes deployment.json: chain id, how to reach the chain, and the addresses."""
        document = {"chain_id": chain_id, "rpc_url": rpc_url, "contracts": self.addresses(), **(extra or {})}
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(document, indent=2) + "\n")

    @classmethod
    def at(cls, w3: Web3, addresses: dict[str, str]) -> Deployment:
        """Binds to an existing deployment."""
        bound = {
            name: w3.eth.contract(address=cast(ChecksumAddress, addresses[name]), abi=load_artifact(name).abi)
            for name in CONTRACTS
        }
        return cls(
            partners=bound["PartnerRegistry"],
            agreements=bound["AgreementRegistry"],
            vault=bound["RewardVault"],
            ledger=bound["RoundLedger"],
            court=bound["ResultsCourt"],
        )


@dataclass(frozen=True)
class DevRoles:
    """The accounts that hold each role on a local development chain."""

    admin: LocalAccount
    coordinator: LocalAccount
    auditor: LocalAccount
    treasury: LocalAccount

    @classmethod
    def from_dev_keys(cls) -> DevRoles:
        """Accounts 0, 1, 2 and 7 of the local chain's well-known mnemonic (local chains only)."""
        from .anvil import dev_account

        return cls(admin=dev_account(0), coordinator=dev_account(1), auditor=dev_account(2), treasury=dev_account(7))

    def accounts(self) -> list[LocalAccount]:
        return [self.admin, self.coordinator, self.auditor, self.treasury]


def deploy_with_roles(tx: Transactor, roles: DevRoles, *, dispute_window: int) -> Deployment:
    """Deploys the system with `roles` (whose keys `tx` must hold) in their places."""
    return deploy_system(
        tx,
        admin=roles.admin.address,
        coordinator=roles.coordinator.address,
        auditors=[roles.auditor.address],
        slash_recipient=roles.treasury.address,
        dispute_window=dispute_window,
        # The libraries come from an account that sends nothing else here, so that the admin's creations, and
        # the five addresses (the ledger's is in every partner's round seed), are those of a deployment without.
        library_sender=roles.treasury.address,
    )


def deploy_system(
    tx: Transactor,
    *,
    admin: str,
    coordinator: str,
    auditors: list[str],
    slash_recipient: str,
    dispute_window: int,
    library_sender: str | None = None,
) -> Deployment:
    """Deploys the registries, the vault, the ledger and the results court, binds them together and grants the
    roles. `library_sender` (default `admin`) creates RoundLedger's two libraries first."""
    partners = tx.deploy(load_artifact("PartnerRegistry"), admin, sender=admin)
    agreements = tx.deploy(load_artifact("AgreementRegistry"), partners.address, sender=admin)
    vault = tx.deploy(load_artifact("RewardVault"), partners.address, agreements.address, slash_recipient, sender=admin)
    libraries = {
        name: tx.deploy(load_artifact(name), sender=library_sender or admin).address for name in LEDGER_LIBRARIES
    }
    ledger = tx.deploy(
        linked(load_artifact("RoundLedger"), libraries),
        partners.address,
        agreements.address,
        vault.address,
        dispute_window,
        sender=admin,
    )
    court = tx.deploy(load_artifact("ResultsCourt"), partners.address, agreements.address, vault.address, sender=admin)
    tx.transact(agreements.functions.setVault(vault.address), admin)
    tx.transact(vault.functions.setRoundLedger(ledger.address), admin)
    tx.transact(vault.functions.setResultsCourt(court.address), admin)
    tx.transact(partners.functions.grantRole(COORDINATOR_ROLE, coordinator), admin)
    # This deployment's operator also vets partners (PartnerRegistry.approve/suspend); grant REGISTRAR_ROLE to
    # someone else to keep the two apart.
    tx.transact(partners.functions.grantRole(REGISTRAR_ROLE, coordinator), admin)
    for auditor in auditors:
        tx.transact(partners.functions.grantRole(AUDITOR_ROLE, auditor), admin)
    return Deployment(partners=partners, agreements=agreements, vault=vault, ledger=ledger, court=court)


def linked(artifact: Artifact, libraries: Mapping[str, str]) -> Artifact:
    """`artifact` with each library placeholder (brownie writes ``__Name`` padded with ``_`` to 40 characters)
    replaced by that library's address."""
    bytecode = artifact.bytecode
    for name, address in libraries.items():
        bytecode = bytecode.replace(f"__{name}".ljust(40, "_"), address.removeprefix("0x").lower())
    return replace(artifact, bytecode=bytecode)


def relay_signature(
    tx: Transactor, agreements: Contract, agreement_id: int, party: LocalAccount, relayer: str, *, ttl: int = 3600
) -> TxReceipt:
    """`party` signs the current version of `agreement_id` off-chain (EIP-712) and `relayer` sends it with
    ``signBySig``, paying the gas. The signature expires `ttl` seconds after the latest block.

    Raises:
        ContractReverted: the registry refuses the signature (see AgreementRegistry.signBySig).
    """
    deadline = tx.w3.eth.get_block("latest")["timestamp"] + ttl
    digest = agreements.functions.signingDigest(agreement_id, party.address, deadline).call()
    signature = sign_digest(party.key, digest)
    return tx.transact(agreements.functions.signBySig(agreement_id, party.address, deadline, signature), relayer)
