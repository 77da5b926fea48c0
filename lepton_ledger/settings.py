"""Where lepton-ledger keeps its embedded state, and where it finds its build artifacts.

All embedded state (chain state file, block store, SQLite, local keys) lives under one data directory:
``LEPTON_DATA_DIR`` when set, a per-user default otherwise.
"""

from __future__ import annotations

import os
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def data_dir() -> Path:
    """The data directory, created if needed: ``$LEPTON_DATA_DIR`` or ``$XDG_DATA_HOME/lepton-ledger``."""
    configured = os.environ.get("LEPTON_DATA_DIR")
    if configured:
        path = Path(configured).expanduser()
    else:
        base = Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share")
        path = base / "lepton-ledger"
    path.mkdir(parents=True, exist_ok=True)
    return path


def blockstore_dir() -> Path:
    """The local IPFS block store: ``$LEPTON_BLOCKSTORE_DIR``, or ``data_dir() / "blocks"``."""
    configured = os.environ.get("LEPTON_BLOCKSTORE_DIR")
    return Path(configured).expanduser() if configured else data_dir() / "blocks"


def rpc_url() -> str | None:
    """The chain to use: ``$LEPTON_RPC_URL`` (any EVM JSON-RPC endpoint), or None for the local node."""
    return os.environ.get("LEPTON_RPC_URL") or None


def artifacts_dir() -> Path:
    """Compiled contract artifacts: ``$LEPTON_ARTIFACTS_DIR``, or brownie's ``build/contracts`` of this
    checkout (the one compile path that brownie and the package share)."""
    configured = os.environ.get("LEPTON_ARTIFACTS_DIR")
    return Path(configured) if configured else PROJECT_ROOT / "build" / "contracts"


def anvil_binary() -> str:
    """The anvil executable: ``$LEPTON_ANVIL``, the project's npm copy, or whatever ``anvil`` is on PATH."""
    configured = os.environ.get("LEPTON_ANVIL")
    if configured:
        return configured
    local = PROJECT_ROOT / "node_modules" / ".bin" / "anvil"
    return str(local) if local.exists() else "anvil"


def ray_address() -> str | None:
    """Where partners' training runs: ``$LEPTON_RAY_ADDRESS`` names a Ray cluster to join (``auto``,
    ``ray://head:10001``, ``host:6379``) or ``local`` to start one on this machine; unset, local worker processes."""
    return os.environ.get("LEPTON_RAY_ADDRESS") or None

