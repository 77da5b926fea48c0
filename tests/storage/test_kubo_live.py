"""KuboStore against a real kubo daemon: runs only when LEPTON_KUBO_API points at one
(e.g. ``LEPTON_KUBO_API=http://127.0.0.1:5001``, after ``ipfs daemon``).

These tests add small random files, pin and unpin them, and run ``repo/gc``, which removes every unpinned
block from that node: point them at a scratch node, not one whose cache you want to keep.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator

import pytest

from lepton_ledger.storage import cid as cidlib
from lepton_ledger.storage import unixfs
from lepton_ledger.storage.kubo import KUBO_API_ENV, KuboStore
from lepton_ledger.storage.store import BlockNotFound, StorageError

pytestmark = pytest.mark.skipif(
    not os.environ.get(KUBO_API_ENV), reason=f"{KUBO_API_ENV} is not set: no kubo daemon to test against"
)

CHUNK = unixfs.CHUNK_SIZE


@pytest.fixture
def store() -> Iterator[KuboStore]:
    # offline: a block this node lacks must fail at once, not be searched for on the IPFS network.
    with KuboStore(timeout=30, offline=True) as s:
        yield s


@pytest.mark.parametrize("cid_version", [0, 1])
@pytest.mark.parametrize("size", [0, 5, 2 * CHUNK + 1])
def test_round_trip_gives_kubo_defaults_cids(store: KuboStore, size: int, cid_version: int) -> None:
    data = secrets.token_bytes(size)
    cid = store.put(data, cid_version=cid_version, pin=False)
    assert cid == unixfs.file_cid(data, cid_version=cid_version)
    assert store.has(cid)
    assert store.get(cid) == data
    assert store.hash_only(data, cid_version=cid_version) == cid


def test_public_vector(store: KuboStore) -> None:
    assert store.put(b"hello", pin=False) == "QmWfVY9y3xjsixTgbd9AorQxH7VtMpzfx2HaWtsoUYecaX"


def test_pin_unpin_gc(store: KuboStore) -> None:
    kept_data, dropped_data = secrets.token_bytes(2 * CHUNK), secrets.token_bytes(2 * CHUNK)
    kept = store.put(kept_data)
    dropped = store.put(dropped_data, pin=False)
    try:
        assert kept in store.pins() and dropped not in store.pins()
        assert store.stat().pins >= 1
        assert store.gc() >= 3  # at least the unpinned file's two leaves and root
        assert not store.has(dropped)
        with pytest.raises(BlockNotFound):
            store.get(dropped)
        assert store.get(kept) == kept_data
    finally:
        store.unpin(kept)
    assert kept not in store.pins()
    with pytest.raises(StorageError, match=kept):
        store.unpin(kept)


def test_raw_blocks_and_missing_block(store: KuboStore) -> None:
    data = secrets.token_bytes(100)
    cid = cidlib.cid_to_str(cidlib.make_cid(data, version=1, codec=cidlib.RAW))
    store.put_block(cid, data)
    assert store.get_block(cid) == data
    absent = cidlib.cid_to_str(cidlib.make_cid(secrets.token_bytes(32), version=1, codec=cidlib.RAW))
    with pytest.raises(BlockNotFound) as err:
        store.get_block(absent)
    assert err.value.cid == absent


def test_car_export_gc_import(store: KuboStore) -> None:
    data = secrets.token_bytes(2 * CHUNK + 7)
    root = store.put(data, cid_version=1, pin=False)
    car = b"".join(store.export_car(root))
    store.gc()
    assert not store.has(root)
    assert store.import_car(car) == [root]
    try:
        assert store.get(root) == data
    finally:
        store.unpin(root)
