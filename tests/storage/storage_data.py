"""What the storage tests share: deterministic data, and the ``ipfs`` commands run in this process."""

from __future__ import annotations

import random

CHUNK = 262144


def det_bytes(size: int, seed: int) -> bytes:
    """Deterministic pseudo-random bytes (incompressible, reproducible across runs)."""
    return random.Random(seed).randbytes(size)


def run_ipfs(*args: str):  # type: ignore[no-untyped-def]
    """``lepton-ledger ipfs ARGS`` in this process."""
    from typer.testing import CliRunner

    from lepton_ledger.cli import app

    return CliRunner().invoke(app, ["ipfs", *args])
