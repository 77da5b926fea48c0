"""Checks and conversions of the Solidity values that merkle.py and typed_data.py hash.

Hashing a value of the wrong width gives a digest the contract will never reproduce, and nothing fails
until a proof is refused on-chain; so every value is checked here, where the error can still name it.
"""

from __future__ import annotations

from functools import lru_cache

from eth_utils import is_address, to_checksum_address

from ..errors import LeptonError


class InvalidValue(LeptonError, ValueError):
    """A value does not fit the Solidity type it stands for (bytes32, address, uintN)."""


def as_bytes32(value: bytes | str, name: str) -> bytes:
    """Returns `value` (32 bytes, or their 0x-hex) as bytes.

    Raises:
        InvalidValue: not 32 bytes.
    """
    if isinstance(value, str):
        text = value[2:] if value[:2] in ("0x", "0X") else value
        try:
            value = bytes.fromhex(text)
        except ValueError:
            raise InvalidValue(f"{name} is not hex: {value!r}") from None
    if not isinstance(value, (bytes, bytearray)) or len(value) != 32:
        raise InvalidValue(f"{name} must be 32 bytes, got {value!r}")
    return bytes(value)


def as_bytes(value: bytes | str, name: str) -> bytes:
    """Returns `value` (bytes, or their 0x-hex) as bytes.

    Raises:
        InvalidValue: neither bytes nor hex.
    """
    if isinstance(value, str):
        text = value[2:] if value[:2] in ("0x", "0X") else value
        try:
            return bytes.fromhex(text)
        except ValueError:
            raise InvalidValue(f"{name} is not hex: {value!r}") from None
    if not isinstance(value, (bytes, bytearray)):
        raise InvalidValue(f"{name} must be bytes, got {type(value).__name__}")
    return bytes(value)


def as_address(value: object, name: str) -> str:
    """Returns the checksummed form of an address given as a string (any case) or an object with `.address`.

    Raises:
        InvalidValue: not a 20-byte address, or mixed case with a wrong checksum.
    """
    text = str(getattr(value, "address", value))
    if len(text) > 42 or not is_address(text):
        raise InvalidValue(f"{name} is not an address: {value!r}")
    checksum = checksummed(text)
    digits = text[2:]
    # eth_utils 5 accepts any letter case; a mixed-case address carries a checksum (EIP-55), so check it.
    if digits not in (digits.lower(), digits.upper()) and text != checksum:
        raise InvalidValue(f"{name} has a wrong EIP-55 checksum: {value!r}")
    return checksum


@lru_cache(maxsize=4096)
def checksummed(address: str) -> str:
    """The EIP-55 form of a valid address's text. Cached: the same few parties' and contracts' addresses recur
    in every envelope, log and payout leaf, and each checksum is a keccak."""
    return to_checksum_address(address)


def as_uint(value: int, bits: int, name: str) -> int:
    """Returns `value` after checking that it fits uint`bits`.

    Raises:
        InvalidValue: not an int (bool included), negative, or too large.
    """
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidValue(f"{name} must be an int, got {type(value).__name__}")
    if not 0 <= value < 1 << bits:
        raise InvalidValue(f"{name} = {value} does not fit uint{bits}")
    return int(value)
