"""``lepton-ledger vault ...``: what funders and anyone do with the reward vault once rounds are over.

reclaim (a funder takes back its pro-rata share of what was never allocated, once the agreement is over) and
expire (anyone returns to the pool what a round allocated and nobody claimed within the vault's CLAIM_PERIOD).
"""

from __future__ import annotations

import typer

from ..units import TOKEN_DECIMALS
from .context import (
    AgreementArg,
    DeploymentOpt,
    KeyOpt,
    RoundArg,
    RpcUrlOpt,
    command_group,
    fixed_point,
    open_session,
    read_call,
    reports_errors,
    require,
    utc,
)

__all__ = ["vault_app"]

vault_app = command_group(
    "The reward vault: a funder reclaims what was never allocated; anyone expires unclaimed allocations."
)


@vault_app.command("reclaim")
@reports_errors
def reclaim(
    agreement: AgreementArg,
    key: KeyOpt,
    rpc_url: RpcUrlOpt = None,
    deployment: DeploymentOpt = None,
) -> None:
    """Reclaim --key's pro-rata share of AGREEMENT's pool that was never allocated, once the agreement is over
    (terminated, or past the end of the terms in force with no round open).

    Sends RewardVault.reclaim(agreement) from --key; the tokens go back to --key, the funder.
    """
    with open_session(rpc_url=rpc_url, deployment=deployment, key=key) as s:
        s.agreement_state(agreement)
        vault = s.deployment.vault.functions
        funded = int(vault.fundedBy(agreement, s.address).call())
        require(funded > 0, f"{s.address} did not fund agreement {agreement}: it has nothing to reclaim")
        # The vault says why first (the agreement still running, or nothing left of this funder's share).
        read_call(vault.reclaim(agreement), "the vault refuses the reclaim", sender=s.address)
        owed = int(vault.reclaimable(agreement, s.address).call())
        s.tx.transact(vault.reclaim(agreement), s.address)
    typer.echo(f"reclaimed {fixed_point(owed, TOKEN_DECIMALS)} tokens of agreement {agreement} to {s.address}")


@vault_app.command("expire")
@reports_errors
def expire(
    agreement: AgreementArg,
    round: RoundArg,
    key: KeyOpt,
    rpc_url: RpcUrlOpt = None,
    deployment: DeploymentOpt = None,
) -> None:
    """Return to AGREEMENT's pool what ROUND allocated and nobody claimed within the claim period (then the
    funders can reclaim it).

    Sends RewardVault.expireAllocation(agreement, round) from --key (anyone may send it).
    """
    with open_session(rpc_url=rpc_url, deployment=deployment, key=key) as s:
        s.require_round(agreement, round)
        vault = s.deployment.vault.functions
        allocation = read_call(vault.allocation(agreement, round), f"round {round} of agreement {agreement}")
        total, claimed = int(allocation[1]), int(allocation[2])
        require(total > 0, f"round {round} of agreement {agreement} allocated nothing")
        require(not allocation[4], f"the allocation of round {round} of agreement {agreement} was revoked")
        require(not allocation[5], f"the allocation of round {round} of agreement {agreement} has already expired")
        expires = int(allocation[3]) + int(vault.CLAIM_PERIOD().call())
        now = int(s.w3.eth.get_block("pending")["timestamp"])
        require(now > expires, f"claims of round {round} of agreement {agreement} run until {utc(expires)}")
        s.tx.transact(vault.expireAllocation(agreement, round), s.address)
    typer.echo(
        f"expired the allocation of round {round} of agreement {agreement}: {fixed_point(total - claimed, TOKEN_DECIMALS)} "
        "unclaimed tokens are back in the pool"
    )
