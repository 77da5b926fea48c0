"""KuboStore against an in-test kubo (fake_kubo.FakeKubo): a real HTTP server on 127.0.0.1 answering as kubo's
RPC reference says. The same checks against a real daemon are in test_kubo_live.py."""

from __future__ import annotations

import io
import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fake_kubo import FakeKubo, free_port

from lepton_ledger.errors import ConfigurationError
from lepton_ledger.storage import car, dagpb, unixfs
from lepton_ledger.storage import cid as cidlib
from lepton_ledger.storage.kubo import KUBO_API_ENV, KuboStore
from lepton_ledger.storage.local import LocalStore
from lepton_ledger.storage.store import (
    BlockCorrupted,
    BlockNotFound,
    InvalidCID,
    StorageError,
)

CHUNK = unixfs.CHUNK_SIZE
HELLO_V0 = "QmWfVY9y3xjsixTgbd9AorQxH7VtMpzfx2HaWtsoUYecaX"  # `ipfs add` of the 5 bytes "hello"


def payload(size: int, seed: int = 0) -> bytes:
    """Deterministic bytes that differ chunk to chunk (so leaves are distinct blocks)."""
    block = bytes((i * 31 + seed) % 251 for i in range(4099))
    return (block * (size // len(block) + 1))[:size]


@pytest.fixture
def kubo() -> Iterator[FakeKubo]:
    with FakeKubo() as daemon:
        yield daemon


@pytest.fixture
def store(kubo: FakeKubo) -> Iterator[KuboStore]:
    with KuboStore(kubo.url, timeout=5, retries=2, backoff=0, offline=True) as s:
        yield s


def leaves(store: KuboStore, root: str) -> list[str]:
    """The CIDs a file's root links to, in file order."""
    return [link.cid for link in dagpb.decode_node(store.get_block(root)).links]


# ---------------------------------------------------------------- put / get


@pytest.mark.parametrize("cid_version", [0, 1])
@pytest.mark.parametrize("size", [0, 5, CHUNK, CHUNK + 1, 3 * CHUNK + 17])
def test_put_get_round_trip(store: KuboStore, size: int, cid_version: int) -> None:
    data = payload(size)
    cid = store.put(data, cid_version=cid_version)
    assert cid == unixfs.file_cid(data, cid_version=cid_version)
    assert store.get(cid) == data
    assert b"".join(store.stream(cid)) == data


def test_put_public_vector(store: KuboStore) -> None:
    assert store.put(b"hello") == HELLO_V0
    assert store.get(HELLO_V0) == b"hello"


def test_put_stream_uploads_from_the_current_position(store: KuboStore) -> None:
    data = payload(2 * CHUNK + 3)
    source = io.BytesIO(b"JUNK" + data)
    source.read(4)  # httpx would rewind a seekable file to 0; the store must not let it
    cid = store.put(source, cid_version=1)
    assert cid == unixfs.file_cid(data, cid_version=1)
    assert store.get(cid) == data


def test_add_passes_kubo_defaults_explicitly(store: KuboStore, kubo: FakeKubo) -> None:
    store.put(b"x", cid_version=1, pin=False)
    ((_, query),) = [entry for entry in kubo.queries if entry[0] == "add"]
    assert {k: v[0] for k, v in query.items()} == {
        "cid-version": "1",
        "raw-leaves": "true",
        "chunker": "size-262144",
        "hash": "sha2-256",
        "trickle": "false",
        "only-hash": "false",
        "pin": "false",
        "progress": "false",
    }


def test_hash_only_stores_nothing(store: KuboStore) -> None:
    data = payload(CHUNK + 9)
    assert store.hash_only(data) == unixfs.file_cid(data)
    assert store.stat().blocks == 0


def test_put_refuses_a_cid_other_than_kubo_defaults(store: KuboStore, kubo: FakeKubo) -> None:
    real_add = kubo.cmd_add

    def add_with_other_settings(q: dict, files: list) -> list[dict]:
        events = real_add(q, files)
        return [dict(e, Hash=unixfs.file_cid(b"something else")) for e in events]

    kubo.cmd_add = add_with_other_settings  # type: ignore[method-assign]
    with pytest.raises(StorageError, match="Import settings"):
        store.put(b"hello")


def test_put_rejects_bad_cid_version(store: KuboStore, kubo: FakeKubo) -> None:
    with pytest.raises(ValueError, match="cid_version"):
        store.put(b"x", cid_version=2)
    assert kubo.requests == []


# ---------------------------------------------------------------- verification


def test_corrupted_leaf_is_named_and_earlier_bytes_were_verified(store: KuboStore, kubo: FakeKubo) -> None:
    data = payload(3 * CHUNK)
    root = store.put(data)
    _, second, _ = leaves(store, root)
    kubo.corrupt(second)
    chunks = store.stream(root)
    assert next(chunks) == data[:CHUNK]  # the good first leaf comes through, verified
    with pytest.raises(BlockCorrupted) as err:
        next(chunks)
    assert err.value.cid == second
    assert second in str(err.value)
    with pytest.raises(BlockCorrupted) as err:
        store.get(root)
    assert err.value.cid == second


@pytest.mark.parametrize("cid_version", [0, 1])
def test_corrupted_root_is_named(store: KuboStore, kubo: FakeKubo, cid_version: int) -> None:
    root = store.put(payload(100), cid_version=cid_version)
    kubo.corrupt(root)
    with pytest.raises(BlockCorrupted) as err:
        store.get(root)
    assert err.value.cid == root


def test_missing_leaf_is_named(store: KuboStore, kubo: FakeKubo) -> None:
    root = store.put(payload(2 * CHUNK), cid_version=1)
    _, second = leaves(store, root)
    kubo.drop(second)
    with pytest.raises(BlockNotFound) as err:
        store.get(root)
    assert err.value.cid == second
    assert isinstance(err.value, LookupError)


def test_unknown_cid_is_not_found(store: KuboStore) -> None:
    absent = unixfs.file_cid(b"never added")
    with pytest.raises(BlockNotFound) as err:
        store.get(absent)
    assert err.value.cid == absent
    assert not store.has(absent)


def test_invalid_cid_is_refused_before_any_request(store: KuboStore, kubo: FakeKubo) -> None:
    with pytest.raises(InvalidCID):
        store.get("not-a-cid")
    assert kubo.requests == []


def test_directory_is_not_a_file(store: KuboStore, kubo: FakeKubo) -> None:
    block = dagpb.encode_node_raw([], dagpb.encode_unixfs(dagpb.T_DIRECTORY))
    cid = cidlib.cid_to_str(cidlib.make_cid(block))
    store.put_block(cid, block)
    with pytest.raises(StorageError, match="not a file"):
        store.get(cid)


# ---------------------------------------------------------------- raw blocks


def test_put_block_get_block(store: KuboStore, kubo: FakeKubo) -> None:
    data = b"a raw block"
    cid = cidlib.cid_to_str(cidlib.make_cid(data, version=1, codec=cidlib.RAW))
    store.put_block(cid, data)
    assert store.has(cid)
    assert store.get_block(cid) == data
    ((_, query),) = [entry for entry in kubo.queries if entry[0] == "block/put"]
    assert query["cid-codec"] == ["raw"] and query["mhtype"] == ["sha2-256"]


def test_put_block_v0_dag_pb(store: KuboStore) -> None:
    blocks: dict[str, bytes] = {}
    root = unixfs.import_file(
        b"hello", sink=lambda c, parts: blocks.__setitem__(cidlib.cid_to_str(c), b"".join(parts))
    ).cid
    store.put_blocks(blocks.items())
    assert root == HELLO_V0
    assert store.get(root) == b"hello"


def test_put_block_refuses_mismatched_bytes_without_sending(store: KuboStore, kubo: FakeKubo) -> None:
    cid = cidlib.cid_to_str(cidlib.make_cid(b"right", version=1, codec=cidlib.RAW))
    with pytest.raises(BlockCorrupted) as err:
        store.put_block(cid, b"wrong")
    assert err.value.cid == cid
    assert kubo.count("block/put") == 0


# ---------------------------------------------------------------- pins, gc, stat


def test_pin_unpin_pins_gc_stat(store: KuboStore) -> None:
    kept_data, dropped_data = payload(2 * CHUNK, seed=1), payload(2 * CHUNK, seed=2)
    kept = store.put(kept_data)
    dropped = store.put(dropped_data, pin=False)
    assert store.pins() == [kept]
    before = store.stat()
    assert (before.blocks, before.pins) == (6, 1)  # 2 leaves + root, for each file
    assert before.size > len(kept_data) + len(dropped_data)

    assert store.gc() == 3
    assert not store.has(dropped) and store.has(kept)
    with pytest.raises(BlockNotFound):
        store.get(dropped)
    assert store.get(kept) == kept_data
    assert store.stat().blocks == 3

    store.unpin(kept)
    assert store.pins() == []
    store.pin(kept)
    assert store.pins() == [kept]
    store.unpin(kept)
    assert store.gc() == 3
    assert store.stat().blocks == 0


def test_unpin_of_unpinned_names_the_cid(store: KuboStore) -> None:
    cid = store.put(b"loose", pin=False)
    with pytest.raises(StorageError) as err:
        store.unpin(cid)
    assert cid in str(err.value) and "not pinned" in str(err.value)


def test_pin_with_missing_child_names_the_child(store: KuboStore, kubo: FakeKubo) -> None:
    root = store.put(payload(2 * CHUNK), pin=False)
    first, _ = leaves(store, root)
    kubo.drop(first)
    with pytest.raises(BlockNotFound) as err:
        store.pin(root)
    assert err.value.cid == first
    assert store.pins() == []


def test_gc_error_in_stream_is_raised(store: KuboStore, kubo: FakeKubo) -> None:
    kubo.cmd_repo_gc = lambda q, f: [  # type: ignore[method-assign]
        {"Key": {"/": HELLO_V0}},
        {"Error": "could not remove QmSomething: disk on fire"},
    ]
    with pytest.raises(StorageError, match="disk on fire"):
        store.gc()


def test_error_object_after_200_is_raised(store: KuboStore, kubo: FakeKubo) -> None:
    # kubo writes the error as the last streamed object when a command fails after it began answering.
    kubo.cmd_repo_gc = lambda q, f: [  # type: ignore[method-assign]
        {"Message": "context canceled", "Code": 0, "Type": "error"}
    ]
    with pytest.raises(StorageError, match="context canceled"):
        store.gc()


def test_stat_accepts_the_reference_docs_nested_shape(store: KuboStore, kubo: FakeKubo) -> None:
    kubo.cmd_repo_stat = lambda q, f: {  # type: ignore[method-assign]
        "NumObjects": 7,
        "RepoPath": "/x",
        "SizeStat": {"RepoSize": 1234, "StorageMax": 9},
        "Version": "16",
    }
    kubo.cmd_pin_ls = lambda q, f: {"PinLsList": {"Keys": {HELLO_V0: {"Type": "recursive"}}}}  # type: ignore[method-assign]
    stat = store.stat()
    assert (stat.blocks, stat.size, stat.pins) == (7, 1234, 1)


# ---------------------------------------------------------------- CAR


def test_car_export_import_between_nodes(store: KuboStore) -> None:
    data = payload(3 * CHUNK + 5)
    root = store.put(data, cid_version=1)
    car = b"".join(store.export_car(root))
    with FakeKubo() as other, KuboStore(other.url, offline=True) as target:
        assert target.import_car(io.BytesIO(car)) == [root]
        assert target.pins() == [root]
        assert target.get(root) == data


def test_car_import_refused_by_daemon_is_storage_error(store: KuboStore) -> None:
    root = store.put(b"hello")
    car = bytearray(b"".join(store.export_car(root)))
    car[-3] ^= 0xFF  # inside the last block
    with pytest.raises(StorageError, match="does not match"):
        store.import_car(bytes(car))


# ---------------------------------------------------------------- transport: errors, retries, timeouts


def test_error_reply_is_mapped_with_message_and_not_retried(kubo: FakeKubo) -> None:
    delays: list[float] = []
    kubo.fail("pin/ls", "pin/ls: blockstore is read-only")
    with KuboStore(kubo.url, retries=5, backoff=1.0, sleep=delays.append) as store, pytest.raises(StorageError) as err:
        store.pins()
    assert "blockstore is read-only" in str(err.value)
    assert "HTTP 500" in str(err.value)
    assert kubo.count("pin/ls") == 1
    assert delays == []


def test_unknown_endpoint_is_storage_error(kubo: FakeKubo) -> None:
    with KuboStore(kubo.url + "/not-kubo", retries=0) as store, pytest.raises(StorageError, match="404"):
        store.pins()


def test_connection_refused_then_success_is_retried() -> None:
    port = free_port()
    daemon = FakeKubo(port)
    delays: list[float] = []

    def start_daemon_while_backing_off(delay: float) -> None:
        delays.append(delay)
        if len(delays) == 1:
            daemon.start()  # listening before this returns: the retry finds it

    try:
        with KuboStore(
            f"http://127.0.0.1:{port}", retries=3, backoff=0.5, sleep=start_daemon_while_backing_off
        ) as store:
            assert store.put(b"hello") == HELLO_V0
        assert delays == [0.5]
        assert daemon.count("add") == 1
    finally:
        daemon.stop()


def test_connection_refused_gives_up_after_retries_with_backoff() -> None:
    delays: list[float] = []
    with (
        KuboStore(f"http://127.0.0.1:{free_port()}", retries=3, backoff=0.1, sleep=delays.append) as store,
        pytest.raises(StorageError, match="unreachable .* after 4 attempt"),
    ):
        store.pins()
    assert delays == pytest.approx([0.1, 0.2, 0.4])


def test_timeout_is_storage_error_not_block_not_found(kubo: FakeKubo) -> None:
    kubo.stall("block/get")
    with (
        KuboStore(kubo.url, timeout=0.3, retries=3, sleep=lambda d: None) as store,
        pytest.raises(StorageError, match="timed out") as err,
    ):
        store.get_block(HELLO_V0)
    assert not isinstance(err.value, BlockNotFound)
    assert kubo.count("block/get") == 1  # a read timeout means the daemon has the request: no retry


def test_offline_flag_is_sent_when_asked(kubo: FakeKubo) -> None:
    with KuboStore(kubo.url, offline=False) as online, KuboStore(kubo.url, offline=True) as offline:
        cid = online.put(b"hello")
        online.get_block(cid)
        offline.get_block(cid)
    gets = [q for path, q in kubo.queries if path == "block/get"]
    assert "offline" not in gets[0] and gets[1]["offline"] == ["true"]


# ---------------------------------------------------------------- configuration


def test_url_from_environment(kubo: FakeKubo, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(KUBO_API_ENV, kubo.url + "/api/v0/")
    with KuboStore() as store:
        assert store.api_url == kubo.url
        assert store.put(b"hello") == HELLO_V0


def test_missing_or_bad_url_is_configuration_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(KUBO_API_ENV, raising=False)
    with pytest.raises(ConfigurationError, match=KUBO_API_ENV):
        KuboStore()
    with pytest.raises(ConfigurationError, match="http"):
        KuboStore("127.0.0.1:5001")


def test_fake_answers_errors_like_kubo(kubo: FakeKubo) -> None:
    """The fake itself: POST only, kubo's JSON error body, 404 for unknown commands."""

    assert httpx.get(f"{kubo.url}/api/v0/repo/stat").status_code == 405
    assert httpx.post(f"{kubo.url}/api/v0/no/such").status_code == 404
    reply = httpx.post(f"{kubo.url}/api/v0/block/get", params={"arg": HELLO_V0})
    assert reply.status_code == 500
    assert reply.json() == {
        "Message": f"block was not found locally (offline): ipld: could not find {HELLO_V0}",
        "Code": 0,
        "Type": "error",
    }


@pytest.mark.skipif(shutil.which("ipfs_cid") is None, reason="Debian package ipfs-cid (ipfs_cid) not installed")
def test_fake_add_matches_ipfs_cid(store: KuboStore, tmp_path: Path) -> None:
    """The fake's `add` agrees with an independent implementation, so round trips above test real CIDs."""
    data = payload(2 * CHUNK + 1, seed=7)
    path = tmp_path / "input"
    path.write_bytes(data)
    out = subprocess.run(["ipfs_cid", str(path)], capture_output=True, text=True, check=True).stdout
    reference = json.loads(next(line for line in out.splitlines() if line.startswith("{")))
    assert store.put(data) == reference["CIDv0"]


def test_car_interoperates_with_local_store(store: KuboStore, tmp_path: Path) -> None:
    """A CAR the node exports imports into LocalStore, and LocalStore's export imports into the node."""
    data = payload(2 * CHUNK + 11, seed=3)
    root = store.put(data)
    exported = tmp_path / "from_kubo.car"
    exported.write_bytes(b"".join(store.export_car(root)))
    local = LocalStore(tmp_path / "blocks", durable=False)
    assert car.import_car(local, exported) == [root]
    assert local.get(root) == data

    buffer = io.BytesIO()
    car.write_car(local, root, buffer)
    assert buffer.getvalue() == exported.read_bytes()  # same header and block order as kubo's dag/export
    store.unpin(root)
    store.gc()
    assert store.import_car(buffer.getvalue()) == [root]
    assert store.get(root) == data
