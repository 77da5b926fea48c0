"""Sealing and opening update envelopes: the two calls the rest of the project uses.

``seal`` serializes the tensors (tensors.py), builds and signs the manifest (manifest.py), lays out the
payload, encrypts it under a fresh data key and wraps that key for every recipient (crypto.py, format.py).
``open`` undoes it and verifies everything, in this order, raising the first failure:

1. size bound (OversizeEnvelope), structure (TruncatedEnvelope, NotAnEnvelope, UnsupportedVersion,
   MalformedEnvelope) -- before any cryptography;
2. the opener's public key among the recipients (NotARecipient);
3. unwrap the data key (TamperedHeader), decrypt the payload (TamperedCiphertext);
4. payload layout (MalformedPayload), manifest document (MalformedManifest);
5. the signature recovers the manifest's partner (BadSignature);
6. the tensors' SHA-256 equals the manifest's tensorDigest (TensorDigestMismatch), sizes (OversizeTensor),
   safetensors structure (MalformedPayload);
7. the expectations from the chain, if given (ReplayedEnvelope for another round, ManifestMismatch).

Payload (plaintext) layout: ``uint32 BE manifest length m ++ manifest document (m bytes, canonical JSON,
manifest.py) ++ signature (65 bytes r ++ s ++ v over the manifest digest) ++ uint64 BE tensors length t ++
safetensors bytes (t bytes)``, nothing after.

Digests and the chain. ``manifestDigest`` on-chain is the manifest's full EIP-712 digest (manifest.py).
``envelopeDigest`` is a bytes32 to RoundLedger, which only requires it non-zero; we put SHA-256 of the
envelope bytes there (:attr:`SealedEnvelope.envelope_digest`) unless told otherwise. The rounds commit the
stored envelope's CID digest instead (``protocol.addressing``: a dag-pb root, so it differs from this SHA-256)
and pass it through ``update_commitment(..., envelope_digest=...)``; an auditor checks the fetched bytes
against the CID and then against the manifest digest, which binds the content either way.
"""

from __future__ import annotations

import hashlib
import os
import struct
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property

import torch

from ..chain._values import InvalidValue, as_address, as_bytes32
from ..chain.typed_data import SigningError, UpdateCommitment, address_of_key, sign_digest
from ..errors import ConfigurationError
from ..units import epsilon_to_fixed
from .crypto import (
    KEY_BYTES,
    NONCE_BYTES,
    TAG_BYTES,
    decrypt_payload,
    encrypt_payload,
    new_data_key,
    unwrap_data_key,
    wrap_data_key_with,
    x25519_public_key,
)
from .errors import (
    BadSignature,
    InvalidKey,
    InvalidManifest,
    MalformedPayload,
    ManifestMismatch,
    NotARecipient,
    OversizeEnvelope,
    ReplayedEnvelope,
    TensorDigestMismatch,
)
from .format import (
    DEFAULT_MAX_ENVELOPE_BYTES,
    ENVELOPE_ID_BYTES,
    FIXED_HEADER_BYTES,
    MAX_RECIPIENTS,
    SLOT_BYTES,
    EnvelopeHeader,
    RecipientSlot,
    parse_envelope,
)
from .manifest import MAX_MANIFEST_BYTES, DPParamsLike, DPRecord, UpdateManifest, recover_signer
from .tensors import (
    DEFAULT_MAX_TENSOR_BYTES,
    deserialize_tensors,
    serialize_tensors,
    tensor_digest,
)

__all__ = [
    "Expected",
    "OpenedEnvelope",
    "SealedEnvelope",
    "data_key_for",
    "decode_payload",
    "decrypt_envelope",
    "encode_payload",
    "encrypt_envelope",
    "open",
    "seal",
    "update_commitment",
    "verify_payload",
]

SIGNATURE_BYTES = 65


@dataclass(frozen=True)
class Expected:
    """What the chain says an envelope must be; every field left None is not checked.

    `manifest_digest` is the ``manifestDigest`` the partner committed on-chain for this round.
    """

    agreement_id: int | None = None
    round: int | None = None
    partner: str | None = None
    base_model_digest: bytes | None = None
    manifest_digest: bytes | None = None
    chain_id: int | None = None
    ledger: str | None = None


@dataclass(frozen=True)
class SealedEnvelope:
    """A sealed envelope and what the partner commits on-chain about it."""

    data: bytes
    manifest: UpdateManifest
    signature: bytes
    manifest_digest: bytes

    @cached_property
    def envelope_digest(self) -> bytes:
        """SHA-256 of `data`, computed when first asked: the rounds commit the envelope's CID digest instead, and
        hashing a large envelope for nothing cost ~0.6 ms a MB."""
        return hashlib.sha256(self.data).digest()


