"""``lepton-ledger arbiter ...``: the arbiter an agreement's terms name rules on its challenges; the one group
for ruling, on a partner's update (RoundLedger) and, with ``--results``, on the coordinator's results
(ResultsCourt).

list (the open challenges of the agreements where --key is the arbiter, with their evidence and the end of
their ruling window) -> rule CHALLENGE --uphold|--dismiss --reason TEXT|--ruling FILE (within the window) ->
after the window, anyone may ``lapse`` an unruled challenge (dismissed). The ruling window is the deployment's
dispute window, counted from when the challenge was raised. The signer is ``--key NAME`` (keystore) or, on a
demo folder, ``--workdir DIR [--as ROLE]`` (workdir.py).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from .context import (
    AddressKeyOpt,
    AsOpt,
    ChallengeArg,
    DeploymentOpt,
    IpfsOpt,
    JsonOpt,
    RpcUrlOpt,
    SignerKeyOpt,
    WorkdirOpt,
    command_group,
    fixed_point,
    open_session,
    read_call,
    reports_errors,
    require,
    utc,
)
from .workdir import need_sender, print_tx, signer

__all__ = ["arbiter_app"]

arbiter_app = command_group(
    "The arbiter's steps: list the challenges it rules on, rule on one; lapse one past its ruling window."
)

UpholdOpt = Annotated[
    bool | None, typer.Option("--uphold/--dismiss", help="The ruling: uphold (the partner is slashed) or dismiss.")
]
ReasonOpt = Annotated[
    str | None, typer.Option("--reason", help="Why: published in the standard ruling document, its digest on-chain.")
]
RulingOpt = Annotated[
    Path | None,
    typer.Option(
        "--ruling",
        help="A ruling document of your own (any file), instead of --reason: put to the store, its digest on-chain.",
    ),
]
ResultsOpt = Annotated[
    bool,
    typer.Option(
        "--results", help="A challenge of the coordinator's results (ResultsCourt), not of a partner's update."
    ),
]


def _arbiter_of(s: Any, agreement_id: int) -> str:
    from ..chain.state import RoundConfig

    return RoundConfig.read(s.deployment.agreements.functions.roundConfig(agreement_id)).arbiter


def _open_challenge(s: Any, challenge_id: int) -> tuple[Any, int]:
    """The challenge (Open) and the end of its ruling window; ChallengeError or CommandError otherwise."""
    from ..challenges.challenge import read_challenge

    record = read_challenge(s.deployment, challenge_id)
    require(
        record.status == "Open",
        f"challenge {challenge_id} is {record.status}: only an Open challenge can be ruled on or lapsed",
    )
    return record, record.raised_at + int(s.deployment.ledger.functions.disputeWindow().call())


@arbiter_app.command("list")
@reports_errors
def list_(
    key: AddressKeyOpt,
    rpc_url: RpcUrlOpt = None,
    deployment: DeploymentOpt = None,
) -> None:
    """List the open challenges of the agreements whose terms name --key as arbiter, with the evidence digest
    and when the ruling window ends. Sends nothing and needs no password."""
    from ..challenges.challenge import challenges
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
        typer.echo(
            f"challenge {c.challenge_id}: agreement {c.agreement_id}, round {c.round}, partner {c.partner}, "
            f"raised by {c.challenger} at {utc(c.raised_at)}, evidence {cid_for_digest(c.evidence_digest)} "
            f"(digest 0x{c.evidence_digest.hex()}); "
            f"{state}"
        )


@arbiter_app.command("rule")
@reports_errors
def rule(
    challenge: ChallengeArg,
    upheld: UpholdOpt = None,
    reason: ReasonOpt = None,
    ruling: RulingOpt = None,
    of_results: ResultsOpt = False,
    workdir: WorkdirOpt = None,
    as_role: AsOpt = None,
    key: SignerKeyOpt = None,
    rpc_url: RpcUrlOpt = None,
    deployment: DeploymentOpt = None,
    ipfs: IpfsOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Rule on CHALLENGE as the arbiter of its agreement, within its ruling window.

    Puts the ruling (--reason, or your own --ruling FILE) to the store and sends
    RoundLedger.resolveChallenge(challenge, upheld, ruling digest); an upheld challenge is then executed by
    `challenge slash` after the round's dispute window. With --results: ResultsCourt.ruleResults (upheld: the
    round's payouts are revoked and the coordinator's bond goes to the parties).
    """
    from ..challenges import challenge as flow
    from ..challenges import results

    require(upheld is not None, "give the ruling: --uphold or --dismiss")
    require((reason is None) != (ruling is None), "give the ruling's grounds: --reason TEXT or --ruling FILE")
    require(not (of_results and ruling is not None), "a results ruling is the standard ruling document: give --reason")
    document = None
    if ruling is not None:
        from ..protocol.jsonio import FILE_BYTES, read_bounded

        document = read_bounded(ruling, FILE_BYTES)
        require(bool(document), f"the ruling file {ruling} is empty")
    verdict = "upheld" if upheld else "dismissed"
    with signer(workdir, as_role, key, rpc_url, deployment, ipfs, default_role="admin") as s:
        sender = need_sender(s)
        if of_results:
            result = results.rule_results(
                s.tx,
                s.deployment,
                s.store,
                sender=sender,
                challenge_id=challenge,
                upheld=bool(upheld),
                reason=str(reason),
            )
            d = result.details
            bond, share = fixed_point(int(d.get("amount", 0)), 18), fixed_point(int(d.get("share", 0)), 18)
            slashed = (
                f"; bond of {d.get('coordinator')} ({bond} tokens) slashed, {share} to each party" if upheld else ""
            )
            print_tx(
                result, as_json, f"results challenge {challenge} {verdict}{slashed}; ruling put as {d['ruling_cid']}"
            )
            return
        _require_may_rule(s, challenge, sender)
        if document is None:
            result = flow.resolve_challenge(
                s.tx,
                s.deployment,
                s.store,
                sender=sender,
                challenge_id=challenge,
                upheld=bool(upheld),
                reason=str(reason),
            )
            print_tx(result, as_json, f"challenge {challenge} {verdict}; ruling put as {result.details['ruling_cid']}")
            return
        from ..protocol.addressing import content_digest, publish

        digest = content_digest(document)
        call = s.deployment.ledger.functions.resolveChallenge(challenge, bool(upheld), digest)
        read_call(call, "the ledger refuses the ruling", sender=sender)  # before the ruling is put anywhere
        cid, _ = publish(s.store, document)
        result = _sent(
            "resolve",
            challenge,
            s.tx.transact(call, sender),
            {"upheld": bool(upheld), "ruling_cid": cid, "ruling_digest": "0x" + digest.hex()},
        )
    print_tx(result, as_json, f"challenge {challenge} {verdict}; ruling {cid} (digest 0x{digest.hex()})")


