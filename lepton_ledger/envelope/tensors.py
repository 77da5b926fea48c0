"""Tensors to bytes and back with safetensors, and the digest the manifest commits to.

Determinism: safetensors lays tensors out sorted by (dtype alignment, descending; then name) and writes its
JSON header in that order, whatever order the mapping had, so the same tensors give the same bytes (checked
by a test against a fixed digest). We write no ``__metadata__``: everything descriptive lives in the signed
manifest, where it is covered by the signature.

Digest: SHA-256 of the safetensors bytes (the whole file: header and data). SHA-256 rather than keccak
because it is the hash of IPFS CIDs and of ``hashlib``, so any tool can recompute it without an Ethereum
library; the manifest names no algorithm, the format version fixes it.
"""

from __future__ import annotations

import hashlib
import json
import struct
from collections.abc import Mapping

import torch
from safetensors.torch import load as _st_load
from safetensors.torch import save as _st_save

from .errors import InvalidTensors, MalformedPayload, OversizeTensor

__all__ = [
    "DEFAULT_MAX_TENSOR_BYTES",
    "check_tensor_sizes",
    "deserialize_tensors",
    "serialize_tensors",
    "tensor_digest",
]

#: Default bound on one tensor's data: 256 MiB, well above any model the demo trains.
DEFAULT_MAX_TENSOR_BYTES = 256 * 1024 * 1024
# safetensors' own cap on the JSON header; a larger announced header is malformed, not merely big.
_MAX_HEADER_BYTES = 100 * 1024 * 1024


def tensor_digest(data: bytes) -> bytes:
    """SHA-256 of serialized tensors (32 bytes)."""
    return hashlib.sha256(data).digest()


def serialize_tensors(
    tensors: Mapping[str, torch.Tensor],
    *,
    max_tensor_bytes: int = DEFAULT_MAX_TENSOR_BYTES,
) -> bytes:
    """safetensors bytes of `tensors` (moved to the CPU, made contiguous, detached).

    Raises:
        InvalidTensors: not a non-empty mapping of str to tensors, or safetensors refuses them.
        OversizeTensor: a tensor's data exceeds `max_tensor_bytes`.
    """
    if not isinstance(tensors, Mapping) or not tensors:
        raise InvalidTensors("tensors must be a non-empty mapping of name to tensor")
    prepared: dict[str, torch.Tensor] = {}
    for name, tensor in tensors.items():
        if not isinstance(name, str) or not isinstance(tensor, torch.Tensor):
            raise InvalidTensors(f"tensor {name!r}: expected str -> torch.Tensor")
        size = tensor.numel() * tensor.element_size()
        if size > max_tensor_bytes:
            raise OversizeTensor(f"tensor {name!r} has {size} bytes, over the bound of {max_tensor_bytes}")
        prepared[name] = tensor.detach().to("cpu").contiguous()
    try:
        return _st_save(prepared)
    except Exception as exc:  # safetensors raises ValueError / its own SafetensorError / RuntimeError
        raise InvalidTensors(f"safetensors refused the tensors: {exc}") from exc


def check_tensor_sizes(data: bytes, *, max_tensor_bytes: int = DEFAULT_MAX_TENSOR_BYTES) -> None:
    """Reads only the safetensors header and refuses any tensor over `max_tensor_bytes`, so an oversize
    tensor is refused before anything is allocated for it.

    Raises:
        MalformedPayload: the header does not parse.
        OversizeTensor: a tensor's data (from its offsets) exceeds `max_tensor_bytes`.
    """
    if len(data) < 8:
        raise MalformedPayload("safetensors data shorter than its 8-byte header length")
    (header_len,) = struct.unpack_from("<Q", data, 0)
    if header_len > _MAX_HEADER_BYTES or 8 + header_len > len(data):
        raise MalformedPayload("safetensors header length out of range")
    try:
        header = json.loads(data[8 : 8 + header_len])
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise MalformedPayload(f"safetensors header is not JSON: {exc}") from None
    if not isinstance(header, dict):
        raise MalformedPayload("safetensors header is not an object")
    for name, info in header.items():
        if name == "__metadata__":
            continue
        try:
            start, end = info["data_offsets"]
            size = int(end) - int(start)
        except (TypeError, KeyError, ValueError):
            raise MalformedPayload(f"tensor {name!r}: bad data_offsets") from None
        if size > max_tensor_bytes:
            raise OversizeTensor(f"tensor {name!r} has {size} bytes, over the bound of {max_tensor_bytes}")


def deserialize_tensors(data: bytes, *, max_tensor_bytes: int = DEFAULT_MAX_TENSOR_BYTES) -> dict[str, torch.Tensor]:
    """Tensors from safetensors bytes, sizes checked first (see :func:`check_tensor_sizes`).

    Raises:
        MalformedPayload: the bytes are not valid safetensors.
        OversizeTensor: a tensor exceeds `max_tensor_bytes`.
    """
    check_tensor_sizes(data, max_tensor_bytes=max_tensor_bytes)
    try:
        return _st_load(data)
    except Exception as exc:  # SafetensorError is not exported under a stable name across versions
        raise MalformedPayload(f"safetensors refused the data: {exc}") from exc
