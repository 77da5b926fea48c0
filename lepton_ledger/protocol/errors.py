"""The protocol layer's errors: one root, one subclass per way a document can be wrong."""

from __future__ import annotations

from ..errors import LeptonError


class ProtocolError(LeptonError, ValueError):
    """A document another party supplied is not acceptable. `code` is the short reason recorded in reports."""

    code = "malformed"


class DocumentTooLarge(ProtocolError):
    """A document is over its byte bound (checked before it is parsed)."""

    code = "too-large"


class MalformedDocument(ProtocolError):
    """A document does not parse, or a field is missing, of the wrong type, or out of its range."""

    code = "malformed"


class SignatureInvalid(ProtocolError):
    """A signature does not verify for the party the document names."""

    code = "bad-signature"
