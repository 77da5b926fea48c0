"""Disputes of batch entries (``RoundLedger.disputeBatchEntry`` / ``answerDispute`` / ``voidDisputedEntry``),
read and built from the chain alone.

A coordinator anchors a batch as ``BatchCommitted(agreement, round, batchIndex, root, documentDigest, entries,
skipped)``: the event carries everything a dispute needs, so a partner listed for a commitment it never signed
can dispute it without the batch document (a dishonest coordinator withholds or garbles it). Answering needs
the signed commitment and its proof, which only the batch document holds: :func:`answer_for` rebuilds them
from the document in the store and refuses, naming why, when it cannot. Voiding needs the agreement's packed
epsilon words as they were when the round opened: the ``EpsilonsAtOpen`` event of that round. A round voided
whole (a proven forgery, or abandoned) keeps every entry its party signed charged (the update was revealed
whether or not the round pays); :func:`restore_round` gives back the entry proven forged, with the words of its
``EpsilonsAtOpen`` and ``EpsilonsAtClose`` events, and the agreement's next round waits for it. A voided round's
entries stay disputable for the dispute window after it ended, so a party still gets an unsigned one voided.

The ``BatchEvidence`` tuple is ``(agreementId, round, batchIndex, root, documentDigest, entries, position,
proof)``; a dispute sends it with no proof (the position is checked against the anchored entries).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from web3.contract.contract import ContractEvent

from ..errors import LeptonError
from ..storage.store import Store
from ..units import RoundStatus
from .deployment import Deployment
from .merkle import PositionalTree, commitment_leaf, unpack_entries
from .state import EntryDispute, Round
from .transactions import Transactor
from .typed_data import update_commitment_digest

__all__ = [
    "AnchoredEntry",
    "DisputeError",
    "DisputeRecord",
    "anchored_entries",
    "answer_for",
    "answer_open_disputes",
    "disputes",
    "entry_of",
    "pending_restores",
    "restore_pending",
    "restore_round",
    "words_at_close",
    "words_at_open",
]


class DisputeError(LeptonError, ValueError):
    """A dispute step cannot go ahead (the message names why); nothing was sent."""


@dataclass(frozen=True)
class AnchoredEntry:
    """One entry of an anchored batch, as its ``BatchCommitted`` event gives it."""

    agreement_id: int
    round: int
    batch_index: int
    position: int
    party_index: int
    epsilon: int  # fixed point, 1e6 = 1.0
    skipped: bool  # the party had submitted directly: the entry changed nothing
    root: bytes
    document_digest: bytes
    entries: bytes

    def evidence(self, proof: list[bytes] | None = None) -> tuple[Any, ...]:
        """The ``BatchEvidence`` of this entry (no proof: what a dispute sends)."""
        return (
            self.agreement_id,
            self.round,
            self.batch_index,
            self.root,
            self.document_digest,
            self.entries,
            self.position,
            list(proof or []),
        )


@dataclass(frozen=True)
class DisputeRecord:
    """``RoundLedger.entryDispute`` of one party and round, with its status by name."""

    agreement_id: int
    round: int
    party: str
    status: str
    batch_index: int
    position: int
    epsilon: int
    answer_by: int


def anchored_entries(deployment: Deployment, agreement_id: int, round_id: int) -> list[AnchoredEntry]:
    """Every entry of every batch anchored in the round, in chain order."""
    logs = deployment.ledger.events.BatchCommitted.get_logs(
        argument_filters={"agreementId": agreement_id, "round": round_id}, from_block=0
    )
    found = []
    for log in logs:
        a = log["args"]
        entries = bytes(a["entries"])
        for position, (index, epsilon) in enumerate(unpack_entries(entries)):
            found.append(
                AnchoredEntry(
                    agreement_id,
                    round_id,
                    int(a["batchIndex"]),
                    position,
                    index,
                    epsilon,
                    bool(int(a["skipped"]) >> position & 1),
                    bytes(a["commitmentsRoot"]),
                    bytes(a["batchDocumentDigest"]),
                    entries,
                )
            )
    return found


def entry_of(deployment: Deployment, agreement_id: int, round_id: int, party: str) -> AnchoredEntry | None:
    """`party`'s entry in the round's anchored batches that took effect (not skipped), or None."""
    is_party, index = deployment.agreements.functions.partyIndex(agreement_id, party).call()
    if not is_party:
        return None
    for entry in anchored_entries(deployment, agreement_id, round_id):
        if entry.party_index == int(index) and not entry.skipped:
            return entry
    return None


def disputes(deployment: Deployment, agreement_id: int, *, party: str | None = None) -> list[DisputeRecord]:
    """The agreement's disputes (of `party` only, when given), oldest first, each with its status now."""
    filters: dict[str, Any] = {"agreementId": agreement_id}
    if party is not None:
        filters["party"] = party
    logs = deployment.ledger.events.BatchEntryDisputed.get_logs(argument_filters=filters, from_block=0)
    records = []
    for log in logs:
        a = log["args"]
        d = EntryDispute.read(deployment.ledger.functions.entryDispute(agreement_id, int(a["round"]), a["party"]))
        records.append(
            DisputeRecord(
                agreement_id,
                int(a["round"]),
                a["party"],
                str(d.status),
                d.batch_index,
                d.position,
                d.epsilon_fixed,
                d.answer_by,
            )
        )
    return records


