"""Signed update commitments as parties exchange them (a partner's signed commitment file, for the coordinator),
and the batch document that lists an anchored batch.

Batch document (version 1): canonical JSON ``{"version": 1, "chain_id", "ledger", "agreement_id", "round",
"commitments": [item...]}``, items in party-index order, each ``{"partyIndex", "agreementId", "round",
"partner", "envelopeDigest", "manifestDigest", "cumulativeEpsilon", "sampleCount", "signature",
"envelopeCid"}`` (digests and the signature 0x-hex). The coordinator writes it (:func:`encode_batch_document`);
the coordinator, the auditor and the forgery prover read it (:func:`parse_batch_document`), nobody else.

Bounds: 8 MiB and 10,000 commitments a document (far above any party count a round can have), integers
within their Solidity widths, exact field sets, hex of the exact length.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..chain._values import InvalidValue
from ..chain.typed_data import UpdateCommitment
from .errors import DocumentTooLarge, MalformedDocument
from .jsonio import canonical_json, load_object

__all__ = [
    "BATCH_DOCUMENT_VERSION",
    "SIGNED_COMMITMENT_VERSION",
    "BatchDocument",
    "BatchItem",
    "encode_batch_document",
    "parse_batch_document",
    "parse_commitment_item",
    "parse_signed_commitment",
]

BATCH_DOCUMENT_VERSION = 1
SIGNED_COMMITMENT_VERSION = 1
MAX_BATCH_BYTES = 8 << 20
MAX_BATCH_COMMITMENTS = 10_000
MAX_CID_CHARS = 128
_ITEM_FIELDS = {
    "partyIndex",
    "agreementId",
    "round",
    "partner",
    "envelopeDigest",
    "manifestDigest",
    "cumulativeEpsilon",
    "sampleCount",
    "signature",
    "envelopeCid",
}
_HEADER_FIELDS = {"version", "chain_id", "ledger", "agreement_id", "round", "commitments"}


@dataclass(frozen=True)
class BatchItem:
    """One signed commitment of a batch: its party index, the commitment, the signature, the envelope's CID."""

    party_index: int
    commitment: UpdateCommitment
    signature: bytes
    envelope_cid: str


@dataclass(frozen=True)
class BatchDocument:
    chain_id: int
    ledger: str
    agreement_id: int
    round: int
    items: list[BatchItem]


def _int(value: Any, what: str, bits: int = 256) -> int:
    if type(value) is not int or not 0 <= value < 1 << bits:
        raise MalformedDocument(f"{what} must be an integer in [0, 2**{bits}), not {str(value)[:40]}")
    return value


def _hex(value: Any, what: str, size: int) -> bytes:
    if not isinstance(value, str) or len(value) != 2 + 2 * size or not value.startswith("0x"):
        raise MalformedDocument(f"{what} must be 0x and {2 * size} hex digits")
    try:
        return bytes.fromhex(value[2:])
    except ValueError:
        raise MalformedDocument(f"{what} is not hex") from None


def parse_commitment_item(item: Any) -> BatchItem:
    """One item of a batch document's ``"commitments"``, strictly typed.

    Raises:
        MalformedDocument: a missing, extra or mistyped field, a value out of its Solidity range.
    """
    if not isinstance(item, dict) or set(item) != _ITEM_FIELDS:
        raise MalformedDocument(f"a batch commitment needs exactly the fields {sorted(_ITEM_FIELDS)}")
    return _item(item, _int(item["partyIndex"], "partyIndex"))


