"""``partner claim|status``: a partner's rewards and standing in an agreement."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ...units import (
    EPSILON_DECIMALS,
    EPSILON_SCALE,
    TOKEN_DECIMALS,
    AgreementStatus,
)
from ..context import (
    AgreementArg,
    CommandError,
    DeploymentOpt,
    IpfsOpt,
    KeyOpt,
    ReadKeyOpt,
    RoundArg,
    RpcUrlOpt,
    fixed_point,
    open_session,
    parse_address,
    reports_errors,
    require,
    utc,
)

AddressOpt = Annotated[str | None, typer.Option(help="The partner's address, instead of --key.")]


@reports_errors
def claim(
    agreement: AgreementArg,
    round: RoundArg,
    key: KeyOpt,
    rpc_url: RpcUrlOpt = None,
    deployment: DeploymentOpt = None,
    ipfs: IpfsOpt = None,
) -> None:
    """Claim --key's reward for ROUND of AGREEMENT.

    Fetches the round's report from the store by its on-chain digest, re-builds the payout Merkle tree, checks its
    root against the chain, and sends RewardVault.claim(agreement, round, amount, proof) from --key.
    """
    from ...rounds.roles import build_partner, fresh_accountant, round_payout

    with open_session(rpc_url=rpc_url, deployment=deployment, key=key, ipfs=ipfs) as s:
        s.require_round(agreement, round)
        paid = round_payout(s.deployment, s.store, agreement, round, s.address)
        require(paid.amount > 0, f"{s.address} has no payout in round {round} of agreement {agreement}")
        require(not paid.claimed, f"{s.address} has already claimed round {round} of agreement {agreement}")
        opens, now = paid.claimable_at, int(s.w3.eth.get_block("pending")["timestamp"])  # when the claim is mined
        require(
            now >= opens,
            f"claims of round {round} open at {utc(opens)}, in {opens - now} s (the dispute "
            "window; on the local node, `lepton-ledger node time --advance` moves time)",
        )
        partner = build_partner(
            account=s.account,
            tx=s.tx,
            deployment=s.deployment,
            store=s.store,
            accountant=fresh_accountant(s.deployment, agreement, s.address),
            accountant_path=s.accountant_file(agreement, s.address),
        )
        tx_hash = partner.claim(agreement, round, paid.amount, paid.tree.proof(s.address))
    typer.echo(
        f"claimed {fixed_point(paid.amount, TOKEN_DECIMALS)} for round {round} of agreement {agreement}, tx {tx_hash}"
    )


@reports_errors
def status(
    agreement: AgreementArg,
    key: ReadKeyOpt = None,
    address: AddressOpt = None,
    rpc_url: RpcUrlOpt = None,
    deployment: DeploymentOpt = None,
    ipfs: IpfsOpt = None,
) -> None:
    """Show a partner's standing in AGREEMENT: epsilon spent (on-chain and local) against the cap, stake (and
    whether it is locked), rewards claimable and claimed, its disputed batch entries and the challenges against
    it. Sends nothing and needs no password."""
    from ...chain import disputes
    from ...challenges.challenge import challenges
    from ...rounds.roles import standing

    who = _who(key, address)
    with open_session(rpc_url=rpc_url, deployment=deployment, key=None, ipfs=ipfs) as s:
        s.require_party(agreement, who)
        now = int(s.w3.eth.get_block("pending")["timestamp"])
        held = standing(s.deployment, s.store, agreement, who, now)
        path = s.accountant_file(agreement, who)
        local = _local_epsilon(path)
        locked = bool(s.deployment.ledger.functions.isStakeLocked(agreement, who).call())
        # RewardVault.unstake also refuses while the terms are in force for a party that has not exited.
        in_force = (
            s.agreement_state(agreement).status is AgreementStatus.ACTIVE
            and not s.deployment.agreements.functions.hasExited(agreement, who).call()
        )
        records = disputes.disputes(s.deployment, agreement, party=who)
        against = [c for c in challenges(s.deployment) if c.agreement_id == agreement and c.partner == who]
    held_as = "locked" if locked else "held while the terms are in force" if in_force else "withdrawable"
    typer.echo(f"partner:          {who}")
    typer.echo(
        f"epsilon on-chain: {held.epsilon_fixed / EPSILON_SCALE:.6f} of cap "
        f"{fixed_point(held.epsilon_cap_fixed, EPSILON_DECIMALS)}"
    )
    typer.echo(f"epsilon local:    {'-' if local is None else f'{local:.6f}'} ({path})")
    typer.echo(
        f"stake:            {fixed_point(held.stake, TOKEN_DECIMALS)} (required "
        f"{fixed_point(held.required_stake, TOKEN_DECIMALS)}; {held_as})"
    )
    typer.echo(f"claimable now:    {fixed_point(held.claimable, TOKEN_DECIMALS)}")
    typer.echo(f"claimed:          {fixed_point(held.claimed, TOKEN_DECIMALS)}")
    for r in records:
        when = f", answer by {utc(r.answer_by)}" if r.status == "Open" else ""
        typer.echo(
            f"dispute:          round {r.round}, entry epsilon {fixed_point(r.epsilon, EPSILON_DECIMALS)}: "
            f"{r.status}{when}"
        )
    for c in against:
        typer.echo(
            f"challenge:        {c.challenge_id}, round {c.round}, {c.status}, raised {utc(c.raised_at)} by "
            f"{c.challenger}"
        )
    if not records and not against:
        typer.echo("no disputes, no challenges")


def _who(key: str | None, address: str | None) -> str:
    """The address of exactly one of --key (read from the keystore, no password) and --address."""
    from ...keys import Keystore

    require((key is None) != (address is None), "pass exactly one of --key and --address")
    return parse_address(address, "--address") if address else Keystore().show(key).address  # type: ignore[arg-type]


def _local_epsilon(path: Path) -> float | None:
    """The cumulative epsilon the partner's accountant file records, or None without one.

    Raises:
        CommandError: the file is damaged (named, with what is wrong).
    """
    if not path.exists():
        return None
    from ...errors import LeptonError
    from ...protocol.jsonio import FILE_BYTES, load_object, read_bounded

    try:
        document = load_object(read_bounded(path, FILE_BYTES), what=f"accountant file {path}", max_bytes=FILE_BYTES)
        if isinstance(document.get("epsilon"), float):  # recorded with the history: no need to load the DP library
            return float(document["epsilon"])
        from ...fl.accounting import PrivacyAccountant

        return PrivacyAccountant.from_state_dict(document["accountant"]).epsilon()
    except LeptonError as exc:
        raise CommandError(str(exc) if str(path) in str(exc) else f"accountant file {path}: {exc}") from None
    except (OSError, KeyError, TypeError, ValueError, AttributeError) as exc:
        raise CommandError(f"accountant file {path} is damaged ({type(exc).__name__}: {exc})") from None
