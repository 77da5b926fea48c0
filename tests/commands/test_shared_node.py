"""Many commands at once, from many processes, share the data directory's one local node: every transaction lands
exactly once (each command used to run a private chain from the state file and write it back: last writer won,
and a registration or a submission vanished while its command said it succeeded)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import cli_lines
import pytest
from cli_home import ADDRESS, lepton_home
from typer.testing import CliRunner

from lepton_ledger.chain import node
from lepton_ledger.chain.connection import connect
from lepton_ledger.chain.state import Partner, Round
from lepton_ledger.cli import app as cli_app
from lepton_ledger.commands import coordinator_app, partner_app
from lepton_ledger.commands.context import (
    bind_deployment,
    default_deployment_path,
    load_deployment_document,
)
from lepton_ledger.units import PartnerStatus

DATA = cli_lines.DATA


def run(app, *args: str) -> str:
    result = CliRunner().invoke(app, list(args))
    assert result.exit_code == 0, f"{args}: {result.output}{result.exception!r}"
    return result.output


def at_once(*commands: list[str]) -> list[subprocess.CompletedProcess]:
    """Runs each `lepton-ledger` command line in its own process, all at the same time."""
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "lepton_ledger.cli", *c],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=os.environ.copy(),
        )
        for c in commands
    ]
    return [subprocess.CompletedProcess(p.args, p.wait(timeout=300), *p.communicate()) for p in procs]


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    with lepton_home(tmp_path_factory.mktemp("shared-node")) as home:
        run(cli_app, *cli_lines.deploy())
        yield home
        node.stop(home)


@contextmanager
def ledger() -> Iterator[Any]:
    """The deployment of the data directory, bound on its local node."""
    path = default_deployment_path()
    with connect() as w3:
        yield bind_deployment(w3, load_deployment_document(path), path)


def registered(address: str) -> bool:
    with ledger() as d:
        return Partner.read(d.partners.functions.partnerOf(address)).status is not PartnerStatus.NONE


def test_two_keys_register_at_once_and_both_land(home):
    results = at_once(*(cli_lines.register(name) for name in cli_lines.PARTIES))
    assert [r.returncode for r in results] == [0, 0, 0, 0], [r.stderr for r in results]
    assert all(registered(ADDRESS[name]) for name in cli_lines.PARTIES)


def test_one_key_twice_and_another_key_submit_at_once_each_lands_once(home):
    a, b = ADDRESS["partner-a"], ADDRESS["partner-b"]
    for name in cli_lines.PARTNERS:
        run(cli_app, *cli_lines.approve(name))
    run(cli_app, *cli_lines.propose())
    for name in ("partner-a", "partner-b"):
        run(partner_app, "sign", "1", "--key", name)
        run(partner_app, "stake", "1", "--key", name)
    run(coordinator_app, "fund", "1", "300", "--key", "coordinator")
    run(coordinator_app, "bond", "1", "100", "--key", "coordinator")  # the terms' default coordinator bond
    run(coordinator_app, "open", "1", "--key", "coordinator", *DATA)

    submit = ["partner", "train-and-submit", "1", *DATA]
    twice_a, once_b, again_a = at_once(
        [*submit, "--key", "partner-a", "--partition", "0"],
        [*submit, "--key", "partner-b", "--partition", "1"],
        [*submit, "--key", "partner-a", "--partition", "0"],
    )
    assert once_b.returncode == 0 and "round 1: submitted " in once_b.stdout, once_b.stderr
    # One of partner-a's two commands submitted; the other was told so, and neither said so falsely.
    a_results = sorted((twice_a, again_a), key=lambda r: r.returncode)
    assert a_results[0].returncode == 0 and "round 1: submitted " in a_results[0].stdout, a_results[0].stderr
    assert a_results[1].returncode == 1 and "already submitted its update for round 1" in a_results[1].stderr
    assert "submitted " not in a_results[1].stdout

    with ledger() as d:
        rounds = d.ledger.functions
        assert Round.read(rounds.round(1, 1)).submissions == 2  # one each, none lost
        assert rounds.hasSubmitted(1, 1, a).call() and rounds.hasSubmitted(1, 1, b).call()
        on_chain = rounds.cumulativeEpsilon(1, a).call()
    status = CliRunner().invoke(partner_app, ["status", "1", "--key", "partner-a"]).output
    local = next(float(line.split()[2]) for line in status.splitlines() if line.startswith("epsilon local"))
    assert abs(on_chain / 10**6 - local) < 2e-6  # trained once: the local accountant counts what the chain holds
