"""Where lepton-ledger keeps its embedded state, and where it finds its build artifacts.

All embedded state (chain state file, block store, SQLite, local keys) lives under one data directory:
``LEPTON_DATA_DIR`` when set, a per-user default otherwise.
"""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from .errors import ConfigurationError

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



# -- the service's settings ----------------------------------------------------------------------------------


class Settings(BaseModel):
    """Everything ``lepton-ledger serve`` reads from the environment, in one place (a plain pydantic model:
    pydantic-settings cannot install beside brownie's python-dotenv pin). The functions above stay the source of
    the shared variables; ``Settings.from_env()`` reads the service's own ``LEPTON_API_*`` on top of them."""

    model_config = ConfigDict(frozen=True)

    data_dir: Path
    rpc_url: str | None = None
    deployment: Path
    ipfs: str | None = None
    domain: str = "localhost"  # the EIP-4361 domain that sign-in messages must name
    uri: str = "http://localhost"
    token_ttl: int = Field(default=900, ge=1)  # seconds a bearer token lives
    nonce_ttl: int = Field(default=300, ge=1)  # seconds a sign-in message is valid
    max_envelope_bytes: int = Field(default=64 * 2**20, ge=1)
    block_poll: float = Field(default=0.25, gt=0)  # seconds between looks for a new block
    coordinator_key: str | None = None  # keystore identity whose X25519 key opens envelopes (password: as keys.py)

    @classmethod
    def from_env(cls, **overrides: object) -> Settings:
        """The settings of the environment, `overrides` (already typed) taking precedence.

        Raises:
            ConfigurationError: a ``LEPTON_API_*`` variable is malformed (named).
        """
        env = os.environ
        values: dict[str, object] = {"data_dir": data_dir(), "rpc_url": rpc_url()}
        for field, variable in (("domain", "LEPTON_API_DOMAIN"), ("uri", "LEPTON_API_URI"),
                                ("token_ttl", "LEPTON_API_TOKEN_TTL"), ("nonce_ttl", "LEPTON_API_NONCE_TTL"),
                                ("max_envelope_bytes", "LEPTON_API_MAX_ENVELOPE_BYTES"),
                                ("block_poll", "LEPTON_API_BLOCK_POLL"), ("ipfs", "LEPTON_IPFS"),
                                ("coordinator_key", "LEPTON_API_COORDINATOR_KEY")):  # fmt: skip
            if env.get(variable):
                values[field] = env[variable]
        values.update(overrides)
        values.setdefault("deployment", Path(str(values["data_dir"])) / "deployment.json")
        try:
            return cls.model_validate(values)
        except ValueError as exc:
            first = exc.errors()[0] if hasattr(exc, "errors") else {"loc": ("?",), "msg": str(exc)}
            raise ConfigurationError(f"setting {first['loc'][0]}: {first['msg']}") from None
