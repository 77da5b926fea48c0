"""Fixtures of the storage tests: fresh local stores, a data directory; shared data in storage_data.py."""

from __future__ import annotations

from pathlib import Path

import pytest

from lepton_ledger.storage.local import LocalStore


@pytest.fixture
def store(tmp_path: Path) -> LocalStore:
    # fsync off: durability is not what these tests check, and fsync per block is slow on CI disks.
    return LocalStore(tmp_path / "store", durable=False)


@pytest.fixture
def make_store(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    def make() -> LocalStore:
        return LocalStore(tmp_path_factory.mktemp("store"), durable=False)

    return make


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A data directory of its own for the `lepton-ledger ipfs` commands (their store is under it)."""
    monkeypatch.setenv("LEPTON_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("LEPTON_BLOCKSTORE_DIR", raising=False)
    return tmp_path
