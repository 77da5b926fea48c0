"""The coordinator's side of one round (docs/architecture.md, "One round, end to end", steps 1 and 5).

Step 1, :meth:`Coordinator.publish_model` then :meth:`Coordinator.open_round`: the global model's
``state_dict`` as safetensors bytes (``envelope.tensors.serialize_tensors``: deterministic) is put to the
store; ``modelDigest`` = that CID's sha2-256 digest (``protocol.addressing``: one fixed codec, so the digest
names exactly one CID, of any size); ``evalCommitment`` = ``fl.eval_commitment`` of the held-out set.

Batched mode, :meth:`Coordinator.anchor_batch`: the partners' signed ``UpdateCommitment``s are laid out by
party index in a batch document (canonical JSON, version 1: chain id, ledger, agreement, round, and per
commitment its fields, 0x-hex digests, the signature and the envelope CID) put to the store; ``commitBatch``
anchors the PositionalTree root of their ``commitment_leaf``s, the document's CID digest and the packed
``(party index, cumulative epsilon)`` entries. Before anything is put, each commitment must come from a party
of the agreement, for this round, with a signature valid for that party: ECDSA, or ERC-1271 for a contract
party, as OpenZeppelin's ``SignatureChecker`` decides (``protocol.signatures``); else ``CommitmentRefused``.

Step 5, :meth:`Coordinator.close_round`, in named steps: ``commitments`` (the round's ``UpdateSubmitted``
events and the commitments of its ``BatchCommitted`` batches, through the
:class:`~lepton_ledger.chain.events.EventIndex`; a batch whose document does not recompute the anchored root
and entries, or whose signature is not valid for its partner, raises ``BatchDocumentMismatch``), ``open_updates`` (fetch each envelope by
its committed digest, open it with the coordinator's X25519 key against the chain's expectations: chain,
ledger, agreement, round, partner, base model, manifest digest; and check the committed epsilon and sample
count equal the signed manifest's, and that every auditor with a registered X25519 key is among its recipients),
``outcome`` (outcome.py's ``round_outcome``, the function the auditor re-runs: validate with the norm bound,
aggregate, score on the committed evaluation set, split by the payout rule of the agreement's on-chain terms, all
by the coordinator's :class:`~lepton_ledger.rounds.rules.RoundRules`; only accepted partners are paid),
``publish`` (the aggregate model and the report, report.py), ``finalize`` (``finalizeRound`` with the aggregate's and the
report's CID digests, the PayoutTree root and the total).

A partner whose envelope cannot be fetched or opened is rejected with the error's class name as its code
(an ``EnvelopeError`` subclass, ``ArtifactNotFound``, ``commitment_mismatch``); one whose update fails
validation with the ``Rejection`` codes of ``fl.validation``.

Crash safety: every put and transaction goes through the coordinator's outbox (effects.py: keys name chain,
ledger, agreement, round and step), so calling a step again with the same arguments after a crash resumes it.
``open_round`` keys ``openRound`` by the round number the agreement will get (read from the chain at the first
attempt and kept in the operation), so a restart resumes that operation, or finds it confirmed, and never opens
a second round. ``close_round`` first checks, by a dry run of ``finalizeRound``, that the round can close (so
its commitments can no longer change), computes the outcome, then records the aggregate's and the report's
bytes and the ``finalizeRound`` call in one outbox transaction: a restart reuses that outcome as it was
published and sends ``finalizeRound`` once.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from itertools import pairwise
from pathlib import Path
from typing import Any

import torch
from eth_account.signers.local import LocalAccount

from ..chain.batched import dry_run, read_many
from ..chain.calls import calls
from ..chain.deployment import AUDITOR_ROLE, Deployment
from ..chain.events import EventIndex, IndexedEvent
from ..chain.merkle import PayoutTree, PositionalTree, commitment_leaf, pack_entries, unpack_entries
from ..chain.state import Partner, Round, RoundConfig, Terms
from ..chain.transactions import Transactor
from ..chain.typed_data import update_commitment_digest
from ..envelope import Expected
from ..envelope import open as open_envelope
from ..envelope.envelope import OpenedEnvelope
from ..envelope.format import DEFAULT_MAX_ENVELOPE_BYTES
from ..envelope.manifest import UpdateManifest
from ..envelope.tensors import deserialize_tensors, serialize_tensors
from ..errors import ConfigurationError, LeptonError
from ..fl.data import TabularData, eval_commitment
from ..fl.validation import Reason
from ..protocol.commitments import (
    MAX_BATCH_BYTES,
    BatchItem,
    encode_batch_document,
    parse_batch_document,
)
from ..protocol.errors import ProtocolError
from ..protocol.signatures import chain_signature_check
from ..storage.cid import parse_cid
from ..storage.store import Store
from ..units import PayoutRule
from ..workers.concurrent import run_each
from .effects import (
    Checkpoint,
    RoundEffects,
    default_outbox,
    local_cid,
    put_data,
    put_result,
)
from .outbox import OPEN, Outbox
from .outcome import Evaluation, NoAcceptedUpdates, Outcome, round_outcome
from .partner import SignedCommitment
from .report import (
    PartnerOutcome,
    RoundReport,
    fetch_by_digest,
)
from .roles import TermsDocumentMissing, signed_rules
from .rules import RoundRules

__all__ = [
    "AuditorNotARecipient",
    "BatchDocumentMismatch",
    "CommitmentMismatch",
    "CommitmentRefused",
    "CommitmentView",
    "Coordinator",
    "NoAcceptedUpdates",
    "OpenRoundConflict",
    "RoundOutcome",
]

OPENING_THREADS = 2  # envelopes a close opens at once (Coordinator.open_updates says why no more)


class BatchDocumentMismatch(LeptonError, ValueError):
    """A batch document does not match what ``commitBatch`` anchored (root, entries, a signature)."""


class CommitmentRefused(LeptonError, ValueError):
    """``anchor_batch`` refuses a signed commitment: not from a party, for another round, not signed by it, or
    a second one of the same party."""


class AuditorNotARecipient(LeptonError, ValueError):
    """An envelope is not sealed to every auditor: they could not verify the update, so it is rejected."""


class OpenRoundConflict(LeptonError, RuntimeError):
    """An ``openRound`` of the agreement on another model is unfinished in the outbox, or the round the outbox
    opened holds another model on-chain."""


@dataclass(frozen=True)
class CommitmentView:
    """One partner's commitment as the chain holds it, from ``UpdateSubmitted`` or from an anchored batch;
    ``args`` as the event's (0x-hex digests)."""

    partner: str
    agreement_id: int
    round: int
    args: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def of_event(cls, event: IndexedEvent) -> CommitmentView:
        """The commitment of an ``UpdateSubmitted`` event (which indexes partner, agreement and round)."""
        assert event.partner is not None and event.agreement_id is not None and event.round is not None
        return cls(event.partner, event.agreement_id, event.round, event.args)