def words_at_open(deployment: Deployment, agreement_id: int, round_id: int) -> list[int]:
    """The agreement's packed epsilon words when the round opened (what ``voidDisputedEntry`` checks).

    Raises:
        DisputeError: the chain holds no ``EpsilonsAtOpen`` for the round.
    """
    return _snapshot_words(deployment.ledger.events.EpsilonsAtOpen, agreement_id, round_id)


def words_at_close(deployment: Deployment, agreement_id: int, round_id: int) -> list[int]:
    """The agreement's packed epsilon words when the round closed (finalized, voided or abandoned).

    Raises:
        DisputeError: the chain holds no ``EpsilonsAtClose`` for the round.
    """
    return _snapshot_words(deployment.ledger.events.EpsilonsAtClose, agreement_id, round_id)


def _snapshot_words(event: ContractEvent, agreement_id: int, round_id: int) -> list[int]:
    logs = event.get_logs(argument_filters={"agreementId": agreement_id, "round": round_id}, from_block=0)
    if not logs:
        raise DisputeError(f"no {event.event_name} event for round {round_id} of agreement {agreement_id}")
    return [int(w) for w in logs[-1]["args"]["words"]]


def pending_restores(deployment: Deployment, agreement_id: int) -> list[int]:
    """The agreement's voided rounds whose spend is still charged (no ``VoidedRoundRestored`` yet), oldest first:
    the agreement's next round cannot open before each is restored."""
    restored = {
        int(log["args"]["round"])
        for log in deployment.ledger.events.VoidedRoundRestored.get_logs(
            argument_filters={"agreementId": agreement_id}, from_block=0
        )
    }
    ledger = deployment.ledger.functions
    return [
        r
        for r in range(1, int(ledger.roundCount(agreement_id).call()) + 1)
        if r not in restored and Round.read(ledger.round(agreement_id, r)).status is RoundStatus.VOIDED
    ]


def restore_round(tx: Transactor, deployment: Deployment, *, sender: str, agreement_id: int, round_id: int) -> str:
    """Sends ``restoreVoidedRound`` for a voided round, as `sender` (anyone may); returns the line that says so.

    Raises:
        DisputeError: the round is not voided, was already restored, a later round is open, or its snapshot
            events are missing (nothing was sent).
    """
    where = f"round {round_id} of agreement {agreement_id}"
    if round_id not in pending_restores(deployment, agreement_id):
        raise DisputeError(
            f"{where} has nothing to restore: only a voided or abandoned round's spend is given back, once"
        )
    open_round = int(deployment.ledger.functions.openRoundOf(agreement_id).call())
    if open_round > round_id:
        raise DisputeError(
            f"round {open_round} of agreement {agreement_id} is open: {where} can be restored once it closes"
        )
    call = deployment.ledger.functions.restoreVoidedRound(
        agreement_id,
        round_id,
        words_at_open(deployment, agreement_id, round_id),
        words_at_close(deployment, agreement_id, round_id),
    )
    receipt = tx.transact(call, sender)
    return (
        f"restored {where}: an entry proven forged gives its epsilon back, signed entries stay charged, "
        f"tx {receipt['transactionHash'].to_0x_hex()}"
    )


