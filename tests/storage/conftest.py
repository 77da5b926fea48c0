"""Shared helpers for the storage tests: deterministic data and fresh local stores."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from lepton_ledger.storage.local import LocalStore

CHUNK = 262144


def det_bytes(size: int, seed: int) -> bytes:
    """Deterministic pseudo-random bytes (incompressible, reproducible across runs)."""
    return random.Random(seed).randbytes(size)


@pytest.fixture
def store(tmp_path: Path) -> LocalStore:
    # fsync off: durability is not what these tests check, and fsync per block is slow on CI disks.
    return LocalStore(tmp_path / "store", durable=False)


@pytest.fixture
def make_store(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    def make() -> LocalStore:
        return LocalStore(tmp_path_factory.mktemp("store"), durable=False)

    return make
