"""``lepton-ledger serve``: the settings from the environment, the app, uvicorn."""

from __future__ import annotations

import os
from pathlib import Path

from ..errors import ConfigurationError


def serve(*, host: str, port: int, data_dir: Path | None) -> None:
    """Serves until interrupted.

    Raises:
        ConfigurationError: `data_dir` is not a folder, or a setting is malformed.
        CommandError, ChainError: no deployment, or no chain (checked before listening).
    """
    import uvicorn

    from ..settings import Settings
    from .app import create_app
    from .service import check_service

    if data_dir is not None:
        if not data_dir.is_dir():
            raise ConfigurationError(f"--data-dir {data_dir}: no such folder")
        os.environ["LEPTON_DATA_DIR"] = str(data_dir.resolve())  # every library default reads it
    settings = Settings.from_env()
    check_service(settings)  # refuse with one line, before listening, what start-up would refuse
    uvicorn.run(create_app(settings), host=host, port=port, log_level="warning", access_log=False)
