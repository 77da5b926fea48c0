"""``lepton-ledger arbiter ...``: the arbiter an agreement's terms name rules on its challenges.

list (the open challenges of the agreements where --key is the arbiter, with their evidence and the end of
their ruling window) -> rule CHALLENGE --uphold|--dismiss --ruling FILE (within the window) -> after the window,
anyone may ``lapse`` an unruled challenge (dismissed). The ruling window is the deployment's dispute window,
counted from when the challenge was raised. Keys come from the keystore (``--key NAME``), as for every role.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from .context import (
    DeploymentOpt,
    IpfsOpt,
    KeyOpt,
    RpcUrlOpt,
    open_session,
    read_call,
    reports_errors,
    require,
    utc,
)

__all__ = ["arbiter_app"]

arbiter_app = typer.Typer(
    help="The arbiter's steps: list the challenges it rules on, rule on one; lapse one past its ruling window.",
    no_args_is_help=True, pretty_exceptions_show_locals=False, add_completion=False,
)  # fmt: skip

ChallengeArg = Annotated[int, typer.Argument(metavar="CHALLENGE", help="Challenge id (1, 2, ...).")]


def _arbiter_of(s: Any, agreement_id: int) -> str:
    from ..chain.state import RoundConfig

    return RoundConfig.read(s.deployment.agreements.functions.roundConfig(agreement_id)).arbiter


def _open_challenge(s: Any, challenge_id: int) -> tuple[Any, int]:
    """The challenge (Open) and the end of its ruling window; ChallengeError or CommandError otherwise."""
    from ..audit.challenge import read_challenge

    record = read_challenge(s.deployment, challenge_id)
    require(record.status == "Open", f"challenge {challenge_id} is {record.status}: only an Open challenge can be "
                                     "ruled on or lapsed")  # fmt: skip
    return record, record.raised_at + int(s.deployment.ledger.functions.disputeWindow().call())


@arbiter_app.command("list")
@reports_errors
def list_(
    key: Annotated[str, typer.Option("--key", help="The arbiter's keystore identity (only its address is read).")],
    rpc_url: RpcUrlOpt = None, deployment: DeploymentOpt = None,
) -> None:  # fmt: skip
    """List the open challenges of the agreements whose terms name --key as arbiter, with the evidence digest
    and when the ruling window ends. Sends nothing and needs no password."""
    from ..audit.challenge import challenges
    from ..keys import Keystore
    from ..protocol.addressing import cid_for_digest

    me = Keystore().show(key).address
    with open_session(rpc_url=rpc_url, deployment=deployment, key=None) as s:
        window = int(s.deployment.ledger.functions.disputeWindow().call())
        now = int(s.w3.eth.get_block("latest")["timestamp"])
        arbiters: dict[int, str] = {}
        mine = []
        for c in challenges(s.deployment):
            if c.status != "Open":
                continue
            if c.agreement_id not in arbiters:
                arbiters[c.agreement_id] = _arbiter_of(s, c.agreement_id)
            if arbiters[c.agreement_id] == me:
                mine.append(c)
    if not mine:
        typer.echo(f"no open challenge for arbiter {me}")
    for c in mine:
        ends = c.raised_at + window
        state = f"rule by {utc(ends)}" if now < ends else f"ruling window closed at {utc(ends)}: it can only lapse"
        typer.echo(f"challenge {c.challenge_id}: agreement {c.agreement_id}, round {c.round}, partner {c.partner}, "
                   f"raised by {c.challenger} at {utc(c.raised_at)}, evidence {cid_for_digest(c.evidence_digest)} "
                   f"(digest 0x{c.evidence_digest.hex()}); "
                   f"{state}")  # fmt: skip


@arbiter_app.command("rule")
@reports_errors
def rule(
    challenge: ChallengeArg, key: KeyOpt,
    ruling: Annotated[Path, typer.Option(help="The ruling document (any file): put to the store, its digest "
                                              "on-chain.")],
    uphold: Annotated[bool, typer.Option("--uphold", help="Uphold the challenge (the partner is slashed).")] = False,
    dismiss: Annotated[bool, typer.Option("--dismiss", help="Dismiss the challenge.")] = False,
    rpc_url: RpcUrlOpt = None, deployment: DeploymentOpt = None, ipfs: IpfsOpt = None,
) -> None:  # fmt: skip
    """Rule on CHALLENGE as the arbiter of its agreement, within its ruling window.

    Puts --ruling to the store and sends RoundLedger.resolveChallenge(challenge, upheld, ruling digest) from
    --key. An upheld challenge is then executed by `challenge slash` after the round's dispute window.
    """
    from ..protocol.addressing import content_digest, publish
    from ..protocol.jsonio import FILE_BYTES, read_bounded

    require(uphold != dismiss, "pass exactly one of --uphold and --dismiss")
    document = read_bounded(ruling, FILE_BYTES)
    require(bool(document), f"the ruling file {ruling} is empty")
    with open_session(rpc_url=rpc_url, deployment=deployment, key=key, ipfs=ipfs) as s:
        record, ends = _open_challenge(s, challenge)
        arbiter = _arbiter_of(s, record.agreement_id)
        require(arbiter == s.address, f"{s.address} is not the arbiter of agreement {record.agreement_id} (its "
                                      f"terms name {arbiter}): only that arbiter rules on challenge {challenge}")
        now = int(s.w3.eth.get_block("pending")["timestamp"])
        require(now < ends, f"the ruling window of challenge {challenge} closed at {utc(ends)}; anyone may now "
                            f"lapse it: lepton-ledger arbiter lapse {challenge}")  # fmt: skip
        digest = content_digest(document)
        call = s.deployment.ledger.functions.resolveChallenge(challenge, uphold, digest)
        read_call(call, "the ledger refuses the ruling", sender=s.address)  # before the ruling is put anywhere
        cid, _ = publish(s.store, document)
        receipt = s.tx.transact(call, s.address)
    typer.echo(f"challenge {challenge} {'upheld' if uphold else 'dismissed'}; ruling {cid} (digest "
               f"0x{digest.hex()}), tx {receipt['transactionHash'].to_0x_hex()}")  # fmt: skip


@arbiter_app.command("lapse")
@reports_errors
def lapse(
    challenge: ChallengeArg, key: KeyOpt, rpc_url: RpcUrlOpt = None, deployment: DeploymentOpt = None,
) -> None:  # fmt: skip
    """Lapse CHALLENGE, which its arbiter did not rule on within the ruling window: it is dismissed.

    Sends RoundLedger.lapseChallenge(challenge) from --key (anyone may send it).
    """
    with open_session(rpc_url=rpc_url, deployment=deployment, key=key) as s:
        _, ends = _open_challenge(s, challenge)
        now = int(s.w3.eth.get_block("pending")["timestamp"])
        require(now >= ends, f"the arbiter may rule on challenge {challenge} until {utc(ends)}; it lapses after")
        receipt = s.tx.transact(s.deployment.ledger.functions.lapseChallenge(challenge), s.address)
    typer.echo(f"challenge {challenge} lapsed (dismissed), tx {receipt['transactionHash'].to_0x_hex()}")
