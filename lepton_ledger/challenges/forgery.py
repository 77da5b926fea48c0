"""Proving a forged batch commitment on-chain: ``RoundLedger.proveForgedCommitment``.

In batched mode the coordinator anchors the partners' EIP-712-signed commitments without the contract checking
the signatures (its NatSpec gives the gas reasons); instead any auditor can prove, while the round is open or
within its dispute window, that entry `position` of an anchored batch is not what its partner signed: the
signature does not recover the partner (the contract judges by ECDSA alone, so a judgement never changes after
the fact), the anchored (party index, cumulative epsilon) entry disagrees with the signed commitment, or the
signed sample count is 0 or above the bound of the terms the round ran under. A proof voids the round and
revokes its payouts.

:func:`find_forgeries` re-reads every ``BatchCommitted`` of a round, fetches its batch document from the store
(rounds/coordinator.py's format), checks that the document recomputes the anchored root (otherwise no entry can
be placed under it), and lists each position whose signature or entry is wrong, with the ``BatchEvidence``
(root, document digest, entries, position, PositionalTree proof) the contract wants. :func:`prove_forgery`
simulates the call first (the contract is the judge: a position it finds honest is refused with a named
error and nothing is sent), then sends it as an auditor.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..chain.deployment import Deployment
from ..chain.merkle import PositionalTree, commitment_leaf, unpack_entries
from ..chain.state import Round, RoundConfig
from ..chain.transactions import Transactor
from ..chain.typed_data import UpdateCommitment, update_commitment_digest
from ..envelope.manifest import recover_signer
from ..errors import LeptonError
from ..protocol.addressing import ArtifactNotFound
from ..protocol.addressing import fetch as fetch_by_digest
from ..protocol.commitments import MAX_BATCH_BYTES, parse_batch_document
from ..protocol.signatures import is_valid_signature_now
from ..storage.store import Store
from .challenge import ChallengeError, ChallengeTx, _event, _sent, _simulate

__all__ = ["Forgery", "find_forgeries", "prove_forgery"]


@dataclass(frozen=True)
class Forgery:
    """One anchored commitment that is not what its partner signed, with the evidence that proves it."""

    agreement_id: int
    round: int
    batch_index: int
    position: int
    partner: str
    reason: str
    evidence: tuple[Any, ...]  # IRoundLedger.BatchEvidence, as web3 encodes it
    commitment: UpdateCommitment
    signature: bytes

    def to_dict(self) -> dict[str, Any]:
        return {
            "agreement_id": self.agreement_id,
            "round": self.round,
            "batch_index": self.batch_index,
            "position": self.position,
            "partner": self.partner,
            "reason": self.reason,
        }


def find_forgeries(deployment: Deployment, store: Store, agreement_id: int, round_id: int) -> list[Forgery]:
    """Every forged position in the round's anchored batches.

    Raises:
        ChallengeError: a batch document is missing from the store, malformed, or does not recompute the anchored
            root (then no position can be proven with it).
    """
    ledger = deployment.ledger
    chain_id = ledger.w3.eth.chain_id
    logs = ledger.events.BatchCommitted.get_logs(
        argument_filters={"agreementId": agreement_id, "round": round_id}, from_block=0
    )
    found: list[Forgery] = []
    for log in logs:
        args = log["args"]
        root, document_digest, entries = (
            bytes(args["commitmentsRoot"]),
            bytes(args["batchDocumentDigest"]),
            bytes(args["entries"]),
        )
        try:
            document = parse_batch_document(fetch_by_digest(store, document_digest, max_bytes=MAX_BATCH_BYTES))
        except ArtifactNotFound:
            raise ChallengeError(
                f"batch {args['batchIndex']} of round {round_id}: its document "
                f"0x{document_digest.hex()} is not in the store"
            ) from None
        except LeptonError as exc:  # a document that does not parse, a store that cannot give it
            raise ChallengeError(f"batch {args['batchIndex']} of round {round_id}: malformed document: {exc}") from None
        commitments = [item.commitment for item in document.items]
        signatures = [item.signature for item in document.items]
        digests = [update_commitment_digest(chain_id, ledger.address, c) for c in commitments]
        tree = PositionalTree([commitment_leaf(d, s) for d, s in zip(digests, signatures)])
        if tree.root != root:
            raise ChallengeError(
                f"batch {args['batchIndex']} of round {round_id}: its document does not recompute "
                "the anchored root, so no entry can be proven with it"
            )
        anchored = unpack_entries(entries)
        version = Round.read(ledger.functions.round(agreement_id, round_id)).agreement_version
        max_samples = RoundConfig.read(
            deployment.agreements.functions.roundConfigAt(agreement_id, version)
        ).max_sample_count
        for position, (c, digest, signature) in enumerate(zip(commitments, digests, signatures)):
            _, index = deployment.agreements.functions.partyIndex(agreement_id, c.partner).call()
            entry = anchored[position] if position < len(anchored) else None
            reasons = []
            if not is_valid_signature_now(ledger.w3, c.partner, digest, signature):  # as the contract will judge it
                try:
                    signer: str | None = recover_signer(digest, signature)
                except LeptonError:
                    signer = None
                reasons.append(f"the signature recovers {signer}, not {c.partner}")
            if entry != (index, c.cumulative_epsilon):
                reasons.append(
                    f"the anchored entry {entry} is not the signed (party {index}, epsilon {c.cumulative_epsilon})"
                )
            if not 0 < c.sample_count <= max_samples:
                reasons.append(f"the sample count {c.sample_count} is outside the signed bound [1, {max_samples}]")
            if reasons:
                evidence = (
                    agreement_id,
                    round_id,
                    int(args["batchIndex"]),
                    root,
                    document_digest,
                    entries,
                    position,
                    tree.proof(position),
                )
                found.append(
                    Forgery(
                        agreement_id,
                        round_id,
                        int(args["batchIndex"]),
                        position,
                        c.partner,
                        "; ".join(reasons),
                        evidence,
                        c,
                        signature,
                    )
                )
    return found


def prove_forgery(tx: Transactor, deployment: Deployment, *, sender: str, forgery: Forgery) -> ChallengeTx:
    """Sends ``proveForgedCommitment`` for `forgery` as `sender` (an auditor); the round is voided.

    Raises:
        ChallengeError: the ledger would refuse (not an auditor, window closed, the contract finds the position
            honest...); nothing was sent.
    """
    call = deployment.ledger.functions.proveForgedCommitment(
        forgery.evidence, forgery.commitment.as_tuple(), forgery.signature
    )
    _simulate(call, sender, deployment, "a forgery is proven while its round is open or disputable")
    receipt = tx.transact(call, sender)
    args = _event(deployment.ledger, "RoundVoided", receipt)
    tx_hash, block = _sent(receipt)
    return ChallengeTx(
        "prove-forgery",
        None,
        tx_hash,
        block,
        {**forgery.to_dict(), "voided_batch": int(args["batchIndex"]), "voided_position": int(args["position"])},
    )