@dataclass(frozen=True)
class OpenedEnvelope:
    """A verified envelope's content."""

    tensors: dict[str, torch.Tensor]
    tensor_bytes: memoryview  # a view of the decrypted payload, which the tensors share
    manifest: UpdateManifest
    signature: bytes
    manifest_digest: bytes
    envelope_digest: bytes  # SHA-256 of the envelope bytes
    recipients: tuple[bytes, ...]


# -- payload ----------------------------------------------------------------------------------------------


def encode_payload(document: bytes, signature: bytes, tensor_bytes: bytes) -> bytes:
    """The plaintext layout (module docstring)."""
    return struct.pack(">I", len(document)) + document + signature + struct.pack(">Q", len(tensor_bytes)) + tensor_bytes


def decode_payload(payload: bytes | bytearray) -> tuple[bytes, bytes, memoryview]:
    """(manifest document, signature, safetensors bytes) from a decrypted payload; the tensors' bytes are a view
    of `payload`, not a copy.

    Raises:
        MalformedPayload: the manifest is over MAX_MANIFEST_BYTES, lengths run past the end, or bytes follow
            the tensors.
    """
    if len(payload) < 4:
        raise MalformedPayload("payload shorter than its manifest length")
    (m,) = struct.unpack_from(">I", payload, 0)
    if m > MAX_MANIFEST_BYTES:  # refused before the manifest is sliced out or parsed
        raise MalformedPayload(f"manifest of {m} bytes, over the bound of {MAX_MANIFEST_BYTES}")
    sig_at = 4 + m
    len_at = sig_at + SIGNATURE_BYTES
    if len(payload) < len_at + 8:
        raise MalformedPayload("payload ends inside the manifest or signature")
    (t,) = struct.unpack_from(">Q", payload, len_at)
    if len(payload) != len_at + 8 + t:
        raise MalformedPayload(f"payload is {len(payload)} bytes, its lengths say {len_at + 8 + t}")
    return bytes(payload[4:sig_at]), bytes(payload[sig_at:len_at]), memoryview(payload)[len_at + 8 :]


# -- encryption -------------------------------------------------------------------------------------------


def encrypt_envelope(payload: bytes, recipients: Sequence[bytes]) -> bytes:
    """Encrypts `payload` for `recipients` (X25519 public keys; duplicates dropped, order kept).

    Raises:
        InvalidKey: no recipients, too many, or a malformed or low-order key.
    """
    unique = list(dict.fromkeys(bytes(r) for r in recipients))
    if not 1 <= len(unique) <= MAX_RECIPIENTS:
        raise InvalidKey(f"an envelope needs 1..{MAX_RECIPIENTS} recipients, got {len(unique)}")
    for r in unique:
        if len(r) != KEY_BYTES:
            raise InvalidKey("an X25519 public key is 32 bytes")
    data_key, nonce, envelope_id = (
        new_data_key(),
        os.urandom(NONCE_BYTES),
        os.urandom(ENVELOPE_ID_BYTES),
    )
    ephemerals = [os.urandom(KEY_BYTES) for _ in unique]  # X25519 clamps any 32 random bytes into a key
    length = len(payload) + TAG_BYTES
    # The wrap aad names every ephemeral public key, so all are fixed before the first wrap.
    draft = EnvelopeHeader(
        envelope_id,
        nonce,
        tuple(RecipientSlot(r, x25519_public_key(e), bytes(48)) for r, e in zip(unique, ephemerals)),
        length,
    )
    slots = []
    for i, (r, e) in enumerate(zip(unique, ephemerals)):
        ephemeral_public, wrapped = wrap_data_key_with(e, data_key, r, draft.wrap_aad(i))
        slots.append(RecipientSlot(r, ephemeral_public, wrapped))
    header = EnvelopeHeader(envelope_id, nonce, tuple(slots), length).encode()
    return header + encrypt_payload(data_key, nonce, payload, header)


def decrypt_envelope(
    data: bytes,
    recipient_private_key: bytes,
    *,
    max_envelope_bytes: int = DEFAULT_MAX_ENVELOPE_BYTES,
) -> tuple[EnvelopeHeader, bytearray]:
    """Checks the structure, unwraps the data key and decrypts: (header, payload).

    Raises:
        OversizeEnvelope, TruncatedEnvelope, NotAnEnvelope, UnsupportedVersion, MalformedEnvelope: see
            :func:`format.parse_envelope`.
        InvalidKey: the private key is not 32 bytes.
        NotARecipient: its public key is not in the header.
        TamperedHeader: the wrapped key does not unwrap.
        TamperedCiphertext: the payload's tag fails.
    """
    header, ciphertext = parse_envelope(data, max_envelope_bytes=max_envelope_bytes)
    data_key = data_key_for(header, recipient_private_key)
    return header, decrypt_payload(data_key, header.nonce, ciphertext, header.encode())


