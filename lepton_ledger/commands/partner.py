"""``lepton-ledger partner ...``: a partner's steps, each signed with its own keystore key (``--key``).

register -> (coordinator approves) -> sign -> stake -> per round: train-and-submit (or, in batched mode,
train-and-sign, whose file the coordinator anchors) -> (coordinator closes) -> claim; status at any time.
The partner's privacy accountant persists between commands under
``<data dir>/accountants/<RoundLedger address>/<agreement>-<partner>.json``; the signed commitment file of
train-and-sign is documented in rounds/roles.py.

Relayed signature file (``sign --relay-to-file``), JSON: ``{"version": 1, "chain_id", "agreement_registry",
"agreement_id", "party", "deadline", "signature"}`` (0x-hex); ``coordinator relay-signature FILE`` sends it with
``AgreementRegistry.signBySig`` and pays the gas.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer

from ..chain.state import Allocation, EntryDispute, Partner, Round, Terms
from ..units import (
    EPSILON_DECIMALS,
    EPSILON_SCALE,
    TOKEN_DECIMALS,
    AgreementStatus,
    DisputeStatus,
    PartnerStatus,
)
from .context import (
    CommandError,
    DeploymentOpt,
    IpfsOpt,
    KeyOpt,
    RpcUrlOpt,
    fixed_point,
    open_session,
    parse_address,
    parse_tokens,
    reports_errors,
    require,
    utc,
)
from .data import (
    CsvOpt,
    DatasetOpt,
    LabelColumnOpt,
    NumClassesOpt,
    PartitionOpt,
    PartitionsOpt,
    SeedOpt,
)

__all__ = ["RELAY_FILE_VERSION", "partner_app"]

RELAY_FILE_VERSION = 1

partner_app = typer.Typer(
    help="A partner's steps: register, sign an agreement, stake, train and submit (or sign) a round's update, claim, "
    "status.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
    add_completion=False,
)

AgreementArg = Annotated[int, typer.Argument(metavar="AGREEMENT", help="Agreement id.")]
ReadKeyOpt = Annotated[str | None, typer.Option("--key", help="Keystore identity (only its address is read).")]
AddressOpt = Annotated[str | None, typer.Option(help="The partner's address, instead of --key.")]
RoundArg = Annotated[int, typer.Argument(metavar="ROUND", help="Round id.")]


def _accountant_file(session: Any, agreement_id: int, partner: str) -> Path:
    from ..rounds.roles import accountant_path

    return accountant_path(session.state_dir("accountants"), agreement_id, partner)


@partner_app.command("register")
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
    from ..chain import agreements

    profile: dict[str, str] = {"name": name, "contact": contact}
    for item in field or []:
        k, sep, v = item.partition("=")
        require(bool(sep and k), f"--field takes KEY=VALUE, not {item!r}")
        profile[k] = v
    with open_session(rpc_url=rpc_url, deployment=deployment, key=key, ipfs=ipfs) as s:
        status = Partner.read(s.deployment.partners.functions.partnerOf(s.address)).status
        require(status is PartnerStatus.NONE, f"{s.address} is already registered in the PartnerRegistry ({status})")
        from ..rounds.roles import publish_document

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


@partner_app.command("sign")
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
    from ..chain import agreements
    from ..chain.typed_data import sign_digest

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


@partner_app.command("stake")
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
    from ..chain import agreements

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


ModelOpt = Annotated[str | None, typer.Option(help="Model name; default: the terms document's, else logreg.")]
EpochsOpt = Annotated[int, typer.Option(min=1, help="Local epochs.")]
BatchSizeOpt = Annotated[int, typer.Option(min=1, help="Expected batch size (Poisson sampling).")]
LrOpt = Annotated[float, typer.Option(min=0.0, help="Learning rate.")]
ClipOpt = Annotated[float, typer.Option(min=0.0, help="DP-SGD per-sample clipping norm.")]
NoiseOpt = Annotated[float, typer.Option(min=0.0, help="DP-SGD noise multiplier.")]
TrainSeedOpt = Annotated[int, typer.Option(help="Seed of local training.")]
RecipientOpt = Annotated[
    list[str] | None,
    typer.Option(
        help="Address an update is encrypted to (repeatable); default: the deployment's coordinator and auditors."
    ),
]


def _train(
    *,
    agreement: int,
    key: str,
    dataset: str,
    partition: int,
    partitions: int,
    seed: int,
    csv: Path | None,
    label_column: str,
    num_classes: int | None,
    model: str | None,
    epochs: int,
    batch_size: int,
    lr: float,
    max_grad_norm: float,
    noise_multiplier: float,
    train_seed: int,
    recipient: list[str] | None,
    rpc_url: str | None,
    deployment: Path | None,
    ipfs: str | None,
    batched: bool,
    service: str | None = None,
) -> tuple[int, Any, Any, Any]:
    """Steps 2-4 of a round for --key: ``(round, Submission or (SignedCommitment, its document), accountant,
    terms)``. With `service` (a ledger service's URL), the store and the relay of transactions are that service's
    (``api.client``), and a batched commitment goes to it (the service's answer replaces the document); the chain
    is still read through the session's own node."""
    from ..rounds.partner import TrainingSettings
    from ..rounds.roles import build_partner, fresh_accountant, terms_document
    from ..workers import open_executor
    from .data import partner_data

    data = partner_data(
        dataset=dataset,
        partition=partition,
        partitions=partitions,
        seed=seed,
        csv=csv,
        label_column=label_column,
        num_classes=num_classes,
    )
    with ExitStack() as stack:
        s = stack.enter_context(
            open_session(rpc_url=rpc_url, deployment=deployment, key=key, ipfs=ipfs, sends=not batched)
        )
        s.require_party(agreement, s.address)
        ledger = s.deployment.ledger.functions
        round_id = int(ledger.openRoundOf(agreement).call())
        require(round_id > 0, f"agreement {agreement} has no open round")
        # One round command per key and agreement at a time on this machine: a second one waits, then finds the
        # first one's submission below instead of training a second update.
        stack.enter_context(_held(_accountant_file(s, agreement, s.address).with_suffix(".lock")))
        _refuse_what_the_chain_would(s, agreement, round_id, batched=batched and service is None)
        # A round a crash interrupted before its transaction is not refused: the same command resumes it (outbox).
        recipients = [parse_address(r, "--recipient") for r in recipient or []] or [
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
            from ..api.client import ServiceClient

            client = stack.enter_context(ServiceClient(service, s.account))
            store, tx = client.store(agreement, round_id), client.transactor(s.w3)
        else:
            store, tx = s.store, s.tx
        terms = Terms.read(s.deployment.agreements.functions.terms(agreement))
        model = model or (terms_document(store, terms) or {}).get("model", "logreg")
        settings = TrainingSettings(
            model=model,
            epochs=epochs,
            batch_size=batch_size,
            lr=lr,
            max_grad_norm=max_grad_norm,
            noise_multiplier=noise_multiplier,
            seed=train_seed,
        )
        envelope, _ = _recorded(s, agreement, round_id)
        if envelope is not None and envelope.payload.get("options", settings.options()) != settings.options():
            typer.echo(
                f"note: round {round_id}'s update was trained before ({_options(envelope.payload['options'])}); "
                "resuming that one: the options given now are not used",
                err=True,
            )
        accountant = fresh_accountant(s.deployment, agreement, s.address)
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
                accountant_path=_accountant_file(s, agreement, s.address),
            )
            if batched:
                result = partner.run_round_batched(agreement, round_id, recipients)
            else:
                result = partner.run_round(agreement, round_id, recipients)
        if batched:
            from ..rounds.roles import signed_commitment_document

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
    from ..rounds.effects import chain_tag, default_outbox

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


@partner_app.command("train-and-submit")
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
    batch_size: BatchSizeOpt = 64,
    lr: LrOpt = 0.5,
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
        agreement=agreement,
        key=key,
        dataset=dataset,
        partition=partition,
        partitions=partitions,
        seed=seed,
        csv=csv,
        label_column=label_column,
        num_classes=num_classes,
        model=model,
        epochs=epochs,
        batch_size=batch_size,
        lr=lr,
        max_grad_norm=max_grad_norm,
        noise_multiplier=noise_multiplier,
        train_seed=train_seed,
        recipient=recipient,
        rpc_url=rpc_url,
        deployment=deployment,
        ipfs=ipfs,
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


@partner_app.command("train-and-sign")
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
    batch_size: BatchSizeOpt = 64,
    lr: LrOpt = 0.5,
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
        agreement=agreement,
        key=key,
        dataset=dataset,
        partition=partition,
        partitions=partitions,
        seed=seed,
        csv=csv,
        label_column=label_column,
        num_classes=num_classes,
        model=model,
        epochs=epochs,
        batch_size=batch_size,
        lr=lr,
        max_grad_norm=max_grad_norm,
        noise_multiplier=noise_multiplier,
        train_seed=train_seed,
        recipient=recipient,
        rpc_url=rpc_url,
        deployment=deployment,
        ipfs=ipfs,
        batched=True,
    )
    out.write_text(json.dumps(document, indent=2) + "\n")
    typer.echo(f"round {round_id}: sealed {document['envelopeCid']}, signed commitment written to {out}")
    typer.echo(
        f"epsilon spent {accountant.epsilon():.4f} of cap {fixed_point(terms.epsilon_cap_fixed, EPSILON_DECIMALS)}"
    )


@partner_app.command("claim")
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
    from ..chain.merkle import LeafNotFound
    from ..rounds.roles import build_partner, fresh_accountant, payout_tree

    with open_session(rpc_url=rpc_url, deployment=deployment, key=key, ipfs=ipfs) as s:
        s.agreement_state(agreement)
        require(
            0 < round <= int(s.deployment.ledger.functions.roundCount(agreement).call()),
            f"agreement {agreement} has no round {round}",
        )
        tree = payout_tree(s.deployment, s.store, agreement, round)
        try:
            amount = tree.amount(s.address) if tree is not None else 0
        except LeafNotFound:
            amount = 0
        require(amount > 0, f"{s.address} has no payout in round {round} of agreement {agreement}")
        vault = s.deployment.vault.functions
        require(
            not vault.hasClaimed(agreement, round, s.address).call(),
            f"{s.address} has already claimed round {round} of agreement {agreement}",
        )
        opens = Allocation.read(vault.allocation(agreement, round)).claimable_at
        now = int(s.w3.eth.get_block("pending")["timestamp"])  # the time the claim would be mined at
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
            accountant_path=_accountant_file(s, agreement, s.address),
        )
        tx_hash = partner.claim(agreement, round, amount, tree.proof(s.address))
    typer.echo(
        f"claimed {fixed_point(amount, TOKEN_DECIMALS)} for round {round} of agreement {agreement}, tx {tx_hash}"
    )


