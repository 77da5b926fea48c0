"""``lepton-ledger deploy``: the admin deploys the system and writes the deployment file the other commands read.

The deployment file (JSON, ``chain.deployment.Deployment.write``) holds ``chain_id``, ``rpc_url`` (empty for
the embedded chain), ``contracts`` (the five addresses) and what the role commands need beside them:
``admin``, ``coordinator``, ``auditors`` (the default recipients of every update envelope), ``dispute_window``
and, with ``--with-token``, ``reward_token`` (a mintable ``LeptonToken`` owned by the admin, for local use).
"""

from __future__ import annotations

from typing import Annotated, Any

import typer

from .. import settings
from ..rounds.coordinator_steps import eval_set_spec
from .context import (
    CommandError,
    DeploymentOpt,
    KeyOpt,
    RpcUrlOpt,
    default_deployment_path,
    no_gas_message,
    parse_address,
    parse_tokens,
    reports_errors,
    unlock_key,
)

__all__ = ["deploy", "deploy_app", "deploy_ledger"]

deploy_app = typer.Typer(pretty_exceptions_show_locals=False, add_completion=False)


def deploy_ledger(
    tx: Any,
    *,
    admin: str,
    coordinator: str,
    auditors: list[str],
    slash_recipient: str,
    dispute_window: int,
    with_token: bool = False,
    mints: dict[str, int] | None = None,
) -> tuple[Any, dict[str, Any]]:
    """Deploys the system (and a reward token) from `admin`, mints, and returns ``(deployment, extra)`` where
    `extra` is what the deployment file holds beside the addresses."""
    from ..chain.artifacts import load_artifact
    from ..chain.deployment import deploy_system

    deployment = deploy_system(
        tx,
        admin=admin,
        coordinator=coordinator,
        auditors=auditors,
        slash_recipient=slash_recipient,
        dispute_window=dispute_window,
    )
    extra: dict[str, Any] = {
        "admin": admin,
        "coordinator": coordinator,
        "auditors": auditors,
        "dispute_window": dispute_window,
    }
    if with_token:
        token = tx.deploy(load_artifact("LeptonToken"), "Lepton Reward", "LRW", admin, sender=admin)
        for holder, amount in (mints or {}).items():
            tx.transact(token.functions.mint(holder, amount), admin)
        extra["reward_token"] = token.address
    return deployment, extra


def _mints(values: list[str]) -> dict[str, int]:
    mints: dict[str, int] = {}
    for value in values:
        address, sep, amount = value.partition("=")
        if not sep:
            raise CommandError(f"--mint takes ADDRESS=TOKENS, not {value!r}")
        holder = parse_address(address, "--mint address")
        mints[holder] = mints.get(holder, 0) + parse_tokens(amount, f"--mint amount for {holder}")
    return mints


@deploy_app.command("deploy")
@reports_errors
def deploy(
    key: KeyOpt,
    rpc_url: RpcUrlOpt = None,
    deployment: DeploymentOpt = None,
    coordinator: Annotated[
        str | None, typer.Option(help="Address granted COORDINATOR_ROLE and the registrar role; default: --key's.")
    ] = None,
    auditor: Annotated[list[str] | None, typer.Option(help="Address granted AUDITOR_ROLE (repeatable).")] = None,
    slash_recipient: Annotated[str | None, typer.Option(help="Receives slashed stakes; default: --key's.")] = None,
    dispute_window: Annotated[int, typer.Option(min=1, help="Seconds from finalization to claims.")] = 3600,
    with_token: Annotated[bool, typer.Option("--with-token", help="Also deploy a mintable reward token.")] = False,
    mint: Annotated[list[str] | None, typer.Option(help="ADDRESS=TOKENS of that token to mint (repeatable).")] = None,
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing deployment file.")] = False,
) -> None:
    """Deploy PartnerRegistry, AgreementRegistry, RewardVault, RoundLedger and ResultsCourt, grant the roles,
    write the deployment file.

    Sends, all from --key (the admin): seven contract creations (the five and RoundLedger's two libraries),
    setVault, setRoundLedger, setResultsCourt, grantRole
    (COORDINATOR_ROLE, the PartnerRegistry's REGISTRAR_ROLE to the same coordinator, who approves and suspends
    partners, then AUDITOR_ROLE per auditor); with --with-token, a LeptonToken creation and one mint per --mint.
    """
    path = deployment or default_deployment_path()
    if path.exists() and not force:
        raise CommandError(f"{path} exists: pass --force to replace it, or --deployment for another file")
    auditors = [parse_address(a, "--auditor") for a in auditor or []]
    mints = _mints(mint or [])
    if mints and not with_token:
        raise CommandError("--mint needs --with-token (it mints the token deployed with it)")
    coordinator_address = parse_address(coordinator, "--coordinator") if coordinator else None
    slash_address = parse_address(slash_recipient, "--slash-recipient") if slash_recipient else None
    identity = unlock_key(key)

    from ..chain.connection import connect
    from ..chain.transactions import Transactor

    with connect(rpc_url) as w3:
        admin = identity.address
        if w3.eth.get_balance(admin) == 0:
            raise CommandError(no_gas_message(w3, admin, key))
        typer.echo(f"chain {w3.eth.chain_id} ({rpc_url or settings.rpc_url() or 'the local node'}), admin {admin}")
        tx = Transactor(w3, [identity.account])
        deployed, extra = deploy_ledger(
            tx,
            admin=admin,
            coordinator=coordinator_address or admin,
            auditors=auditors,
            slash_recipient=slash_address or admin,
            dispute_window=dispute_window,
            with_token=with_token,
            mints=mints,
        )
        # What `coordinator open` evaluates on by default, so that `audit` can rebuild it from this file as it is;
        # `open` rewrites it when it evaluates on something else.
        deployed.write(
            path,
            rpc_url=rpc_url or "",
            chain_id=w3.eth.chain_id,
            extra={**extra, "eval_set": eval_set_spec("digits", 0), "model": "logreg"},
        )
    token = {"LeptonToken": extra["reward_token"]} if with_token else {}
    for name, address in {**deployed.addresses(), **token}.items():
        typer.echo(f"{name}: {address}")
    typer.echo(f"wrote {path}")
