"""The envelope's cryptography, with `cryptography`'s primitives only: AES-256-GCM for the payload under a
fresh random 32-byte data key, and that data key wrapped for each recipient with X25519.

Wrapping, for each recipient public key R (32 bytes, as registered in PartnerRegistry):

1. a fresh ephemeral X25519 key pair (e, E) -- one per recipient, so that no key-encryption key is ever
   derived twice and no analysis of a shared ephemeral key is needed;
2. shared = X25519(e, R); an all-zero result (R a low-order point) is refused;
3. KEK = HKDF-SHA256(ikm=shared, salt=E ++ R, info=b"lepton-ledger/envelope/v1/kek", length=32);
4. wrapped = AES-256-GCM(KEK).encrypt(nonce=12 zero bytes, data_key, aad) -- 48 bytes (32 + tag). A fixed
   nonce is safe because each KEK comes from a fresh ephemeral key and encrypts exactly one message.

`aad` is built by the format (see format.py): it binds the envelope's id, payload nonce, every recipient and
ephemeral key, the ciphertext length and this recipient's index, so a wrapped key moved to another envelope
or another slot fails its tag.
"""

from __future__ import annotations

import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.x25519 import (
    X25519PrivateKey,
    X25519PublicKey,
)
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from .errors import InvalidKey, TamperedCiphertext, TamperedHeader

__all__ = [
    "DATA_KEY_BYTES",
    "KEY_BYTES",
    "NONCE_BYTES",
    "TAG_BYTES",
    "PayloadDecryptor",
    "WRAPPED_KEY_BYTES",
    "decrypt_payload",
    "encrypt_payload",
    "generate_x25519_keypair",
    "new_data_key",
    "unwrap_data_key",
    "wrap_data_key_with",
    "x25519_public_key",
]

KEY_BYTES = 32
DATA_KEY_BYTES = 32
NONCE_BYTES = 12
TAG_BYTES = 16
WRAPPED_KEY_BYTES = DATA_KEY_BYTES + TAG_BYTES
_KEK_INFO = b"lepton-ledger/envelope/v1/kek"
_WRAP_NONCE = bytes(NONCE_BYTES)


def _private(key: bytes) -> X25519PrivateKey:
    if not isinstance(key, (bytes, bytearray)) or len(key) != KEY_BYTES:
        raise InvalidKey("an X25519 private key is 32 bytes")
    return X25519PrivateKey.from_private_bytes(bytes(key))


def _public(key: bytes) -> X25519PublicKey:
    if not isinstance(key, (bytes, bytearray)) or len(key) != KEY_BYTES:
        raise InvalidKey("an X25519 public key is 32 bytes")
    return X25519PublicKey.from_public_bytes(bytes(key))


def _raw(public: X25519PublicKey) -> bytes:
    return public.public_bytes(Encoding.Raw, PublicFormat.Raw)


def generate_x25519_keypair() -> tuple[bytes, bytes]:
    """A new (private, public) X25519 key pair, 32 raw bytes each."""
    private = X25519PrivateKey.generate()
    return private.private_bytes_raw(), _raw(private.public_key())


def x25519_public_key(private_key: bytes) -> bytes:
    """The 32-byte public key of a 32-byte X25519 private key.

    Raises:
        InvalidKey: not 32 bytes.
    """
    return _raw(_private(private_key).public_key())


def new_data_key() -> bytes:
    """A fresh random 32-byte AES-256 key from the OS CSPRNG."""
    return os.urandom(DATA_KEY_BYTES)


def _kek(shared: bytes, ephemeral_public: bytes, recipient_public: bytes) -> bytes:
    return HKDF(
        algorithm=hashes.SHA256(),
        length=32,
        salt=ephemeral_public + recipient_public,
        info=_KEK_INFO,
    ).derive(shared)


def wrap_data_key_with(
    ephemeral_private: bytes, data_key: bytes, recipient_public: bytes, aad: bytes
) -> tuple[bytes, bytes]:
    """Wraps `data_key` for `recipient_public` with `ephemeral_private` (fresh per recipient: the caller's
    duty, since the aad must name every ephemeral public key before any key is wrapped); returns (ephemeral
    public key, 48-byte wrapped key).

    Raises:
        InvalidKey: a key is malformed or the recipient key is a low-order point.
    """
    ephemeral = _private(ephemeral_private)
    try:
        shared = ephemeral.exchange(_public(recipient_public))
    except ValueError as exc:  # all-zero shared secret
        raise InvalidKey(f"recipient key is unusable: {exc}") from None
    ephemeral_public = _raw(ephemeral.public_key())
    wrapped = AESGCM(_kek(shared, ephemeral_public, bytes(recipient_public))).encrypt(_WRAP_NONCE, data_key, aad)
    return ephemeral_public, wrapped


