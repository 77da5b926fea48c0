"""``lepton-ledger coordinator ...``: the coordinator's steps, signed with its keystore key (``--key``).

approve partners -> propose an agreement -> (relay signatures) -> fund -> per round: open -> (partners submit,
or sign commitments that ``anchor`` commits in one batch) -> close. The terms document (task, model, max norm)
is put to the store with the proposal (rounds/roles.py); the event index of ``close`` lives in
``<data dir>/events/<RoundLedger address>/events.sqlite``.

Terms file (``propose --terms-file``), JSON; every member optional, the command-line options override it::

    {"parties": ["0x..."], "reward_token": "0x...", "reward_per_round": "300", "epsilon_cap": 10.0,
     "delta": 1e-5, "required_stake": "100", "rounds": 5, "days": 365, "payout_rule": "by_sample_count",
     "arbiter": "0x...", "max_sample_count": 1000000, "document": {"task": "...", "model": "logreg", "max_norm": 50.0}}

Amounts are decimal strings of whole tokens.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import typer

from ..chain.state import Allocation, Partner, Terms
from ..errors import LeptonError
from ..protocol.jsonio import FILE_BYTES, load_json, read_bounded
from ..units import TOKEN_DECIMALS, AgreementStatus, PartnerStatus, PayoutRule
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
    read_call,
    reports_errors,
    require,
    utc,
)
from .data import (
    CsvOpt,
    DatasetOpt,
    LabelColumnOpt,
    NumClassesOpt,
    PartitionsOpt,
    SeedOpt,
)
from .deploy import eval_set_spec

__all__ = [
    "AGGREGATIONS",
    "PAYOUT_RULES",
    "SCORINGS",
    "agreement_terms",
    "coordinator_app",
    "open_next_round",
    "payable_token",
]

PAYOUT_RULES = {rule.name.lower(): rule for rule in PayoutRule}  # --payout-rule's names
# Rules that need parameters (trim, f, m) the Coordinator does not take yet are refused before anything is sent.
# fl.aggregation.AGGREGATORS and fl.scoring.SCORERS, spelled out so that --help does not import torch
AGGREGATIONS = ("fedavg", "median", "trimmed_mean", "krum", "multi_krum")
SCORINGS = ("leave_one_out", "tmc_shapley", "exact_shapley")

coordinator_app = typer.Typer(
    help="The coordinator's steps: approve partners, propose and fund agreements, open, anchor and close rounds.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
    add_completion=False,
)

AgreementArg = Annotated[int, typer.Argument(metavar="AGREEMENT", help="Agreement id.")]


@coordinator_app.command("approve")
@reports_errors
def approve(
    partner: Annotated[str, typer.Argument(metavar="PARTNER", help="Address of a registered partner.")],
    key: KeyOpt,
    rpc_url: RpcUrlOpt = None,
    deployment: DeploymentOpt = None,
) -> None:
    """Approve a registered partner, so that it can sign agreements.

    Sends PartnerRegistry.approve(PARTNER) from --key, which must hold the registry's REGISTRAR_ROLE (the one who
    vets partners; `deploy` grants it to the coordinator it names). Suspending a partner needs the same role.
    """
    from ..chain import agreements
    from ..chain.deployment import REGISTRAR_ROLE

    address = parse_address(partner, "PARTNER")
    with open_session(rpc_url=rpc_url, deployment=deployment, key=key) as s:
        require(
            s.deployment.partners.functions.hasRole(REGISTRAR_ROLE, s.address).call(),
            f"{s.address} lacks the PartnerRegistry's REGISTRAR_ROLE: only the registrar approves or suspends "
            "partners (the admin grants it)",
        )
        status = Partner.read(s.deployment.partners.functions.partnerOf(address)).status
        require(
            status is PartnerStatus.PENDING, f"{address} is not a partner awaiting approval (its status is {status})"
        )
        agreements.approve(s.tx, s.deployment, address, s.address)
    typer.echo(f"approved {address}")


def _terms_file(path: Path | None) -> dict[str, Any]:
    if path is None:
        return {}
    try:
        document = load_json(read_bounded(path, FILE_BYTES), what=f"terms file {path}", max_bytes=FILE_BYTES)
    except ValueError:
        raise CommandError(f"terms file {path} is not valid JSON") from None
    require(isinstance(document, dict), f"terms file {path} is not a JSON object")
    return document


def agreement_terms(
    s: Any,
    f: dict[str, Any],
    *,
    aggregation: str | None = None,
    scoring: str | None = None,
    max_norm: float | None = None,
) -> Any:
    """The AgreementTerms of terms JSON `f` (module docstring) proposed by session `s`'s account, with the
    defaults of ``propose``; its terms document names the round rules the parties sign (the file's "rules", or its
    max_norm, then the choices given). CommandError naming what is malformed, or a party that is not an approved
    partner; ConfigurationError for rules that cannot run."""
    from ..chain.agreements import AgreementTerms
    from ..rounds.rules import DEFAULT_MAX_NORM, RoundRules

    rule_name = f.get("payout_rule", "by_sample_count")
    require(
        isinstance(rule_name, str) and rule_name in PAYOUT_RULES,
        f"--payout-rule must be one of {', '.join(PAYOUT_RULES)}, not {rule_name!r}",
    )
    require(isinstance(f.get("parties") or [], list), 'the terms\' "parties" must be a list of addresses')
    parties = [parse_address(str(p), "--party") for p in (f.get("parties") or [])]
    require(bool(parties), "an agreement needs at least one --party")
    require(isinstance(f.get("document", {}), dict), 'the terms file\'s "document" must be a JSON object')
    document = {"task": "federated training", "model": "logreg", "max_norm": DEFAULT_MAX_NORM, **f.get("document", {})}
    signed = RoundRules.from_terms(document, len(parties)).choosing(
        len(parties), aggregation=aggregation, scoring=scoring, max_norm=max_norm
    )
    document.pop("max_norm", None)
    document["rules"] = signed.report_fields()
    for p in parties:
        require(bool(s.deployment.partners.functions.isApproved(p).call()), f"party {p} is not an approved partner")
    now = int(s.w3.eth.get_block("latest")["timestamp"])
    token = f.get("reward_token") or s.document.get("reward_token")
    require(bool(token), "no reward token: pass --reward-token (the deployment has none)")
    arbiter_address = f.get("arbiter") or s.document.get("admin")
    require(bool(arbiter_address), "no arbiter: pass --arbiter (the deployment names no admin)")
    try:
        sample_bound = int(f.get("max_sample_count", 1_000_000))
        require(sample_bound >= 1, f"--max-samples must be at least 1, not {sample_bound}")
        return AgreementTerms(
            parties=parties,
            reward_token=parse_address(str(token), "--reward-token"),
            reward_per_round=parse_tokens(str(f.get("reward_per_round", "300")), "--reward-per-round"),
            epsilon_cap=float(f.get("epsilon_cap", 10.0)),
            delta=float(f.get("delta", 1e-5)),
            required_stake=parse_tokens(str(f.get("required_stake", "100")), "--required-stake"),
            start=now - 1,
            end=now + round(float(f.get("days", 365)) * 86400),
            max_rounds=int(f.get("rounds", 5)),
            coordinator=s.address,
            arbiter=parse_address(str(arbiter_address), "--arbiter"),
            max_sample_count=sample_bound,
            payout_rule=PAYOUT_RULES[rule_name],
            document=document,
            coordinator_bond=parse_tokens(str(f.get("coordinator_bond", "100")), "--coordinator-bond"),
        )
    except (TypeError, ValueError, OverflowError) as exc:  # a terms-file value of the wrong type or range
        raise CommandError(f"the terms are not valid: {exc}") from None


@coordinator_app.command("propose")
@reports_errors
def propose(
    key: KeyOpt,
    party: Annotated[list[str] | None, typer.Option(help="A party's address (repeatable, in order).")] = None,
    terms_file: Annotated[Path | None, typer.Option(help="JSON terms, format below; options win.")] = None,
    reward_token: Annotated[str | None, typer.Option(help="Reward token; default: the deployment's.")] = None,
    reward_per_round: Annotated[str | None, typer.Option(help="Tokens paid out per round.")] = None,
    epsilon_cap: Annotated[float | None, typer.Option(help="Each partner's cumulative epsilon cap.")] = None,
    delta: Annotated[float | None, typer.Option(help="DP delta.")] = None,
    required_stake: Annotated[str | None, typer.Option(help="Tokens each party must stake.")] = None,
    rounds: Annotated[int | None, typer.Option(help="Maximum number of rounds.")] = None,
    days: Annotated[float | None, typer.Option(help="Length of the agreement, from now.")] = None,
    payout_rule: Annotated[str | None, typer.Option(help="proportional, equal or by_sample_count.")] = None,
    arbiter: Annotated[
        str | None, typer.Option(help="Who rules on challenges; default: the deployment's admin.")
    ] = None,
    max_samples: Annotated[int | None, typer.Option(help="Largest sample count an update may claim.")] = None,
    coordinator_bond: Annotated[
        str | None, typer.Option(help="Tokens the coordinator must hold posted (`coordinator bond`) to open rounds.")
    ] = None,
    model: Annotated[str | None, typer.Option(help="Model name every partner trains (terms document).")] = None,
    task: Annotated[str | None, typer.Option(help="What the agreement is for (terms document).")] = None,
    max_norm: Annotated[float | None, typer.Option(help="L2 bound on an update (terms document).")] = None,
    aggregation: Annotated[
        str | None,
        typer.Option(
            help=f"Aggregation rule: {', '.join(AGGREGATIONS)} (terms "
            "document; robust rules with their defaults for the "
            "party count)."
        ),
    ] = None,
    scoring: Annotated[
        str | None, typer.Option(help=f"Contribution scores: {', '.join(SCORINGS)} (terms document).")
    ] = None,
    rpc_url: RpcUrlOpt = None,
    deployment: DeploymentOpt = None,
    ipfs: IpfsOpt = None,
) -> None:
    """Propose an agreement; prints its id.

    Puts the terms document to the store and sends AgreementRegistry.propose(terms) from --key (COORDINATOR_ROLE).
    Defaults: reward 300 per round, epsilon cap 10, delta 1e-5, stake 100, 5 rounds over 365 days, by-sample-count
    payouts, at most 1,000,000 samples per update, the deployment's admin as arbiter, a coordinator bond of 100
    (slashed to the parties if a challenge of the coordinator's results is upheld), model logreg, max norm 50.
    The --key account is the agreement's coordinator, the only one who acts on it.

    --terms-file: a JSON object, every member optional: {"parties": ["0x..."], "reward_token": "0x...",
    "reward_per_round": "300", "epsilon_cap": 10.0, "delta": 1e-5, "required_stake": "100", "rounds": 5,
    "days": 365, "payout_rule": "by_sample_count", "arbiter": "0x...", "max_sample_count": 1000000,
    "coordinator_bond": "100", "document": {"task": "...", "model": "logreg", "max_norm": 50.0}}; amounts are decimal strings of whole tokens.
    """
    from ..chain import agreements
    from ..rounds.roles import publish_document

    f = {
        **_terms_file(terms_file),
        **{
            name: value
            for name, value in (
                ("parties", party or None),
                ("reward_token", reward_token),
                ("reward_per_round", reward_per_round),
                ("epsilon_cap", epsilon_cap),
                ("delta", delta),
                ("required_stake", required_stake),
                ("rounds", rounds),
                ("days", days),
                ("payout_rule", payout_rule),
                ("arbiter", arbiter),
                ("max_sample_count", max_samples),
                ("coordinator_bond", coordinator_bond),
            )
            if value is not None
        },
    }
    document_options = {"task": task, "model": model}
    if any(value is not None for value in document_options.values()):
        require(isinstance(f.get("document", {}), dict), 'the terms file\'s "document" must be a JSON object')
        f["document"] = {**f.get("document", {}), **{k: v for k, v in document_options.items() if v is not None}}
    with open_session(rpc_url=rpc_url, deployment=deployment, key=key, ipfs=ipfs) as s:
        terms = agreement_terms(s, f, aggregation=aggregation, scoring=scoring, max_norm=max_norm)
        cid = publish_document(s.store, terms.document)
        agreement_id = agreements.propose(s.tx, s.deployment, s.address, terms)
        parties = terms.parties
    typer.echo(f"proposed agreement {agreement_id} with {len(parties)} parties; terms document {cid}")


@coordinator_app.command("relay-signature")
@reports_errors
def relay_signature(
    signature_file: Annotated[
        Path, typer.Argument(metavar="SIGNATURE_FILE", help="File written by `partner sign --relay-to-file`.")
    ],
    key: KeyOpt,
    rpc_url: RpcUrlOpt = None,
    deployment: DeploymentOpt = None,
) -> None:
    """Relay a partner's EIP-712 signature of an agreement; --key pays the gas.

    Sends AgreementRegistry.signBySig(agreement, party, deadline, signature) from --key.
    """
    from .partner import RELAY_FILE_VERSION

    try:
        doc = load_json(read_bounded(signature_file, FILE_BYTES), what=str(signature_file), max_bytes=FILE_BYTES)
        require(doc["version"] == RELAY_FILE_VERSION, f"unsupported signature file version {doc['version']!r}")
        agreement_id, deadline = int(doc["agreement_id"]), int(doc["deadline"])
        require(
            0 <= agreement_id < 2**256 and 0 <= deadline < 2**256,
            f"{signature_file}: agreement_id and deadline must be in [0, 2^256)",
        )
        party = parse_address(doc["party"], "party")
        signature = bytes.fromhex(str(doc["signature"]).removeprefix("0x"))
    except (ValueError, KeyError, TypeError) as exc:
        raise CommandError(f"{signature_file} is not a signature file ({type(exc).__name__}: {exc})") from None
    with open_session(rpc_url=rpc_url, deployment=deployment, key=key) as s:
        require(
            doc.get("agreement_registry") == s.deployment.agreements.address,
            f"{signature_file} is for AgreementRegistry {doc.get('agreement_registry')}, "
            f"not this deployment's {s.deployment.agreements.address}",
        )
        s.require_party(agreement_id, party)
        s.tx.transact(s.deployment.agreements.functions.signBySig(agreement_id, party, deadline, signature), s.address)
    typer.echo(f"relayed the signature of {party} on agreement {agreement_id}")


@coordinator_app.command("fund")
@reports_errors
def fund(
    agreement: AgreementArg,
    amount: Annotated[str, typer.Argument(metavar="AMOUNT", help="Tokens to add to the reward pool.")],
    key: KeyOpt,
    rpc_url: RpcUrlOpt = None,
    deployment: DeploymentOpt = None,
) -> None:
    """Fund AGREEMENT's reward pool.

    Sends, from --key: ERC20.approve(RewardVault, AMOUNT) on the agreement's reward token, then
    RewardVault.fund(AGREEMENT, AMOUNT).
    """
    from ..chain import agreements

    value, _ = _pay_in(
        agreement,
        amount,
        "fund",
        key=key,
        rpc_url=rpc_url,
        deployment=deployment,
        send=lambda s, token, v: agreements.fund(s.tx, s.deployment, token, agreement, s.address, v),
    )
    typer.echo(f"funded agreement {agreement} with {fixed_point(value, TOKEN_DECIMALS)}")


@coordinator_app.command("bond")
@reports_errors
def bond(
    agreement: AgreementArg,
    amount: Annotated[str, typer.Argument(metavar="AMOUNT", help="Tokens to add to the coordinator's bond.")],
    key: KeyOpt,
    rpc_url: RpcUrlOpt = None,
    deployment: DeploymentOpt = None,
) -> None:
    """Post the coordinator bond of AGREEMENT: rounds open only while --key holds the bond the terms name, and
    an upheld challenge of its results slashes it to the parties. It comes back (ResultsCourt.withdrawBond) after
    the agreement, once no results can be challenged.

    Sends, from --key: ERC20.approve(ResultsCourt, AMOUNT) on the agreement's reward token, then
    ResultsCourt.postBond(AGREEMENT, AMOUNT).
    """
    from ..chain import agreements

    def post(s: Any, token: Any, v: int) -> int:
        agreements.post_bond(s.tx, s.deployment, token, agreement, s.address, v)
        return int(s.deployment.court.functions.bondOf(agreement, s.address).call())

    value, held = _pay_in(agreement, amount, "post", key=key, rpc_url=rpc_url, deployment=deployment, send=post)
    typer.echo(
        f"posted {fixed_point(value, TOKEN_DECIMALS)} as coordinator bond of agreement {agreement}; bond now "
        f"{fixed_point(held, TOKEN_DECIMALS)}"
    )


def _pay_in(
    agreement: int,
    amount: str,
    verb: str,
    *,
    key: str,
    rpc_url: str | None,
    deployment: Path | None,
    send: Callable[[Any, Any, int], Any],
) -> tuple[int, Any]:
    """Checks that --key can pay AMOUNT of the reward token of AGREEMENT (live, not terminated), then lets
    `send(session, token, amount)` pay it in; returns the amount and what `send` returned."""
    value = parse_tokens(amount, "AMOUNT")
    require(value > 0, "AMOUNT must be positive")
    with open_session(rpc_url=rpc_url, deployment=deployment, key=key) as s:
        return value, send(s, payable_token(s, agreement, value, verb), value)


def payable_token(s: Any, agreement: int, value: int, verb: str) -> Any:
    """The reward token of `agreement` once it is live (not terminated) and session `s`'s account holds `value` of
    it; CommandError otherwise (also for an unknown agreement)."""
    state = s.agreement_state(agreement)
    require(state.status is not AgreementStatus.TERMINATED, f"agreement {agreement} is terminated")
    token = s.token(Terms.read(s.deployment.agreements.functions.terms(agreement)).reward_token)
    balance = int(token.functions.balanceOf(s.address).call())
    require(
        balance >= value,
        f"{s.address} holds {fixed_point(balance, TOKEN_DECIMALS)} of the reward token, "
        f"cannot {verb} {fixed_point(value, TOKEN_DECIMALS)}",
    )
    return token


@coordinator_app.command("anchor")
@reports_errors
def anchor(
    agreement: AgreementArg,
    round: Annotated[int, typer.Argument(metavar="ROUND", help="Round id.")],
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
    from ..protocol.signatures import chain_signature_check
    from ..rounds.roles import signed_commitment_from_document

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
        coordinator = _coordinator(s, agreement, None, model=None, max_norm=None)
        cid = coordinator.anchor_batch(agreement, round, list(signed.values()))
    typer.echo(f"anchored {len(signed)} commitment(s) for round {round} of agreement {agreement}; batch {cid}")


def _coordinator(
    s: Any,
    agreement: int,
    eval_set: Any,
    *,
    model: str | None,
    max_norm: float | None,
    aggregation: str | None = None,
    scoring: str | None = None,
) -> Any:
    from ..rounds.roles import agreement_coordinator

    return agreement_coordinator(
        s, agreement, eval_set, model=model, max_norm=max_norm, aggregation=aggregation, scoring=scoring
    )


@coordinator_app.command("open")
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
    model: Annotated[str | None, typer.Option(help="Model name; default: the terms document's, else logreg.")] = None,
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
    from .data import eval_data

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
    if csv is None:
        _record_for_audit(s, eval_set_spec(dataset, seed), opened.model_name)


@dataclass(frozen=True)
class OpenedRound:
    round_id: int
    model_cid: str
    model_name: str
    previous: int  # the round whose aggregate the model is, 0 for a fresh model
    deadline: int
    restored: tuple[str, ...]  # a line per voided or abandoned round restored first


def open_next_round(
    s: Any,
    agreement: int,
    eval_set: Any,
    *,
    model: str | None,
    round_seconds: int,
    say: Callable[[str], Any] = lambda _: None,
) -> OpenedRound:
    """What ``coordinator open`` does with session `s`'s account: checks that no round is open and the bond is
    posted (CommandError otherwise), restores voided rounds (`say`s a line each), publishes the global model and
    opens the round on it with `eval_set`'s commitment."""
    from ..chain import disputes
    from ..rounds.roles import global_model

    s.agreement_state(agreement)
    open_round = int(s.deployment.ledger.functions.openRoundOf(agreement).call())
    require(open_round == 0, f"round {open_round} of agreement {agreement} is still open (close it first)")
    bonded, required = s.deployment.agreements.functions.coordinatorBondOf(agreement).call()
    held = int(s.deployment.court.functions.bondOf(agreement, bonded).call())
    require(
        held >= required,
        f"the coordinator holds {fixed_point(held, TOKEN_DECIMALS)} of bond in agreement "
        f"{agreement}, its terms require {fixed_point(required, TOKEN_DECIMALS)}: post it "
        f"with `coordinator bond {agreement} AMOUNT`",
    )
    # A voided or abandoned round stays charged until restored, and openRound waits for it.
    restored = tuple(disputes.restore_pending(s.tx, s.deployment, sender=s.address, agreement_id=agreement))
    for line in restored:
        say(line)
    coordinator = _coordinator(s, agreement, eval_set, model=model, max_norm=None)
    state, previous = global_model(
        s.deployment,
        s.store,
        agreement,
        model_name=coordinator.model_name,
        input_dim=eval_set.input_dim,
        num_classes=eval_set.num_classes,
    )
    cid, digest = coordinator.publish_model(state)
    deadline = int(s.w3.eth.get_block("latest")["timestamp"]) + round_seconds
    round_id = coordinator.open_round(agreement, digest, deadline)
    return OpenedRound(
        round_id=round_id,
        model_cid=cid,
        model_name=coordinator.model_name,
        previous=previous or 0,
        deadline=deadline,
        restored=restored,
    )


def _record_for_audit(s: Any, spec: dict[str, Any], model_name: str) -> None:
    """Writes the evaluation set and model of this round into the deployment file when they differ from it, so
    that `audit` rebuilds what the round committed to."""
    if s.document.get("eval_set") == spec and s.document.get("model") == model_name:
        return
    s.deployment_path.write_text(json.dumps({**s.document, "eval_set": spec, "model": model_name}, indent=2) + "\n")
    typer.echo(
        f"recorded the evaluation set ({spec['dataset']}, seed {spec['seed']}) and model {model_name} in "
        f"{s.deployment_path} for the audit"
    )


@coordinator_app.command("close")
@reports_errors
def close(
    agreement: AgreementArg,
    round: Annotated[int, typer.Argument(metavar="ROUND", help="Round id.")],
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
    model: Annotated[str | None, typer.Option(help="Model name; default: the terms document's, else logreg.")] = None,
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
    from ..fl.data import eval_commitment
    from ..workers import use_evaluation_threads
    from .data import eval_data

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
        coordinator = _coordinator(
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
    from ..chain.disputes import answer_open_disputes

    lines = answer_open_disputes(s.tx, s.deployment, s.store, sender=s.address, agreement_id=agreement)
    for line in lines:
        typer.echo(f"dispute: {line}")
    return len(lines)


@coordinator_app.command("answer-disputes")
@reports_errors
def answer_disputes(
    agreement: Annotated[int, typer.Option("--agreement", help="Agreement id.")],
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
