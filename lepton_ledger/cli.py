"""The `lepton-ledger` command."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from .errors import LeptonError
from .keys_cli import keys_app
from .storage.cli import ipfs_app

app = typer.Typer(
    help="lepton-ledger: DP federated training with on-chain budgets and payouts.",
    no_args_is_help=True,
    # A crash must never print local variables: they may hold passwords or keys.
    pretty_exceptions_show_locals=False,
)
console = Console(soft_wrap=True)
app.add_typer(ipfs_app, name="ipfs")
app.add_typer(keys_app, name="keys")


@app.callback()
def main() -> None:
    """Commands of lepton-ledger."""


@app.command()
def demo(
    out: Annotated[Path, typer.Option(help="Folder for deployment.json and other outputs.")] = Path("demo-out"),
    dispute_window: Annotated[int, typer.Option(min=1, help="Seconds between finalization and claims.")] = 3600,
) -> None:
    """Deploys the contracts on a fresh local chain and walks an agreement's lifecycle, step by step."""
    from .chain.lifecycle import run_lifecycle

    try:
        result = run_lifecycle(out, dispute_window=dispute_window, console=console)
    except LeptonError as exc:
        console.print(f"[red]error:[/] {exc}")
        raise typer.Exit(1) from None
    console.print(f"[green]done[/]: agreement {result.agreement_id}, round {result.round_id}; deployment in {out / 'deployment.json'}")


if __name__ == "__main__":  # pragma: no cover
    app()
