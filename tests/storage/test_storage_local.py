"""LocalStore: round trips, corruption and loss named by CID, pins and gc, a killed writer, several processes."""

from __future__ import annotations

import multiprocessing
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from storage_data import CHUNK, det_bytes

from lepton_ledger.storage.car import iter_dag
from lepton_ledger.storage.local import LocalStore
from lepton_ledger.storage.store import (
    BlockCorrupted,
    BlockNotFound,
    InvalidCID,
    StorageError,
)
from lepton_ledger.storage.unixfs import import_file

_FIXTURE_OK = [HealthCheck.function_scoped_fixture]


@given(
    size=st.integers(min_value=0, max_value=3 * CHUNK + 3), seed=st.integers(0, 2**32), version=st.sampled_from([0, 1])
)
@settings(max_examples=30, deadline=None, suppress_health_check=_FIXTURE_OK)
def test_put_get_round_trip(store: LocalStore, size: int, seed: int, version: int) -> None:
    data = det_bytes(size, seed)
    cid = store.put(data, cid_version=version)
    assert cid == import_file(data, cid_version=version).cid
    assert store.get(cid) == data
    assert b"".join(store.stream(cid)) == data
    assert cid in store.pins() and store.has(cid)


def test_put_of_a_stream_matches_put_of_bytes(store: LocalStore, tmp_path: Path) -> None:
    data = det_bytes(4 * CHUNK + 1, seed=1)
    path = tmp_path / "f"
    path.write_bytes(data)
    with open(path, "rb") as f:
        assert store.put(f) == store.put(data)


@given(
    block_index=st.integers(min_value=0, max_value=6),
    offset=st.integers(min_value=0, max_value=2**20),
    version=st.sampled_from([0, 1]),
)
@settings(max_examples=25, deadline=None, suppress_health_check=_FIXTURE_OK)
def test_a_flipped_byte_in_any_block_is_detected_and_named(
    make_store, block_index: int, offset: int, version: int
) -> None:  # type: ignore[no-untyped-def]
    from lepton_ledger.storage.cid import parse_cid

    store = make_store()
    data = det_bytes(5 * CHUNK + 100, seed=42)  # 6 leaves + a root: 7 blocks
    root = store.put(data, cid_version=version)
    cids = [str(cid) for cid, _ in iter_dag(store, root)]
    assert len(cids) == 7
    victim = cids[block_index]
    path = store._path(parse_cid(victim))
    raw = bytearray(path.read_bytes())
    raw[offset % len(raw)] ^= 0x01
    path.write_bytes(bytes(raw))
    with pytest.raises(BlockCorrupted) as info:
        store.get(root)
    assert info.value.cid == victim and victim in str(info.value)
    with pytest.raises(BlockCorrupted):
        store.pin(root)


def test_a_missing_block_is_named(store: LocalStore) -> None:
    from lepton_ledger.storage.cid import parse_cid

    root = store.put(det_bytes(3 * CHUNK, seed=2))
    middle = [str(c) for c, _ in iter_dag(store, root)][2]
    store._path(parse_cid(middle)).unlink()
    with pytest.raises(BlockNotFound) as info:
        store.get(root)
    assert info.value.cid == middle
    assert not store.has(middle) and store.has(root)


def test_unknown_and_malformed_cids(store: LocalStore) -> None:
    with pytest.raises(BlockNotFound):
        store.get("QmWfVY9y3xjsixTgbd9AorQxH7VtMpzfx2HaWtsoUYecaX")
    with pytest.raises(InvalidCID):
        store.get("not-a-cid")


def test_put_block_refuses_bytes_that_do_not_match(store: LocalStore) -> None:
    with pytest.raises(BlockCorrupted):
        store.put_block("QmWfVY9y3xjsixTgbd9AorQxH7VtMpzfx2HaWtsoUYecaX", b"not hello")
    assert store.stat().blocks == 0


def test_gc_keeps_pinned_dags_and_removes_the_rest(store: LocalStore) -> None:
    kept = store.put(det_bytes(2 * CHUNK + 1, seed=3))
    dropped = store.put(det_bytes(2 * CHUNK + 1, seed=4), pin=False)
    unpinned = store.put(det_bytes(CHUNK + 1, seed=5))
    store.unpin(unpinned)
    before = store.stat()
    assert (before.blocks, before.pins) == (4 + 4 + 3, 1)
    assert store.gc() == 4 + 3
    assert store.get(kept) == det_bytes(2 * CHUNK + 1, seed=3)
    assert not store.has(dropped) and not store.has(unpinned)
    after = store.stat()
    assert (after.blocks, after.pins) == (4, 1)
    assert after.size < before.size


def test_unpin_of_what_is_not_pinned_is_an_error(store: LocalStore) -> None:
    with pytest.raises(StorageError, match="QmWfVY9y3xjsixTgbd9AorQxH7VtMpzfx2HaWtsoUYecaX is not pinned"):
        store.unpin("QmWfVY9y3xjsixTgbd9AorQxH7VtMpzfx2HaWtsoUYecaX")


def test_pin_refuses_an_incomplete_dag(store: LocalStore) -> None:
    root = store.put(det_bytes(2 * CHUNK + 1, seed=6), pin=False)
    from lepton_ledger.storage.cid import parse_cid

    leaf = [str(c) for c, _ in iter_dag(store, root)][1]
    store._path(parse_cid(leaf)).unlink()
    with pytest.raises(BlockNotFound) as info:
        store.pin(root)
    assert info.value.cid == leaf and store.pins() == []


