"""``lepton-ledger round ...``: what anyone may do to a round, whoever its coordinator is.

abandon: a round its coordinator left unfinalized past its deadline plus the deployment's dispute window (the
grace period) is voided, its stakes unlock and nothing is allocated.
restore: a voided or abandoned round's entry proven forged gives its epsilon back (entries their parties signed
stay charged: their updates were revealed); the agreement's next round waits for it.
"""

from __future__ import annotations

import typer

from ..chain.state import Round
from ..units import RoundStatus
from .context import (
    AgreementArg,
    DeploymentOpt,
    KeyOpt,
    RoundArg,
    RpcUrlOpt,
    command_group,
    open_session,
    read_call,
    reports_errors,
    require,
    utc,
)

__all__ = ["round_app"]


round_app = command_group(
    "What anyone may do to a round: abandon one its coordinator never finalized, restore a voided one."
)


@round_app.command("abandon")
@reports_errors
def abandon(
    agreement: AgreementArg,
    round: RoundArg,
    key: KeyOpt,
    rpc_url: RpcUrlOpt = None,
    deployment: DeploymentOpt = None,
) -> None:
    """Abandon ROUND of AGREEMENT, left open past its deadline plus the grace period (the dispute window).

    Sends RoundLedger.abandonRound(agreement, round) from --key (anyone may send it): the round is voided,
    nothing is allocated, and the next round can open.
    """
    with open_session(rpc_url=rpc_url, deployment=deployment, key=key) as s:
        s.require_round(agreement, round)
        ledger = s.deployment.ledger.functions
        r = Round.decode(read_call(ledger.round(agreement, round), f"agreement {agreement} has no round {round}"))
        require(
            r.status is RoundStatus.OPEN,
            f"round {round} of agreement {agreement} is {r.status}: only an open round can be abandoned",
        )
        abandonable = r.deadline + int(ledger.disputeWindow().call())
        now = int(s.w3.eth.get_block("pending")["timestamp"])
        require(
            now > abandonable,
            f"round {round} of agreement {agreement} can be abandoned after "
            f"{utc(abandonable)} (its deadline plus the grace period)",
        )
        s.tx.transact(ledger.abandonRound(agreement, round), s.address)
    typer.echo(
        f"abandoned round {round} of agreement {agreement}: voided, nothing allocated; `round restore "
        f"{agreement} {round}` gives its epsilon back"
    )


@round_app.command("restore")
@reports_errors
def restore(
    agreement: AgreementArg,
    round: RoundArg,
    key: KeyOpt,
    rpc_url: RpcUrlOpt = None,
    deployment: DeploymentOpt = None,
) -> None:
    """Close the books of ROUND of AGREEMENT, voided (a proven forgery) or abandoned: the entry proven forged
    gives its epsilon back; every entry its party signed stays charged (its update was revealed all the same).

    Reads the round's EpsilonsAtOpen and EpsilonsAtClose events and sends RoundLedger.restoreVoidedRound from
    --key (anyone may send it). The agreement's next round cannot open before it (`coordinator open` does it).
    """
    from ..chain.disputes import restore_round

    with open_session(rpc_url=rpc_url, deployment=deployment, key=key) as s:
        s.require_round(agreement, round)
        line = restore_round(s.tx, s.deployment, sender=s.address, agreement_id=agreement, round_id=round)
    typer.echo(line)
