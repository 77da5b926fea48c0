"""``partner train-and-submit|train-and-sign``: one round's update, trained with DP-SGD on local data, sealed,
put to the store and submitted (or signed for the coordinator's batch). A crash is resumed by the same
command (the outbox); one command per key and agreement runs at a time on a machine."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Annotated, Any

import typer

from ...chain.state import Partner, Round, Terms
from ...units import (
    EPSILON_DECIMALS,
)
from ..context import (
    AgreementArg,
    CommandError,
    DeploymentOpt,
    IpfsOpt,
    KeyOpt,
    ModelOpt,
    RpcUrlOpt,
    fixed_point,
    open_session,
    parse_address,
    reports_errors,
    require,
    utc,
)
from ..data import (
    CsvOpt,
    DatasetOpt,
    LabelColumnOpt,
    NumClassesOpt,
    PartitionOpt,
    PartitionsOpt,
    SeedOpt,
)

EpochsOpt = Annotated[int, typer.Option(min=1, help="Local epochs.")]


BatchSizeOpt = Annotated[
    int | None,
    typer.Option(min=1, help="Expected batch size (Poisson sampling). Default: the model's (logreg 32, others 64)."),
]


LrOpt = Annotated[
    float | None, typer.Option(min=0.0, help="Learning rate. Default: the model's (logreg 1.0, others 0.5).")
]


ClipOpt = Annotated[float, typer.Option(min=0.0, help="DP-SGD per-sample clipping norm.")]


NoiseOpt = Annotated[float, typer.Option(min=0.0, help="DP-SGD noise multiplier.")]


TrainSeedOpt = Annotated[int, typer.Option(help="Seed of local training.")]


RecipientOpt = Annotated[
    list[str] | None,
    typer.Option(
        help="Address an update is encrypted to (repeatable); default: the deployment's coordinator and auditors."
    ),
]


@dataclass(frozen=True)
class TrainOptions:
    """The options train-and-submit and train-and-sign share, as given on the command line."""

    agreement: int
    key: str
    dataset: str
    partition: int
    partitions: int
    seed: int
    csv: Path | None
    label_column: str
    num_classes: int | None
    model: str | None
    epochs: int
    batch_size: int | None
    lr: float | None
    max_grad_norm: float
    noise_multiplier: float
    train_seed: int
    recipient: list[str] | None
    rpc_url: str | None
    deployment: Path | None
    ipfs: str | None

    @classmethod
    def given(cls, arguments: dict[str, Any]) -> TrainOptions:
        """The options among a command's `arguments` (its ``locals()``, so that each is named once: in its
        signature, which typer reads)."""
        return cls(**{f.name: arguments[f.name] for f in fields(cls)})


def _train(opts: TrainOptions, *, batched: bool, service: str | None = None) -> tuple[int, Any, Any, Any]:
    """Steps 2-4 of a round for --key: ``(round, Submission or (SignedCommitment, its document), accountant,
    terms)``. With `service` (a ledger service's URL), the store and the relay of transactions are that service's
    (``api.client``), and a batched commitment goes to it (the service's answer replaces the document); the chain
    is still read through the session's own node."""
    from ...rounds.partner import TrainingSettings
    from ...rounds.roles import build_partner, fresh_accountant, terms_document
    from ...workers import open_executor
    from ..data import partner_data

    data = partner_data(
        dataset=opts.dataset,
        partition=opts.partition,
        partitions=opts.partitions,
        seed=opts.seed,
        csv=opts.csv,
        label_column=opts.label_column,
        num_classes=opts.num_classes,
    )
    with ExitStack() as stack:
        s = stack.enter_context(
            open_session(
                rpc_url=opts.rpc_url, deployment=opts.deployment, key=opts.key, ipfs=opts.ipfs, sends=not batched
            )
        )
        s.require_party(opts.agreement, s.address)
        ledger = s.deployment.ledger.functions
        round_id = int(ledger.openRoundOf(opts.agreement).call())
        require(round_id > 0, f"agreement {opts.agreement} has no open round")
        # One round command per key and agreement at a time on this machine: a second one waits, then finds the
        # first one's submission below instead of training a second update.
        stack.enter_context(_held(s.accountant_file(opts.agreement, s.address).with_suffix(".lock")))
        _refuse_what_the_chain_would(s, opts.agreement, round_id, batched=batched and service is None)
        # A round a crash interrupted before its transaction is not refused: the same command resumes it (outbox).
        recipients = [parse_address(r, "--recipient") for r in opts.recipient or []] or [
            s.document.get("coordinator"),
            *s.document.get("auditors", []),
        ]
        require(all(recipients), f"no recipients: {s.deployment_path} names no coordinator; pass --recipient")
        for address in recipients:
            key_bytes = Partner.read(s.deployment.partners.functions.partnerOf(address)).encryption_key
            require(
                any(key_bytes),
                f"recipient {address} has no X25519 key in the PartnerRegistry (it runs `partner register` first)",
            )
        if service is not None:
            from ...api.client import ServiceClient

            client = stack.enter_context(ServiceClient(service, s.account))
            store, tx = client.store(opts.agreement, round_id), client.transactor(s.w3)
        else:
            store, tx = s.store, s.tx
        terms = Terms.read(s.deployment.agreements.functions.terms(opts.agreement))
        model = opts.model or (terms_document(store, terms) or {}).get("model", "logreg")
        settings = TrainingSettings.for_model(
            model,
            epochs=opts.epochs,
            batch_size=opts.batch_size,
            lr=opts.lr,
            max_grad_norm=opts.max_grad_norm,
            noise_multiplier=opts.noise_multiplier,
            seed=opts.train_seed,
        )
        envelope, _ = _recorded(s, opts.agreement, round_id)
        if envelope is not None and envelope.payload.get("options", settings.options()) != settings.options():
            typer.echo(
                f"note: round {round_id}'s update was trained before ({_options(envelope.payload['options'])}); "
                "resuming that one: the options given now are not used",
                err=True,
            )
        accountant = fresh_accountant(s.deployment, opts.agreement, s.address)
        # One update to train: in this process (a worker pool would cost seconds to start), or in Ray when
        # $LEPTON_RAY_ADDRESS is set.
        with open_executor(in_process=True) as executor:
            partner = build_partner(
                account=s.account,
                tx=tx,
                deployment=s.deployment,
                store=store,
                accountant=accountant,
                data=data,
                executor=executor,
                settings=settings,
                accountant_path=s.accountant_file(opts.agreement, s.address),
            )
            if batched:
                result = partner.run_round_batched(opts.agreement, round_id, recipients)
            else:
                result = partner.run_round(opts.agreement, round_id, recipients)
        if batched:
            from ...rounds.roles import signed_commitment_document

            chain_id = s.w3.eth.chain_id
            if service is not None:  # the service checks, keeps and anchors it: its answer instead of a document
                result = (result, client.submit_commitment(result, chain_id=chain_id, ledger=s.ledger_address))
            else:
                result = (result, signed_commitment_document(result, chain_id=chain_id, ledger=s.ledger_address))
    return round_id, result, accountant, terms


@contextmanager
def _held(path: Path) -> Iterator[None]:
    """An exclusive lock on `path` (created if need be) while the block runs; released if the process dies."""
    import fcntl

    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield


def _refuse_what_the_chain_would(s: Any, agreement: int, round_id: int, *, batched: bool) -> None:
    """Refuses, before training and before any epsilon is recorded, a submission the ledger would refuse: the
    round's deadline has passed, or this key has already submitted (saying what it submitted)."""
    ledger = s.deployment.ledger.functions
    if ledger.hasSubmitted(agreement, round_id, s.address).call():
        raise CommandError(
            f"{s.address} has already submitted its update for round {round_id} of agreement "
            f"{agreement}{_earlier_submission(s, agreement, round_id)}; nothing trained"
        )
    deadline = Round.read(ledger.round(agreement, round_id)).deadline
    now = int(s.w3.eth.get_block("latest")["timestamp"])
    if now >= deadline and not batched:
        raise CommandError(
            f"round {round_id} of agreement {agreement} took submissions until {utc(deadline)}; it "
            f"is {utc(now)} on the chain: nothing trained, no epsilon spent"
        )


def _recorded(s: Any, agreement: int, round_id: int) -> tuple[Any, Any]:
    """This key's outbox records of the round: its envelope and its submission (each None when not recorded)."""
    from ...rounds.effects import chain_tag, default_outbox

    outbox = default_outbox("partner", s.w3, s.address)
    parts = [chain_tag(s.w3), s.ledger_address, str(agreement), str(round_id), s.address]
    envelope, submit = (outbox.find(":".join([step, *parts])) for step in ("envelope", "submit"))
    return envelope, submit


def _options(options: dict[str, Any]) -> str:
    return " ".join(f"--{k.replace('_', '-')} {v}" for k, v in options.items())


def _earlier_submission(s: Any, agreement: int, round_id: int) -> str:
    """`` (envelope CID, samples, options, tx)`` of this key's earlier submission, from its outbox; "" if unknown."""
    envelope, submit = _recorded(s, agreement, round_id)
    if envelope is None:
        return ""
    said = f": {envelope.payload['cid']} ({envelope.payload['sample_count']} samples"
    if envelope.payload.get("options"):
        said += ", " + _options(envelope.payload["options"])
    if submit is not None and submit.result:
        said += f"), tx {submit.result.get('tx_hash')}"
    else:
        said += ")"
    return said


@reports_errors
def train_and_submit(
    agreement: AgreementArg,
    key: KeyOpt,
    dataset: DatasetOpt = "digits",
    partition: PartitionOpt = 0,
    partitions: PartitionsOpt = 1,
    seed: SeedOpt = 0,
    csv: CsvOpt = None,
    label_column: LabelColumnOpt = "label",
    num_classes: NumClassesOpt = None,
    model: ModelOpt = None,
    epochs: EpochsOpt = 1,
    batch_size: BatchSizeOpt = None,
    lr: LrOpt = None,
    max_grad_norm: ClipOpt = 1.0,
    noise_multiplier: NoiseOpt = 1.0,
    train_seed: TrainSeedOpt = 0,
    recipient: RecipientOpt = None,
    rpc_url: RpcUrlOpt = None,
    deployment: DeploymentOpt = None,
    ipfs: IpfsOpt = None,
    service: Annotated[
        str | None,
        typer.Option(
            help="A ledger service's URL (`lepton-ledger serve`): the update is "
            "uploaded there and the submission relayed by it."
        ),
    ] = None,
    mode: Annotated[
        str,
        typer.Option(
            help="Commit mode: single (submitUpdate) or batched (with --service: a signed commitment the service "
            "anchors in the round's batch)."
        ),
    ] = "single",
) -> None:
    """Train on local data with DP-SGD for AGREEMENT's open round and submit the encrypted update.

    Fetches the round's global model by its on-chain digest, checks the privacy budget before training, trains in
    a local worker process, seals the update (signed manifest, encrypted to the recipients' registered X25519 keys),
    puts it to the store. Sends RoundLedger.submitUpdate(agreement, round, envelope digest, manifest digest,
    cumulative epsilon, sample count) from --key. With --mode batched and --service, sends nothing: the service
    checks and keeps --key's signed commitment and anchors the round's batch (as train-and-sign, then anchor).
    """
    require(mode in ("single", "batched"), f"--mode must be single or batched, not {mode!r}")
    require(mode == "single" or service is not None, "--mode batched needs --service (else: train-and-sign)")
    round_id, submission, accountant, terms = _train(
        TrainOptions.given(locals()),
        batched=mode == "batched",
        service=service,
    )
    if mode == "batched":
        kept = submission[1]
        samples = kept["commitment"]["sampleCount"]
        typer.echo(
            f"round {round_id}: committed {kept['envelope_cid']} ({samples} samples) to the service; its batch is "
            f"anchored by job {kept['anchor_job']}"
        )
    else:
        typer.echo(
            f"round {round_id}: submitted {submission.envelope_cid} ({submission.sample_count} samples), "
            f"tx {submission.tx_hash}"
        )
    typer.echo(
        f"epsilon spent {accountant.epsilon():.4f} of cap {fixed_point(terms.epsilon_cap_fixed, EPSILON_DECIMALS)}"
    )


@reports_errors
def train_and_sign(
    agreement: AgreementArg,
    key: KeyOpt,
    out: Annotated[Path, typer.Option(help="Where to write the signed commitment for `coordinator anchor`.")],
    dataset: DatasetOpt = "digits",
    partition: PartitionOpt = 0,
    partitions: PartitionsOpt = 1,
    seed: SeedOpt = 0,
    csv: CsvOpt = None,
    label_column: LabelColumnOpt = "label",
    num_classes: NumClassesOpt = None,
    model: ModelOpt = None,
    epochs: EpochsOpt = 1,
    batch_size: BatchSizeOpt = None,
    lr: LrOpt = None,
    max_grad_norm: ClipOpt = 1.0,
    noise_multiplier: NoiseOpt = 1.0,
    train_seed: TrainSeedOpt = 0,
    recipient: RecipientOpt = None,
    rpc_url: RpcUrlOpt = None,
    deployment: DeploymentOpt = None,
    ipfs: IpfsOpt = None,
) -> None:
    """Batched mode: as train-and-submit, but instead of a transaction, write --key's EIP-712 signature of the
    UpdateCommitment to --out; the coordinator anchors every partner's in one RoundLedger.commitBatch.

    Sends nothing to the chain (puts the envelope to the store). The epsilon is counted as spent from now on.
    """
    round_id, (_, document), accountant, terms = _train(
        TrainOptions.given(locals()),
        batched=True,
    )
    out.write_text(json.dumps(document, indent=2) + "\n")
    typer.echo(f"round {round_id}: sealed {document['envelopeCid']}, signed commitment written to {out}")
    typer.echo(
        f"epsilon spent {accountant.epsilon():.4f} of cap {fixed_point(terms.epsilon_cap_fixed, EPSILON_DECIMALS)}"
    )
