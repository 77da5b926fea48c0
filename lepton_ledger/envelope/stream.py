"""Opening an envelope as its bytes arrive, block by block from a store: hashed and decrypted on the way, so
that a reader holds the header, the plaintext and the piece in hand, never the ciphertext whole (an auditor
opening a large update holds it once, not twice).

The outcome is :func:`envelope.open`'s, error for error: the structure is checked in :func:`format.parse_envelope`'s
order once the size is known (at the end), the key after it, the payload's tag last; a header that is wrong
stops the decryption, not the hashing.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Callable

from .crypto import TAG_BYTES, PayloadDecryptor
from .envelope import Expected, OpenedEnvelope, data_key_for, verify_payload
from .errors import EnvelopeError
from .format import DEFAULT_MAX_ENVELOPE_BYTES, FIXED_HEADER_BYTES, header_bytes, parse_header
from .tensors import DEFAULT_MAX_TENSOR_BYTES

__all__ = ["EnvelopeStream"]

_COUNT_AT = 40  # the recipient count's offset (format.py): what says how long the header is


class EnvelopeStream:
    """Feed it an envelope's bytes in order (:meth:`feed`), then :meth:`open` it.

    Args:
        recipient_private_key: the X25519 private key of one of its recipients.
        max_envelope_bytes: as :func:`envelope.open`'s.
    """

    def __init__(self, recipient_private_key: bytes, *, max_envelope_bytes: int = DEFAULT_MAX_ENVELOPE_BYTES) -> None:
        self._key = recipient_private_key
        self._max = max_envelope_bytes
        self._sha = hashlib.sha256()
        self._size = 0
        self._header = bytearray()  # the header's bytes (all the bytes while the header is not complete)
        self._header_length: int | None = None
        self._decryptor: PayloadDecryptor | None = None
        self._stopped = False  # the header refused: open() says why, with the whole size known

    def feed(self, piece: bytes | memoryview) -> None:
        """The envelope's next bytes. Never raises for what the bytes are: :meth:`open` does."""
        view = memoryview(piece)
        self._sha.update(view)
        self._size += len(view)
        if self._stopped:
            return
        if self._decryptor is None:
            view = self._take_header(view)
            if self._decryptor is None:
                return
        self._decryptor.update(view)

    def _take_header(self, view: memoryview) -> memoryview:
        """Keeps the header's bytes of `view`, starts the decryption once it is whole; returns what is left."""
        if self._header_length is None:
            wanted = FIXED_HEADER_BYTES - len(self._header)  # enough to read the recipient count
            self._header += view[:wanted]
            view = view[wanted:]
            if len(self._header) < FIXED_HEADER_BYTES:
                return view
            (count,) = struct.unpack_from(">H", self._header, _COUNT_AT)
            self._header_length = header_bytes(count)
        wanted = self._header_length - len(self._header)
        self._header += view[:wanted]
        view = view[wanted:]
        if len(self._header) == self._header_length:
            self._start()
        return view

    def _start(self) -> None:
        (length,) = struct.unpack_from(">Q", self._header, len(self._header) - 8)
        try:  # checked as if the envelope were as long as it says: what the size shows waits for open()
            header = parse_header(self._header, len(self._header) + length, max_envelope_bytes=self._max)
            data_key = data_key_for(header, self._key)
        except EnvelopeError:
            self._stopped = True
            return
        self._decryptor = PayloadDecryptor(data_key, header.nonce, header.encode(), length - TAG_BYTES)

    def open(
        self,
        *,
        expected: Expected | None = None,
        max_tensor_bytes: int = DEFAULT_MAX_TENSOR_BYTES,
        signature_valid: Callable[[str, bytes, bytes], bool] | None = None,
    ) -> OpenedEnvelope:
        """The envelope fed, opened and verified as :func:`envelope.open` would the same bytes.

        Raises:
            as :func:`envelope.open`.
        """
        header = parse_header(self._header, self._size, max_envelope_bytes=self._max)
        if self._decryptor is None:
            data_key_for(header, self._key)  # raises: the structure holds, so the key is what refused
        assert self._decryptor is not None  # a header that parses and unwraps started the decryption
        return verify_payload(
            header,
            self._decryptor.finish(),
            self._sha.digest(),
            expected=expected,
            max_tensor_bytes=max_tensor_bytes,
            signature_valid=signature_valid,
        )
