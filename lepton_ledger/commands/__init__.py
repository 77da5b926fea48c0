"""The command-line interface of ``lepton-ledger``, one module per command group (a package, one module per
concern, for the two largest: ``partner/`` and ``coordinator/``), each a thin layer over the library that parses,
calls and prints: ``deploy`` (the admin), ``node``, ``keys``, ``ipfs``, ``partner``,
``coordinator``, ``audit``, ``challenge``, ``arbiter``, ``vault``, ``round``, ``serve`` and ``demo``.
``context`` holds what every command shares (chain, deployment file, keystore key, store, the shared flags),
``errors`` the one way a failure is reported (one line, exit code by kind), ``data`` the data options; the steps the commands and
the brownie scripts share are the library's (``rounds.roles``). The root that registers the groups is lepton_ledger/cli.py.
Each command imports the heavy parts of the library when it runs.
"""

from __future__ import annotations

from .coordinator import coordinator_app
from .deploy import deploy, deploy_app
from .partner import partner_app

__all__ = ["coordinator_app", "deploy", "deploy_app", "partner_app"]
