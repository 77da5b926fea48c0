"""Every setting lepton-ledger reads from the environment, in one place: the :class:`Settings` model, one field
per ``LEPTON_*`` variable (documented in docs/configuration.md, whose table a test keeps equal to the fields).
No other module reads a ``LEPTON_*`` variable; they call :func:`current` or the functions below.

All embedded state (chain state file, block store, SQLite, local keys) lives under one data directory:
``LEPTON_DATA_DIR`` when set, a per-user default otherwise.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from .errors import ConfigurationError

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def _env(variable: str, meaning: str, default: object = None, **constraints: Any) -> Any:
    """A field read from `variable`: its name and meaning travel in the schema, for the documentation's table."""
    return Field(default=default, description=meaning, json_schema_extra={"env": variable}, **constraints)


class Settings(BaseModel):
    """The environment as lepton-ledger reads it (a plain pydantic model: pydantic-settings cannot install beside
    brownie's python-dotenv pin). Unset variables take the defaults named in the table."""

    model_config = ConfigDict(frozen=True)

    data_dir: Path = _env(
        "LEPTON_DATA_DIR",
        "Data directory: chain state, block store, keystore, service and audit "
        "databases; unset: $XDG_DATA_HOME/lepton-ledger, else "
        "~/.local/share/lepton-ledger.",
        Path(),
    )
    rpc_url: str | None = _env("LEPTON_RPC_URL", "JSON-RPC URL of the chain; unset: the data directory's local node.")
    blockstore_dir: Path | None = _env("LEPTON_BLOCKSTORE_DIR", "The embedded block store; unset: <data dir>/blocks.")
    kubo_api: str | None = _env(
        "LEPTON_KUBO_API",
        "Kubo RPC URL (http://127.0.0.1:5001) that replaces the embedded block store as the commands' default store.",
    )
    keystore_dir: Path | None = _env("LEPTON_KEYSTORE_DIR", "The encrypted keystore; unset: <data dir>/keystore.")
    keystore_password: str | None = Field(
        default=None,
        repr=False,
        description="The keystore password; unset: a hidden prompt. Never on the command line.",
        json_schema_extra={"env": "LEPTON_KEYSTORE_PASSWORD"},
    )
    artifacts_dir: Path | None = _env(
        "LEPTON_ARTIFACTS_DIR", "Compiled contract artifacts; unset: brownie's build/contracts of this checkout."
    )
    anvil: str | None = _env("LEPTON_ANVIL", "The anvil executable; unset: the project's npm copy, else anvil on PATH.")
    ray_address: str | None = _env(
        "LEPTON_RAY_ADDRESS",
        "Ray cluster partners train in (auto, ray://head:10001, host:6379, or local); unset: local worker processes.",
    )
    ipfs: str | None = _env("LEPTON_IPFS", "The service's store (a folder or a Kubo RPC URL); unset: as the commands'.")
    domain: str = _env(
        "LEPTON_API_DOMAIN",
        "The EIP-4361 domain the service's sign-in messages name (default localhost; serve: its --host:--port).",
        "localhost",
    )
    uri: str = _env(
        "LEPTON_API_URI",
        "The URI the service's sign-in messages name (default http://localhost; serve: http://--host:--port).",
        "http://localhost",
    )
    token_ttl: int = _env("LEPTON_API_TOKEN_TTL", "Seconds a service bearer token lives (default 900).", 900, ge=1)
    nonce_ttl: int = _env("LEPTON_API_NONCE_TTL", "Seconds a sign-in message is valid (default 300).", 300, ge=1)
    max_envelope_bytes: int = _env(
        "LEPTON_API_MAX_ENVELOPE_BYTES",
        "Largest update envelope the service takes, in bytes (default 67108864: 64 MiB; 413 beyond).",
        64 * 2**20,
        ge=1,
    )
    max_json_bytes: int = _env(
        "LEPTON_API_MAX_JSON_BYTES",
        "Largest JSON body the service takes on any other route, in bytes (default 1048576: 1 MiB; 413 beyond).",
        2**20,
        ge=1,
    )
    block_poll: float = _env(
        "LEPTON_API_BLOCK_POLL", "Seconds between the service's looks for a new block (default 0.25).", 0.25, gt=0
    )
    mine_after: float = _env(
        "LEPTON_API_MINE_AFTER",
        "Seconds without a new block after which the service mines an empty one, so that deadlines and dispute "
        "windows pass in real time; only on a chain it runs itself (serve --workdir), never on a configured RPC URL "
        "or the shared local node (default 1.0; 0: never).",
        1.0,
        ge=0,
    )
    writer_wait: float = _env(
        "LEPTON_API_WRITER_WAIT",
        "Seconds a request waits for the service's one writer of coordinator transactions to take its step, behind "
        "a close or an unmined transaction; 503 WriterBusy beyond, nothing sent (default 10.0).",
        10.0,
        gt=0,
    )
    coordinator_key: str | None = _env(
        "LEPTON_API_COORDINATOR_KEY", "Keystore identity whose X25519 key the service opens envelopes with."
    )
    auditor_key: str | None = _env(
        "LEPTON_API_AUDITOR_KEY",
        "Keystore identity whose X25519 key the service's audit job opens updates with; unset: no audit job (503).",
    )
    deployment: Path = Field(default=Path(), description="<data dir>/deployment.json (not a variable).")
    owns_chain: bool = Field(
        default=False,
        description="The service runs its chain itself (serve --workdir): the one it mines (not a variable).",
    )

    @classmethod
    def variables(cls) -> dict[str, str]:
        """Each environment variable and the field it sets."""
        return {
            str(extra["env"]): name
            for name, field in cls.model_fields.items()
            if isinstance(extra := field.json_schema_extra, dict) and "env" in extra
        }

    @classmethod
    def from_env(cls, **overrides: object) -> Settings:
        """The settings of the environment, `overrides` (already typed) taking precedence.

        Raises:
            ConfigurationError: a variable is malformed (named).
        """
        # An empty variable counts as unset, except the password: an empty password is one.
        values: dict[str, object] = {
            field: os.environ[variable]
            for variable, field in cls.variables().items()
            if os.environ.get(variable) or (field == "keystore_password" and variable in os.environ)
        }
        values.update(overrides)
        if "data_dir" not in values:
            base = Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share")
            values["data_dir"] = base / "lepton-ledger"
        values["data_dir"] = Path(str(values["data_dir"])).expanduser()
        values.setdefault("deployment", Path(str(values["data_dir"])) / "deployment.json")
        try:
            return cls.model_validate(values)
        except ValueError as exc:
            first = exc.errors()[0] if hasattr(exc, "errors") else {"loc": ("?",), "msg": str(exc)}
            raise ConfigurationError(f"setting {first['loc'][0]}: {first['msg']}") from None