def _sent(action: str, challenge: int, receipt: Any, details: dict[str, Any] | None = None) -> Any:
    from ..challenges.challenge import ChallengeTx

    return ChallengeTx(
        action, challenge, receipt["transactionHash"].to_0x_hex(), int(receipt["blockNumber"]), details or {}
    )


def _require_may_rule(s: Any, challenge: int, sender: str) -> None:
    """CommandError unless CHALLENGE is Open, `sender` is its agreement's arbiter and its ruling window runs."""
    record, ends = _open_challenge(s, challenge)
    arbiter = _arbiter_of(s, record.agreement_id)
    require(
        arbiter == sender,
        f"{sender} is not the arbiter of agreement {record.agreement_id} (its terms name "
        f"{arbiter}): only that arbiter rules on challenge {challenge}",
    )
    now = int(s.w3.eth.get_block("pending")["timestamp"])
    require(
        now < ends,
        f"the ruling window of challenge {challenge} closed at {utc(ends)}; anyone may now lapse it: "
        f"lepton-ledger arbiter lapse {challenge}",
    )


@arbiter_app.command("lapse")
@reports_errors
def lapse(
    challenge: ChallengeArg,
    of_results: ResultsOpt = False,
    workdir: WorkdirOpt = None,
    as_role: AsOpt = None,
    key: SignerKeyOpt = None,
    rpc_url: RpcUrlOpt = None,
    deployment: DeploymentOpt = None,
    ipfs: IpfsOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Lapse CHALLENGE, which its arbiter did not rule on within the ruling window: it is dismissed.

    Sends RoundLedger.lapseChallenge(challenge) (with --results: ResultsCourt.lapseResults); anyone may send it.
    """
    from ..challenges import results

    with signer(workdir, as_role, key, rpc_url, deployment, ipfs, default_role="auditor") as s:
        sender = need_sender(s)
        if of_results:
            result = results.lapse_results(s.tx, s.deployment, sender=sender, challenge_id=challenge)
            print_tx(result, as_json, f"results challenge {challenge} lapsed (dismissed)")
            return
        _, ends = _open_challenge(s, challenge)
        now = int(s.w3.eth.get_block("pending")["timestamp"])
        require(now >= ends, f"the arbiter may rule on challenge {challenge} until {utc(ends)}; it lapses after")
        call = s.deployment.ledger.functions.lapseChallenge(challenge)
        result = _sent("lapse", challenge, s.tx.transact(call, sender))
    print_tx(result, as_json, f"challenge {challenge} lapsed (dismissed)")
