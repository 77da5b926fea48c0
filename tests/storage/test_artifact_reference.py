"""Every artifact comes back by its on-chain reference (the CID digest) exactly as committed, whatever its size,
through both stores (issue 11, item 1: a multi-block file used to come back as its root node's bytes)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fake_kubo import FakeKubo
from storage_data import det_bytes

from lepton_ledger.protocol.addressing import (
    ArtifactNotFound,
    cid_for_digest,
    content_digest,
    fetch,
    publish,
)
from lepton_ledger.storage import unixfs
from lepton_ledger.storage.cid import RAW, cid_from_digest, cid_to_str
from lepton_ledger.storage.kubo import KuboStore
from lepton_ledger.storage.local import LocalStore
from lepton_ledger.storage.store import FileTooLarge

CHUNK = unixfs.CHUNK_SIZE
SIZES = [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 1 << 20]


@pytest.fixture(params=["local", "kubo"])
def any_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[object]:
    if request.param == "local":
        yield LocalStore(tmp_path / "store", durable=False)
        return
    with FakeKubo() as daemon, KuboStore(daemon.url, timeout=60, retries=0, offline=True) as store:
        yield store


@pytest.mark.parametrize("size", SIZES)
def test_an_artifact_of_any_size_comes_back_by_its_onchain_digest(any_store: object, size: int) -> None:
    data = det_bytes(size, size)
    cid, digest = publish(any_store, data)
    assert digest == content_digest(data) and cid_for_digest(digest) == cid
    assert fetch(any_store, digest) == data


@pytest.mark.slow
def test_a_100_mb_artifact_comes_back_by_its_onchain_digest(any_store: object) -> None:
    data = det_bytes(100 << 20, 7)
    _, digest = publish(any_store, data)
    assert fetch(any_store, digest) == data


def test_a_raw_block_named_by_the_same_digest_does_not_shadow_the_file(any_store: object) -> None:
    """A store keyed by multihash (LocalStore, kubo) answers for the raw CID of a multi-block file's root: the
    reference must not be read through it (it would give the root node's bytes)."""
    data = det_bytes(3 * CHUNK, 1)
    _, digest = publish(any_store, data)
    raw = cid_to_str(cid_from_digest(digest, version=1, codec=RAW))
    assert any_store.has(raw)  # type: ignore[attr-defined]
    assert len(any_store.get(raw)) < 200  # type: ignore[attr-defined]  # the trap: the root node alone
    assert fetch(any_store, digest) == data


def test_a_missing_artifact_is_not_found(any_store: object) -> None:
    with pytest.raises(ArtifactNotFound, match="0x" + "ab" * 32):
        fetch(any_store, b"\xab" * 32)


def test_fetch_refuses_a_file_over_the_limit_from_its_root_before_the_leaves(any_store: object) -> None:
    data = det_bytes(4 * CHUNK, 2)
    _, digest = publish(any_store, data)
    with pytest.raises(FileTooLarge, match=f"declares {len(data)} bytes"):
        fetch(any_store, digest, max_bytes=len(data) - 1)
    assert fetch(any_store, digest, max_bytes=len(data)) == data