_read: tuple[tuple[tuple[str, str], ...], Settings] | None = None


def current() -> Settings:
    """The settings of this process, read once: read again only when the environment's ``LEPTON_*`` (or
    ``XDG_DATA_HOME``) variables change, as a test's or ``serve --workdir``'s do.

    Raises:
        ConfigurationError: a variable is malformed (named).
    """
    global _read
    key = tuple(sorted((k, v) for k, v in os.environ.items() if k.startswith("LEPTON_") or k == "XDG_DATA_HOME"))
    if _read is None or _read[0] != key:
        _read = (key, Settings.from_env())
    return _read[1]


def data_dir() -> Path:
    """The data directory, created if needed: ``$LEPTON_DATA_DIR`` or ``$XDG_DATA_HOME/lepton-ledger``."""
    path = current().data_dir
    path.mkdir(parents=True, exist_ok=True)
    return path


def blockstore_dir() -> Path:
    """The local IPFS block store: ``$LEPTON_BLOCKSTORE_DIR``, or ``data_dir() / "blocks"``."""
    configured = current().blockstore_dir
    return configured.expanduser() if configured else data_dir() / "blocks"


def rpc_url() -> str | None:
    """The chain to use: ``$LEPTON_RPC_URL`` (any EVM JSON-RPC endpoint), or None for the local node."""
    return current().rpc_url


def kubo_api() -> str | None:
    """The Kubo RPC URL of ``$LEPTON_KUBO_API``, or None."""
    url = current().kubo_api
    return url.strip() or None if url else None


def keystore_dir() -> Path:
    """``$LEPTON_KEYSTORE_DIR``, or ``data_dir() / "keystore"``. Not created here."""
    configured = current().keystore_dir
    return configured.expanduser() if configured else data_dir() / "keystore"


def keystore_password() -> str | None:
    """``$LEPTON_KEYSTORE_PASSWORD`` (an empty one included), or None when unset."""
    return current().keystore_password


def artifacts_dir() -> Path:
    """Compiled contract artifacts: ``$LEPTON_ARTIFACTS_DIR``, or brownie's ``build/contracts`` of this
    checkout (the one compile path that brownie and the package share)."""
    return current().artifacts_dir or PROJECT_ROOT / "build" / "contracts"


def anvil_binary() -> str:
    """The anvil executable: ``$LEPTON_ANVIL``, the project's npm copy, or whatever ``anvil`` is on PATH."""
    configured = current().anvil
    if configured:
        return configured
    local = PROJECT_ROOT / "node_modules" / ".bin" / "anvil"
    return str(local) if local.exists() else "anvil"


def ray_address() -> str | None:
    """Where partners' training runs: ``$LEPTON_RAY_ADDRESS`` names a Ray cluster to join (``auto``,
    ``ray://head:10001``, ``host:6379``) or ``local`` to start one on this machine; unset, local worker processes."""
    return current().ray_address
