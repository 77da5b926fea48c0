"""Every way opening (or sealing) an update envelope can fail, one named class each, under one root.

``EnvelopeError`` inherits ``ValueError`` as well as ``LeptonError``: a refused envelope is bad input, so
callers may catch either. Opening raises the first failure in the order the checks run (see
:func:`lepton_ledger.envelope.envelope.open`).
"""

from __future__ import annotations

from ..errors import LeptonError

__all__ = [
    "BadSignature",
    "DecryptionFailed",
    "EnvelopeError",
    "InvalidKey",
    "InvalidManifest",
    "InvalidTensors",
    "MalformedEnvelope",
    "MalformedManifest",
    "MalformedPayload",
    "ManifestMismatch",
    "NotARecipient",
    "NotAnEnvelope",
    "OversizeEnvelope",
    "OversizeTensor",
    "ReplayedEnvelope",
    "TamperedCiphertext",
    "TamperedHeader",
    "TensorDigestMismatch",
    "TruncatedEnvelope",
    "UnsupportedVersion",
]


class EnvelopeError(LeptonError, ValueError):
    """Root of every envelope failure."""


# -- sealing-side input errors ---------------------------------------------------------------------------


class InvalidTensors(EnvelopeError):
    """The tensors cannot be serialized (not a str -> tensor mapping, shared storage, unsupported dtype)."""


class InvalidManifest(EnvelopeError):
    """A manifest field is out of range or not encodable (NaN metric, unknown accountant, bad address...)."""


class InvalidKey(EnvelopeError):
    """A private or public key is malformed (X25519 keys are 32 bytes; an Ethereum key is 32 bytes in range)."""


# -- outer format ----------------------------------------------------------------------------------------


class OversizeEnvelope(EnvelopeError):
    """The envelope is larger than the configured bound; refused before any parsing or decryption."""


class TruncatedEnvelope(EnvelopeError):
    """The input ends before the header or the ciphertext it announces."""


class NotAnEnvelope(EnvelopeError):
    """The input does not start with the envelope magic bytes."""


class UnsupportedVersion(EnvelopeError):
    """The format version is not one this code reads."""


class MalformedEnvelope(EnvelopeError):
    """The header is structurally invalid: reserved flags set, no or duplicate recipients, trailing bytes."""


class NotARecipient(EnvelopeError):
    """The given X25519 private key's public key is not among the envelope's recipients."""


# -- cryptography ----------------------------------------------------------------------------------------


class DecryptionFailed(EnvelopeError):
    """An AES-GCM authentication tag did not verify (parent of the two cases below)."""


class TamperedHeader(DecryptionFailed):
    """The recipient's wrapped data key did not unwrap. The key given matches a listed recipient, so the
    header (nonce, envelope id, a recipient or ephemeral key, this wrapped key) was altered after sealing."""


class TamperedCiphertext(DecryptionFailed):
    """The data key unwrapped but the payload's tag failed: the ciphertext, or a header byte not bound into
    this recipient's wrapped key (e.g. another recipient's wrapped key), was altered."""


# -- payload and manifest --------------------------------------------------------------------------------


class MalformedPayload(EnvelopeError):
    """The decrypted payload does not parse (lengths, trailing bytes, safetensors structure)."""


class MalformedManifest(EnvelopeError):
    """The manifest document does not parse, has wrong or missing fields, or is not in canonical form."""


class BadSignature(EnvelopeError):
    """The manifest's signature is malformed or does not recover the manifest's partner address."""


class TensorDigestMismatch(EnvelopeError):
    """The tensors' digest differs from the one the signed manifest commits to."""


class OversizeTensor(EnvelopeError):
    """One tensor's data is larger than the configured bound."""


class ManifestMismatch(EnvelopeError):
    """The signed manifest differs from what the chain says (agreement, partner, base model, committed
    manifest digest, chain id, ledger address).

    Attributes:
        field: the first field that differs.
        expected, actual: its expected and found values.
    """

    def __init__(self, field: str, expected: object, actual: object) -> None:
        self.field, self.expected, self.actual = field, expected, actual
        super().__init__(f"manifest {field} is {actual!r}, expected {expected!r}")


class ReplayedEnvelope(ManifestMismatch):
    """The envelope is a validly signed update for another round of the agreement, offered for this one."""
