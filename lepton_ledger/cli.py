"""The `lepton-ledger` command."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from .audit.cli import audit as audit_command
from .challenges.cli import challenge_app
from .commands import coordinator_app, deploy, partner_app
from .commands.arbiter import arbiter_app
from .commands.node import node_app
from .commands.round_cmd import round_app
from .commands.vault import vault_app
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
app.add_typer(node_app, name="node")
app.add_typer(ipfs_app, name="ipfs")
app.add_typer(keys_app, name="keys")
app.add_typer(partner_app, name="partner")
app.add_typer(coordinator_app, name="coordinator")
app.command("deploy")(deploy)
app.command("audit")(audit_command)
app.add_typer(challenge_app, name="challenge")
app.add_typer(arbiter_app, name="arbiter")
app.add_typer(vault_app, name="vault")
app.add_typer(round_app, name="round")


@app.callback()
def main() -> None:
    """Commands of lepton-ledger."""


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=0, max=65535, help="Port to listen on.")] = 8000,
    workdir: Annotated[Path | None, typer.Option(help="Data directory to serve (deployment.json, block store, "
                                                      "service database); default: the data directory.")] = None,
) -> None:
    """Runs the ledger service (HTTP, /docs for its API) on the configured chain ($LEPTON_RPC_URL) or the data
    directory's local node, for the deployment in <data dir>/deployment.json."""
    from .api.serve import serve as run_service

    try:
        run_service(host=host, port=port, workdir=workdir)
    except LeptonError as exc:
        console.print(f"[red]error:[/] {exc}")
        raise typer.Exit(1) from None


@app.command()
def demo(
    out: Annotated[Path, typer.Option(help="Folder for deployment.json, summary.json, chain state, store, keys.")] = Path("demo-out"),
    partners: Annotated[int, typer.Option(min=1, help="Number of partners.")] = 3,
    rounds: Annotated[int, typer.Option(min=1, help="Number of DP federated rounds.")] = 5,
    mode: Annotated[str, typer.Option(help="Commit mode: single (one tx per partner) or batched (one anchored batch).")] = "single",
    dispute_window: Annotated[int, typer.Option(min=1, help="Seconds between finalization and claims.")] = 600,
    aggregation: Annotated[str, typer.Option(help="Aggregation rule: fedavg, median, trimmed_mean, krum, multi_krum.")] = "fedavg",
    scoring: Annotated[str, typer.Option(help="Contribution scores: leave_one_out, tmc_shapley, exact_shapley.")] = "leave_one_out",
    model: Annotated[str, typer.Option(help="logreg, mlp, or fusion (late fusion of three modality encoders).")] = "logreg",
    free_rider: Annotated[bool, typer.Option(help="The last partner sends a near-zero update (2+ partners).")] = True,
) -> None:
    """Runs the whole story on a fresh local anvil: deploy, register, sign (tx and EIP-712), stake, fund, R DP
    rounds on a non-IID split of digits with a free-rider, payouts by measured contribution, claims; leaves an
    auditable folder (deployment, summary, chain state, store, keys)."""
    from .rounds.demo import RoundRules, run_demo

    if mode not in ("single", "batched"):
        console.print(f"[red]error:[/] --mode must be single or batched, not {mode!r}")
        raise typer.Exit(2)
    try:
        result = run_demo(out, partners=partners, rounds=rounds, mode=mode, dispute_window=dispute_window,
                          rules=RoundRules(aggregation=aggregation, scoring=scoring), model=model,
                          free_rider=free_rider, console=console)  # fmt: skip
    except LeptonError as exc:
        console.print(f"[red]error:[/] {exc}")
        raise typer.Exit(1) from None
    except KeyboardInterrupt:
        console.print(f"[red]error:[/] interrupted; {out} holds what was done so far (run the demo again to start over)")
        raise typer.Exit(130) from None
    console.print(f"[green]done[/]: agreement {result.agreement_id}, {rounds} round(s); see {out / 'summary.json'} and {out / 'deployment.json'}")
    console.print(f"audit it from the folder alone: lepton-ledger audit --workdir {out} --html {out / 'audit.html'}")


if __name__ == "__main__":  # pragma: no cover
    app()