def restore_pending(tx: Transactor, deployment: Deployment, *, sender: str, agreement_id: int) -> list[str]:
    """Restores every voided round of the agreement still pending (oldest first); one line per restore."""
    return [
        restore_round(tx, deployment, sender=sender, agreement_id=agreement_id, round_id=r)
        for r in pending_restores(deployment, agreement_id)
    ]


def answer_for(
    deployment: Deployment, store: Store, record: DisputeRecord
) -> tuple[tuple[Any, ...], tuple[Any, ...], bytes]:
    """``(evidence with proof, commitment tuple, signature)`` that answers `record`, from the batch document in
    `store`.

    Raises:
        DisputeError: the batch is not on-chain, its document is not in the store, does not parse, does not
            recompute the anchored root, or holds no commitment of the party at the disputed position.
    """
    from ..protocol.addressing import fetch
    from ..protocol.commitments import MAX_BATCH_BYTES, parse_batch_document

    batch = [
        e
        for e in anchored_entries(deployment, record.agreement_id, record.round)
        if (e.batch_index, e.position) == (record.batch_index, record.position)
    ]
    if not batch:
        raise DisputeError(f"no batch {record.batch_index} with a position {record.position} in round {record.round}")
    entry = batch[0]
    try:
        document = parse_batch_document(fetch(store, entry.document_digest, max_bytes=MAX_BATCH_BYTES))
    except LeptonError as exc:
        raise DisputeError(f"batch document 0x{entry.document_digest.hex()}: {exc}") from None
    chain_id, ledger = deployment.ledger.w3.eth.chain_id, deployment.ledger.address
    leaves = [
        commitment_leaf(update_commitment_digest(chain_id, ledger, i.commitment), i.signature) for i in document.items
    ]
    tree = PositionalTree(leaves) if leaves else None
    if tree is None or tree.root != entry.root:
        raise DisputeError("the batch document does not recompute the anchored root")
    if record.position >= len(document.items):
        raise DisputeError(f"the batch document has no position {record.position}")
    item = document.items[record.position]
    if item.commitment.partner != record.party:
        raise DisputeError(f"position {record.position} of the batch document is {item.commitment.partner}'s")
    return entry.evidence(tree.proof(record.position)), item.commitment.as_tuple(), item.signature


def answer_open_disputes(
    tx: Transactor, deployment: Deployment, store: Store, *, sender: str, agreement_id: int
) -> list[str]:
    """Answers, as `sender`, every open dispute of the agreement that the batch documents in `store` can answer;
    one line per open dispute says what was done (answered, or why not). Nothing is sent for a dispute that
    cannot be answered.

    Raises:
        ChainError: the node failed (a refusal of one answer is reported in its line, not raised).
    """
    from .transactions import decode_revert, human_revert, utc_text

    now = int(deployment.ledger.w3.eth.get_block("pending")["timestamp"])
    lines = []
    for record in disputes(deployment, agreement_id):
        if record.status != "Open":
            continue
        where = f"round {record.round}, {record.party}"
        if now > record.answer_by:
            lines.append(f"{where}: cannot answer: the answer window closed at {utc_text(record.answer_by)}")
            continue
        try:
            evidence, commitment, signature = answer_for(deployment, store, record)
        except DisputeError as exc:
            lines.append(f"{where}: cannot answer: {exc}")
            continue
        call = deployment.ledger.functions.answerDispute(evidence, commitment, signature)
        try:
            call.call({"from": sender})
        except Exception as exc:  # noqa: BLE001 -- web3 raises several types; decode_revert tells them apart
            decoded = decode_revert(getattr(exc, "data", None))
            lines.append(f"{where}: cannot answer: the contract refused: {human_revert(decoded) if decoded else exc}")
            continue
        receipt = tx.transact(call, sender)
        lines.append(f"{where}: answered with its signed commitment, tx {receipt['transactionHash'].to_0x_hex()}")
    return lines
