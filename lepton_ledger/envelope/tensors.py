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
import struct
import sys
from collections.abc import Mapping

import torch
from safetensors.torch import load as _st_load
from safetensors.torch import save as _st_save

from ..protocol.errors import ProtocolError
from ..protocol.safetensors import TensorEntry, TensorTooLarge, parse_header
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


def tensor_digest(data: bytes | bytearray | memoryview) -> bytes:
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


def check_tensor_sizes(
    data: bytes | bytearray | memoryview, *, max_tensor_bytes: int = DEFAULT_MAX_TENSOR_BYTES
) -> dict[str, TensorEntry]:
    """Reads only the safetensors header, with bounds (``protocol.safetensors``), and refuses any tensor over
    `max_tensor_bytes`, so an oversize or hostile header is refused before anything is allocated for it;
    returns the header's entries.

    Raises:
        MalformedPayload: the header does not parse or does not describe these bytes.
        OversizeTensor: a tensor's data (from its offsets) exceeds `max_tensor_bytes`.
    """
    try:
        return parse_header(data, max_tensor_bytes=max_tensor_bytes)
    except TensorTooLarge as exc:
        raise OversizeTensor(str(exc)) from None
    except ProtocolError as exc:
        raise MalformedPayload(str(exc)) from None


def deserialize_tensors(
    data: bytes | bytearray | memoryview, *, max_tensor_bytes: int = DEFAULT_MAX_TENSOR_BYTES
) -> dict[str, torch.Tensor]:
    """Tensors from safetensors bytes, the header checked first (see :func:`check_tensor_sizes`). From a
    writable buffer (an opened envelope's plaintext) the tensors are views of it, not copies, so a large update
    is held once; from immutable bytes they are copied by safetensors.

    Raises:
        MalformedPayload: the bytes are not valid safetensors.
        OversizeTensor: a tensor exceeds `max_tensor_bytes`.
    """
    entries = check_tensor_sizes(data, max_tensor_bytes=max_tensor_bytes)
    view = memoryview(data)
    if not view.readonly and sys.byteorder == "little" and all(e.dtype in _TORCH_DTYPES for e in entries.values()):
        (header_len,) = struct.unpack_from("<Q", view, 0)
        base = 8 + header_len
        return {name: _view_tensor(view, base, e) for name, e in entries.items()}
    try:
        return _st_load(bytes(view))
    except Exception as exc:  # SafetensorError is not exported under a stable name across versions
        raise MalformedPayload(f"safetensors refused the data: {exc}") from exc


_TORCH_DTYPES = {
    "BOOL": torch.bool,
    "U8": torch.uint8,
    "I8": torch.int8,
    "I16": torch.int16,
    "I32": torch.int32,
    "I64": torch.int64,
    "F16": torch.float16,
    "BF16": torch.bfloat16,
    "F32": torch.float32,
    "F64": torch.float64,
}


def _view_tensor(view: memoryview, base: int, entry: TensorEntry) -> torch.Tensor:
    dtype = _TORCH_DTYPES[entry.dtype]
    if entry.end == entry.start:
        return torch.empty(entry.shape, dtype=dtype)
    flat = torch.frombuffer(view[base + entry.start : base + entry.end], dtype=dtype)
    return flat.reshape(entry.shape)
