"""The coordinator's steps that its commands and the ledger service share, each on a :class:`Session` holding the
coordinator's key: approving a partner (:func:`approve_partner`), the agreement terms a proposal sends
(:func:`agreement_terms`, from the terms JSON below; its reward token an ERC-20 contract,
:func:`require_reward_token`), the reward token a payment takes (:func:`payable_token`),
posting the coordinator's bond (:func:`post_bond`), opening the next round (:func:`open_next_round`) and
recording its evaluation set for the audit (:func:`record_for_audit`).

Terms JSON (``coordinator propose --terms-file``, a service proposal's body); every member optional::

    {"parties": ["0x..."], "reward_token": "0x...", "reward_per_round": "300", "epsilon_cap": 10.0,
     "delta": 1e-5, "required_stake": "100", "rounds": 5, "days": 365, "payout_rule": "by_sample_count",
     "arbiter": "0x...", "max_sample_count": 1000000, "coordinator_bond": "100",
     "document": {"task": "...", "model": "logreg", "max_norm": 50.0}}

Amounts are decimal strings of whole tokens. Refusals are ``CommandError``s (rounds/session.py), raised before
anything is sent.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..chain.state import Partner, Terms
from ..chain.transactions import fixed_point_text
from ..units import TOKEN_DECIMALS, AgreementStatus, PartnerStatus, PayoutRule
from .roles import agreement_coordinator, global_model
from .session import CommandError, parse_address, parse_tokens, require

__all__ = [
    "AGGREGATIONS",
    "PAYOUT_RULES",
    "SCORINGS",
    "OpenedRound",
    "agreement_terms",
    "approve_partner",
    "eval_set_spec",
    "open_next_round",
    "payable_token",
    "post_bond",
    "record_for_audit",
    "require_reward_token",
]

PAYOUT_RULES = {rule.name.lower(): rule for rule in PayoutRule}  # --payout-rule's names
# Rules that need parameters (trim, f, m) the Coordinator does not take yet are refused before anything is sent.
# fl.aggregation.AGGREGATORS and fl.scoring.SCORERS, spelled out so that --help does not import torch
AGGREGATIONS = ("fedavg", "median", "trimmed_mean", "krum", "multi_krum")
SCORINGS = ("leave_one_out", "tmc_shapley", "exact_shapley")


def approve_partner(s: Any, partner: str) -> Any:
    """Approves registered `partner`, awaiting approval, from session `s`'s account, which must hold the
    PartnerRegistry's REGISTRAR_ROLE (``PartnerRegistry.approve``); CommandError otherwise, before anything is
    sent; the receipt."""
    from ..chain import agreements
    from ..chain.deployment import REGISTRAR_ROLE

    require(
        s.deployment.partners.functions.hasRole(REGISTRAR_ROLE, s.address).call(),
        f"{s.address} lacks the PartnerRegistry's REGISTRAR_ROLE: only the registrar approves or suspends "
        "partners (the admin grants it)",
    )
    status = Partner.read(s.deployment.partners.functions.partnerOf(partner)).status
    require(status is PartnerStatus.PENDING, f"{partner} is not a partner awaiting approval (its status is {status})")
    return agreements.approve(s.tx, s.deployment, partner, s.address)


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
    from ..fl.models import model_names
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
    require(  # a model no code builds: no round of the agreement could ever open
        document["model"] in model_names(),
        f"the terms document's model must be one of {', '.join(model_names())}, not {document['model']!r}",
    )
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
    reward_token = parse_address(str(token), "--reward-token")
    require_reward_token(s, reward_token)
    arbiter_address = f.get("arbiter") or s.document.get("admin")
    require(bool(arbiter_address), "no arbiter: pass --arbiter (the deployment names no admin)")
    try:
        sample_bound = int(f.get("max_sample_count", 1_000_000))
        require(sample_bound >= 1, f"--max-samples must be at least 1, not {sample_bound}")
        return AgreementTerms(
            parties=parties,
            reward_token=reward_token,
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


def require_reward_token(s: Any, address: str) -> None:
    """CommandError unless `address` is an ERC-20 contract on session `s`'s chain with the decimals amounts are
    counted in: terms naming anything else would be signed and staked on, and fail only when funded."""
    from eth_abi.exceptions import DecodingError
    from web3.exceptions import Web3Exception

    chain = s.w3.eth.chain_id
    require(bool(s.w3.eth.get_code(address)), f"the reward token {address} is no contract on chain {chain}")
    token = s.token(address)
    try:
        decimals = int(token.functions.decimals().call())
        token.functions.balanceOf(s.address).call()
    except (Web3Exception, DecodingError, ValueError):  # reverted, returned nothing, or not an ERC-20's answer
        raise CommandError(
            f"the reward token {address} does not answer ERC-20 decimals() and balanceOf() on chain {chain}"
        ) from None
    require(
        decimals == TOKEN_DECIMALS,
        f"the reward token {address} has {decimals} decimals; lepton-ledger counts amounts in {TOKEN_DECIMALS}",
    )


def payable_token(s: Any, agreement: int, value: int, verb: str) -> Any:
    """The reward token of `agreement` once it is live (not terminated) and session `s`'s account holds `value` of
    it; CommandError otherwise (also for an unknown agreement)."""
    state = s.agreement_state(agreement)
    require(state.status is not AgreementStatus.TERMINATED, f"agreement {agreement} is terminated")
    token = s.token(Terms.read(s.deployment.agreements.functions.terms(agreement)).reward_token)
    balance = int(token.functions.balanceOf(s.address).call())
    require(
        balance >= value,
        f"{s.address} holds {fixed_point_text(balance, TOKEN_DECIMALS)} of the reward token, "
        f"cannot {verb} {fixed_point_text(value, TOKEN_DECIMALS)}",
    )
    return token


def post_bond(s: Any, token: Any, agreement: int, value: int) -> tuple[Any, int]:
    """Posts `value` of `token` (the agreement's, from :func:`payable_token`) as session `s`'s account's coordinator
    bond in `agreement`: approve, then ``ResultsCourt.postBond``; the receipt and the bond now held."""
    from ..chain import agreements

    receipt = agreements.post_bond(s.tx, s.deployment, token, agreement, s.address, value)
    return receipt, int(s.deployment.court.functions.bondOf(agreement, s.address).call())


def eval_set_spec(dataset: str, seed: int) -> dict[str, Any]:
    """The ``fl.make_federated`` arguments the audit rebuilds an evaluation set from (the held-out part depends
    on the data set and the seed, not on the number of partitions)."""
    return {"dataset": dataset, "num_partners": 1, "seed": seed}


def record_for_audit(s: Any, spec: dict[str, Any], model_name: str) -> bool:
    """Writes the evaluation set `spec` and model of a round just opened into session `s`'s deployment file (and
    its document) when they differ from it, so that the audit rebuilds what the round committed to; whether it
    wrote. The file is replaced whole, never left half written."""
    if s.document.get("eval_set") == spec and s.document.get("model") == model_name:
        return False
    s.document.update(eval_set=spec, model=model_name)  # the service's document too: its audit job reads it
    partial = s.deployment_path.with_name(s.deployment_path.name + ".partial")
    partial.write_text(json.dumps(s.document, indent=2) + "\n")
    os.replace(partial, s.deployment_path)
    return True


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
    """What ``coordinator open`` (and the service) does with session `s`'s account: checks that no round is open and the bond is
    posted (CommandError otherwise), restores voided rounds (`say`s a line each), publishes the global model and
    opens the round on it with `eval_set`'s commitment."""
    from ..chain import disputes

    s.agreement_state(agreement)
    open_round = int(s.deployment.ledger.functions.openRoundOf(agreement).call())
    require(open_round == 0, f"round {open_round} of agreement {agreement} is still open (close it first)")
    bonded, required = s.deployment.agreements.functions.coordinatorBondOf(agreement).call()
    held = int(s.deployment.court.functions.bondOf(agreement, bonded).call())
    require(
        held >= required,
        f"the coordinator holds {fixed_point_text(held, TOKEN_DECIMALS)} of bond in agreement "
        f"{agreement}, its terms require {fixed_point_text(required, TOKEN_DECIMALS)}: post it "
        f"with `coordinator bond {agreement} AMOUNT`",
    )
    # A voided or abandoned round stays charged until restored, and openRound waits for it.
    restored = tuple(disputes.restore_pending(s.tx, s.deployment, sender=s.address, agreement_id=agreement))
    for line in restored:
        say(line)
    coordinator = agreement_coordinator(s, agreement, eval_set, model=model)
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
