"""The command line as one package: every command reports a failure the same way (one ``error:`` line on
stderr, exit code by kind: commands/errors.py), and one flag name means one thing everywhere."""

from __future__ import annotations

import inspect
from collections.abc import Iterator
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from lepton_ledger.cli import app

# Commands that report on their own terms: `keys list` lists what it can before naming damaged keyfiles.
REPORT_THEMSELVES = {"keys list"}


def _commands(group: Any = None, path: tuple[str, ...] = ()) -> Iterator[tuple[str, Any]]:
    group = group or typer.main.get_command(app)
    for name, command in group.commands.items():
        if hasattr(command, "commands"):
            yield from _commands(command, (*path, name))
        else:
            yield " ".join((*path, name)), command


def _options() -> Iterator[tuple[str, str, Any]]:
    for where, command in _commands():
        for param in command.params:
            if type(param).__name__.endswith("Option"):
                for flag in param.opts:
                    yield where, flag, param


def test_every_command_reports_its_failures_through_the_one_scheme():
    def reports(function: Any) -> bool:  # typer wraps each command too: look down the chain of wrappers
        found = inspect.unwrap(function, stop=lambda f: getattr(f, "reports_errors", False))
        return getattr(found, "reports_errors", False)

    unwrapped = [
        where for where, command in _commands() if where not in REPORT_THEMSELVES and not reports(command.callback)
    ]
    assert unwrapped == []


@pytest.mark.parametrize(
    ("argv", "code", "needle"),
    [
        (["demo", "--mode", "sideways"], 1, "--mode must be single or batched, not 'sideways'"),
        (["serve", "--data-dir", "{tmp}/none"], 1, "--data-dir {tmp}/none: no such folder"),
        (["audit", "--workdir", "{tmp}"], 2, "audit could not run: {tmp} has no chain state file"),
        (["keys", "show", "nobody"], 1, "nobody"),
        (["ipfs", "cat", "Qmnotacid"], 1, "Qmnotacid"),
        (["partner", "status", "1"], 1, "pass exactly one of --key and --address"),
    ],
)
def test_a_refusal_is_one_line_on_stderr_with_the_exit_code_of_its_kind(tmp_path, monkeypatch, argv, code, needle):
    monkeypatch.setenv("LEPTON_DATA_DIR", str(tmp_path))
    (tmp_path / "deployment.json").write_text('{"chain_id": 31337, "contracts": {}}')  # for the partner command
    result = CliRunner().invoke(app, [a.format(tmp=tmp_path) for a in argv], terminal_width=400)
    assert result.exit_code == code, result.output
    assert result.stdout == ""
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("error: "), result.stderr
    assert needle.format(tmp=tmp_path) in result.stderr


def test_one_flag_name_means_one_thing():
    by_flag: dict[str, list[tuple[str, Any]]] = {}
    for where, flag, param in _options():
        by_flag.setdefault(flag, []).append((where, param))
    assert not {"--rpc", "--key-name", "--key-file-name"} & set(by_flag)  # the old audit spellings
    # --key is always a keystore identity (a name, not a file); --json always prints JSON (a switch, not a path)
    assert all(p.type_descriptor.annotation is str for _, p in by_flag["--key"]), [
        w for w, p in by_flag["--key"] if p.type_descriptor.annotation is not str
    ]
    assert all(p.is_flag for _, p in by_flag["--json"]), [w for w, p in by_flag["--json"] if not p.is_flag]
    assert all(p.envvar == "LEPTON_RPC_URL" for _, p in by_flag["--rpc-url"])
    # --workdir is a folder left by `lepton-ledger demo`, wherever it appears
    assert all("demo" in (p.help or "") for _, p in by_flag["--workdir"]), by_flag["--workdir"]


def test_one_command_per_meaning():
    every = {where for where, _ in _commands()}
    assert "partner status" in every and "partner standing" not in every
    assert {"arbiter list", "arbiter rule", "arbiter lapse"} <= every
    assert not {"challenge resolve", "challenge rule", "challenge lapse"} & every  # ruling is the arbiter's alone
    assert [where for where, command in _commands() if command.hidden] == []  # no hidden second spelling


def test_an_agreement_and_a_round_are_positional_arguments_everywhere():
    """`partner claim 1 2`, `round abandon 1 2`, `vault reclaim 1`: one form. Only `challenge raise` takes
    --agreement and --round, as an optional pick among an audit's failures (instead of --check)."""
    as_flags = sorted({where for where, flag, _ in _options() if flag in ("--agreement", "--round")})
    assert as_flags == ["challenge raise"]
    arguments = {
        (where, param.name): param.metavar
        for where, command in _commands()
        for param in command.params
        if type(param).__name__.endswith("Argument") and param.name in ("agreement", "round", "round_id")
    }
    assert set(arguments.values()) == {"AGREEMENT", "ROUND"}, arguments
    for where in ("round abandon", "vault expire", "partner dispute", "challenge prove-forgery"):
        assert {name for (w, name) in arguments if w == where} in ({"agreement", "round"}, {"agreement", "round_id"})