@partner_app.command("exit")
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


@partner_app.command("unstake")
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


@partner_app.command("status")
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
    from ..chain import disputes
    from ..challenges.challenge import challenges
    from ..rounds.roles import standing

    who = _who(key, address)
    with open_session(rpc_url=rpc_url, deployment=deployment, key=None, ipfs=ipfs) as s:
        s.require_party(agreement, who)
        now = int(s.w3.eth.get_block("pending")["timestamp"])
        held = standing(s.deployment, s.store, agreement, who, now)
        path = _accountant_file(s, agreement, who)
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
    from ..keys import Keystore

    require((key is None) != (address is None), "pass exactly one of --key and --address")
    return parse_address(address, "--address") if address else Keystore().show(key).address  # type: ignore[arg-type]


def _local_epsilon(path: Path) -> float | None:
    """The cumulative epsilon the partner's accountant file records, or None without one.

    Raises:
        CommandError: the file is damaged (named, with what is wrong).
    """
    if not path.exists():
        return None
    from ..errors import LeptonError
    from ..protocol.jsonio import FILE_BYTES, load_object, read_bounded

    try:
        document = load_object(read_bounded(path, FILE_BYTES), what=f"accountant file {path}", max_bytes=FILE_BYTES)
        if isinstance(document.get("epsilon"), float):  # recorded with the history: no need to load the DP library
            return float(document["epsilon"])
        from ..fl.accounting import PrivacyAccountant

        return PrivacyAccountant.from_state_dict(document["accountant"]).epsilon()
    except LeptonError as exc:
        raise CommandError(str(exc) if str(path) in str(exc) else f"accountant file {path}: {exc}") from None
    except (OSError, KeyError, TypeError, ValueError, AttributeError) as exc:
        raise CommandError(f"accountant file {path} is damaged ({type(exc).__name__}: {exc})") from None