def data_key_for(header: EnvelopeHeader, recipient_private_key: bytes) -> bytes:
    """The payload's data key, unwrapped from the slot of `recipient_private_key`'s public key.

    Raises:
        InvalidKey, NotARecipient, TamperedHeader: as :func:`decrypt_envelope`.
    """
    me = x25519_public_key(recipient_private_key)
    index = header.find(me)
    if index is None:
        raise NotARecipient(f"public key {me.hex()} is not a recipient of this envelope")
    slot = header.slots[index]
    return unwrap_data_key(recipient_private_key, slot.ephemeral, slot.wrapped_key, header.wrap_aad(index))


# -- seal / open ------------------------------------------------------------------------------------------


def seal(
    tensors: Mapping[str, torch.Tensor],
    *,
    signer_key: bytes,
    recipients: Sequence[bytes],
    chain_id: int,
    ledger: str,
    agreement_id: int,
    round: int,
    base_model_digest: bytes,
    dp: DPRecord | DPParamsLike,
    cumulative_epsilon: float,
    sample_count: int,
    metrics: Mapping[str, float] | None = None,
    max_tensor_bytes: int = DEFAULT_MAX_TENSOR_BYTES,
    max_envelope_bytes: int = DEFAULT_MAX_ENVELOPE_BYTES,
) -> SealedEnvelope:
    """Builds, signs and encrypts the envelope of one update.

    `signer_key` is the partner's Ethereum private key (the partner address is its address); `dp` a
    :class:`DPRecord` or a ``training.DPParams``; `cumulative_epsilon` the partner's epsilon under the
    agreement including this update, committed on-chain as ``epsilon_to_fixed`` of it (rounded up).

    Raises:
        InvalidTensors, OversizeTensor: the tensors cannot be serialized or one is too big.
        InvalidManifest: a manifest field is out of range (NaN metric, unknown accountant, ...).
        InvalidKey: a malformed signing key or recipient key, or no recipients.
        OversizeEnvelope: the result would exceed `max_envelope_bytes`.
    """
    tensor_bytes = serialize_tensors(tensors, max_tensor_bytes=max_tensor_bytes)
    try:
        partner = address_of_key(signer_key)
    except SigningError as exc:
        raise InvalidKey("signer_key is not a secp256k1 private key") from exc
    record = dp if isinstance(dp, DPRecord) else DPRecord.from_params(dp)
    try:
        fixed_epsilon = epsilon_to_fixed(cumulative_epsilon)
    except (ConfigurationError, TypeError) as exc:
        raise InvalidManifest(f"cumulative_epsilon must be finite and >= 0, got {cumulative_epsilon!r}") from exc
    manifest = UpdateManifest(
        chain_id=chain_id,
        ledger=ledger,
        agreement_id=agreement_id,
        round=round,
        partner=partner,
        base_model_digest=base_model_digest,
        tensor_digest=tensor_digest(tensor_bytes),
        sample_count=sample_count,
        cumulative_epsilon=fixed_epsilon,
        cumulative_epsilon_float=cumulative_epsilon,
        dp=record,
        metrics=dict(metrics or {}),
    )
    # manifest.sign would derive the key's address and hash the manifest again: both are known here.
    manifest_digest = manifest.digest()
    signature = sign_digest(signer_key, manifest_digest)
    payload = encode_payload(manifest.to_document(), signature, tensor_bytes)
    size = FIXED_HEADER_BYTES + SLOT_BYTES * len(set(map(bytes, recipients))) + len(payload) + TAG_BYTES
    if size > max_envelope_bytes:
        raise OversizeEnvelope(f"envelope would have {size} bytes, over the bound of {max_envelope_bytes}")
    data = encrypt_envelope(payload, recipients)
    return SealedEnvelope(data, manifest, signature, manifest_digest)


# Named like gzip.open and tarfile.open: the package's verb. Nothing here needs the builtin.
def open(
    data: bytes,
    recipient_private_key: bytes,
    *,
    expected: Expected | None = None,
    max_envelope_bytes: int = DEFAULT_MAX_ENVELOPE_BYTES,
    max_tensor_bytes: int = DEFAULT_MAX_TENSOR_BYTES,
    signature_valid: Callable[[str, bytes, bytes], bool] | None = None,
) -> OpenedEnvelope:
    """Decrypts and verifies an envelope with a recipient's X25519 private key (checks in the module's order).

    `signature_valid(partner, digest, signature)` decides whether the manifest's partner signed it; None is
    ECDSA alone (the signature recovers the partner). Readers with a chain pass
    ``protocol.signatures.chain_signature_check``, which also accepts an ERC-1271 wallet's signature.

    Raises:
        OversizeEnvelope, TruncatedEnvelope, NotAnEnvelope, UnsupportedVersion, MalformedEnvelope: structure.
        InvalidKey: `recipient_private_key` is not 32 bytes.
        NotARecipient: the key's public key is not a recipient.
        TamperedHeader, TamperedCiphertext: an authentication tag failed.
        MalformedPayload, MalformedManifest: the plaintext does not parse.
        BadSignature: the signature does not recover the manifest's partner.
        TensorDigestMismatch: the tensors are not those the manifest commits to.
        OversizeTensor: a tensor exceeds `max_tensor_bytes`.
        ReplayedEnvelope: the manifest is for another round than `expected.round`.
        ManifestMismatch: another field differs from `expected`.
    """
    header, payload = decrypt_envelope(data, recipient_private_key, max_envelope_bytes=max_envelope_bytes)
    return verify_payload(
        header,
        payload,
        hashlib.sha256(bytes(data)).digest(),
        expected=expected,
        max_tensor_bytes=max_tensor_bytes,
        signature_valid=signature_valid,
    )


