"""CAR v1 export/import: kubo's byte layout, round trips, and refusal of corrupted or malformed files."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from storage_data import CHUNK, det_bytes

from lepton_ledger.storage.car import (
    InvalidCar,
    encode_header,
    export_car,
    import_car,
    iter_dag,
    read_car,
    write_car,
)
from lepton_ledger.storage.cid import encode_varint, parse_cid
from lepton_ledger.storage.local import LocalStore
from lepton_ledger.storage.store import BlockCorrupted, BlockNotFound

HELLO = "QmWfVY9y3xjsixTgbd9AorQxH7VtMpzfx2HaWtsoUYecaX"


def test_the_car_of_hello_is_byte_exact(store: LocalStore) -> None:
    # Written out from the CAR v1 spec: varint header length, dag-cbor {"roots": [tag42(0x00 ++ cid)],
    # "version": 1} with the keys in length-first order, then varint(len) ++ cid ++ block.
    assert store.put(b"hello") == HELLO
    cid = parse_cid(HELLO).binary
    header = b"\xa2\x65roots\x81\xd8\x2a\x58\x23\x00" + cid + b"\x67version\x01"
    leaf = bytes.fromhex("0a0b0802120568656c6c6f1805")
    expected = encode_varint(len(header)) + header + encode_varint(len(cid) + len(leaf)) + cid + leaf
    out = io.BytesIO()
    assert write_car(store, HELLO, out) == 1
    assert out.getvalue() == expected
    assert encode_header([parse_cid(HELLO)]) == header


@given(size=st.integers(min_value=0, max_value=4 * CHUNK), seed=st.integers(0, 2**32), version=st.sampled_from([0, 1]))
@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_export_import_round_trip(make_store, tmp_path: Path, size: int, seed: int, version: int) -> None:  # type: ignore[no-untyped-def]
    src, dst = make_store(), make_store()
    data = det_bytes(size, seed)
    root = src.put(data, cid_version=version)
    car = tmp_path / f"{root}.car"
    blocks = export_car(src, root, car)
    assert blocks == len(list(iter_dag(src, root)))
    assert import_car(dst, car) == [root]
    assert dst.get(root) == data and dst.pins() == [root]


def test_repeated_chunks_are_exported_once(store: LocalStore) -> None:
    root = store.put(b"\0" * (3 * CHUNK))  # three identical leaves
    out = io.BytesIO()
    assert write_car(store, root, out) == 2
    out.seek(0)
    roots, sections = read_car(out)
    assert [str(r) for r in roots] == [root] and len(list(sections)) == 2


def _car_bytes(store: LocalStore, root: str) -> bytes:
    out = io.BytesIO()
    write_car(store, root, out)
    return out.getvalue()


def test_a_corrupted_block_is_named_and_nothing_is_stored(store: LocalStore, make_store, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    root = store.put(det_bytes(2 * CHUNK + 9, seed=1))
    raw = bytearray(_car_bytes(store, root))
    raw[-5] ^= 0xFF  # inside the last section's block
    last_cid = str(list(iter_dag(store, root))[-1][0])
    path = tmp_path / "bad.car"
    path.write_bytes(bytes(raw))
    target = make_store()
    with pytest.raises(BlockCorrupted) as info:
        import_car(target, path)
    assert info.value.cid == last_cid
    assert target.stat().blocks == 0 and target.pins() == []


@pytest.mark.parametrize("cut", [0, 1, 30, -1])
def test_truncated_or_foreign_files_are_refused(store: LocalStore, make_store, tmp_path: Path, cut: int) -> None:  # type: ignore[no-untyped-def]
    root = store.put(det_bytes(CHUNK + 1, seed=2))
    raw = _car_bytes(store, root)
    path = tmp_path / "cut.car"
    path.write_bytes(raw[:cut] if cut else b"hello, not a car")
    target = make_store()
    with pytest.raises(InvalidCar):
        import_car(target, path)
    assert target.stat().blocks == 0


def test_a_car_missing_blocks_of_its_root_is_refused_when_pinning(
    store: LocalStore, make_store, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    root = store.put(det_bytes(2 * CHUNK + 1, seed=3))
    header = encode_header([parse_cid(root)])
    cid, block = next(iter(iter_dag(store, root)))  # only the root block, not its leaves
    path = tmp_path / "partial.car"
    path.write_bytes(
        encode_varint(len(header)) + header + encode_varint(len(cid.binary) + len(block)) + cid.binary + block
    )
    target = make_store()
    with pytest.raises(BlockNotFound):
        import_car(target, path)
    assert target.pins() == []


def test_export_of_an_unknown_cid_writes_no_file(store: LocalStore, tmp_path: Path) -> None:
    out = tmp_path / "none.car"
    with pytest.raises(BlockNotFound):
        export_car(store, HELLO, out)
    assert list(tmp_path.iterdir()) == [tmp_path / "store"]