@dataclass
class RoundOutcome:
    """What closing a round produced."""

    report: RoundReport
    report_cid: str
    report_digest: bytes
    aggregate_cid: str
    aggregate_digest: bytes
    aggregate: dict[str, torch.Tensor]
    tree: PayoutTree | None


class Coordinator:
    """The coordinator of one agreement's rounds.

    Args:
        account / tx / deployment / store: who sends, through what, to which contracts, with which block store.
        x25519_private: the coordinator's X25519 private key (its public key is registered in PartnerRegistry).
        events_path: the EventIndex's SQLite file.
        eval_set: the held-out evaluation set (``TabularData``) committed when a round opens.
        model_name: the ``fl.build_model`` name of the global model.
        rules: how updates are checked, aggregated and scored (norm bound, ``fl.aggregate`` rule and parameters,
            ``fl.contribution_scores`` method and parameters; tmc_shapley's ``seed`` defaults to the round id).
        payout_rule: None (default) to pay by the rule in the agreement's on-chain terms; a rule given here must
            be that rule (a coordinator cannot pay by another one).
        outbox: where side effects are recorded before they happen; default a file per coordinator and chain
            under the data directory (effects.default_outbox).
        checkpoint: called at each durable step (effects.py names them); tests kill the process there.
        auditors: the auditors every envelope must be sealed to (their registered X25519 keys among its
            recipients; one without a registered key is not required); None: every holder of AUDITOR_ROLE.
    """

    def __init__(
        self,
        *,
        account: LocalAccount,
        tx: Transactor,
        deployment: Deployment,
        store: Store,
        x25519_private: bytes,
        events_path: Path,
        eval_set: TabularData,
        model_name: str = "logreg",
        rules: RoundRules | None = None,
        payout_rule: PayoutRule | None = None,
        outbox: Outbox | None = None,
        checkpoint: Checkpoint | None = None,
        auditors: list[str] | None = None,
    ) -> None:
        self.account, self.tx, self.deployment, self.store = account, tx, deployment, store
        self.outbox = outbox if outbox is not None else default_outbox("coordinator", tx.w3, account.address)
        self.effects = RoundEffects(self.outbox, tx=tx, store=store, checkpoint=checkpoint)
        self.checkpoint = self.effects.checkpoint
        self.x25519_private, self.eval_set, self.model_name = x25519_private, eval_set, model_name
        self.evaluation = Evaluation(eval_set, model_name)
        self.rules = rules if rules is not None else RoundRules()
        self.payout_rule = payout_rule
        self.auditors = auditors
        self._party_indexes: dict[int, dict[str, int]] = {}
        self.signature_valid = chain_signature_check(tx.w3)
        d = deployment
        self.events = EventIndex(
            tx.w3,
            {
                "PartnerRegistry": d.partners,
                "AgreementRegistry": d.agreements,
                "RewardVault": d.vault,
                "RoundLedger": d.ledger,
            },
            events_path,
        )

    @property
    def address(self) -> str:
        return self.account.address

    def _key(self, step: str, *parts: object) -> str:
        return self.effects.key(step, self.deployment.ledger.address, *parts)

    # -- step 1 -----------------------------------------------------------------------------------------

    def publish_model(self, state: dict[str, torch.Tensor]) -> tuple[str, bytes]:
        """Puts the global model (safetensors, deterministic) to the store, once: ``(cid, modelDigest)``."""
        data = serialize_tensors(state)
        return put_result(self.effects.put(self._key("model", local_cid(data)), data))

    def open_round(self, agreement_id: int, model_digest: bytes, deadline: int) -> int:
        """``openRound`` with the model digest and the evaluation set's commitment, sent once; returns the round
        id. Called again after a crash (the same model; the deadline may differ), it resumes the unfinished
        operation, or returns the round it already opened, without opening another.

        Raises:
            OpenRoundConflict: an unfinished ``openRound`` of this agreement is for another model.
            ContractReverted: the ledger refused (a round is open, no rounds left, bad deadline...).
        """
        prefix = self._key("open", agreement_id) + ":"
        digest = "0x" + bytes(model_digest).hex()
        # The open operations and the last round's only: the outbox holds one per round ever opened.
        unfinished = sorted(
            (op for status in OPEN for op in self.outbox.operations(status, prefix=prefix)), key=lambda op: op.seq
        )
        if unfinished:
            op = unfinished[-1]
            if op.payload["model_digest"] != digest:
                raise OpenRoundConflict(
                    f"{op.key} (model {op.payload['model_digest']}) is unfinished: call "
                    f"open_round with that model to finish it first"
                )
            op = self.effects.finish(op.key)
        else:
            ledger = self.deployment.ledger
            count, open_round = map(
                int,
                read_many(ledger.w3, [calls(ledger).roundCount(agreement_id), calls(ledger).openRoundOf(agreement_id)]),
            )
            # Opened by a process that died before returning the round id: that round is still the open one
            # (a round since voided or finalized on the same model is not resumed, the next one is opened).
            last = self.outbox.find(prefix + str(count)) if open_round == count else None
            if last is not None and last.status == "confirmed" and last.payload["model_digest"] == digest:
                op = last
            else:
                call = calls(self.deployment.ledger).openRound(
                    agreement_id, model_digest, deadline, eval_commitment(self.eval_set)
                )
                op = self.effects.transact(
                    prefix + str(count + 1), call, self.address, round=count + 1, model_digest=digest
                )
        round_id = int(op.payload["round"])
        on_chain = Round.read(calls(self.deployment.ledger).round(agreement_id, round_id)).model_digest
        if on_chain != bytes(model_digest):
            raise OpenRoundConflict(
                f"round {round_id} of agreement {agreement_id} holds model 0x{on_chain.hex()}, not {digest}"
            )
        return round_id

    # -- step 5 -----------------------------------------------------------------------------------------

    def anchor_batch(self, agreement_id: int, round_id: int, signed: list[SignedCommitment]) -> str:
        """``commitBatch`` of the partners' signed commitments (``partner.SignedCommitment``), sent once;
        returns the batch document's CID. Called again after a crash, it finishes the batch it recorded (a
        batch the ledger refused is rebuilt from `signed`).

        Raises:
            ContractReverted: the ledger refused the batch.
        """
        key = self._key("batch", agreement_id, round_id)
        earlier = self.outbox.find(key)
        if earlier is not None and earlier.status != "failed":
            return str(self.effects.finish(key).payload["document"])
        chain_id, ledger = self.tx.w3.eth.chain_id, self.deployment.ledger.address
        parties = self.party_indexes(agreement_id)
        indexed = sorted(
            (self._checked_signed(agreement_id, round_id, s, chain_id, ledger, parties) for s in signed),
            key=lambda checked: checked[0],
        )
        twice = sorted({s.commitment.partner for (i, s, _), (j, _, _) in pairwise(indexed) if i == j})
        if twice:
            raise CommitmentRefused(f"more than one commitment of {', '.join(twice)} in the batch")
        leaves = [commitment_leaf(digest, s.signature) for _, s, digest in indexed]
        data = encode_batch_document(
            chain_id=chain_id,
            ledger=ledger,
            agreement_id=agreement_id,
            round=round_id,
            items=[BatchItem(i, s.commitment, s.signature, s.envelope_cid) for i, s, _ in indexed],
        )
        cid, digest = put_result(
            self.effects.put(self._key("batch-document", agreement_id, round_id, local_cid(data)), data)
        )
        entries = pack_entries([(i, s.commitment.cumulative_epsilon) for i, s, _ in indexed])
        call = calls(self.deployment.ledger).commitBatch(
            agreement_id, round_id, PositionalTree(leaves).root, digest, entries
        )
        return str(self.effects.transact(key, call, self.address, document=cid).payload["document"])

    def party_indexes(self, agreement_id: int) -> dict[str, int]:
        """``{party address, lower case: index}`` of the agreement, as ``partyIndex`` gives them: read once, since
        every version of an agreement's terms has the same parties (AgreementRegistry)."""
        if agreement_id not in self._party_indexes:
            parties = Terms.read(calls(self.deployment.agreements).terms(agreement_id)).parties
            self._party_indexes[agreement_id] = {p.lower(): i for i, p in enumerate(parties)}
        return self._party_indexes[agreement_id]

    def _checked_signed(
        self,
        agreement_id: int,
        round_id: int,
        signed: SignedCommitment,
        chain_id: int,
        ledger: str,
        parties: dict[str, int],
    ) -> tuple[int, SignedCommitment, bytes]:
        """``(party index, signed, commitment digest)`` after the checks the ledger leaves to auditors: a party of the agreement (in
        `parties`, :meth:`party_indexes`), this round, and a signature valid for the party (ECDSA or ERC-1271, as
        ``SignatureChecker``).

        Raises:
            CommitmentRefused: naming the partner and what is wrong; nothing is anchored.
        """
        c = signed.commitment
        index = parties.get(str(c.partner).lower())
        if index is None:
            raise CommitmentRefused(f"{c.partner} is not a party of agreement {agreement_id}")
        if (c.agreement_id, c.round) != (agreement_id, round_id):
            raise CommitmentRefused(
                f"the commitment of {c.partner} is for agreement {c.agreement_id} round "
                f"{c.round}, not {agreement_id} round {round_id}"
            )
        digest = update_commitment_digest(chain_id, ledger, c)
        if not self.signature_valid(c.partner, digest, bytes(signed.signature)):
            raise CommitmentRefused(f"the commitment of {c.partner} is not signed by it")
        return int(index), signed, digest

    def commitments(self, agreement_id: int, round_id: int) -> list[CommitmentView]:
        """The round's commitments, single and batched, in chain order. A batch entry voided on-chain (its dispute
        unanswered) is no commitment; a batch whose every entry was voided needs no document (there may be none)."""
        self.events.sync()
        voided = {
            e.partner for e in self.events.events("DisputedEntryVoided", agreement_id=agreement_id, round=round_id)
        }
        views: list[CommitmentView] = []
        for event in self.events.events(
            ["UpdateSubmitted", "BatchCommitted"], agreement_id=agreement_id, round=round_id
        ):
            if event.event == "UpdateSubmitted":
                views.append(CommitmentView.of_event(event))
            elif not voided or not self._batch_parties(agreement_id, event.args) <= voided:
                views.extend(v for v in self.batch_commitments(event.args) if v.partner not in voided)
        return views

    def _batch_parties(self, agreement_id: int, args: dict[str, Any]) -> set[str]:
        """The parties of a batch's entries that took effect (not skipped on-chain)."""
        skipped = int(args.get("skipped", 0))
        party_at = calls(self.deployment.agreements).partyAt
        return {
            party_at(agreement_id, index).call()
            for position, (index, _) in enumerate(unpack_entries(bytes.fromhex(args["entries"][2:])))
            if not skipped >> position & 1
        }

    def batch_commitments(self, args: dict[str, Any]) -> list[CommitmentView]:
        """The commitments of one anchored batch, from its document, checked against what was anchored.

        Raises:
            ArtifactNotFound: the document is not in the store.
            BatchDocumentMismatch: root, entries or a signature do not match.
        """
        chain_id, ledger = self.tx.w3.eth.chain_id, self.deployment.ledger.address
        data = fetch_by_digest(self.store, bytes.fromhex(args["batchDocumentDigest"][2:]), max_bytes=MAX_BATCH_BYTES)
        try:
            document = parse_batch_document(data)
        except ProtocolError as exc:
            raise BatchDocumentMismatch(f"the batch document does not parse: {exc}") from None
        leaves, entries, views = [], [], []
        for item in document.items:
            c, signature = item.commitment, item.signature
            digest = update_commitment_digest(chain_id, ledger, c)
            if not self.signature_valid(c.partner, digest, signature):
                raise BatchDocumentMismatch(f"the batch's signature for {c.partner} is not valid for it")
            leaves.append(commitment_leaf(digest, signature))
            entries.append((item.party_index, c.cumulative_epsilon))
            views.append(
                CommitmentView(
                    c.partner,
                    c.agreement_id,
                    c.round,
                    {
                        "envelopeDigest": "0x" + c.envelope_digest.hex(),
                        "manifestDigest": "0x" + c.manifest_digest.hex(),
                        "cumulativeEpsilon": c.cumulative_epsilon,
                        "sampleCount": c.sample_count,
                    },
                )
            )
        if PositionalTree(leaves).root != bytes.fromhex(args["commitmentsRoot"][2:]):
            raise BatchDocumentMismatch("the batch document's commitments do not give the anchored root")
        if "0x" + pack_entries(entries).hex() != args["entries"]:
            raise BatchDocumentMismatch("the batch document's entries differ from the anchored entries")
        # Entries whose party had already submitted in the round were skipped on-chain: they count for nothing.
        skipped = int(args.get("skipped", 0))
        return [v for position, v in enumerate(views) if not skipped >> position & 1]

    def round_state(self, agreement_id: int, round_id: int) -> tuple[bytes, bytes]:
        """``(modelDigest, evalCommitment)`` of the round on-chain."""
        r = Round.read(calls(self.deployment.ledger).round(agreement_id, round_id))
        return r.model_digest, r.eval_commitment

    def open_update(
        self, event: CommitmentView, model_digest: bytes, auditor_keys: dict[str, bytes] | None = None
    ) -> OpenedEnvelope:
        """Fetches and opens one committed envelope against the chain's expectations.

        Raises:
            ArtifactNotFound, EnvelopeError (any subclass), CommitmentMismatch, AuditorNotARecipient, StorageError
            (a block missing or corrupted, FileTooLarge): every way a partner's bytes can be wrong is named.
        """
        args = event.args
        # The bound is checked from the root node's declared size, before any leaf is downloaded.
        data = fetch_by_digest(
            self.store, bytes.fromhex(args["envelopeDigest"][2:]), max_bytes=DEFAULT_MAX_ENVELOPE_BYTES
        )
        expected = Expected(
            agreement_id=event.agreement_id,
            round=event.round,
            partner=event.partner,
            base_model_digest=model_digest,
            manifest_digest=bytes.fromhex(args["manifestDigest"][2:]),
            chain_id=self.tx.chain_id,
            ledger=self.deployment.ledger.address,
        )
        opened = open_envelope(data, self.x25519_private, expected=expected, signature_valid=self.signature_valid)
        auditor_keys = self.auditor_keys() if auditor_keys is None else auditor_keys
        missing = [a for a, key in auditor_keys.items() if key not in opened.recipients]
        if missing:
            raise AuditorNotARecipient(f"the envelope is not sealed to auditor(s) {', '.join(missing)}")
        m = opened.manifest
        if (m.cumulative_epsilon, m.sample_count) != (args["cumulativeEpsilon"], args["sampleCount"]):
            raise CommitmentMismatch(
                f"committed epsilon/samples {args['cumulativeEpsilon']}/{args['sampleCount']}, "
                f"manifest {m.cumulative_epsilon}/{m.sample_count}"
            )
        return opened

    def auditor_keys(self, *, sync: bool = True) -> dict[str, bytes]:
        """``{auditor: registered X25519 public key}`` of the auditors every envelope must be sealed to; the
        auditors are those the event index shows granted the role (synced first unless `sync` is false)."""
        partners = calls(self.deployment.partners)
        if self.auditors is not None:
            candidates = list(self.auditors)
            profiles = read_many(self.tx.w3, [partners.partnerOf(a) for a in candidates])
        else:
            if sync:
                self.events.sync()
            granted = sorted({e.args["account"] for e in self.events.events("RoleGranted", contract="PartnerRegistry")})
            # Roles and profiles in one batch request: a profile read for nothing costs less than a round trip.
            answers = read_many(
                self.tx.w3,
                [*(partners.hasRole(AUDITOR_ROLE, a) for a in granted), *(partners.partnerOf(a) for a in granted)],
            )
            held = answers[: len(granted)]
            candidates = [a for a, has in zip(granted, held) if has]
            profiles = [p for p, has in zip(answers[len(granted) :], held) if has]
        keys = {a: Partner.decode(p).encryption_key for a, p in zip(candidates, profiles)}
        return {a: k for a, k in keys.items() if any(k)}  # without a registered key, nobody can seal to it

    def open_updates(
        self, events: list[CommitmentView], model_digest: bytes
    ) -> tuple[dict[str, OpenedEnvelope], dict[str, list[Reason]]]:
        """``({partner: opened envelope}, {partner: [reason]})`` for every commitment (`events`, from
        :meth:`commitments`, which synced the event index: the auditors are read from it as it stands)."""
        opened: dict[str, OpenedEnvelope] = {}
        failed: dict[str, list[Reason]] = {}
        auditor_keys = self.auditor_keys(sync=self.events.last_block is None)

        def open_one(event: CommitmentView) -> OpenedEnvelope | LeptonError:
            try:
                return self.open_update(event, model_digest, auditor_keys)
            except LeptonError as exc:  # whatever the partner committed: its update alone is rejected
                return exc

        # Two at a time: hashing, decrypting and reading an envelope let go of the interpreter lock, so two cores
        # open large envelopes in ~3/4 of the time (10 of 1.2 MB: 20 -> 15 ms). No more: each open holds up to
        # twice an envelope's bound in memory, whatever a hostile partner put.
        results = run_each(open_one, events, max_threads=OPENING_THREADS)
        for event, result in zip(events, results):
            if isinstance(result, LeptonError):
                failed[event.partner] = [
                    {"code": type(result).__name__, "tensor": None, "message": str(result), "detail": {}}
                ]
            else:
                opened[event.partner] = result
        return opened, failed

    def base_state(self, model_digest: bytes) -> dict[str, torch.Tensor]:
        """The round's global model, fetched by its digest."""
        from ..envelope.tensors import deserialize_tensors

        return deserialize_tensors(fetch_by_digest(self.store, model_digest))

    def agreement_payout_rule(self, agreement_id: int) -> PayoutRule:
        """The payout rule of the agreement's on-chain terms.

        Raises:
            ConfigurationError: this coordinator was configured with another rule.
        """
        return self._checked_rule(agreement_id, Terms.read(calls(self.deployment.agreements).terms(agreement_id)))

    def _checked_rule(self, agreement_id: int, terms: Terms) -> PayoutRule:
        rule = terms.payout_rule
        if self.payout_rule is not None and PayoutRule(self.payout_rule) != rule:
            raise ConfigurationError(
                f"agreement {agreement_id} pays by {rule.name.lower()}, not by "
                f"{PayoutRule(self.payout_rule).name.lower()}"
            )
        return rule

    def check_signed_rules(self, agreement_id: int, round_id: int) -> None:
        """Refuses to run rules other than those the parties signed (the terms document's, ``RoundRules.from_terms``).

        Raises:
            ConfigurationError: this coordinator's rules differ from the signed ones (each difference named), or
                the store does not hold the signed terms document (its digest named: the rules are unknown).
        """
        self._check_signed_rules(
            agreement_id, round_id, Terms.read(calls(self.deployment.agreements).terms(agreement_id))
        )

    def _check_signed_rules(self, agreement_id: int, round_id: int, terms: Terms) -> None:
        try:
            signed = signed_rules(self.store, terms, round_id)
        except TermsDocumentMissing as exc:
            raise ConfigurationError(f"agreement {agreement_id} cannot close: {exc}") from None
        differences = self.rules.for_round(round_id).differences(signed)
        if differences:
            raise ConfigurationError(f"agreement {agreement_id} signed other round rules: {'; '.join(differences)}")

    def check_closable(self, agreement_id: int, round_id: int) -> None:
        """Dry-runs ``finalizeRound`` (placeholder digests, nothing paid): once it would pass, the deadline is
        over or every party submitted, so the round's commitments can no longer change.

        Raises:
            ContractReverted: the round cannot close now (``RoundLedgerRoundStillRunning``, not open...).
        """
        placeholder = b"\x01" * 32
        call = calls(self.deployment.ledger).finalizeRound(
            agreement_id, round_id, placeholder, placeholder, bytes(32), 0
        )
        dry_run(self.tx.w3, call, self.address)

    def outcome_recorded(self, agreement_id: int, round_id: int) -> bool:
        """Whether a close of the round recorded its outcome (a resumed :meth:`close_round` publishes that one)."""
        return self.outbox.find(self._key("finalize", agreement_id, round_id)) is not None

    def close_round(
        self,
        agreement_id: int,
        round_id: int,
        computed: tuple[dict[str, torch.Tensor], RoundReport, PayoutTree | None] | None = None,
    ) -> RoundOutcome:
        """Step 5 end to end: open, validate, aggregate, evaluate, score, split, publish, finalize. Called again
        after a crash, it publishes and finalizes the outcome it recorded, without computing another. `computed`:
        what :meth:`compute_outcome` returned, computed by the caller after :meth:`check_closable` (the service
        does, off its writer); used only while no outcome is recorded for the round.

        Raises:
            NoAcceptedUpdates: nothing to aggregate (the round stays open, nothing is recorded).
            ContractReverted: the round cannot close yet (e.g. still running: nothing is recorded), or
                ``finalizeRound`` refused (call again to retry it with the recorded outcome).
        """
        keys = {step: self._key(step, agreement_id, round_id) for step in ("aggregate", "report", "finalize")}
        if not self.outcome_recorded(agreement_id, round_id):
            if computed is None:
                self.check_closable(agreement_id, round_id)
                computed = self.compute_outcome(agreement_id, round_id)
            aggregate, report, tree = computed
            assert report.aggregate_digest is not None  # compute_outcome names the aggregate
            report_bytes = report.to_bytes()
            call = calls(self.deployment.ledger).finalizeRound(
                agreement_id,
                round_id,
                bytes.fromhex(report.aggregate_digest[2:]),
                _digest_of(local_cid(report_bytes)),
                tree.root if tree else bytes(32),
                sum(report.payouts.values()),
            )
            self.outbox.enqueue_many(
                [
                    self.effects.put_operation(keys["aggregate"], serialize_tensors(aggregate)),
                    self.effects.put_operation(keys["report"], report_bytes),
                    self.effects.transaction_operation(keys["finalize"], call, self.address),
                ]
            )
            self.checkpoint("outcome:enqueued", None)
        aggregate_op = self.effects.finish(keys["aggregate"])
        report_op = self.effects.finish(keys["report"])
        self.effects.finish(keys["finalize"], retry=True)
        report = RoundReport.from_bytes(put_data(self.outbox, report_op))
        paid = {p: a for p, a in report.payouts.items() if a > 0}
        aggregate_cid, aggregate_digest = put_result(aggregate_op)
        report_cid, report_digest = put_result(report_op)
        return RoundOutcome(
            report,
            report_cid,
            report_digest,
            aggregate_cid,
            aggregate_digest,
            deserialize_tensors(put_data(self.outbox, aggregate_op)),
            PayoutTree(agreement_id, round_id, paid) if paid else None,
        )

    def compute_outcome(
        self, agreement_id: int, round_id: int
    ) -> tuple[dict[str, torch.Tensor], RoundReport, PayoutTree | None]:
        """Open, validate, aggregate, evaluate, score and split, publishing nothing: ``(aggregate state, report,
        payout tree or None)``; the report names the aggregate's CID and digest.

        Raises:
            NoAcceptedUpdates: nothing to aggregate.
        """
        # The round, its reward and the agreement's terms in one batch request (three round trips before).
        ledger, agreements = calls(self.deployment.ledger), calls(self.deployment.agreements)
        answers = read_many(
            self.tx.w3,
            [
                ledger.round(agreement_id, round_id),
                agreements.roundConfig(agreement_id),
                agreements.terms(agreement_id),
            ],
        )
        state, config, terms = Round.decode(answers[0]), RoundConfig.decode(answers[1]), Terms.decode(answers[2])
        model_digest, commitment = state.model_digest, state.eval_commitment
        events = self.commitments(agreement_id, round_id)
        reward = config.reward_per_round
        rule = self._checked_rule(agreement_id, terms)
        self._check_signed_rules(agreement_id, round_id, terms)
        opened, failed = self.open_updates(events, model_digest)
        base = self.base_state(model_digest)
        updates = {p: (e.tensors, e.manifest.sample_count) for p, e in opened.items()}
        try:
            outcome = round_outcome(
                base,
                updates,
                self.evaluation,
                self.rules,
                round_id=round_id,
                reward=reward,
                payout_rule=rule,
                refused=failed,
            )
        except NoAcceptedUpdates:
            raise NoAcceptedUpdates(f"agreement {agreement_id} round {round_id}: no update accepted") from None
        aggregate = outcome.settlement.aggregate
        report = self._report(agreement_id, round_id, model_digest, commitment, events, opened, outcome)
        aggregate_cid = local_cid(serialize_tensors(aggregate))
        report.aggregate_cid, report.aggregate_digest = aggregate_cid, "0x" + _digest_of(aggregate_cid).hex()
        paid = {p: a for p, a in outcome.settlement.payouts.items() if a > 0}
        return aggregate, report, PayoutTree(agreement_id, round_id, paid) if paid else None

    def _report(
        self,
        agreement_id: int,
        round_id: int,
        model_digest: bytes,
        commitment: bytes,
        events: list[CommitmentView],
        opened: dict[str, OpenedEnvelope],
        outcome: Outcome,
    ) -> RoundReport:
        rejected, scores, payouts = outcome.rejected, outcome.settlement.scores, outcome.settlement.payouts
        lines = []
        for event in events:
            p, args = event.partner, event.args
            envelope = opened.get(p)
            m = envelope.manifest if envelope else None
            lines.append(
                PartnerOutcome(
                    partner=p,
                    envelope_cid=_cid_or_empty(self.store, args["envelopeDigest"]),
                    manifest_digest=args["manifestDigest"],
                    sample_count=int(args["sampleCount"]),
                    cumulative_epsilon_fixed=int(args["cumulativeEpsilon"]),
                    accepted=p not in rejected,
                    reasons=rejected.get(p, []),
                    dp=_dp_dict(m),
                    cumulative_epsilon=m.cumulative_epsilon_float if m else None,
                    score=scores.get(p),
                    payout=int(payouts.get(p, 0)),
                )
            )
        return RoundReport(
            chain_id=self.tx.chain_id,
            ledger=self.deployment.ledger.address,
            agreement_id=agreement_id,
            round=round_id,
            base_model_digest="0x" + model_digest.hex(),
            eval_commitment="0x" + commitment.hex(),
            rules=outcome.rules,
            payout_rule=outcome.payout_rule.name.lower(),
            reward=outcome.reward,
            partners=lines,
            metrics={
                "accuracy_before": outcome.settlement.accuracy_before,
                "accuracy_after": outcome.settlement.accuracy_after,
            },
        )


class CommitmentMismatch(LeptonError, ValueError):
    """The epsilon or sample count committed on-chain differs from the signed manifest's."""


def _digest_of(cid: str) -> bytes:
    return parse_cid(cid).digest


def _cid_or_empty(store: Store, digest_hex: str) -> str:
    from .report import cid_for_digest

    cid = cid_for_digest(bytes.fromhex(digest_hex[2:]))
    return cid if store.has(cid) else ""


def _dp_dict(manifest: UpdateManifest | None) -> dict[str, Any] | None:
    if manifest is None:
        return None
    dp = manifest.dp
    return {
        "noise_multiplier": dp.noise_multiplier,
        "clipping_norm": dp.clipping_norm,
        "sample_rate": dp.sample_rate,
        "steps": dp.steps,
        "delta": dp.delta,
        "accountant": dp.accountant,
    }
