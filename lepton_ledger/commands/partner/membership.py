"""``partner register|sign|stake|exit|unstake``: a partner joins the registry, signs an agreement's terms (or
writes its signature for a relayer), stakes, and leaves."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from ...chain.state import Partner, Terms
from ...units import (
    TOKEN_DECIMALS,
    AgreementStatus,
    PartnerStatus,
)
from ..context import (
    AgreementArg,
    DeploymentOpt,
    IpfsOpt,
    KeyOpt,
    RpcUrlOpt,
    fixed_point,
    open_session,
    parse_tokens,
    reports_errors,
    require,
)

__all__ = ["RELAY_FILE_VERSION", "exit_", "register", "sign", "stake", "unstake"]

RELAY_FILE_VERSION = 1  # of the relayed signature file (commands/partner/__init__.py)


@reports_errors
def register(
    key: KeyOpt,
    name: Annotated[str, typer.Option(help="Profile: the organisation's name.")],
    contact: Annotated[str, typer.Option(help="Profile: a contact address.")] = "",
    field: Annotated[list[str] | None, typer.Option(help="Profile: another KEY=VALUE field (repeatable).")] = None,
    rpc_url: RpcUrlOpt = None,
    deployment: DeploymentOpt = None,
    ipfs: IpfsOpt = None,
) -> None:
    """Register --key's account in the PartnerRegistry with its profile and its X25519 key.

    Sends PartnerRegistry.register(profile digest, X25519 public key) from --key. The profile document (JSON,
    canonical) is put to the store, where its digest finds it. The coordinator and the auditors register the same
    way, so that updates can be encrypted to them. A partner then waits for `coordinator approve`.
    """
    from ...chain import agreements

    profile: dict[str, str] = {"name": name, "contact": contact}
    for item in field or []:
        k, sep, v = item.partition("=")
        require(bool(sep and k), f"--field takes KEY=VALUE, not {item!r}")
        profile[k] = v
    with open_session(rpc_url=rpc_url, deployment=deployment, key=key, ipfs=ipfs) as s:
        status = Partner.read(s.deployment.partners.functions.partnerOf(s.address)).status
        require(status is PartnerStatus.NONE, f"{s.address} is already registered in the PartnerRegistry ({status})")
        from ...rounds.roles import publish_document

        cid = publish_document(s.store, profile)
        agreements.register(s.tx, s.deployment, s.address, profile, s.identity.x25519_public)
    typer.echo(f"registered {s.address} (X25519 key {s.identity.x25519_public.hex()}), profile {cid}")


def _signing_checks(s: Any, agreement_id: int) -> int:
    """The agreement's current version, after checking the signer may sign it (what the registry would refuse)."""
    state = s.agreement_state(agreement_id)
    s.require_party(agreement_id, s.address)
    require(state.status is not AgreementStatus.TERMINATED, f"agreement {agreement_id} is terminated")
    # A version awaits signatures while it is the latest and not (yet) in force: a proposal or an amendment.
    require(
        state.version != state.active_version,
        f"agreement {agreement_id} has no version awaiting signatures (version {state.active_version} is in force)",
    )
    require(
        not s.deployment.agreements.functions.hasExited(agreement_id, s.address).call(),
        f"{s.address} has exited agreement {agreement_id} and can sign no later version",
    )
    require(
        bool(s.deployment.partners.functions.isApproved(s.address).call()),
        f"{s.address} is not an approved partner yet (the coordinator runs `coordinator approve`)",
    )
    version = state.version
    signed = s.deployment.agreements.functions.hasSigned(agreement_id, version, s.address).call()
    require(not signed, f"{s.address} has already signed version {version} of agreement {agreement_id}")
    return version


@reports_errors
def sign(
    agreement: AgreementArg,
    key: KeyOpt,
    relay_to_file: Annotated[
        Path | None,
        typer.Option(help="Write an EIP-712 signature to this file for a relayer instead of sending a transaction."),
    ] = None,
    ttl: Annotated[int, typer.Option(min=60, help="With --relay-to-file: seconds the signature stays valid.")] = 86400,
    rpc_url: RpcUrlOpt = None,
    deployment: DeploymentOpt = None,
) -> None:
    """Sign the current version of AGREEMENT's terms.

    Sends AgreementRegistry.sign(AGREEMENT) from --key; with --relay-to-file, sends nothing: writes --key's
    EIP-712 signature of AgreementRegistry.signingDigest for `coordinator relay-signature` (who pays the gas).
    """
    from ...chain import agreements
    from ...chain.typed_data import sign_digest

    with open_session(rpc_url=rpc_url, deployment=deployment, key=key, sends=relay_to_file is None) as s:
        _signing_checks(s, agreement)
        if relay_to_file is None:
            agreements.sign(s.tx, s.deployment, agreement, s.account)
            typer.echo(f"{s.address} signed agreement {agreement}")
            return
        deadline = int(s.w3.eth.get_block("latest")["timestamp"]) + ttl
        digest = s.deployment.agreements.functions.signingDigest(agreement, s.address, deadline).call()
        document = {
            "version": RELAY_FILE_VERSION,
            "chain_id": s.w3.eth.chain_id,
            "agreement_registry": s.deployment.agreements.address,
            "agreement_id": agreement,
            "party": s.address,
            "deadline": deadline,
            "signature": "0x" + sign_digest(bytes(s.account.key), bytes(digest)).hex(),
        }
    relay_to_file.write_text(json.dumps(document, indent=2) + "\n")
    typer.echo(
        f"wrote the EIP-712 signature of {s.address} for agreement {agreement} to {relay_to_file} "
        f"(valid until {deadline})"
    )


