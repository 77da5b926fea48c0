"""``coordinator open|anchor|close|answer-disputes``: the coordinator runs an agreement's rounds: opens one on
the global model, anchors the partners' signed commitments (batched mode), answers disputes of them, and
closes the round (aggregate, scores, payouts, finalize)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from ...chain.state import Allocation
from ...errors import LeptonError
from ...protocol.jsonio import FILE_BYTES, load_json, read_bounded
from ...rounds.coordinator_steps import AGGREGATIONS, SCORINGS, eval_set_spec, open_next_round, record_for_audit
from ...rounds.roles import agreement_coordinator
from ...units import TOKEN_DECIMALS
from ..context import (
    AgreementArg,
    CommandError,
    DeploymentOpt,
    IpfsOpt,
    KeyOpt,
    ModelOpt,
    RoundArg,
    RpcUrlOpt,
    fixed_point,
    open_session,
    read_call,
    reports_errors,
    require,
    utc,
)
from ..data import (
    CsvOpt,
    DatasetOpt,
    LabelColumnOpt,
    NumClassesOpt,
    PartitionsOpt,
    SeedOpt,
)


@reports_errors
def anchor(
    agreement: AgreementArg,
    round: RoundArg,
    commitments: Annotated[
        list[Path], typer.Argument(metavar="COMMITMENTS", help="Files written by `partner train-and-sign`.")
    ],
    key: KeyOpt,
    rpc_url: RpcUrlOpt = None,
    deployment: DeploymentOpt = None,
    ipfs: IpfsOpt = None,
) -> None:
    """Batched mode: anchor the partners' signed commitments of ROUND in one transaction.

    Checks every file (this chain and ledger, AGREEMENT and ROUND, a signature by its partner, one per partner),
    puts the batch document to the store and sends RoundLedger.commitBatch(agreement, round, commitments root,
    batch document digest, entries) from --key.
    """
    from ...protocol.signatures import chain_signature_check
    from ...rounds.roles import signed_commitment_from_document

    documents = []
    for path in commitments:
        try:
            documents.append((path, load_json(read_bounded(path, FILE_BYTES), what=str(path), max_bytes=FILE_BYTES)))
        except ValueError:
            raise CommandError(f"{path} is not valid JSON") from None
    with open_session(rpc_url=rpc_url, deployment=deployment, key=key, ipfs=ipfs) as s:
        s.agreement_state(agreement)
        require(
            int(s.deployment.ledger.functions.openRoundOf(agreement).call()) == round,
            f"round {round} of agreement {agreement} is not open",
        )
        signed = {}
        for path, document in documents:
            try:
                item = signed_commitment_from_document(
                    document,
                    chain_id=s.w3.eth.chain_id,
                    ledger=s.ledger_address,
                    signature_valid=chain_signature_check(s.w3),
                )
            except LeptonError as exc:
                raise CommandError(f"{path}: {exc}") from None
            c = item.commitment
            require(
                (c.agreement_id, c.round) == (agreement, round),
                f"{path} commits to round {c.round} of agreement {c.agreement_id}",
            )
            require(c.partner not in signed, f"{path}: a second commitment of {c.partner}")
            s.require_party(agreement, c.partner)
            signed[c.partner] = item
        coordinator = agreement_coordinator(s, agreement, None)
        cid = coordinator.anchor_batch(agreement, round, list(signed.values()))
    typer.echo(f"anchored {len(signed)} commitment(s) for round {round} of agreement {agreement}; batch {cid}")


@reports_errors
def open_(
    agreement: AgreementArg,
    key: KeyOpt,
    dataset: DatasetOpt = "digits",
    partitions: PartitionsOpt = 1,
    seed: SeedOpt = 0,
    csv: CsvOpt = None,
    label_column: LabelColumnOpt = "label",
    num_classes: NumClassesOpt = None,
    model: ModelOpt = None,
    round_seconds: Annotated[int, typer.Option(min=1, help="Seconds partners have to submit.")] = 3600,
    rpc_url: RpcUrlOpt = None,
    deployment: DeploymentOpt = None,
    ipfs: IpfsOpt = None,
) -> None:
    """Open AGREEMENT's next round on the current global model; prints the round id.

    Puts the global model (the last finalized aggregate, else a fresh model of the terms' model) to the store and
    sends RoundLedger.openRound(agreement, model digest, deadline, evaluation-set commitment) from --key. The
    evaluation set comes from the data options (the same ones `close` gets). Every voided or abandoned round of
    AGREEMENT still charged is restored first (RoundLedger.restoreVoidedRound, one line each).
    """
    from ..data import eval_data

    eval_set = eval_data(
        dataset=dataset, partitions=partitions, seed=seed, csv=csv, label_column=label_column, num_classes=num_classes
    )
    with open_session(rpc_url=rpc_url, deployment=deployment, key=key, ipfs=ipfs) as s:
        opened = open_next_round(s, agreement, eval_set, model=model, round_seconds=round_seconds, say=typer.echo)
    start = f"the aggregate of round {opened.previous}" if opened.previous else f"a fresh {opened.model_name} model"
    typer.echo(
        f"opened round {opened.round_id} of agreement {agreement} on {start}: {opened.model_cid}, deadline "
        f"{utc(opened.deadline)}"
    )
    if csv is None and record_for_audit(s, spec := eval_set_spec(dataset, seed), opened.model_name):
        typer.echo(
            f"recorded the evaluation set ({spec['dataset']}, seed {spec['seed']}) and model {opened.model_name} in "
            f"{s.deployment_path} for the audit"
        )


@reports_errors
def close(
    agreement: AgreementArg,
    round: RoundArg,
    key: KeyOpt,
    dataset: DatasetOpt = "digits",
    partitions: PartitionsOpt = 1,
    seed: SeedOpt = 0,
    csv: CsvOpt = None,
    label_column: LabelColumnOpt = "label",
    num_classes: NumClassesOpt = None,
    aggregation: Annotated[
        str | None,
        typer.Option(
            help=f"Aggregation rule: {', '.join(AGGREGATIONS)}; default and only choice: the terms document's."
        ),
    ] = None,
    scoring: Annotated[
        str | None,
        typer.Option(
            help=f"Contribution scores: {', '.join(SCORINGS)}; default and only choice: the terms document's."
        ),
    ] = None,
    model: ModelOpt = None,
    max_norm: Annotated[
        float | None, typer.Option(help="L2 bound of an update; default and only choice: the terms document's.")
    ] = None,
    rpc_url: RpcUrlOpt = None,
    deployment: DeploymentOpt = None,
    ipfs: IpfsOpt = None,
) -> None:
    """Aggregate and finalize ROUND of AGREEMENT.

    Opens every committed update with --key's X25519 key, validates, aggregates, scores on the committed evaluation
    set (from the data options; refused unless it matches the round's commitment), splits the reward with the
    agreement's on-chain payout rule, puts the aggregate and the round report to the store, and sends
    RoundLedger.finalizeRound(agreement, round, aggregate digest, report digest, payout root, total) from --key.
    """
    from ...fl.data import eval_commitment
    from ...workers import use_evaluation_threads
    from ..data import eval_data

    use_evaluation_threads()  # this process evaluates the round and trains nothing
    require(
        aggregation in (None, *AGGREGATIONS),
        f"--aggregation must be one of {', '.join(AGGREGATIONS)}, not {aggregation!r}",
    )
    require(scoring in (None, *SCORINGS), f"--scoring must be one of {', '.join(SCORINGS)}, not {scoring!r}")
    eval_set = eval_data(
        dataset=dataset, partitions=partitions, seed=seed, csv=csv, label_column=label_column, num_classes=num_classes
    )
    with open_session(rpc_url=rpc_url, deployment=deployment, key=key, ipfs=ipfs) as s:
        s.agreement_state(agreement)
        require(
            int(s.deployment.ledger.functions.openRoundOf(agreement).call()) == round,
            f"round {round} of agreement {agreement} is not open",
        )
        coordinator = agreement_coordinator(
            s, agreement, eval_set, model=model, max_norm=max_norm, aggregation=aggregation, scoring=scoring
        )
        _, committed = coordinator.round_state(agreement, round)
        require(
            eval_commitment(eval_set) == committed,
            "the evaluation set from these data options is not the one the round committed to",
        )
        coordinator.check_signed_rules(agreement, round)
        coordinator.check_closable(agreement, round)  # a refused close sends nothing, not even the answers below
        _answer_disputes(s, agreement)  # a dispute left unanswered would void the round after it is finalized
        outcome = coordinator.close_round(agreement, round)
        claimable_from = Allocation.decode(
            read_call(s.deployment.vault.functions.allocation(agreement, round), "allocation")
        ).claimable_at
    report = outcome.report
    typer.echo(
        f"finalized round {round} of agreement {agreement}: accuracy "
        f"{report.metrics['accuracy_before']:.3f} -> {report.metrics['accuracy_after']:.3f}"
    )
    typer.echo(f"aggregate {outcome.aggregate_cid}, report {outcome.report_cid}")
    for line in report.partners:
        paid = fixed_point(line.payout, TOKEN_DECIMALS)
        verdict = f"allocated {paid}" if line.accepted else f"rejected ({line.reasons[0]['code']})"
        typer.echo(f"  {line.partner}: {verdict}")
    typer.echo(f"allocations are claimable from {utc(claimable_from)}, when the dispute window ends (`partner claim`)")


def _answer_disputes(s: Any, agreement: int) -> int:
    """Answers every open dispute of AGREEMENT it can; echoes one line per dispute; how many there were."""
    from ...chain.disputes import answer_open_disputes

    lines = answer_open_disputes(s.tx, s.deployment, s.store, sender=s.address, agreement_id=agreement)
    for line in lines:
        typer.echo(f"dispute: {line}")
    return len(lines)


@reports_errors
def answer_disputes(
    agreement: AgreementArg,
    key: KeyOpt,
    rpc_url: RpcUrlOpt = None,
    deployment: DeploymentOpt = None,
    ipfs: IpfsOpt = None,
) -> None:
    """Answer every open dispute of AGREEMENT's batch entries with the signed commitment the batch holds.

    For each open BatchEntryDisputed, fetches the batch document from the store by its anchored digest, rebuilds
    the commitment's Merkle proof and sends RoundLedger.answerDispute(evidence, commitment, signature) from --key;
    one line per dispute (answered, or why it cannot be). `close` does this first, but a dispute's answer window
    (the deployment's dispute window, from the dispute) may end before the round does: run it while rounds run.
    """
    with open_session(rpc_url=rpc_url, deployment=deployment, key=key, ipfs=ipfs) as s:
        s.agreement_state(agreement)
        if _answer_disputes(s, agreement) == 0:
            typer.echo(f"no open dispute in agreement {agreement}")