def unwrap_data_key(recipient_private: bytes, ephemeral_public: bytes, wrapped: bytes, aad: bytes) -> bytes:
    """The data key wrapped for the holder of `recipient_private`.

    Raises:
        InvalidKey: `recipient_private` is malformed.
        TamperedHeader: the tag fails or the ephemeral key is unusable. The caller has matched the
            recipient's public key to this slot, so the right KEK would be derived: a failure means the
            slot or the header bytes bound into `aad` were altered.
    """
    private = _private(recipient_private)
    try:
        shared = private.exchange(_public(ephemeral_public))
    except (ValueError, InvalidKey):
        raise TamperedHeader("ephemeral key in the recipient slot is unusable") from None
    kek = _kek(shared, bytes(ephemeral_public), _raw(private.public_key()))
    try:
        return AESGCM(kek).decrypt(_WRAP_NONCE, bytes(wrapped), aad)
    except InvalidTag:
        raise TamperedHeader("wrapped data key failed authentication: the header was altered") from None


def encrypt_payload(data_key: bytes, nonce: bytes, plaintext: bytes, aad: bytes) -> bytes:
    """AES-256-GCM ciphertext ++ 16-byte tag."""
    return AESGCM(data_key).encrypt(nonce, plaintext, aad)


def decrypt_payload(data_key: bytes, nonce: bytes, ciphertext: bytes | memoryview, aad: bytes) -> bytearray:
    """Inverse of :func:`encrypt_payload`, into one new writable buffer (tensors can then be views of it, so
    opening an envelope holds the envelope and one plaintext, nothing more). Nothing of the plaintext is
    returned unless the tag verifies.

    Raises:
        TamperedCiphertext: the tag fails (ciphertext or header altered), or it is shorter than a tag.
    """
    view = memoryview(ciphertext)
    if len(view) < TAG_BYTES:
        raise TamperedCiphertext("payload is shorter than its authentication tag")
    body, tag = view[: len(view) - TAG_BYTES], bytes(view[len(view) - TAG_BYTES :])
    decryptor = Cipher(algorithms.AES(data_key), modes.GCM(nonce, tag)).decryptor()
    decryptor.authenticate_additional_data(aad)
    out = bytearray(len(body) + 15)  # update_into wants room for one block more than it writes (GCM writes len)
    try:
        written = decryptor.update_into(body, out)
        decryptor.finalize()
    except InvalidTag:
        raise TamperedCiphertext("payload failed authentication: ciphertext or header altered") from None
    del out[written:]
    return out


class PayloadDecryptor:
    """:func:`decrypt_payload` for a ciphertext that arrives in pieces (a reader streaming the envelope): the
    plaintext grows as they come, so the ciphertext is never held whole. Nothing of the plaintext is returned
    unless the tag verifies.

    Args:
        body_length: the ciphertext's length without its tag (the header announces it).
    """

    def __init__(self, data_key: bytes, nonce: bytes, aad: bytes, body_length: int) -> None:
        self._decryptor = Cipher(algorithms.AES(data_key), modes.GCM(nonce)).decryptor()
        self._decryptor.authenticate_additional_data(aad)
        self._left = body_length
        self._plaintext = bytearray()
        self._tag = bytearray()

    def update(self, piece: bytes | memoryview) -> None:
        """The next bytes of the ciphertext, then of the tag; bytes past the tag are not the payload's (the
        envelope's structure check refuses them)."""
        view = memoryview(piece)
        body, view = view[: self._left], view[self._left :]
        if len(body):
            self._plaintext += self._decryptor.update(body)
            self._left -= len(body)
        self._tag += view[: TAG_BYTES - len(self._tag)]

    def finish(self) -> bytearray:
        """The plaintext, once the tag verifies.

        Raises:
            TamperedCiphertext: the tag fails, or the ciphertext ended before its tag.
        """
        if self._left or len(self._tag) < TAG_BYTES:
            raise TamperedCiphertext("payload is shorter than its authentication tag")
        try:
            self._decryptor.finalize_with_tag(bytes(self._tag))
        except InvalidTag:
            raise TamperedCiphertext("payload failed authentication: ciphertext or header altered") from None
        return self._plaintext