# -- disputes of batch entries (chain/disputes.py) -------------------------------------------------------------

AgreementOpt = Annotated[int, typer.Option("--agreement", help="Agreement id.")]
RoundOpt = Annotated[int, typer.Option("--round", help="Round id.")]


def _answerable(s: Any, entry: Any) -> bool:
    """Whether the coordinator can answer a dispute of `entry`: the batch document in the store recomputes the
    anchored root and holds, at the entry's position, a commitment of --key's with the entry's epsilon and
    --key's valid signature. Without such a document nothing is proven (a coordinator may withhold it)."""
    from ..chain.disputes import DisputeError, DisputeRecord, answer_for
    from ..chain.typed_data import UpdateCommitment, update_commitment_digest
    from ..protocol.signatures import is_valid_signature_now

    record = DisputeRecord(
        entry.agreement_id, entry.round, s.address, "None", entry.batch_index, entry.position, entry.epsilon, 0
    )
    try:
        _, commitment, signature = answer_for(s.deployment, s.store, record)
    except DisputeError:
        return False
    c = UpdateCommitment(*commitment)
    digest = update_commitment_digest(s.w3.eth.chain_id, s.deployment.ledger.address, c)
    return c.cumulative_epsilon == entry.epsilon and is_valid_signature_now(s.w3, s.address, digest, signature)


