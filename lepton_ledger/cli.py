"""The ``lepton-ledger`` command: the root that registers the command groups of ``lepton_ledger.commands``
(one module per group; how they report failures and which flags they share: commands/errors.py and
commands/context.py)."""

from __future__ import annotations

import typer

from .commands.arbiter import arbiter_app
from .commands.audit import audit
from .commands.challenge import challenge_app
from .commands.coordinator import coordinator_app
from .commands.demo import demo
from .commands.deploy import deploy
from .commands.ipfs import ipfs_app
from .commands.keys import keys_app
from .commands.node import node_app
from .commands.partner import partner_app
from .commands.round_cmd import round_app
from .commands.serve import serve
from .commands.vault import vault_app

app = typer.Typer(
    help="lepton-ledger: DP federated training with on-chain budgets and payouts.",
    no_args_is_help=True,
    # A crash must never print local variables: they may hold passwords or keys.
    pretty_exceptions_show_locals=False,
)
for name, group in (
    ("node", node_app),
    ("ipfs", ipfs_app),
    ("keys", keys_app),
    ("partner", partner_app),
    ("coordinator", coordinator_app),
    ("challenge", challenge_app),
    ("arbiter", arbiter_app),
    ("vault", vault_app),
    ("round", round_app),
):
    app.add_typer(group, name=name)
for name, command in (("deploy", deploy), ("audit", audit), ("serve", serve), ("demo", demo)):
    app.command(name)(command)


@app.callback()
def main() -> None:
    """Commands of lepton-ledger."""


if __name__ == "__main__":  # pragma: no cover
    app()
