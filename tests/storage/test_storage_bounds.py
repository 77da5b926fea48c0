"""Bounded memory in the store (issue 11, item 3): a few KB of blocks that describe a petabyte file (a DAG
bomb) are refused from the root's declared size before a leaf is fetched, or by the byte count when the root
lies; a truncated packed ``blocksizes`` field and hostile CAR headers are named errors, not builtins; a CAR over
its byte limit is refused; ``ipfs cat --max-bytes`` says so in one line."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from storage_data import CHUNK, det_bytes
from storage_data import run_ipfs as _run

from lepton_ledger.storage import car
from lepton_ledger.storage.cid import (
    RAW,
    cid_to_str,
    encode_varint,
    make_cid,
    normalize,
)
from lepton_ledger.storage.dagpb import T_FILE, encode_node_raw, encode_unixfs
from lepton_ledger.storage.local import LocalStore
from lepton_ledger.storage.store import FileTooLarge, StorageError
from lepton_ledger.storage.unixfs import MAX_DEPTH

LEAF = det_bytes(1024, 5)


def bomb(store: LocalStore, *, levels: int, declared: int | None = None) -> tuple[str, int]:
    """A DAG of `levels` nodes above one 1 KiB raw leaf, each node linking 174 times to the one below: a few
    blocks, 174**levels KiB of file. The root declares `declared` bytes (None: the true size). Returns the root
    CID and the number of bytes the blocks hold."""
    child, size, stored = make_cid(LEAF, version=1, codec=RAW), len(LEAF), len(LEAF)
    store.put_block(cid_to_str(child), LEAF)
    for level in range(levels):
        filesize = size * 174 if declared is None or level < levels - 1 else declared
        block = encode_node_raw(
            [(child, "", size)] * 174, encode_unixfs(T_FILE, filesize=filesize, blocksizes=[size] * 174)
        )
        child, size, stored = make_cid(block, version=1), size * 174, stored + len(block)
        store.put_block(cid_to_str(child), block)
    return cid_to_str(child), stored


def test_a_dag_bomb_is_refused_from_its_root_before_any_leaf_is_read(store: LocalStore) -> None:
    root, stored = bomb(store, levels=5)  # 174**5 KiB: about 1.6e14 bytes
    assert stored < 64 * 1024
    reads: list[str] = []

    def get_block(cid: str) -> bytes:
        reads.append(cid)
        return store.get_block(cid)

    from lepton_ledger.storage.unixfs import iter_file

    with pytest.raises(FileTooLarge, match=r"declares \d{15} bytes, over the limit of 1048576"):
        next(iter_file(get_block, root, max_bytes=1 << 20))
    assert reads == [root]


def test_a_root_that_lies_about_its_size_is_refused_at_the_root(store: LocalStore) -> None:
    root, _ = bomb(store, levels=5, declared=10)
    taken = 0
    with pytest.raises(StorageError, match="declares filesize 10 but holds"):
        for piece in store.stream(root, max_bytes=1 << 20):
            taken += len(piece)
    assert taken == 0


def test_repeated_links_to_empty_nodes_are_refused_before_they_are_walked(store: LocalStore) -> None:
    """A file of size 0 whose root links N times to a node linking N times to an empty node: N**2 block fetches
    (16 million at N = 4,000, from ~350 KB of blocks) that yield nothing, so no byte count ever stops them. A link
    must carry a positive declared size, so the root is refused before any child is fetched. (N = 200 here: the
    old walk took its 40,000 fetches and this test failed on them.)"""
    empty = encode_node_raw([], encode_unixfs(T_FILE))
    child = make_cid(empty, version=0)
    store.put_block(cid_to_str(child), empty)
    for _ in range(2):
        block = encode_node_raw([(child, "", 0)] * 200, encode_unixfs(T_FILE, filesize=0, blocksizes=[0] * 200))
        child = make_cid(block, version=0)
        store.put_block(cid_to_str(child), block)
    reads: list[str] = []

    def get_block(cid: str) -> bytes:
        reads.append(cid)
        return store.get_block(cid)

    from lepton_ledger.storage.unixfs import iter_file

    with pytest.raises(StorageError, match="one positive size per link"):
        list(iter_file(get_block, cid_to_str(child), max_bytes=1 << 20))
    assert reads == [cid_to_str(child)]


def test_a_child_that_is_not_the_size_its_parent_declares_is_refused(store: LocalStore) -> None:
    leaf = make_cid(LEAF, version=1, codec=RAW)
    store.put_block(cid_to_str(leaf), LEAF)
    block = encode_node_raw([(leaf, "", 7)], encode_unixfs(T_FILE, filesize=7, blocksizes=[7]))
    root = cid_to_str(make_cid(block, version=1))
    store.put_block(root, block)
    with pytest.raises(StorageError, match="holds 1024 bytes but its parent declares 7"):
        store.get(root)


def test_a_dag_deeper_than_the_bound_is_refused(store: LocalStore) -> None:
    child, size = make_cid(LEAF, version=1, codec=RAW), len(LEAF)
    store.put_block(cid_to_str(child), LEAF)
    for _ in range(MAX_DEPTH + 1):
        block = encode_node_raw([(child, "", size)], encode_unixfs(T_FILE, filesize=size, blocksizes=[size]))
        child = make_cid(block, version=1)
        store.put_block(cid_to_str(child), block)
    with pytest.raises(StorageError, match=f"more than {MAX_DEPTH} levels deep"):
        store.get(cid_to_str(child))


def test_a_truncated_packed_blocksizes_field_is_a_storage_error(store: LocalStore) -> None:
    data = b"\x08\x02" + b"\x22\x02\x80\x80"  # Type File, then field 4 packed: 2 bytes of an unfinished varint
    block = encode_node_raw([], data)
    cid = cid_to_str(make_cid(block, version=1))
    store.put_block(cid, block)
    with pytest.raises(StorageError, match="packed blocksizes"):
        store.get(cid)


@pytest.mark.parametrize(
    "header",
    [
        b"\x81" * 2000 + b"\x00",  # arrays nested 2000 deep
        b"\xa2\x81\x00\x00\x67version\x01",  # a map whose key is an array (unhashable)
        b"\xa1\x9a\xff\xff\xff\xff",  # an array announcing 4 billion items in 6 bytes
    ],
)
def test_hostile_car_headers_are_invalid_car(tmp_path: Path, store: LocalStore, header: bytes) -> None:
    path = tmp_path / "x.car"
    path.write_bytes(encode_varint(len(header)) + header)
    with pytest.raises(car.InvalidCar):
        car.import_car(store, path)


def test_car_import_refuses_more_bytes_than_its_limit_and_stores_nothing(
    tmp_path: Path, store: LocalStore, make_store
) -> None:  # type: ignore[no-untyped-def]
    cid = store.put(det_bytes(3 * CHUNK, 9))
    path = tmp_path / "f.car"
    car.export_car(store, cid, path)
    target = make_store()
    with pytest.raises(car.InvalidCar, match="more than 262144 bytes"):
        car.import_car(target, path, max_bytes=CHUNK)
    assert target.stat().blocks == 0
    assert car.import_car(target, path) == [cid]


def test_cat_refuses_a_file_over_max_bytes_in_one_line(env: Path) -> None:
    path = env / "f"
    path.write_bytes(det_bytes(2 * CHUNK, 4))
    cid = _run("add", str(path)).stdout.strip()
    result = _run("cat", "--max-bytes", str(CHUNK), cid)
    assert result.exit_code == 1 and result.stdout_bytes == b""
    assert result.stderr.count("\n") == 1 and f"file {cid} declares {2 * CHUNK} bytes" in result.stderr


def test_read_car_bounds_a_stream_too() -> None:
    with pytest.raises(car.InvalidCar):
        car.read_car(io.BytesIO(b"\x05\x81\x81\x81\x81\x81"))


def test_a_block_larger_than_any_block_is_refused_by_both_stores(store: LocalStore) -> None:
    from fake_kubo import FakeKubo

    from lepton_ledger.storage.kubo import KuboStore
    from lepton_ledger.storage.store import MAX_BLOCK_BYTES, BlockCorrupted

    cid = cid_to_str(make_cid(LEAF, version=1, codec=RAW))
    huge = bytes(MAX_BLOCK_BYTES + 1)
    store.put_block(cid, LEAF)
    store._path(normalize(cid)).write_bytes(huge)
    with pytest.raises(BlockCorrupted, match=f"over {MAX_BLOCK_BYTES} bytes"):
        store.get_block(cid)
    with FakeKubo() as daemon, KuboStore(daemon.url, retries=0, offline=True) as kubo:
        daemon.blocks[make_cid(LEAF, version=1, codec=RAW)[-32:]] = huge
        with pytest.raises(StorageError, match=f"more than {MAX_BLOCK_BYTES} bytes for one block"):
            kubo.get_block(cid)
