"""Canonical JSON, and the one bounded JSON reader every exchanged document goes through.

Canonical form: sorted keys, no spaces, UTF-8, no NaN/Infinity. The reader refuses, before and while
parsing: more than `max_bytes`, nesting deeper than `max_depth` (checked on the raw bytes first, so
``[[[[...`` never reaches the recursive decoder), NaN/Infinity and numbers that overflow to it, and integers longer than 80 digits (Python's
int() of a huge digit string is quadratic). Everything it raises is a MalformedDocument or DocumentTooLarge.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .errors import DocumentTooLarge, MalformedDocument

MAX_DEPTH = 16
FILE_BYTES = 16 << 20  # a JSON file a person hands a command (deployment, key, signature file): far below this
MAX_INT_DIGITS = 80  # a uint256 has 78


def canonical_json(value: Any) -> bytes:
    """The canonical bytes of `value` (raises ValueError for NaN/Infinity)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), allow_nan=False).encode()


def _refuse_constant(name: str) -> Any:
    raise MalformedDocument(f"{name} is not a JSON number this protocol accepts")


def _bounded_int(text: str) -> int:
    if len(text.lstrip("-")) > MAX_INT_DIGITS:
        raise MalformedDocument(f"integer of {len(text)} digits")
    return int(text)


def _finite_float(text: str) -> float:
    value = float(text)
    if value in (float("inf"), float("-inf")):  # 1e400 parses to infinity
        raise MalformedDocument(f"number {text[:20]} is out of range")
    return value


def _depth(data: bytes) -> int:
    """The deepest nesting of [ and { outside strings."""
    depth = deepest = 0
    in_string = escaped = False
    for byte in data:
        if in_string:
            if escaped:
                escaped = False
            elif byte == 0x5C:  # backslash
                escaped = True
            elif byte == 0x22:
                in_string = False
        elif byte == 0x22:
            in_string = True
        elif byte in (0x5B, 0x7B):
            depth += 1
            deepest = max(deepest, depth)
        elif byte in (0x5D, 0x7D):
            depth -= 1
    return deepest


def read_bounded(path: str | Path, max_bytes: int) -> bytes:
    """The bytes of the file at `path`, reading at most `max_bytes` + 1 of them (``/dev/zero`` or a huge file is
    refused without being read whole).

    Raises:
        DocumentTooLarge: the file holds more than `max_bytes`.
        OSError: as ``open`` (missing file, a folder, no permission).
    """
    with open(path, "rb") as f:
        data = f.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise DocumentTooLarge(f"{path} has more than {max_bytes} bytes, over the bound for this file")
    return data


def load_json(data: bytes | bytearray | memoryview, *, what: str, max_bytes: int, max_depth: int = MAX_DEPTH) -> Any:
    """The JSON value of `data`, bounded.

    Raises:
        DocumentTooLarge: over `max_bytes`.
        MalformedDocument: not UTF-8 JSON, nested deeper than `max_depth`, NaN/Infinity, an absurd integer.
    """
    raw = bytes(data)
    if len(raw) > max_bytes:
        raise DocumentTooLarge(f"{what} has {len(raw)} bytes, over the bound of {max_bytes}")
    if _depth(raw) > max_depth:
        raise MalformedDocument(f"{what} is nested deeper than {max_depth} levels")
    try:
        return json.loads(
            raw.decode("utf-8"), parse_constant=_refuse_constant, parse_int=_bounded_int, parse_float=_finite_float
        )
    except MalformedDocument as exc:
        raise MalformedDocument(f"{what}: {exc}") from None
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise MalformedDocument(f"{what} is not JSON: {exc}") from None


def load_object(
    data: bytes | bytearray | memoryview, *, what: str, max_bytes: int, max_depth: int = MAX_DEPTH
) -> dict[str, Any]:
    """`load_json` of a document that must be a JSON object. Raises as `load_json`."""
    value = load_json(data, what=what, max_bytes=max_bytes, max_depth=max_depth)
    if not isinstance(value, dict):
        raise MalformedDocument(f"{what} is not a JSON object")
    return value
