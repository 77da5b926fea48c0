"""What every role command shares: which chain, which deployment, which key, which store, and how a failure
is reported.

- chain: ``--rpc-url`` (or ``$LEPTON_RPC_URL``): any EVM node; without one, the data directory's local node
  (``lepton-ledger node``), which every command shares and which the first command that needs it starts
  (``chain.connection.connect``).
- deployment: ``--deployment FILE``, default ``<data dir>/deployment.json`` (what ``lepton-ledger deploy`` writes:
  ``chain_id``, ``contracts``, and ``reward_token``, ``coordinator``, ``auditors``, ``dispute_window``).
- key: ``--key NAME``, an identity of the encrypted keystore (keys.py); its password comes from
  ``$LEPTON_KEYSTORE_PASSWORD`` or a hidden prompt. Keys and passwords are never printed or logged.
- store: ``--ipfs LOCATION``, a directory or a Kubo RPC URL; the embedded block store by default
  (``storage.open_store``). Roles on different machines must share one (a Kubo node): the partners fetch the
  model the coordinator put, the coordinator the envelopes the partners put.

The session itself (deployment binding, the checks before a send) is the library's (rounds/session.py), shared
with the ledger service. Failures are reported as ``errors`` says (one ``error: ...`` line on stderr, exit code
by kind). Commands check what they can before their first transaction, so a refused command sends nothing.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer

from .. import settings
from ..rounds.session import (
    Session,
    bind_deployment,
    default_deployment_path,
    load_deployment_document,
    no_gas_message,
    parse_address,
    parse_tokens,
    read_call,
    require,
)
from .errors import CommandError, fail, reports_errors

__all__ = [
    "AddressKeyOpt",
    "AgreementArg",
    "AsOpt",
    "ChallengeArg",
    "CommandError",
    "DeploymentOpt",
    "IpfsOpt",
    "JsonOpt",
    "KeyOpt",
    "ModelOpt",
    "ReadKeyOpt",
    "RoundArg",
    "RpcUrlOpt",
    "SignerKeyOpt",
    "WorkdirOpt",
    "Session",
    "bind_deployment",
    "command_group",
    "default_deployment_path",
    "echo_json",
    "fail",
    "fixed_point",
    "load_deployment_document",
    "no_gas_message",
    "open_session",
    "parse_address",
    "parse_tokens",
    "password",
    "read_call",
    "reports_errors",
    "require",
    "unlock_key",
    "utc",
]

# The flags and arguments the commands share, declared once: a command names the alias, not the option.
RpcUrlOpt = Annotated[
    str | None,
    typer.Option(
        "--rpc-url",
        envvar="LEPTON_RPC_URL",
        show_envvar=True,
        help="JSON-RPC URL of the chain; default: the embedded anvil (state under the data directory).",
    ),
]
DeploymentOpt = Annotated[
    Path | None, typer.Option("--deployment", help="deployment.json to use; default: <data dir>/deployment.json.")
]
_SIGNS = "Keystore identity that signs (password: $LEPTON_KEYSTORE_PASSWORD or a prompt)."
KeyOpt = Annotated[str, typer.Option("--key", help=_SIGNS)]
SignerKeyOpt = Annotated[str | None, typer.Option("--key", help=_SIGNS)]  # where --workdir --as may sign instead
_READS = "Keystore identity (only its address is read: no password)."
ReadKeyOpt = Annotated[str | None, typer.Option("--key", help=_READS)]
AddressKeyOpt = Annotated[str, typer.Option("--key", help=_READS)]
IpfsOpt = Annotated[
    str | None,
    typer.Option("--ipfs", help="Block store: a directory or a Kubo RPC URL; default: the embedded store."),
]
WorkdirOpt = Annotated[
    Path | None,
    typer.Option("--workdir", help="A folder left by `lepton-ledger demo`: its chain, store and development keys."),
]
AsOpt = Annotated[
    str | None,
    typer.Option(
        "--as",
        help="With --workdir: which development key signs (admin, coordinator, auditor, treasury, "
        "partner1...); default: the role the step needs.",
    ),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print the result as JSON.")]
ModelOpt = Annotated[
    str | None, typer.Option("--model", help="Model name; default: the terms document's, else logreg.")
]
AgreementArg = Annotated[int, typer.Argument(metavar="AGREEMENT", help="Agreement id.")]
RoundArg = Annotated[int, typer.Argument(metavar="ROUND", help="Round id.")]
ChallengeArg = Annotated[int, typer.Argument(metavar="CHALLENGE", help="Challenge id (1, 2, ...).")]


def command_group(help: str, commands: tuple[tuple[str, Callable[..., Any]], ...] = ()) -> typer.Typer:
    """A group of commands (``lepton-ledger <group> ...``) with `help`, holding `commands` (name, function) in
    that order; a crash in it never prints local variables (they may hold keys or passwords)."""
    group = typer.Typer(help=help, no_args_is_help=True, pretty_exceptions_show_locals=False, add_completion=False)
    for name, command in commands:
        group.command(name)(command)
    return group


def password(*, confirm: bool = False) -> str:
    """The keystore password: ``$LEPTON_KEYSTORE_PASSWORD`` when set, else a hidden prompt (never argv, where
    other users could read it in the process list)."""
    from_env = settings.keystore_password()
    if from_env is not None:
        return from_env
    return str(typer.prompt("Keystore password", hide_input=True, confirmation_prompt=confirm))


def unlock_key(name: str) -> Any:
    """The keystore identity `name`, unlocked (``keys.UnlockedIdentity``).

    Raises:
        UnknownIdentity, WrongPassword, KeystoreCorrupted, InvalidIdentityName.
    """
    from ..keys import Keystore

    keystore = Keystore()
    keystore.show(name)  # an unknown name is reported before the password is asked for
    return keystore.unlock(name, password())


@contextmanager
def open_session(
    *, rpc_url: str | None, deployment: Path | None, key: str | None, ipfs: str | None = None, sends: bool = True
) -> Iterator[Session]:
    """Reads the deployment file, unlocks `key`, connects (RPC URL or embedded anvil), binds the contracts and
    checks they are there: each failure, in that order, before anything is sent. With `sends`, also refuses a
    signer without ether for gas."""
    from ..chain.connection import connect
    from ..chain.transactions import Transactor

    path = deployment or default_deployment_path()
    document = load_deployment_document(path)
    identity = unlock_key(key) if key else None
    with connect(rpc_url) as w3:
        if not (rpc_url or settings.rpc_url()):
            # The local node mines only when a command sends, so its latest block can be minutes old, and calls
            # and gas estimates run at that block's time: bring it to now (an empty block) so that time checks (a
            # dispute window that has ended) see the present.
            w3.provider.make_request("evm_mine", [])
        bound = bind_deployment(w3, document, path)
        session = Session(
            w3=w3, deployment=bound, document=document, deployment_path=path, identity=identity, ipfs=ipfs
        )
        session.tx = Transactor(w3, [identity.account] if identity else [])
        if identity is not None and sends:
            session.require_gas()
        yield session


def utc(timestamp: int) -> str:
    """A chain timestamp as people read it: ``2026-12-06 03:05:28 UTC``."""
    from ..chain.transactions import utc_text

    return utc_text(timestamp)


def fixed_point(value: int, decimals: int) -> str:
    """An amount of the reward token (18 decimals) or an epsilon (6) as people read it, exactly."""
    from ..chain.transactions import fixed_point_text

    return fixed_point_text(value, decimals)


def echo_json(document: dict[str, Any]) -> None:
    typer.echo(json.dumps(document, indent=2, sort_keys=True))
