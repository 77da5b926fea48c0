"""Checks on the artifacts the chain points to: ``cids_resolve`` (every digest on-chain resolves in the store
and the bytes are those the digest names), ``batch_document`` (an anchored batch's document recomputes the
anchored root and entries, and each commitment in it is signed by its partner), ``envelope_decrypts`` (the
auditor's X25519 key opens the envelope) and ``manifest_signature`` (the signed manifest is signed by the
committing partner, ECDSA or ERC-1271 as the contracts accept it and is the one committed: digest, chain, ledger, agreement, round, base model, sample
count).

The auditor hashes every artifact it fetches itself (report.content_digest), so a store that serves other
bytes than those it was asked for is caught even if it does not verify blocks.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from ...chain.events import IndexedEvent
from ...chain.merkle import (
    PositionalTree,
    commitment_leaf,
    pack_entries,
    unpack_entries,
)
from ...chain.typed_data import update_commitment_digest
from ...envelope import EnvelopeError, Expected, ManifestMismatch, OpenedEnvelope
from ...envelope.errors import (
    BadSignature,
    MalformedManifest,
    MalformedPayload,
    TensorDigestMismatch,
)
from ...envelope.manifest import recover_signer
from ...envelope.stream import EnvelopeStream
from ...errors import LeptonError
from ...protocol.addressing import (
    ArtifactNotFound,
    cid_for_digest,
    content_digest,
    fetch,
    fetch_into,
)
from ...protocol.commitments import MAX_BATCH_BYTES, parse_batch_document
from ...protocol.errors import ProtocolError
from ...protocol.signatures import chain_signature_check, is_valid_signature_now
from ...storage.store import DEFAULT_MAX_FILE_BYTES, Store
from ..chain_view import ChainView, Commitment, RoundRecord, digest_bytes
from ..model import (
    BATCH_DOCUMENT,
    CIDS_RESOLVE,
    ENVELOPE_DECRYPTS,
    MANIFEST_SIGNATURE,
    CheckResult,
)

__all__ = ["Fetched", "expand_batch", "open_commitment", "resolve"]

# Opening failures that happen after decryption: the auditor read the manifest, and it is not the partner's.
_MANIFEST_FAILURES = (BadSignature, MalformedManifest, MalformedPayload, TensorDigestMismatch, ManifestMismatch)


class Located(Protocol):
    """Where a digest was put on-chain: an ``IndexedEvent``, or a commitment's transaction (``workers.Where``)."""

    @property
    def tx_hash(self) -> str: ...

    @property
    def block_number(self) -> int: ...


@dataclass
class Fetched:
    """An artifact fetched by its on-chain digest: its CID, and its bytes when they resolve and match (and were
    kept: not when :func:`resolve` streamed them to a sink)."""

    check: CheckResult
    cid: str
    data: bytes | None


def resolve(
    store: Store,
    digest: bytes,
    *,
    what: str,
    agreement_id: int,
    round_id: int,
    partner: str | None = None,
    event: Located | None = None,
    max_bytes: int = DEFAULT_MAX_FILE_BYTES,
    sink: Callable[[bytes], None] | None = None,
) -> Fetched:
    """``cids_resolve`` for one digest: the CID it names is in the store, no larger than `max_bytes` (checked from
    its root before the rest is fetched), and its bytes hash to it. With `sink`, the bytes go to it as they are
    read and hashed, and are not kept (the result's ``data`` is None; ``check.ok`` says whether they resolved):
    an envelope is opened as it streams (envelope.stream)."""
    where = {"tx_hash": event.tx_hash, "block": event.block_number} if event is not None else {}
    evidence = {"artifact": what, **where, "digest": "0x" + digest.hex()}
    cid = cid_for_digest(digest)
    data: bytes | None = None
    try:
        if sink is None:
            data = fetch(store, digest, max_bytes=max_bytes)
            found, size = content_digest(data), len(data)
        else:
            found, size = fetch_into(store, digest, sink, max_bytes=max_bytes)
    except ArtifactNotFound as exc:
        return Fetched(
            CheckResult(
                CIDS_RESOLVE,
                False,
                f"{what} {cid} is not in the store: {exc}",
                agreement_id,
                round_id,
                partner,
                cid,
                evidence,
            ),
            cid,
            None,
        )
    except LeptonError as exc:  # BlockNotFound, BlockCorrupted, StorageError: the store cannot give the bytes
        return Fetched(
            CheckResult(
                CIDS_RESOLVE,
                False,
                f"{what} {cid} does not resolve: {exc}",
                agreement_id,
                round_id,
                partner,
                cid,
                {**evidence, "error": type(exc).__name__},
            ),
            cid,
            None,
        )
    if found != digest:
        return Fetched(
            CheckResult(
                CIDS_RESOLVE,
                False,
                f"{what} {cid}: the store's bytes hash to 0x{found.hex()}",
                agreement_id,
                round_id,
                partner,
                cid,
                {**evidence, "expected": "0x" + digest.hex(), "found": "0x" + found.hex()},
            ),
            cid,
            None,
        )
    return Fetched(
        CheckResult(
            CIDS_RESOLVE,
            True,
            f"{what} {cid} resolves, {size} bytes match its digest",
            agreement_id,
            round_id,
            partner,
            cid,
            {**evidence, "bytes": size},
        ),
        cid,
        data,
    )