@reports_errors
def stake(
    agreement: AgreementArg,
    key: KeyOpt,
    amount: Annotated[str | None, typer.Option(help="Tokens to stake; default: what the required stake lacks.")] = None,
    rpc_url: RpcUrlOpt = None,
    deployment: DeploymentOpt = None,
) -> None:
    """Stake collateral in AGREEMENT's reward token.

    Sends, from --key: ERC20.approve(RewardVault, amount) on the agreement's reward token, then
    RewardVault.stake(AGREEMENT, amount). The agreement activates when this was the last stake or signature missing.
    """
    from ...chain import agreements

    with open_session(rpc_url=rpc_url, deployment=deployment, key=key) as s:
        s.require_party(agreement, s.address)
        terms = Terms.read(s.deployment.agreements.functions.terms(agreement))
        held = int(s.deployment.vault.functions.stakeOf(agreement, s.address).call())
        value = parse_tokens(amount, "--amount") if amount is not None else max(0, terms.required_stake - held)
        require(value > 0 or amount is None, f"--amount must be more than 0, not {amount!r}")
        require(
            value > 0,
            f"{s.address} already holds {fixed_point(held, TOKEN_DECIMALS)} staked (required "
            f"{fixed_point(terms.required_stake, TOKEN_DECIMALS)}); pass --amount to add "
            "more",
        )
        token = s.token(terms.reward_token)
        balance = int(token.functions.balanceOf(s.address).call())
        require(
            balance >= value,
            f"{s.address} holds {fixed_point(balance, TOKEN_DECIMALS)} of the reward token, "
            f"cannot stake {fixed_point(value, TOKEN_DECIMALS)}",
        )
        activated = agreements.stake(s.tx, s.deployment, token, agreement, s.address, value)
    typer.echo(
        f"{s.address} staked {fixed_point(value, TOKEN_DECIMALS)} in agreement {agreement}"
        + (": the agreement is now active" if activated else "")
    )


@reports_errors
def exit_(
    agreement: AgreementArg,
    key: KeyOpt,
    rpc_url: RpcUrlOpt = None,
    deployment: DeploymentOpt = None,
) -> None:
    """Leave AGREEMENT once the end of the terms in force has passed, which frees --key's stake (`partner unstake`)
    once no round is open and no dispute window runs. No later version of the terms can come into force after it.

    Sends AgreementRegistry.exit(AGREEMENT) from --key; refused (nothing sent) before that end or a second time.
    """
    with open_session(rpc_url=rpc_url, deployment=deployment, key=key) as s:
        s.require_party(agreement, s.address)
        s.tx.transact(s.deployment.agreements.functions.exit(agreement), s.address)
    typer.echo(f"{s.address} left agreement {agreement}: `partner unstake {agreement}` takes its stake back")


@reports_errors
def unstake(
    agreement: AgreementArg,
    key: KeyOpt,
    amount: Annotated[str | None, typer.Option(help="Tokens to withdraw; default: the whole stake.")] = None,
    rpc_url: RpcUrlOpt = None,
    deployment: DeploymentOpt = None,
) -> None:
    """Withdraw --key's stake from AGREEMENT: allowed while no version was ever in force, or after the agreement
    was terminated or --key exited it (`partner exit`), once no round is open, no dispute window runs and no
    challenge against --key is pending.

    Sends RewardVault.unstake(AGREEMENT, amount) from --key; refused (nothing sent) otherwise, with the reason.
    """
    with open_session(rpc_url=rpc_url, deployment=deployment, key=key) as s:
        s.require_party(agreement, s.address)
        held = int(s.deployment.vault.functions.stakeOf(agreement, s.address).call())
        value = parse_tokens(amount, "--amount") if amount is not None else held
        require(
            value > 0,
            f"--amount must be more than 0, not {amount!r}"
            if amount is not None
            else f"{s.address} holds no stake in agreement {agreement}",
        )
        require(
            value <= held,
            f"{s.address} holds {fixed_point(held, TOKEN_DECIMALS)} staked in agreement "
            f"{agreement}, cannot withdraw {fixed_point(value, TOKEN_DECIMALS)}",
        )
        s.tx.transact(s.deployment.vault.functions.unstake(agreement, value), s.address)
    typer.echo(f"{s.address} withdrew {fixed_point(value, TOKEN_DECIMALS)} of its stake in agreement {agreement}")