@partner_app.command("dispute")
@reports_errors
def dispute(
    agreement: AgreementOpt,
    round: RoundOpt,
    key: KeyOpt,
    force: Annotated[bool, typer.Option(help="Dispute even an entry that is what --key signed.")] = False,
    rpc_url: RpcUrlOpt = None,
    deployment: DeploymentOpt = None,
    ipfs: IpfsOpt = None,
) -> None:
    """Dispute --key's entry in a batch the coordinator anchored for ROUND: for a commitment it never signed.

    Finds the entry in the round's BatchCommitted events (the batch document is not needed: a coordinator may
    withhold it) and sends RoundLedger.disputeBatchEntry(evidence) from --key. The coordinator must then reveal
    the signed commitment within the dispute window; if it does not, `partner void-entry` voids that entry alone
    and restores its budget. Refused when the batch document in the store holds that very commitment with --key's
    signature (the coordinator can answer), unless --force.
    """
    from web3.logs import DISCARD

    from ..chain import disputes

    with open_session(rpc_url=rpc_url, deployment=deployment, key=key, ipfs=ipfs) as s:
        s.require_party(agreement, s.address)
        s.require_round(agreement, round)
        entry = disputes.entry_of(s.deployment, agreement, round, s.address)
        require(
            entry is not None,
            f"{s.address} has no entry in the batches anchored for round {round} of "
            f"agreement {agreement}: nothing to dispute",
        )
        status = EntryDispute.read(s.deployment.ledger.functions.entryDispute(agreement, round, s.address)).status
        require(
            status is DisputeStatus.NONE,
            f"{s.address}'s entry in round {round} of agreement {agreement} was already disputed (status {status})",
        )
        require(
            force or not _answerable(s, entry),
            f"{s.address} signed this commitment (epsilon {fixed_point(entry.epsilon, EPSILON_DECIMALS)}) for "
            f"round {round}: the entry is honest and the coordinator can answer a dispute; pass --force to "
            "dispute it anyway",
        )
        receipt = s.tx.transact(s.deployment.ledger.functions.disputeBatchEntry(entry.evidence()), s.address)
        (event,) = s.deployment.ledger.events.BatchEntryDisputed().process_receipt(receipt, errors=DISCARD)
    answer_by = int(event["args"]["answerBy"])
    typer.echo(
        f"disputed the entry of {s.address} in round {round} of agreement {agreement} (batch "
        f"{entry.batch_index}, position {entry.position}, epsilon "
        f"{fixed_point(entry.epsilon, EPSILON_DECIMALS)}); the "
        f"coordinator must answer by {utc(answer_by)}, then: lepton-ledger partner void-entry "
        f"--agreement {agreement} --round {round}"
    )


