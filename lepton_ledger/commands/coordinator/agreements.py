"""``coordinator approve|propose|relay-signature|fund|bond``: the coordinator vets partners, proposes an
agreement (terms JSON: rounds/coordinator_steps.py), relays a partner's signature, and pays the reward pool and
its bond in."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer

from ...protocol.jsonio import FILE_BYTES, load_json, read_bounded
from ...rounds.coordinator_steps import (
    AGGREGATIONS,
    SCORINGS,
    agreement_terms,
    approve_partner,
    payable_token,
    post_bond,
)
from ...units import TOKEN_DECIMALS
from ..context import (
    AgreementArg,
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
)


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
    address = parse_address(partner, "PARTNER")
    with open_session(rpc_url=rpc_url, deployment=deployment, key=key) as s:
        approve_partner(s, address)
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
    from ...chain import agreements
    from ...rounds.roles import publish_document

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
    from ..partner import RELAY_FILE_VERSION

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
    from ...chain import agreements

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

    def post(s: Any, token: Any, v: int) -> int:
        return post_bond(s, token, agreement, v)[1]

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
