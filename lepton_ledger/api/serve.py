"""``lepton-ledger serve``: the settings from the environment, the app, uvicorn.

``--data-dir DIR`` serves another data directory (its ``deployment.json``, its block store, its local node).
``--workdir DIR`` serves a folder ``lepton-ledger demo`` left (the flag names a demo folder in every command): the
service runs the demo's chain itself, an anvil on the folder's ``chain-state.json`` (saved every few seconds and
when the service stops), with the folder's ``store/``; its own files (``api/``) go in the folder too.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

from ..errors import ConfigurationError

STATE_INTERVAL = 5  # seconds between saves of a demo folder's chain state
# anvil reads a state file whole into memory, and a folder may come from anyone: a demo's weighs about a MiB.
MAX_STATE_BYTES = 256 * 2**20


def serve(*, host: str, port: int, data_dir: Path | None = None, workdir: Path | None = None) -> None:
    """Serves until interrupted.

    Raises:
        ConfigurationError: `data_dir` is not a folder, `workdir` is no demo folder, both are given, or a setting
            is malformed.
        CommandError, ChainError: no deployment, or no chain (checked before listening).
        ToolchainError: a demo folder's chain cannot start.
    """
    import uvicorn

    from ..settings import Settings
    from .app import create_app
    from .service import check_service

    if data_dir is not None and workdir is not None:
        raise ConfigurationError("--data-dir and --workdir: give one (a demo folder is its own data directory)")
    with ExitStack() as stack:
        overrides: dict[str, object] = {}
        if data_dir is not None:
            if not data_dir.is_dir():
                raise ConfigurationError(f"--data-dir {data_dir}: no such folder")
            os.environ["LEPTON_DATA_DIR"] = str(data_dir.resolve())  # every library default reads it
        if workdir is not None:
            if not workdir.is_dir():
                raise ConfigurationError(f"--workdir {workdir}: no such folder")
            workdir = workdir.resolve()
            if not is_demo_folder(workdir):
                raise ConfigurationError(
                    f"--workdir {workdir}: not a folder 'lepton-ledger demo' left (no "
                    "deployment.json beside a chain state file); --data-dir serves a data "
                    "directory"
                )
            os.environ["LEPTON_DATA_DIR"] = str(workdir)
            overrides = stack.enter_context(_demo_chain(workdir))
        settings = Settings.from_env(**overrides)
        # Sign-in messages name the address clients reach the service at (its client signs no other): unless
        # configured, the one it listens on.
        reached = {"domain": f"{host}:{port}", "uri": f"http://{host}:{port}"}
        settings = settings.model_copy(update={k: v for k, v in reached.items() if k not in settings.model_fields_set})
        check_service(settings)  # refuse with one line, before listening, what start-up would refuse
        # uvicorn shuts down on SIGTERM, then raises the signal again with the handler it found: this one exits
        # through Python, so that the chain this process runs is stopped (and saved) on the way out.
        signal.signal(signal.SIGTERM, _exit)
        uvicorn.run(create_app(settings), host=host, port=port, log_level="warning", access_log=False)


def _exit(signum: int, frame: object) -> None:
    raise SystemExit(0)


def is_demo_folder(folder: Path) -> bool:
    """Whether `folder` is what ``lepton-ledger demo`` leaves: a deployment file beside a chain state file."""
    from ..rounds.demo import STATE_FILE

    return (folder / "deployment.json").is_file() and (folder / STATE_FILE).is_file()


@contextmanager
def _demo_chain(folder: Path) -> Iterator[dict[str, object]]:
    """Runs a demo folder's chain for the service's lifetime; gives the settings that point at it."""
    from ..chain.anvil import Anvil
    from ..rounds.demo import STATE_FILE, STORE_DIR
    from ..rounds.session import load_deployment_document

    document = load_deployment_document(folder / "deployment.json")
    chain_id = document.get("chain_id", 31337)
    if type(chain_id) is not int:
        raise ConfigurationError(f"{folder / 'deployment.json'}: chain_id {chain_id!r} is not an integer")
    state_file = _inside(folder, document.get("state_file", STATE_FILE), "state_file")
    store = _inside(folder, document.get("store", STORE_DIR), "store")
    _inside(folder, "api", "the service's folder")  # its database and lock (service.py) go there
    size = state_file.stat().st_size if state_file.is_file() else 0
    if size > MAX_STATE_BYTES:
        raise ConfigurationError(
            f"{state_file}: {size} bytes, over the {MAX_STATE_BYTES}-byte cap on a demo folder's chain state"
        )
    anvil = Anvil(state_file=state_file, state_interval=STATE_INTERVAL, chain_id=chain_id)
    with anvil:
        yield {"rpc_url": anvil.url, "deployment": folder / "deployment.json", "ipfs": str(store), "owns_chain": True}


def _inside(folder: Path, name: object, what: str) -> Path:
    """`folder / name`, which must stay inside the (resolved) `folder`: the service writes there (the chain
    state, uploads, its database), and a folder from elsewhere must not make it write outside.

    Raises:
        ConfigurationError: not a relative path, or one leading outside (by "..", or a link).
    """
    path = (folder / name).resolve() if isinstance(name, str) else None
    if path is None or path == folder or not path.is_relative_to(folder):
        raise ConfigurationError(f"{folder}: {what} {name!r} is not a path inside the folder")
    return path
