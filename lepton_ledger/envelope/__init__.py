"""Update envelopes: a partner's model update, its signed manifest, encrypted to its recipients.

Modules, one concern each: ``tensors`` (safetensors bytes, SHA-256 tensor digest), ``manifest`` (the
EIP-712 ``UpdateManifest`` whose digest is committed on-chain), ``crypto`` (AES-256-GCM, X25519 key
wrapping), ``format`` (the binary layout, documented byte by byte), ``envelope`` (``seal`` / ``open`` and
the ``UpdateCommitment`` helper), ``stream`` (``open`` for bytes that arrive in pieces, held once), ``errors`` (one class per failure, rooted at ``EnvelopeError``).
"""

from __future__ import annotations

from .crypto import generate_x25519_keypair, x25519_public_key
from .envelope import (
    Expected,
    OpenedEnvelope,
    SealedEnvelope,
    open,
    seal,
    update_commitment,
)
from .errors import (
    BadSignature,
    DecryptionFailed,
    EnvelopeError,
    InvalidKey,
    InvalidManifest,
    InvalidTensors,
    MalformedEnvelope,
    MalformedManifest,
    MalformedPayload,
    ManifestMismatch,
    NotAnEnvelope,
    NotARecipient,
    OversizeEnvelope,
    OversizeTensor,
    ReplayedEnvelope,
    TamperedCiphertext,
    TamperedHeader,
    TensorDigestMismatch,
    TruncatedEnvelope,
    UnsupportedVersion,
)
from .format import DEFAULT_MAX_ENVELOPE_BYTES, MAGIC, VERSION
from .manifest import FORMAT_VERSION, UPDATE_MANIFEST_TYPE, DPRecord, UpdateManifest
from .tensors import (
    DEFAULT_MAX_TENSOR_BYTES,
    deserialize_tensors,
    serialize_tensors,
    tensor_digest,
)

__all__ = [
    "DEFAULT_MAX_ENVELOPE_BYTES",
    "DEFAULT_MAX_TENSOR_BYTES",
    "FORMAT_VERSION",
    "MAGIC",
    "UPDATE_MANIFEST_TYPE",
    "VERSION",
    "BadSignature",
    "DPRecord",
    "DecryptionFailed",
    "EnvelopeError",
    "Expected",
    "InvalidKey",
    "InvalidManifest",
    "InvalidTensors",
    "MalformedEnvelope",
    "MalformedManifest",
    "MalformedPayload",
    "ManifestMismatch",
    "NotARecipient",
    "NotAnEnvelope",
    "OpenedEnvelope",
    "OversizeEnvelope",
    "OversizeTensor",
    "ReplayedEnvelope",
    "SealedEnvelope",
    "TamperedCiphertext",
    "TamperedHeader",
    "TensorDigestMismatch",
    "TruncatedEnvelope",
    "UnsupportedVersion",
    "UpdateManifest",
    "deserialize_tensors",
    "generate_x25519_keypair",
    "open",
    "seal",
    "serialize_tensors",
    "tensor_digest",
    "update_commitment",
    "x25519_public_key",
]