def expand_batch(
    view: ChainView, store: Store, record: RoundRecord, event: IndexedEvent
) -> tuple[list[CheckResult], list[Commitment]]:
    """The commitments of one anchored batch, from its document, after ``cids_resolve`` and ``batch_document``
    hold; no commitments when either fails (they cannot be trusted)."""
    a, r = record.agreement_id, record.round
    fetched = resolve(
        store,
        digest_bytes(event.args["batchDocumentDigest"]),
        what="batch document",
        agreement_id=a,
        round_id=r,
        event=event,
        max_bytes=MAX_BATCH_BYTES,
    )
    if fetched.data is None:
        return [fetched.check], []
    evidence = {
        "tx_hash": event.tx_hash,
        "block": event.block_number,
        "batch_index": event.args["batchIndex"],
        "anchored_root": event.args["commitmentsRoot"],
        "anchored_entries": event.args["entries"],
    }

    def fail(message: str, **more: Any) -> tuple[list[CheckResult], list[Commitment]]:
        return [
            fetched.check,
            CheckResult(
                BATCH_DOCUMENT, False, message, a, r, more.pop("partner", None), fetched.cid, {**evidence, **more}
            ),
        ], []

    try:
        document = parse_batch_document(fetched.data)
    except ProtocolError as exc:
        return fail(f"batch document does not parse: {exc}")
    header = (document.chain_id, document.ledger, document.agreement_id, document.round)
    if header != (view.chain_id, view.ledger_address, a, r):
        return fail(
            "batch document is for another chain, ledger, agreement or round",
            expected=[view.chain_id, view.ledger_address, a, r],
            found=list(header),
        )
    leaves, entries, commitments = [], [], []
    for item in document.items:
        index, c, signature = item.party_index, item.commitment, item.signature
        digest = update_commitment_digest(view.chain_id, view.ledger_address, c)
        if (c.agreement_id, c.round) != (a, r):
            return fail(
                f"the batch's commitment for {c.partner} is for agreement {c.agreement_id} round {c.round}",
                partner=c.partner,
                expected=[a, r],
                found=[c.agreement_id, c.round],
            )
        if not is_valid_signature_now(view.w3, c.partner, digest, signature, block=view.block):
            try:
                signer = recover_signer(digest, signature)
            except EnvelopeError as exc:
                signer = f"nobody ({exc})"
            return fail(
                f"the batch's commitment for {c.partner} is signed by {signer}",
                partner=c.partner,
                expected=c.partner,
                found=signer,
            )
        if view.party_index(a, c.partner) != index:
            return fail(f"party index {index} is not {c.partner}", partner=c.partner)
        leaves.append(commitment_leaf(digest, signature))
        entries.append((index, c.cumulative_epsilon))
        commitments.append(
            Commitment(
                a,
                r,
                c.partner,
                c.envelope_digest,
                c.manifest_digest,
                c.cumulative_epsilon,
                c.sample_count,
                event.tx_hash,
                event.block_number,
                fetched.cid,
            )
        )
    root = PositionalTree(leaves).root if leaves else bytes(32)
    if "0x" + root.hex() != event.args["commitmentsRoot"]:
        return fail(
            "the batch document's commitments do not give the anchored root",
            expected=event.args["commitmentsRoot"],
            found="0x" + root.hex(),
        )
    if "0x" + pack_entries(entries).hex() != event.args["entries"]:
        return fail(
            "the batch document's entries differ from the anchored ones",
            expected=event.args["entries"],
            found="0x" + pack_entries(entries).hex(),
        )
    ok = CheckResult(
        BATCH_DOCUMENT,
        True,
        f"batch of {len(commitments)} commitment(s): anchored root and entries "
        "recompute, every commitment signed by its partner",
        a,
        r,
        None,
        fetched.cid,
        {**evidence, "entries": [list(e) for e in unpack_entries(pack_entries(entries))]},
    )
    return [fetched.check, ok], commitments