def parse_signed_commitment(document: Any, *, chain_id: int, ledger: str) -> BatchItem:
    """A partner's signed commitment file (``rounds.roles``' format, version 1: the item fields of a batch
    document but ``partyIndex``, plus ``version``, ``chain_id`` and ``ledger``), for this chain and ledger; its
    ``party_index`` is 0 (the coordinator looks it up). The signature is not checked here.

    Raises:
        MalformedDocument: not such a document, or one for another chain or ledger.
    """
    fields = _ITEM_FIELDS - {"partyIndex"} | {"version", "chain_id", "ledger"}
    if not isinstance(document, dict) or set(document) != fields or document["version"] != SIGNED_COMMITMENT_VERSION:
        raise MalformedDocument(f"not a version {SIGNED_COMMITMENT_VERSION} signed commitment")
    if (document["chain_id"], document["ledger"]) != (chain_id, ledger):
        raise MalformedDocument(
            f"a commitment for ledger {str(document['ledger'])[:42]} on chain "
            f"{str(document['chain_id'])[:20]}, not {ledger} on chain {chain_id}"
        )
    return _item(document, 0)


def _item(item: dict[str, Any], party_index: int) -> BatchItem:
    cid = item["envelopeCid"]
    if not isinstance(cid, str) or len(cid) > MAX_CID_CHARS:
        raise MalformedDocument("envelopeCid must be a CID string")
    try:
        commitment = UpdateCommitment(
            _int(item["agreementId"], "agreementId"),
            _int(item["round"], "round", 64),
            item["partner"],
            _hex(item["envelopeDigest"], "envelopeDigest", 32),
            _hex(item["manifestDigest"], "manifestDigest", 32),
            _int(item["cumulativeEpsilon"], "cumulativeEpsilon", 32),
            _int(item["sampleCount"], "sampleCount", 64),
        )
    except InvalidValue as exc:
        raise MalformedDocument(f"a commitment: {exc}") from None
    return BatchItem(party_index, commitment, _hex(item["signature"], "signature", 65), cid)


def parse_batch_document(data: bytes) -> BatchDocument:
    """A batch document, bounded and strictly typed (it is not checked against the chain here: callers
    compare its header with the round and recompute the anchored root from its items).

    Raises:
        DocumentTooLarge: over MAX_BATCH_BYTES, or more than MAX_BATCH_COMMITMENTS commitments.
        MalformedDocument: not a version-1 batch document.
    """
    doc = load_object(data, what="batch document", max_bytes=MAX_BATCH_BYTES, max_depth=3)
    if set(doc) != _HEADER_FIELDS or doc["version"] != BATCH_DOCUMENT_VERSION:
        raise MalformedDocument(f"not a version {BATCH_DOCUMENT_VERSION} batch document")
    items = doc["commitments"]
    if not isinstance(items, list):
        raise MalformedDocument("batch document commitments must be a list")
    if len(items) > MAX_BATCH_COMMITMENTS:
        raise DocumentTooLarge(f"batch document of {len(items)} commitments, over {MAX_BATCH_COMMITMENTS}")
    if not isinstance(doc["ledger"], str):
        raise MalformedDocument("batch document ledger must be an address")
    return BatchDocument(
        _int(doc["chain_id"], "chain_id"),
        doc["ledger"],
        _int(doc["agreement_id"], "agreement_id"),
        _int(doc["round"], "round", 64),
        [parse_commitment_item(i) for i in items],
    )


def encode_batch_document(
    *, chain_id: int, ledger: str, agreement_id: int, round: int, items: list[BatchItem]
) -> bytes:
    """The canonical bytes of a batch document (the inverse of :func:`parse_batch_document`)."""
    return canonical_json(
        {
            "version": BATCH_DOCUMENT_VERSION,
            "chain_id": chain_id,
            "ledger": ledger,
            "agreement_id": agreement_id,
            "round": round,
            "commitments": [
                {
                    "partyIndex": i.party_index,
                    "agreementId": i.commitment.agreement_id,
                    "round": i.commitment.round,
                    "partner": i.commitment.partner,
                    "envelopeDigest": "0x" + i.commitment.envelope_digest.hex(),
                    "manifestDigest": "0x" + i.commitment.manifest_digest.hex(),
                    "cumulativeEpsilon": i.commitment.cumulative_epsilon,
                    "sampleCount": i.commitment.sample_count,
                    "signature": "0x" + i.signature.hex(),
                    "envelopeCid": i.envelope_cid,
                }
                for i in items
            ],
        }
    )