def test_v0_and_v1_names_of_one_block_share_it(store: LocalStore) -> None:
    from lepton_ledger.storage.cid import cid_from_digest, cid_to_str, parse_cid

    v0 = store.put(b"hello")
    v1 = cid_to_str(cid_from_digest(parse_cid(v0).digest, version=1))
    assert store.get(v1) == b"hello"


# -- a killed writer ---------------------------------------------------------------------------------------

_WRITER = textwrap.dedent(
    """
    import io, os, random, sys
    from lepton_ledger.storage.local import LocalStore

    class Source(io.RawIOBase):
        # deterministic data; says "go" on stdout once 20 chunks are through, then keeps going for ever-ish
        def __init__(self):
            self.rng = random.Random(7)
            self.chunks = 0
        def readable(self):
            return True
        def readinto(self, b):
            self.chunks += 1
            if self.chunks == 20:
                sys.stdout.write("go\\n"); sys.stdout.flush()
            b[:] = self.rng.randbytes(len(b))
            return len(b)

    LocalStore(sys.argv[1], durable=True).put(Source())
    """
)


def test_a_killed_writer_leaves_the_store_consistent(tmp_path: Path) -> None:
    root = tmp_path / "store"
    store = LocalStore(root, durable=False)
    kept = store.put(det_bytes(CHUNK + 5, seed=8))
    proc = subprocess.Popen([sys.executable, "-c", _WRITER, str(root)], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline() == "go\n"  # the writer is in the middle of its put, not before or after
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    # Every visible block verifies; the half-written file was never pinned; gc clears it all up.
    assert store.verify_all() >= 20
    assert store.pins() == [kept]
    store.gc()
    assert store.stat().blocks == 3 and store.verify_all() == 3  # two leaves and their root
    assert not any(p.name.startswith(".tmp-") for p in (root / "blocks").rglob("*"))
    assert store.get(kept) == det_bytes(CHUNK + 5, seed=8)


# -- several processes -------------------------------------------------------------------------------------


def _put_worker(root: str, seeds: list[int], barrier, results) -> None:  # type: ignore[no-untyped-def]
    store = LocalStore(root, durable=False)
    barrier.wait()  # start together, so the puts overlap
    for seed in seeds:
        results.put((seed, store.put(det_bytes(3 * CHUNK + seed, seed))))


def _gc_worker(root: str, barrier, rounds: int) -> None:  # type: ignore[no-untyped-def]
    store = LocalStore(root, durable=False)
    barrier.wait()
    for _ in range(rounds):
        store.gc()


def test_concurrent_puts_and_gc_from_several_processes(tmp_path: Path) -> None:
    root = str(tmp_path / "store")
    LocalStore(root, durable=False)
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(3)
    results = ctx.Queue()
    # both writers share seeds 1 and 2, so they race on identical blocks too
    procs = [
        ctx.Process(target=_put_worker, args=(root, [1, 2, 3, 4], barrier, results)),
        ctx.Process(target=_put_worker, args=(root, [2, 1, 5, 6], barrier, results)),
        ctx.Process(target=_gc_worker, args=(root, barrier, 20)),
    ]
    for p in procs:
        p.start()
    got = [results.get(timeout=120) for _ in range(8)]
    for p in procs:
        p.join(timeout=120)
        assert p.exitcode == 0
    store = LocalStore(root, durable=False)
    assert sorted(store.pins()) == sorted({cid for _, cid in got})
    for seed, cid in got:
        assert store.get(cid) == det_bytes(3 * CHUNK + seed, seed)  # gc never took a block of a pinned put
    assert store.gc() == 0
    store.verify_all()


def _put_in_child(store: LocalStore, seed: int, results) -> None:  # type: ignore[no-untyped-def]
    results.put(store.put(det_bytes(CHUNK, seed)))


def test_one_store_object_puts_from_threads_and_from_a_forked_child(tmp_path: Path) -> None:
    """The pins database connection is kept per process and thread: a forked child and other threads using the
    parent's store object open their own (a connection that crossed either would fail or corrupt the file)."""
    import threading

    store = LocalStore(tmp_path / "store", durable=False)
    parent = store.put(det_bytes(CHUNK, 1))  # the parent's connection is open before the fork
    results = multiprocessing.get_context("fork").Queue()
    child = multiprocessing.get_context("fork").Process(target=_put_in_child, args=(store, 2, results))
    child.start()
    from_child = results.get(timeout=60)
    child.join(timeout=60)
    assert child.exitcode == 0
    from_threads: list[str] = []
    threads = [threading.Thread(target=lambda s=s: from_threads.append(store.put(det_bytes(CHUNK, s)))) for s in (3, 4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(store.pins()) == sorted([parent, from_child, *from_threads])
    assert store.get(from_child) == det_bytes(CHUNK, 2)


def test_a_write_that_fails_before_its_rename_leaves_nothing_visible(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Deterministic twin of the SIGKILL test: the failure lands after the bytes are written, before the rename.
    from lepton_ledger.storage import local

    store = LocalStore(tmp_path / "store", durable=True)

    def broken_fsync(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(local.os, "fsync", broken_fsync)
    with pytest.raises(StorageError, match="No space left on device"):
        store.put(det_bytes(2 * CHUNK, seed=11))
    monkeypatch.undo()
    assert store.stat().blocks == 0 and store.pins() == []
    assert [p for p in (tmp_path / "store" / "blocks").rglob("*") if p.is_file()] == []
