"""``lepton-ledger challenge ...``: from a failed audit check to a slashed stake, one command per step.

    lepton-ledger challenge raise --from-audit audit.json                    # auditor: the coordinator's results
    lepton-ledger challenge raise --from-audit audit.json --check 3          # auditor: a partner's update
    lepton-ledger challenge raise --from-audit audit.json --agreement 1 --round 2 --partner 0x...
    lepton-ledger challenge raise --agreement 1 --round 2 --partner 0x... --evidence proof.json
    lepton-ledger arbiter rule 1 --uphold --reason "envelope does not match its digest"     # the arbiter
    lepton-ledger challenge slash 1                                           # anyone, after the dispute window
    lepton-ledger challenge forfeit 1                                         # anyone, after the slash
    lepton-ledger challenge show [1]
    lepton-ledger challenge prove-forgery 1 3                                # auditor: void a forged batch
    lepton-ledger arbiter rule 1 --results --uphold --reason "payout root does not re-compute"   # results
    lepton-ledger arbiter lapse 1 --results                                   # anyone, after the ruling window
    lepton-ledger challenge claim-bond 1                                      # a party: its share of a slashed bond
    lepton-ledger challenge show --results [1]

``raise --from-audit FILE`` alone challenges the coordinator's results (``ResultsCourt``, see
:mod:`lepton_ledger.challenges.results`): one challenge per round with a failed ``aggregate_recomputed``,
``scores_and_payouts``, ``rejections_recheck`` or ``rules_as_signed`` check (``--agreement A --round R`` picks one round). With
``--check N`` or ``--partner`` it challenges one partner's update (``RoundLedger``), as before.

Ruling is the arbiter's (``arbiter rule|lapse``, commands/arbiter.py). Where: ``--workdir DIR [--as ROLE]`` (a demo folder) or the keystore's
``--key NAME`` with ``--rpc-url``, ``--deployment`` and ``--ipfs`` (commands/workdir.py).

Exit codes: as commands/errors.py (0 done, 1 refused: one ``error: ...`` line on stderr, nothing put or sent).
See :mod:`lepton_ledger.challenges.challenge` for the flow and the documents' formats, :mod:`lepton_ledger.challenges.forgery`
for the batch forgery proof.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from ..challenges import challenge as flow
from ..challenges import results
from ..protocol.jsonio import FILE_BYTES, load_json, read_bounded
from .context import (
    AgreementArg,
    AsOpt,
    ChallengeArg,
    CommandError,
    DeploymentOpt,
    IpfsOpt,
    JsonOpt,
    RoundArg,
    RpcUrlOpt,
    SignerKeyOpt,
    WorkdirOpt,
    command_group,
    echo_json,
    fixed_point,
    reports_errors,
)
from .workdir import need_sender, print_tx, signer

challenge_app = command_group(
    "Challenge a partner's update or the coordinator's results from a failed audit check; after the "
    "arbiter's ruling (`arbiter rule`), slash and forfeit."
)


def _pick_check(audit: dict[str, Any], agreement: int, round_id: int, partner: str) -> tuple[int, dict[str, Any]]:
    for i, check in enumerate(audit["checks"]):
        if (
            isinstance(check, dict)
            and check.get("ok") is False
            and check.get("agreement_id") == agreement
            and check.get("round") == round_id
            and str(check.get("partner", "")).lower() == partner.lower()
        ):
            return i, check
    raise CommandError(f"the audit has no failed check of {partner} in round {round_id} of agreement {agreement}")


@challenge_app.command("raise")
@reports_errors
def raise_cmd(
    from_audit: Annotated[Path | None, typer.Option("--from-audit", help="An `audit --json-out` result.")] = None,
    check: Annotated[int | None, typer.Option("--check", help='Index of a failed check in its "checks".')] = None,
    agreement: Annotated[int | None, typer.Option("--agreement", help="Agreement id (instead of --check).")] = None,
    round_id: Annotated[int | None, typer.Option("--round", help="Round id (instead of --check).")] = None,
    partner: Annotated[str | None, typer.Option("--partner", help="Partner address (instead of --check).")] = None,
    evidence: Annotated[Path | None, typer.Option("--evidence", help="A JSON object file as the evidence.")] = None,
    workdir: WorkdirOpt = None,
    as_role: AsOpt = None,
    key: SignerKeyOpt = None,
    rpc_url: RpcUrlOpt = None,
    deployment: DeploymentOpt = None,
    ipfs: IpfsOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """An auditor challenges the coordinator's results (--from-audit alone, or with --agreement and --round), or one
    partner's update (--check, or --partner), committing to the failed checks (put to the store) by their digest."""
    if from_audit is not None and check is None and partner is None and evidence is None:
        where = (workdir, as_role, key, rpc_url, deployment, ipfs)
        _raise_results(from_audit, agreement, round_id, where, as_json=as_json)
        return
    explicit = (agreement, round_id, partner)
    if check is not None:
        if from_audit is None:
            raise CommandError("--check is an index into an audit: pass --from-audit FILE too")
        if any(v is not None for v in explicit) or evidence is not None:
            raise CommandError("give either --check, or --agreement, --round and --partner, not both")
        chosen = flow.failed_check(flow.load_audit(from_audit), check)
        target = (chosen["agreement_id"], chosen["round"], chosen["partner"])
        picked = f"check {check} ({chosen['name']}) of {from_audit}"
    else:
        if any(v is None for v in explicit):
            raise CommandError(
                "say what to challenge: --from-audit FILE --check INDEX, or --agreement, --round and "
                "--partner (with --from-audit or --evidence)"
            )
        target = (agreement, round_id, partner)
        if (from_audit is None) == (evidence is None):
            raise CommandError("with --agreement/--round/--partner, give exactly one of --from-audit and --evidence")
        if from_audit is not None:
            index, chosen = _pick_check(flow.load_audit(from_audit), *target)
            picked = f"check {index} ({chosen['name']}) of {from_audit}"
        else:
            try:
                chosen = load_json(
                    read_bounded(evidence, FILE_BYTES), what=f"evidence file {evidence}", max_bytes=FILE_BYTES
                )
            except (ValueError, UnicodeDecodeError) as exc:
                raise CommandError(f"evidence file {evidence} is not valid JSON: {exc}") from None
            picked = str(evidence)
    flow.challenge_input(*target, chosen)  # bad input is refused before the chain is started or reached
    with signer(workdir, as_role, key, rpc_url, deployment, ipfs, default_role="auditor") as s:
        result = flow.raise_challenge(
            s.tx,
            s.deployment,
            s.store,
            sender=need_sender(s),
            agreement_id=target[0],
            round_id=target[1],
            partner=target[2],
            evidence=chosen,
        )
    d = result.details
    print_tx(
        result,
        as_json,
        f"challenge {result.challenge_id} raised against {d['partner']}, round {d['round']} of agreement "
        f"{d['agreement_id']}",
        f"evidence: {picked}, put as {d['evidence_cid']} (evidenceDigest {d['evidence_digest']})",
    )


