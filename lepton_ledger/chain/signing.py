"""Transactions signed with libsecp256k1 directly.

The ledger's transactions are EIP-1559 ones (type 2) with no access list: for those, the signing digest and the
raw bytes are built here (RLP of the fields, keccak, a recoverable signature) instead of by eth_account, whose
validation and formatting took ~0.4 ms a transaction against ~0.1 ms (a round signs one per partner and a few of
the coordinator's). Any other transaction (legacy, an access list, a contract creation, a field of another type)
goes to eth_account as before. tests/chain/test_signing.py checks the bytes against eth_account's.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import rlp
from eth_account.signers.local import LocalAccount
from eth_utils import is_checksum_address, keccak

from .typed_data import sign_digest

__all__ = ["sign_transaction"]

_DYNAMIC_FEE = 2
_HEX = re.compile(r"0x(?:[0-9a-fA-F]{2})*")
_INTEGERS = ("chainId", "nonce", "maxPriorityFeePerGas", "maxFeePerGas", "gas")
_KNOWN = {*_INTEGERS, "to", "value", "data", "type", "accessList", "from"}


def sign_transaction(account: LocalAccount, tx: Mapping[str, Any]) -> tuple[bytes, bytes]:
    """``(raw transaction, transaction hash)`` of `tx` signed by `account`, as ``account.sign_transaction`` gives
    them."""
    fields = _dynamic_fee_fields(account, tx)
    if fields is None:
        signed = account.sign_transaction(dict(tx))
        return bytes(signed.raw_transaction), bytes(signed.hash)
    signature = sign_digest(bytes(account.key), keccak(bytes([_DYNAMIC_FEE]) + rlp.encode(fields)))
    y_parity, r, s = signature[64] - 27, int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:64], "big")
    raw = bytes([_DYNAMIC_FEE]) + rlp.encode([*fields, y_parity, r, s])
    return raw, keccak(raw)


def _dynamic_fee_fields(account: LocalAccount, tx: Mapping[str, Any]) -> list[Any] | None:
    """The unsigned EIP-1559 fields in their RLP order, or None for a transaction this module leaves to
    eth_account (which then accepts it or says what is wrong with it)."""
    kind = tx.get("type", _DYNAMIC_FEE)
    if set(tx) - _KNOWN or not (kind == hex(_DYNAMIC_FEE) or (type(kind) is int and kind == _DYNAMIC_FEE)):
        return None
    if tx.get("accessList", []) != [] or tx.get("from", account.address) != account.address:
        return None
    integers = [tx.get(name) for name in _INTEGERS]
    value = tx.get("value", 0)
    if not all(type(n) is int and n >= 0 for n in (*integers, value)):
        return None
    to, data = tx.get("to"), tx.get("data", b"")
    if not (isinstance(to, str) and is_checksum_address(to)):  # as eth_account, which refuses other spellings
        return None
    if isinstance(data, str):
        if not _HEX.fullmatch(data):  # bytes.fromhex would skip whitespace eth_account refuses
            return None
        data = bytes.fromhex(data[2:])
    if not isinstance(data, (bytes, bytearray)):
        return None
    chain_id, nonce, tip, fee_cap, gas = integers
    return [chain_id, nonce, tip, fee_cap, gas, bytes.fromhex(to[2:]), value, bytes(data), []]
