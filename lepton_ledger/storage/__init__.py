"""Content-addressed storage that speaks IPFS: kubo-identical CIDs (UnixFS importer), a local block store
(the embedded default), CAR v1 files, and a Kubo RPC backend. Every backend implements `Store`."""

from __future__ import annotations

import os
from pathlib import Path

from .store import Store

__all__ = ["open_store"]


def open_store(location: str | os.PathLike[str] | None = None) -> Store:
    """The store a command should use: `location` as an ``http(s)://`` Kubo RPC URL (a ``KuboStore``) or a
    directory (a ``LocalStore``); when omitted, ``$LEPTON_KUBO_API`` if set, else the embedded block store under
    the data directory (``settings.blockstore_dir()``).

    Raises:
        ConfigurationError: a Kubo URL that is not http(s) (from ``KuboStore``).
    """
    from ..settings import kubo_api

    where = str(location) if location is not None else kubo_api()
    if where is not None and where.startswith(("http://", "https://")):
        from .kubo import KuboStore

        return KuboStore(where)
    from .local import LocalStore

    return LocalStore(Path(where).expanduser() if where is not None else None)
