"""``lepton-ledger serve``: the ledger service (HTTP) over the data directory's deployment (api/serve.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from .errors import reports_errors

__all__ = ["serve"]


@reports_errors
def serve(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=0, max=65535, help="Port to listen on.")] = 8000,
    data_dir: Annotated[
        Path | None,
        typer.Option(
            help="Data directory to serve (deployment.json, block store, service database); default: $LEPTON_DATA_DIR."
        ),
    ] = None,
    workdir: Annotated[
        Path | None,
        typer.Option(
            help="A folder 'lepton-ledger demo' left: the service runs its chain and store, for its dashboard and API."
        ),
    ] = None,
) -> None:
    """Runs the ledger service (HTTP, /docs for its API) on the configured chain ($LEPTON_RPC_URL) or the data
    directory's local node, for the deployment in <data dir>/deployment.json."""
    from ..api.serve import serve as run_service
    from ..workers import use_evaluation_threads

    use_evaluation_threads()  # the service closes rounds (evaluates) and trains nothing
    run_service(host=host, port=port, data_dir=data_dir, workdir=workdir)
