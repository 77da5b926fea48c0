"""``lepton-ledger demo``: the whole story on a fresh local anvil (rounds/demo.py), leaving an auditable folder."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from .errors import EXIT_INTERRUPTED, CommandError, fail, reports_errors

__all__ = ["demo"]


@reports_errors
def demo(
    out: Annotated[
        Path, typer.Option(help="Folder for deployment.json, summary.json, chain state, store, keys.")
    ] = Path("demo-out"),
    partners: Annotated[int, typer.Option(min=1, help="Number of partners.")] = 3,
    rounds: Annotated[int, typer.Option(min=1, help="Number of DP federated rounds.")] = 5,
    mode: Annotated[
        str, typer.Option(help="Commit mode: single (one tx per partner) or batched (one anchored batch).")
    ] = "single",
    dispute_window: Annotated[int, typer.Option(min=1, help="Seconds between finalization and claims.")] = 600,
    aggregation: Annotated[
        str, typer.Option(help="Aggregation rule: fedavg, median, trimmed_mean, krum, multi_krum.")
    ] = "fedavg",
    scoring: Annotated[
        str, typer.Option(help="Contribution scores: leave_one_out, tmc_shapley, exact_shapley.")
    ] = "leave_one_out",
    model: Annotated[
        str, typer.Option(help="logreg, mlp, or fusion (late fusion of three modality encoders).")
    ] = "logreg",
    free_rider: Annotated[bool, typer.Option(help="The last partner sends a near-zero update (2+ partners).")] = True,
) -> None:
    """Runs the whole story on a fresh local anvil: deploy, register, sign (tx and EIP-712), stake, fund, R DP
    rounds on a non-IID split of digits with a free-rider, payouts by measured contribution, claims; leaves an
    auditable folder (deployment, summary, chain state, store, keys)."""
    from ..rounds.demo import RoundRules, run_demo
    from ..workers import use_evaluation_threads

    use_evaluation_threads()  # this process closes the rounds; the partners train in worker processes
    if mode not in ("single", "batched"):
        raise CommandError(f"--mode must be single or batched, not {mode!r}")
    console = Console(soft_wrap=True)
    try:
        result = run_demo(
            out,
            partners=partners,
            rounds=rounds,
            mode=mode,
            dispute_window=dispute_window,
            rules=RoundRules(aggregation=aggregation, scoring=scoring),
            model=model,
            free_rider=free_rider,
            console=console,
        )
    except KeyboardInterrupt:  # the demo starts over, it does not resume: say so instead of the resume line
        raise fail(
            f"interrupted; {out} holds what was done so far (run the demo again to start over)", EXIT_INTERRUPTED
        ) from None
    console.print(
        f"[green]done[/]: agreement {result.agreement_id}, {rounds} round(s); see {out / 'summary.json'} and {out / 'deployment.json'}"
    )
    console.print(f"audit it from the folder alone: lepton-ledger audit --workdir {out} --html {out / 'audit.html'}")
