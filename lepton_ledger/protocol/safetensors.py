"""The safetensors header (an 8-byte little-endian length, then a JSON object of tensor entries), read with
bounds before safetensors itself touches the bytes: header size, nesting, tensor count, dtypes, ranks, and
offsets that must lie inside the data, agree with dtype x shape, and tile the data without overlap. A header that passes cannot make the
loader allocate more than the bytes it was given."""

from __future__ import annotations

import struct
from dataclasses import dataclass
from math import prod

from .errors import DocumentTooLarge, MalformedDocument
from .jsonio import load_object

MAX_HEADER_BYTES = 16 << 20
MAX_TENSORS = 100_000
MAX_RANK = 8
DTYPE_BYTES = {
    "BOOL": 1,
    "U8": 1,
    "I8": 1,
    "F8_E5M2": 1,
    "F8_E4M3": 1,
    "I16": 2,
    "U16": 2,
    "F16": 2,
    "BF16": 2,
    "I32": 4,
    "U32": 4,
    "F32": 4,
    "I64": 8,
    "U64": 8,
    "F64": 8,
}


class TensorTooLarge(DocumentTooLarge):
    """One tensor is over the reader's per-tensor bound."""


@dataclass(frozen=True)
class TensorEntry:
    dtype: str
    shape: tuple[int, ...]
    start: int
    end: int


def _natural(value: object, what: str) -> int:
    if type(value) is not int or value < 0:
        raise MalformedDocument(f"{what} must be a non-negative integer, not {str(value)[:40]}")
    return value


def parse_header(data: bytes | bytearray | memoryview, *, max_tensor_bytes: int) -> dict[str, TensorEntry]:
    """The tensor entries of safetensors `data`, each checked against the bounds above.

    Raises:
        TensorTooLarge: a tensor is over `max_tensor_bytes`.
        DocumentTooLarge: the header is too large.
        MalformedDocument: anything else that is not a well-formed header for these bytes.
    """
    if len(data) < 8:
        raise MalformedDocument("safetensors data shorter than its 8-byte header length")
    (header_len,) = struct.unpack_from("<Q", data, 0)
    if header_len > MAX_HEADER_BYTES:
        raise DocumentTooLarge(f"safetensors header of {header_len} bytes, over the bound of {MAX_HEADER_BYTES}")
    if 8 + header_len > len(data):
        raise MalformedDocument("safetensors header runs past the end of the data")
    header = load_object(
        memoryview(data)[8 : 8 + header_len], what="safetensors header", max_bytes=MAX_HEADER_BYTES, max_depth=3
    )
    if len(header) > MAX_TENSORS + 1:
        raise DocumentTooLarge(f"safetensors header names {len(header)} tensors, over {MAX_TENSORS}")
    available = len(data) - 8 - header_len
    entries: dict[str, TensorEntry] = {}
    for name, info in header.items():
        if name == "__metadata__":
            if not isinstance(info, dict) or not all(isinstance(v, str) for v in info.values()):
                raise MalformedDocument("safetensors __metadata__ must map strings to strings")
            continue
        if not isinstance(info, dict) or set(info) != {"dtype", "shape", "data_offsets"}:
            raise MalformedDocument(f"tensor {name[:40]!r}: entry needs exactly dtype, shape, data_offsets")
        dtype, shape, offsets = info["dtype"], info["shape"], info["data_offsets"]
        if dtype not in DTYPE_BYTES:
            raise MalformedDocument(f"tensor {name[:40]!r}: unknown dtype {str(dtype)[:20]}")
        if not isinstance(shape, list) or len(shape) > MAX_RANK:
            raise MalformedDocument(f"tensor {name[:40]!r}: shape must be a list of at most {MAX_RANK} sizes")
        dims = tuple(_natural(d, f"tensor {name[:40]!r} shape") for d in shape)
        if not isinstance(offsets, list) or len(offsets) != 2:
            raise MalformedDocument(f"tensor {name[:40]!r}: data_offsets must be [start, end]")
        start, end = (_natural(o, f"tensor {name[:40]!r} data_offsets") for o in offsets)
        if end - start > max_tensor_bytes:
            raise TensorTooLarge(f"tensor {name[:40]!r} has {end - start} bytes, over the bound of {max_tensor_bytes}")
        if not start <= end <= available:
            raise MalformedDocument(f"tensor {name[:40]!r}: data_offsets [{start}, {end}] outside {available} bytes")
        if prod(dims) * DTYPE_BYTES[dtype] != end - start:
            raise MalformedDocument(f"tensor {name[:40]!r}: {dtype} x {list(dims)} is not {end - start} bytes")
        entries[name] = TensorEntry(dtype, dims, start, end)
    # As safetensors requires: the tensors tile the data exactly, so none overlaps another (they may become
    # views of one buffer) and no byte is unaccounted for.
    covered = 0
    for entry in sorted(entries.values(), key=lambda e: (e.start, e.end)):
        if entry.start != covered:
            raise MalformedDocument(f"safetensors data_offsets overlap or leave a gap at byte {covered}")
        covered = entry.end
    if covered != available:
        raise MalformedDocument(f"safetensors tensors cover {covered} of {available} data bytes")
    return entries