@partner_app.command("void-entry")
@reports_errors
def void_entry(
    agreement: AgreementOpt,
    round: RoundOpt,
    key: KeyOpt,
    party: Annotated[str | None, typer.Option(help="Whose disputed entry; default: --key's address.")] = None,
    rpc_url: RpcUrlOpt = None,
    deployment: DeploymentOpt = None,
) -> None:
    """Void a disputed batch entry the coordinator did not answer in time: that entry alone is removed (the round
    and its payouts stand) and what it spent is taken off the party's epsilon.

    Reads the round's EpsilonsAtOpen event and sends RoundLedger.voidDisputedEntry(agreement, round, party,
    words) from --key (anyone may send it). Refused while a later round of the agreement is open.
    """
    from web3.logs import DISCARD

    from ..chain import disputes

    with open_session(rpc_url=rpc_url, deployment=deployment, key=key) as s:
        who = parse_address(party, "--party") if party else s.address
        s.require_round(agreement, round)
        d = EntryDispute.read(s.deployment.ledger.functions.entryDispute(agreement, round, who))
        status, answer_by = d.status, d.answer_by
        require(
            status is not DisputeStatus.NONE, f"{who} has no disputed entry in round {round} of agreement {agreement}"
        )
        require(
            status is not DisputeStatus.ANSWERED,
            f"the coordinator answered the dispute of {who} in round "
            f"{round} with its signed commitment: the entry stands",
        )
        require(status is DisputeStatus.OPEN, f"the entry of {who} in round {round} is already voided")
        now = int(s.w3.eth.get_block("pending")["timestamp"])
        require(
            now > answer_by,
            f"the coordinator may answer the dispute of {who} until {utc(answer_by)}; it can be voided after that",
        )
        open_round = int(s.deployment.ledger.functions.openRoundOf(agreement).call())
        require(
            open_round in (0, round),
            f"round {open_round} of agreement {agreement} is open: the entry of {who} "
            f"in round {round} can be voided once it closes",
        )
        words = disputes.words_at_open(s.deployment, agreement, round)
        receipt = s.tx.transact(
            s.deployment.ledger.functions.voidDisputedEntry(agreement, round, who, words), s.address
        )
        (event,) = s.deployment.ledger.events.DisputedEntryVoided().process_receipt(receipt, errors=DISCARD)
    restored = int(event["args"]["restoredEpsilon"])
    typer.echo(
        f"voided the entry of {who} in round {round} of agreement {agreement} (the round stands): its "
        f"epsilon is back to {fixed_point(restored, EPSILON_DECIMALS)}"
    )