def open_commitment(
    view: ChainView, record: RoundRecord, c: Commitment, fetched: Fetched, envelope: EnvelopeStream
) -> tuple[list[CheckResult], OpenedEnvelope | None, str | None]:
    """``envelope_decrypts`` and ``manifest_signature`` for one envelope, fetched (resolved) into `envelope`.

    Returns the results, the opened envelope (None when it cannot be trusted) and the code the coordinator
    should have rejected it with (an envelope error's class name, ``CommitmentMismatch``), or None.
    """
    a, r, p, cid = c.agreement_id, c.round, c.partner, fetched.cid
    evidence = c.evidence()
    expected = Expected(
        agreement_id=a,
        round=r,
        partner=p,
        base_model_digest=record.model_digest,
        manifest_digest=c.manifest_digest,
        chain_id=view.chain_id,
        ledger=view.ledger_address,
    )
    try:
        opened = envelope.open(expected=expected, signature_valid=chain_signature_check(view.w3, block=view.block))
    except _MANIFEST_FAILURES as exc:
        found = (
            {"field": exc.field, "expected": _jsonable(exc.expected), "found": _jsonable(exc.actual)}
            if isinstance(exc, ManifestMismatch)
            else {}
        )
        return (
            [
                CheckResult(
                    ENVELOPE_DECRYPTS, True, "envelope decrypts with the auditor's key", a, r, p, cid, evidence
                ),
                CheckResult(
                    MANIFEST_SIGNATURE,
                    False,
                    f"the envelope is not {p}'s committed update: {exc}",
                    a,
                    r,
                    p,
                    cid,
                    {**evidence, "error": type(exc).__name__, **found},
                ),
            ],
            None,
            type(exc).__name__,
        )
    except EnvelopeError as exc:
        return (
            [
                CheckResult(
                    ENVELOPE_DECRYPTS,
                    False,
                    f"the envelope does not open with the auditor's key: {exc}",
                    a,
                    r,
                    p,
                    cid,
                    {**evidence, "error": type(exc).__name__},
                )
            ],
            None,
            type(exc).__name__,
        )
    m = opened.manifest
    results = [
        CheckResult(
            ENVELOPE_DECRYPTS,
            True,
            "envelope decrypts with the auditor's key",
            a,
            r,
            p,
            cid,
            {**evidence, "recipients": len(opened.recipients)},
        )
    ]
    if m.sample_count != c.sample_count:
        results.append(
            CheckResult(
                MANIFEST_SIGNATURE,
                False,
                f"committed sample count {c.sample_count}, the signed manifest says {m.sample_count}",
                a,
                r,
                p,
                cid,
                {**evidence, "expected": m.sample_count, "found": c.sample_count},
            )
        )
        return results, opened, "CommitmentMismatch"
    results.append(
        CheckResult(
            MANIFEST_SIGNATURE,
            True,
            f"manifest signature recovers {p}, its digest is the committed one",
            a,
            r,
            p,
            cid,
            {**evidence, "signer": m.partner},
        )
    )
    code = "CommitmentMismatch" if m.cumulative_epsilon != c.cumulative_epsilon else None
    return results, opened, code


def _jsonable(value: Any) -> Any:
    if isinstance(value, (bytes, bytearray)):
        return "0x" + bytes(value).hex()
    return value if isinstance(value, (int, float, str, bool)) or value is None else str(value)
