"""The role commands of ``lepton-ledger``, each a thin layer over the library: ``deploy`` (the admin),
``partner ...`` and ``coordinator ...``. ``context`` holds what every command shares (chain, deployment file,
keystore key, store, error reporting), ``data`` the data options; the steps the commands and the brownie scripts
share are the library's (``rounds.roles``). Importing this package imports typer only; each command imports what it needs when it runs.
"""

from __future__ import annotations

from .coordinator import coordinator_app
from .deploy import deploy, deploy_app
from .partner import partner_app

__all__ = ["coordinator_app", "deploy", "deploy_app", "partner_app"]