def verify_payload(
    header: EnvelopeHeader,
    payload: bytearray,
    envelope_digest: bytes,
    *,
    expected: Expected | None = None,
    max_tensor_bytes: int = DEFAULT_MAX_TENSOR_BYTES,
    signature_valid: Callable[[str, bytes, bytes], bool] | None = None,
) -> OpenedEnvelope:
    """:func:`open`'s checks after decryption, on the decrypted `payload` of the envelope whose SHA-256 is
    `envelope_digest` (for a reader that decrypted it as it streamed, stream.py).

    Raises:
        as :func:`open`, from MalformedPayload on.
    """
    document, signature, tensor_bytes = decode_payload(payload)
    manifest = UpdateManifest.from_document(document)
    manifest_digest = manifest.digest()
    if signature_valid is None:
        signer = recover_signer(manifest_digest, signature)
        if signer != manifest.partner:
            raise BadSignature(f"manifest signed by {signer}, names partner {manifest.partner}")
    elif not signature_valid(manifest.partner, manifest_digest, signature):
        raise BadSignature(f"the manifest's signature is not valid for partner {manifest.partner}")
    if tensor_digest(tensor_bytes) != manifest.tensor_digest:
        raise TensorDigestMismatch("the tensors' SHA-256 differs from the manifest's tensorDigest")
    tensors = deserialize_tensors(tensor_bytes, max_tensor_bytes=max_tensor_bytes)
    if expected is not None:
        _check_expected(manifest, manifest_digest, expected)
    return OpenedEnvelope(
        tensors,
        tensor_bytes,
        manifest,
        signature,
        manifest_digest,
        envelope_digest,
        tuple(s.recipient for s in header.slots),
    )


def _check_expected(manifest: UpdateManifest, digest: bytes, expected: Expected) -> None:
    try:
        checks: list[tuple[str, object, object]] = [
            ("chain_id", expected.chain_id, manifest.chain_id),
            (
                "ledger",
                None if expected.ledger is None else as_address(expected.ledger, "ledger"),
                manifest.ledger,
            ),
            ("agreement_id", expected.agreement_id, manifest.agreement_id),
            ("round", expected.round, manifest.round),
            (
                "partner",
                None if expected.partner is None else as_address(expected.partner, "partner"),
                manifest.partner,
            ),
            (
                "base_model_digest",
                None
                if expected.base_model_digest is None
                else as_bytes32(expected.base_model_digest, "base_model_digest"),
                manifest.base_model_digest,
            ),
            (
                "manifest_digest",
                None if expected.manifest_digest is None else as_bytes32(expected.manifest_digest, "manifest_digest"),
                digest,
            ),
        ]
    except InvalidValue as exc:
        raise ManifestMismatch("expected", "well-formed expectations", str(exc)) from exc
    for name, want, got in checks:
        if want is not None and want != got:
            # Same agreement and partner, validly signed, another round: an old update offered again.
            if name == "round":
                raise ReplayedEnvelope(name, want, got)
            raise ManifestMismatch(name, want, got)


def update_commitment(
    envelope: SealedEnvelope | OpenedEnvelope, *, envelope_digest: bytes | None = None
) -> UpdateCommitment:
    """The ``IRoundLedger.UpdateCommitment`` for an envelope: envelope digest (SHA-256 of the envelope bytes
    unless the storage layer's CID digest is given), manifest digest, cumulative epsilon (fixed point) and
    sample count from the manifest.

    Raises:
        InvalidValue: `envelope_digest` is not 32 bytes.
    """
    m = envelope.manifest
    return UpdateCommitment(
        agreement_id=m.agreement_id,
        round=m.round,
        partner=m.partner,
        envelope_digest=envelope.envelope_digest if envelope_digest is None else envelope_digest,
        manifest_digest=envelope.manifest_digest,
        cumulative_epsilon=m.cumulative_epsilon,
        sample_count=m.sample_count,
    )
