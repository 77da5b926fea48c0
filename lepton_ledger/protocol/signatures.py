"""Whether a party signed a digest, as the contracts decide it (OpenZeppelin ``SignatureChecker``): an ECDSA
signature that recovers the party (``ECDSA.recover``'s rules: 65 bytes, low s), or, when the party is a contract,
its ERC-1271 ``isValidSignature(digest, signature)`` answering the magic value in an ``eth_call``. The coordinator,
the auditor and the forgery prover all ask this, so an honest smart-wallet party is accepted everywhere the
contract accepts it, and nowhere else."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from eth_abi import encode

from ..envelope.errors import BadSignature
from ..envelope.manifest import recover_signer

__all__ = ["SignatureCheck", "chain_signature_check", "is_valid_signature_now"]

ERC1271_MAGIC = bytes.fromhex("1626ba7e")  # bytes4(keccak256("isValidSignature(bytes32,bytes)"))
_MAX_SIGNATURE_BYTES = 4096  # what a wallet may be asked to judge; an honest one is 65 to a few hundred bytes

SignatureCheck = Callable[[str, bytes, bytes], bool]
"""``check(party, digest, signature) -> bool``."""


def is_valid_signature_now(w3: Any, party: str, digest: bytes, signature: bytes, *, block: Any = "latest") -> bool:
    """OpenZeppelin ``SignatureChecker.isValidSignatureNow(party, digest, signature)`` against the chain `w3`
    reaches (at `block`). Never raises for a bad signature or a misbehaving wallet: that is False.

    Raises:
        OSError: the node could not be reached (requests' connection errors), as for any other read of it.
    """
    try:
        if recover_signer(digest, signature) == party:
            return True
    except BadSignature:
        pass
    if len(signature) > _MAX_SIGNATURE_BYTES or not w3.eth.get_code(party, block_identifier=block):
        return False
    call = ERC1271_MAGIC + encode(["bytes32", "bytes"], [bytes(digest), bytes(signature)])
    try:
        result = bytes(w3.eth.call({"to": party, "data": call}, block_identifier=block))
    except OSError:  # the node, not the wallet, failed (requests' errors are OSErrors): no answer is no verdict
        raise
    except Exception:  # noqa: BLE001 -- a wallet that reverts, runs out of gas or answers garbage says no
        return False
    return len(result) >= 32 and result[:4] == ERC1271_MAGIC and not any(result[4:32])


def chain_signature_check(w3: Any, *, block: Any = "latest") -> SignatureCheck:
    """:func:`is_valid_signature_now` bound to one chain (and block), as the envelope opener takes it."""
    return lambda party, digest, signature: is_valid_signature_now(w3, party, digest, signature, block=block)
