"""The parties' objects and the steps around a round that the role CLIs, the service and the brownie scripts share
(the commands parse arguments and print; what they do is here).

- :func:`build_partner` / :func:`build_coordinator`: the one place where a ``rounds.Partner`` or
  ``rounds.Coordinator`` is constructed, so that options every caller needs (an outbox, say) are added once;
  :func:`agreement_coordinator`: the coordinator of one agreement as its terms and a session give it (the
  coordinator CLI and the service's close job).
- the partner's :class:`~lepton_ledger.fl.PrivacyAccountant` persists between commands in one file per
  (chain, deployment, agreement, partner), ``accountant_file.accountant_path``, written by ``rounds.Partner`` itself
  (rounds/accountant_file.py: atomic, each round recorded once); :func:`fresh_accountant` is what it loads into.
- the terms document (task, model, max norm...) is put to the store as the exact canonical JSON bytes that
  ``agreements.document_digest`` addresses; that CID's digest *is* the on-chain ``termsDigest``, so anyone
  finds it from the chain alone (:func:`publish_document`, :func:`terms_document`).
- :func:`global_model`: what a new round starts from (the last finalized aggregate, else a fresh model).
- :func:`payout_tree`: a finalized round's payouts from its report in the store, re-built as the
  ``PayoutTree`` and checked against the on-chain payout root.
- batched mode: a partner's ``SignedCommitment`` travels to the coordinator as a JSON file (version 1; digests
  and the signature 0x-hex, field names as ``IRoundLedger.UpdateCommitment``)::

      {"version": 1, "chain_id": 31337, "ledger": "0x...", "agreementId": 1, "round": 2, "partner": "0x...",
       "envelopeDigest": "0x...", "manifestDigest": "0x...", "cumulativeEpsilon": 1234567, "sampleCount": 718,
       "signature": "0x...", "envelopeCid": "bafk..."}

  (:func:`signed_commitment_document`, :func:`signed_commitment_from_document`, which checks the chain, the
  ledger and that the signature recovers the partner).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..chain.agreements import document_digest
from ..chain.deployment import Deployment
from ..chain.merkle import PayoutTree
from ..chain.state import Allocation, Round, Terms
from ..chain.transactions import Transactor
from ..errors import ChainError, ConfigurationError, LeptonError
from ..protocol.commitments import SIGNED_COMMITMENT_VERSION
from ..storage.store import Store
from ..units import RoundStatus
from .rules import RoundRules

if TYPE_CHECKING:  # what the parties' objects are; imported where they are built (they load torch)
    from eth_account.signers.local import LocalAccount

    from ..fl.accounting import PrivacyAccountant
    from ..fl.data import TabularData
    from ..protocol.signatures import SignatureCheck
    from ..workers.base import Executor
    from .coordinator import Coordinator
    from .outbox import Outbox
    from .partner import Partner, SignedCommitment, TrainingSettings
    from .rules import RoundRules

__all__ = [
    "RoleStateError",
    "RoundPayout",
    "Standing",
    "TermsDocumentMissing",
    "agreement_coordinator",
    "build_coordinator",
    "build_partner",
    "fresh_accountant",
    "global_model",
    "payout_tree",
    "publish_document",
    "round_payout",
    "signed_commitment_document",
    "signed_commitment_from_document",
    "signed_rules",
    "standing",
    "terms_document",
]


class RoleStateError(LeptonError, ValueError):
    """Local state and the chain disagree (a lost accountant file, a report that does not give the root...)."""


# -- the role objects ---------------------------------------------------------------------------------------


def build_partner(
    *,
    account: LocalAccount,
    tx: Transactor,
    deployment: Deployment,
    store: Store,
    accountant: PrivacyAccountant,
    data: TabularData | None = None,
    executor: Executor | None = None,
    settings: TrainingSettings | None = None,
    accountant_path: Path | None = None,
    outbox: Outbox | None = None,
) -> Partner:
    """A ``rounds.Partner``; `data`/`executor` may be None for steps that do not train (claim). Its accountant is
    loaded from and saved to `accountant_path` (each round recorded once, rounds/accountant_file.py); its outbox
    defaults to one per partner and chain under the data directory."""
    from ..rounds.partner import Partner, TrainingSettings

    return Partner(
        account=account,
        tx=tx,
        deployment=deployment,
        store=store,
        accountant=accountant,
        data=data,
        executor=executor,
        settings=settings or TrainingSettings(),
        accountant_path=accountant_path,
        outbox=outbox,
    )


def build_coordinator(
    *,
    account: LocalAccount,
    tx: Transactor,
    deployment: Deployment,
    store: Store,
    x25519_private: bytes,
    events_path: Path,
    eval_set: TabularData,
    model_name: str,
    rules: RoundRules | None = None,
    payout_rule: int | None = None,
    outbox: Outbox | None = None,
) -> Coordinator:
    """A ``rounds.Coordinator``; it pays by the agreement's on-chain payout rule (`payout_rule`, when given, must
    be that rule) and closes only by the round rules its terms document signs (`rules`, a ``RoundRules``, when
    given, must be those)."""
    from ..rounds.coordinator import Coordinator
    from ..units import PayoutRule

    return Coordinator(
        account=account,
        tx=tx,
        deployment=deployment,
        store=store,
        x25519_private=x25519_private,
        events_path=events_path,
        eval_set=eval_set,
        model_name=model_name,
        rules=rules,
        payout_rule=None if payout_rule is None else PayoutRule(payout_rule),
        outbox=outbox,
    )


def agreement_coordinator(
    session: Any,
    agreement_id: int,
    eval_set: TabularData,
    *,
    model: str | None = None,
    max_norm: float | None = None,
    aggregation: str | None = None,
    scoring: str | None = None,
) -> Coordinator:
    """The ``rounds.Coordinator`` of `agreement_id` for `session` (a ``commands.context.Session`` holding the
    coordinator's identity): model and round rules from the terms document (``RoundRules.from_terms``), the
    on-chain payout rule, events under the session's state directory. `max_norm`, `aggregation` and `scoring`,
    when given, replace the signed ones: the coordinator then refuses to close unless they are the same."""
    agreements = session.deployment.agreements.functions
    terms = Terms.read(agreements.terms(agreement_id))
    document = terms_document(session.store, terms) or {}
    parties = len(terms.parties)
    rules = RoundRules.from_terms(document, parties).choosing(
        parties, aggregation=aggregation, scoring=scoring, max_norm=max_norm
    )
    return build_coordinator(
        account=session.account,
        tx=session.tx,
        deployment=session.deployment,
        store=session.store,
        x25519_private=session.identity.x25519_private_bytes(),
        events_path=session.state_dir("events") / "events.sqlite",
        eval_set=eval_set,
        model_name=model or document.get("model", "logreg"),
        rules=rules,
        payout_rule=terms.payout_rule,
    )


# -- the partner's privacy accountant -----------------------------------------------------------------------


def fresh_accountant(deployment: Deployment, agreement_id: int, partner: str) -> PrivacyAccountant:
    """An empty accountant with the agreement's on-chain delta and cap; ``rounds.Partner`` fills it from its
    accountant file and checks it against the chain (``Partner.reconcile``) before anything trains."""
    from ..fl.accounting import PrivacyAccountant

    terms = Terms.read(deployment.agreements.functions.terms(agreement_id))
    return PrivacyAccountant(
        partner=partner, agreement=agreement_id, delta=terms.delta, epsilon_cap_fixed=terms.epsilon_cap_fixed
    )


# -- terms document, models, payouts ------------------------------------------------------------------------


def _canonical(document: dict[str, Any]) -> bytes:
    return json.dumps(document, sort_keys=True, separators=(",", ":")).encode()


def publish_document(store: Store, document: dict[str, Any]) -> str:
    """Puts a JSON document (terms, profile) to the store so that its CID digest is ``document_digest(document)``.

    Raises:
        RoleStateError: the store addressed the document under another digest.
    """
    from ..rounds.report import publish

    cid, digest = publish(store, _canonical(document))
    if digest != document_digest(document):
        raise RoleStateError(f"the store put the document as {cid}, not under its digest")
    return cid


def terms_document(store: Store, terms: Terms) -> dict[str, Any] | None:
    """The terms document whose digest the agreement holds, when the store has it; None otherwise.

    Raises:
        MalformedDocument, DocumentTooLarge, FileTooLarge: what the store holds under the digest is no JSON
            object of at most 16 MiB.
    """
    from ..protocol.jsonio import FILE_BYTES, load_object
    from ..rounds.report import ArtifactNotFound, fetch_by_digest

    try:
        return load_object(
            fetch_by_digest(store, terms.terms_digest, max_bytes=FILE_BYTES),
            what="terms document",
            max_bytes=FILE_BYTES,
        )
    except ArtifactNotFound:
        return None


class TermsDocumentMissing(ConfigurationError):
    """The signed terms carry a document digest whose document the store does not hold: the rules are unknown."""


def signed_rules(store: Any, terms: Terms, round_id: int) -> RoundRules:
    """The round rules the parties signed, for `round_id`: the terms document's (``RoundRules.from_terms``).
    Only terms that carry no document digest (zero) sign the defaults; a signed digest whose document the store
    does not hold leaves the rules unknown -- never the defaults, which the parties may not have signed.

    Raises:
        TermsDocumentMissing: the store does not hold the signed document (the message names its digest).
        ConfigurationError: the document names rules that cannot run.
        MalformedDocument, DocumentTooLarge, FileTooLarge: see :func:`terms_document`.
    """
    document: dict[str, Any] | None = {}
    if terms.terms_digest != bytes(32):
        document = terms_document(store, terms)
        if document is None:
            raise TermsDocumentMissing(
                f"the signed terms document 0x{terms.terms_digest.hex()} is not in the store: "
                "the round rules the parties signed are unknown"
            )
    return RoundRules.from_terms(document, len(terms.parties)).for_round(round_id)


def global_model(
    deployment: Deployment, store: Store, agreement_id: int, *, model_name: str, input_dim: int, num_classes: int
) -> tuple[dict[str, Any], int | None]:
    """``(state_dict, round)``: the aggregate of the agreement's last finalized round (and its id), else a fresh
    `model_name` model seeded with 0 (and None).

    Raises:
        ArtifactNotFound: the last aggregate is not in the store.
    """
    from ..envelope.tensors import deserialize_tensors
    from ..fl.models import build_model
    from ..rounds.report import fetch_by_digest

    ledger = deployment.ledger.functions
    for round_id in range(int(ledger.roundCount(agreement_id).call()), 0, -1):
        r = Round.read(ledger.round(agreement_id, round_id))
        if r.status is RoundStatus.FINALIZED:
            return deserialize_tensors(fetch_by_digest(store, r.aggregate_digest)), round_id
    return build_model(model_name, input_dim, num_classes, seed=0).state_dict(), None


def payout_tree(deployment: Deployment, store: Store, agreement_id: int, round_id: int) -> PayoutTree | None:
    """The round's ``PayoutTree`` re-built from its report, or None when the round paid nothing.

    Raises:
        RoleStateError: the round is not finalized, or the report's payouts do not give the on-chain root.
        ArtifactNotFound: the report is not in the store.
        MalformedDocument, DocumentTooLarge, StorageError: the store holds no well-formed report under the digest.
    """
    from ..rounds.report import MAX_REPORT_BYTES, fetch_by_digest, load_report

    r = Round.read(deployment.ledger.functions.round(agreement_id, round_id))
    if r.status is not RoundStatus.FINALIZED:
        raise RoleStateError(f"round {round_id} of agreement {agreement_id} is {r.status}, not finalized")
    report = load_report(fetch_by_digest(store, r.report_digest, max_bytes=MAX_REPORT_BYTES))
    payouts = {line["partner"]: int(line["payout"]) for line in report["partners"] if int(line["payout"]) > 0}
    if not payouts:
        return None
    tree = PayoutTree(agreement_id, round_id, payouts)
    if tree.root != r.payout_root:
        raise RoleStateError(f"the report of round {round_id} does not give the payout root finalized on-chain")
    return tree


@dataclass(frozen=True)
class RoundPayout:
    """What a finalized round allocated one partner: the amount (0 for none), whether it was claimed, when claims
    open, and the round's tree (None when the round paid nothing), whose proof a claim sends."""

    amount: int
    claimed: bool
    claimable_at: int
    tree: Any


def round_payout(deployment: Any, store: Any, agreement_id: int, round_id: int, partner: str) -> RoundPayout:
    """`partner`'s :class:`RoundPayout` in a finalized round, from its report (:func:`payout_tree`).

    Raises: as :func:`payout_tree`.
    """
    from ..chain.merkle import LeafNotFound

    tree = payout_tree(deployment, store, agreement_id, round_id)
    try:
        amount = tree.amount(partner) if tree is not None else 0
    except LeafNotFound:
        amount = 0
    vault = deployment.vault.functions
    return RoundPayout(
        amount=amount,
        claimed=bool(vault.hasClaimed(agreement_id, round_id, partner).call()),
        claimable_at=Allocation.read(vault.allocation(agreement_id, round_id)).claimable_at,
        tree=tree,
    )


@dataclass(frozen=True)
class Standing:
    """A party's standing in an agreement: on-chain epsilon (fixed point) against the cap, stake, rewards."""

    epsilon_fixed: int
    epsilon_cap_fixed: int
    stake: int
    required_stake: int
    claimable: int
    claimed: int


def standing(
    deployment: Deployment,
    store: Store,
    agreement_id: int,
    partner: str,
    now: int,
    *,
    on_unreadable: Callable[[int, LeptonError], None] | None = None,
) -> Standing:
    """`partner`'s :class:`Standing` in `agreement_id` at chain time `now`; rewards come from each finalized
    round's report (:func:`payout_tree`), claimable once the round's dispute window has ended. With
    `on_unreadable`, a round whose report is missing or wrong is handed to it (round id, error) and counts for
    nothing, instead of raising.

    Raises:
        RoleStateError, ArtifactNotFound, MalformedDocument: a finalized round's report is missing or wrong
            (without `on_unreadable`).
    """
    terms = Terms.read(deployment.agreements.functions.terms(agreement_id))
    ledger, vault = deployment.ledger.functions, deployment.vault.functions
    claimable = claimed = 0
    for round_id in range(1, int(ledger.roundCount(agreement_id).call()) + 1):
        if Round.read(ledger.round(agreement_id, round_id)).status is not RoundStatus.FINALIZED:
            continue
        try:
            paid = round_payout(deployment, store, agreement_id, round_id, partner)
        except LeptonError as exc:
            if on_unreadable is None or isinstance(exc, ChainError):  # the chain gone is no round's fault
                raise
            on_unreadable(round_id, exc)
            continue
        if paid.claimed:
            claimed += paid.amount
        elif now >= paid.claimable_at:
            claimable += paid.amount
    return Standing(
        epsilon_fixed=int(ledger.cumulativeEpsilon(agreement_id, partner).call()),
        epsilon_cap_fixed=terms.epsilon_cap_fixed,
        stake=int(vault.stakeOf(agreement_id, partner).call()),
        required_stake=terms.required_stake,
        claimable=claimable,
        claimed=claimed,
    )


# -- batched mode --------------------------------------------------------------------------------------------


def signed_commitment_document(signed: SignedCommitment, *, chain_id: int, ledger: str) -> dict[str, Any]:
    """The JSON document of a ``SignedCommitment`` (format in the module docstring)."""
    c = signed.commitment
    return {
        "version": SIGNED_COMMITMENT_VERSION,
        "chain_id": chain_id,
        "ledger": ledger,
        "agreementId": c.agreement_id,
        "round": c.round,
        "partner": c.partner,
        "envelopeDigest": "0x" + bytes(c.envelope_digest).hex(),
        "manifestDigest": "0x" + bytes(c.manifest_digest).hex(),
        "cumulativeEpsilon": c.cumulative_epsilon,
        "sampleCount": c.sample_count,
        "signature": "0x" + bytes(signed.signature).hex(),
        "envelopeCid": signed.envelope_cid,
    }


def signed_commitment_from_document(
    document: object, *, chain_id: int, ledger: str, signature_valid: SignatureCheck | None = None
) -> SignedCommitment:
    """The ``SignedCommitment`` of a document (``protocol.commitments.parse_signed_commitment``), checked: this
    chain and ledger, and a signature by its partner (`signature_valid(partner, digest, signature)`, e.g.
    ``protocol.signatures.chain_signature_check`` for ERC-1271 wallets too; None: ECDSA alone).

    Raises:
        RoleStateError: malformed, for another chain or ledger, or not signed by the partner it names.
    """
    from ..chain.typed_data import update_commitment_digest
    from ..envelope.manifest import recover_signer
    from ..protocol.commitments import parse_signed_commitment
    from ..rounds.partner import SignedCommitment

    try:
        item = parse_signed_commitment(document, chain_id=chain_id, ledger=ledger)
    except LeptonError as exc:
        raise RoleStateError(f"not a signed commitment ({exc})") from None
    commitment, signature = item.commitment, item.signature
    digest = update_commitment_digest(chain_id, ledger, commitment)
    try:
        signer: str | None = recover_signer(digest, signature)
    except LeptonError as exc:
        if signature_valid is None:
            raise RoleStateError(f"the commitment of {commitment.partner} has a malformed signature: {exc}") from None
        signer = None
    if signature_valid is None:
        valid = signer == commitment.partner
    else:
        valid = signature_valid(commitment.partner, digest, signature)
    if not valid:
        raise RoleStateError(f"the commitment of {commitment.partner} is signed by {signer}")
    return SignedCommitment(commitment, signature, item.envelope_cid)