def _raise_results(
    from_audit: Path, agreement: int | None, round_id: int | None, where: tuple[Any, ...], *, as_json: bool
) -> None:
    """`raise --from-audit` alone: the coordinator's results; `where` is what :func:`signer` takes."""
    if (agreement is None) != (round_id is None):
        raise CommandError("to pick one round's results give both --agreement and --round (or neither, for all)")
    wanted = results.results_evidence(flow.load_audit(from_audit), agreement_id=agreement, round_id=round_id)
    with signer(*where, default_role="auditor") as s:
        sent = results.raise_results_challenges(s.tx, s.deployment, s.store, sender=need_sender(s), wanted=wanted)
    if as_json:
        echo_json({"challenges": [r.to_dict() for r in sent]})
        return
    for r in sent:
        d = r.details
        typer.echo(
            f"results challenge {r.challenge_id} raised against round {d['round']} of agreement "
            f"{d['agreement_id']} ({d['kind']}); evidence put as {d['evidence_cid']} (evidenceDigest "
            f"{d['evidence_digest']}); tx {r.tx_hash} (block {r.block})"
        )


@challenge_app.command("claim-bond")
@reports_errors
def claim_bond_cmd(
    agreement: AgreementArg,
    workdir: WorkdirOpt = None,
    as_role: AsOpt = None,
    key: SignerKeyOpt = None,
    rpc_url: RpcUrlOpt = None,
    deployment: DeploymentOpt = None,
    ipfs: IpfsOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """A party takes its share of the coordinator bonds slashed in AGREEMENT."""
    with signer(workdir, as_role, key, rpc_url, deployment, ipfs, default_role=None) as s:
        result = results.claim_bond_share(s.tx, s.deployment, sender=need_sender(s), agreement_id=agreement)
    d = result.details
    taken = fixed_point(int(d["amount"]), 18)
    print_tx(result, as_json, f"{d['party']} took {taken} tokens of slashed bond in agreement {agreement}")


@challenge_app.command("slash")
@reports_errors
def slash_cmd(
    challenge_id: ChallengeArg,
    workdir: WorkdirOpt = None,
    as_role: AsOpt = None,
    key: SignerKeyOpt = None,
    rpc_url: RpcUrlOpt = None,
    deployment: DeploymentOpt = None,
    ipfs: IpfsOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Executes an upheld challenge after its round's dispute window: the partner's stake goes to the slash
    recipient. Anyone may send it."""
    with signer(workdir, as_role, key, rpc_url, deployment, ipfs, default_role="auditor") as s:
        result = flow.slash(s.tx, s.deployment, sender=need_sender(s), challenge_id=challenge_id)
    d = result.details
    print_tx(
        result,
        as_json,
        f"challenge {challenge_id} executed: stake of {d['partner']} "
        f"({fixed_point(int(d['amount']), 18)} tokens) sent to {d['recipient']}",
    )


@challenge_app.command("forfeit")
@reports_errors
def forfeit_cmd(
    challenge_id: ChallengeArg,
    workdir: WorkdirOpt = None,
    as_role: AsOpt = None,
    key: SignerKeyOpt = None,
    rpc_url: RpcUrlOpt = None,
    deployment: DeploymentOpt = None,
    ipfs: IpfsOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """After the slash: the partner's reward for the challenged round goes to the slash recipient (proof rebuilt
    from the round report). Anyone may send it."""
    with signer(workdir, as_role, key, rpc_url, deployment, ipfs, default_role="auditor") as s:
        result = flow.forfeit_reward(s.tx, s.deployment, s.store, sender=need_sender(s), challenge_id=challenge_id)
    d = result.details
    amount = fixed_point(int(d["amount"]), 18)
    print_tx(
        result,
        as_json,
        f"challenge {challenge_id}: reward of {d['partner']} for round {d['round']} "
        f"({amount} tokens) forfeited to {d['recipient']}",
    )


@challenge_app.command("prove-forgery")
@reports_errors
def prove_forgery_cmd(
    agreement: AgreementArg,
    round_id: RoundArg,
    workdir: WorkdirOpt = None,
    as_role: AsOpt = None,
    key: SignerKeyOpt = None,
    rpc_url: RpcUrlOpt = None,
    deployment: DeploymentOpt = None,
    ipfs: IpfsOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """An auditor proves that an anchored batch holds a commitment its partner did not sign (the signature does
    not recover the partner, or the entry differs): RoundLedger.proveForgedCommitment(evidence, commitment,
    signature) for the first forged position found, which voids the round and revokes its payouts. Nothing is
    sent when no position is forged."""
    from ..challenges import forgery

    with signer(workdir, as_role, key, rpc_url, deployment, ipfs, default_role="auditor") as s:
        found = forgery.find_forgeries(s.deployment, s.store, agreement, round_id)
        if not found:
            raise CommandError(
                f"every anchored commitment of round {round_id} of agreement {agreement} is what its "
                "partner signed: there is no forgery to prove"
            )
        first = found[0]
        result = forgery.prove_forgery(s.tx, s.deployment, sender=need_sender(s), forgery=first)
    print_tx(
        result,
        as_json,
        f"round {round_id} of agreement {agreement} voided: batch {first.batch_index}, position {first.position} "
        f"({first.partner}): {first.reason}",
    )


@challenge_app.command("show")
@reports_errors
def show_cmd(
    challenge_id: Annotated[
        int | None, typer.Argument(metavar="CHALLENGE_ID", help="One challenge; default: all.")
    ] = None,
    of_results: Annotated[bool, typer.Option("--results", help="The results challenges (ResultsCourt).")] = False,
    workdir: WorkdirOpt = None,
    rpc_url: RpcUrlOpt = None,
    deployment: DeploymentOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """The challenges on the ledger (or, with --results, of the coordinator's results) and their status."""
    with signer(workdir, None, None, rpc_url, deployment, None, default_role=None) as s:
        if of_results:
            court = s.deployment.court.functions
            ids = [challenge_id] if challenge_id else range(1, int(court.challengeCount().call()) + 1)
            found = [results.read_results_challenge(s.deployment, i) for i in ids]
            if as_json:
                echo_json({"results_challenges": [r.to_dict() for r in found]})
                return
            if not found:
                typer.echo("no results challenge was raised")
            for r in found:
                typer.echo(
                    f"results challenge {r.challenge_id}: {r.status}, {r.kind} of round {r.round} of agreement "
                    f"{r.agreement_id}, raised by {r.challenger} at chain time {r.raised_at}, evidence "
                    f"0x{r.evidence_digest.hex()}"
                )
            return
        records = [flow.read_challenge(s.deployment, challenge_id)] if challenge_id else flow.challenges(s.deployment)
    if as_json:
        echo_json({"challenges": [r.to_dict() for r in records]})
        return
    if not records:
        typer.echo("no challenge was raised")
    for r in records:
        typer.echo(
            f"challenge {r.challenge_id}: {r.status}, {r.partner} in round {r.round} of agreement "
            f"{r.agreement_id}, raised by {r.challenger} at chain time {r.raised_at}, evidence "
            f"0x{r.evidence_digest.hex()}"
        )
