"""``lepton-ledger keys ...``: manage the encrypted keystore (see lepton_ledger/keys.py for the file format).

Passwords come from ``$LEPTON_KEYSTORE_PASSWORD`` when set, otherwise from a hidden prompt; never from argv,
where other users could read them in the process list. Private keys are likewise read from a hidden prompt
(or the first line of stdin when piped), never from argv. Nothing here prints a private key or a password.
"""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from ..keys import Identity, IdentityExists, Keystore, parse_private_key
from .context import command_group, password
from .errors import EXIT_REFUSED, reports_errors

__all__ = ["keys_app"]

# Locals off in tracebacks so that a crash cannot dump a password or key from a frame. This setting governs only
# when keys_app runs on its own; under `lepton-ledger`, the top-level app's setting (cli.py) is the one used.
keys_app = command_group(
    "Encrypted keystore: one Ethereum key (eth-account v3 keyfile, scrypt) and one X25519 key per identity, "
    "in $LEPTON_KEYSTORE_DIR or <data dir>/keystore. Password from $LEPTON_KEYSTORE_PASSWORD or a prompt."
)

Name = Annotated[str, typer.Argument(metavar="NAME", help="Identity name, e.g. coordinator or partner-alpha.")]


def _keystore() -> Keystore:
    """The keystore the commands use; a seam that tests replace with a low-cost one."""
    return Keystore()


def _print_identity(identity: Identity) -> None:
    # Plain echo, not rich: a path with brackets must not be read as markup.
    typer.echo(f"name:           {identity.name}")
    typer.echo(f"address:        {identity.address}")
    typer.echo(f"x25519 public:  {identity.x25519_public_hex}")
    typer.echo(f"file:           {identity.path}")


@keys_app.command("create")
@reports_errors
def create_cmd(name: Name) -> None:
    """Generate a new Ethereum key and X25519 key for NAME; writes <keystore>/NAME.json.

    Both keys are encrypted under the password (eth-account v3 keyfile with scrypt, plus an AES-256-GCM
    X25519 section) in a file of mode 0600, written atomically. Prints the address and X25519 public key,
    never a private key. Refuses an existing NAME.
    """
    store = _keystore()
    if store.path_of(name).exists():  # before asking for a password
        raise IdentityExists(name)
    identity = store.create(name, password(confirm=True))
    _print_identity(identity)
    typer.echo(
        f"a new key holds no ether: on the local node, `lepton-ledger node fund --key {name}` gives it "
        "development ether for gas; on another chain, send it some"
    )


@keys_app.command("import")
@reports_errors
def import_cmd(name: Name) -> None:
    """Import an existing Ethereum private key as NAME; writes <keystore>/NAME.json.

    The key (64 hex digits) is read from a hidden prompt, or from the first line of stdin when stdin is not a
    terminal; never from the command line. A new X25519 key is generated. The file is encrypted under the
    password, mode 0600, written atomically. Refuses an existing NAME.
    """
    store = _keystore()
    if store.path_of(name).exists():  # before asking for a secret that would be thrown away
        raise IdentityExists(name)
    if sys.stdin.isatty():
        private_key = str(typer.prompt("Private key (hex)", hide_input=True))
    else:
        private_key = sys.stdin.readline()
    eth_key = parse_private_key(private_key)  # refuse a bad key before asking for a password
    identity = store.import_key(name, eth_key, password(confirm=True))
    _print_identity(identity)


@keys_app.command("list")
def list_cmd() -> None:
    """List every identity with its address and X25519 public key; writes nothing, needs no password. A keyfile
    that cannot be read is named on stderr (exit code 1), after the others are listed."""
    identities, damaged = _keystore().scan()
    if not identities:
        typer.echo("no identities")
    else:
        # Plain tab-separated lines: a table would truncate addresses on narrow terminals, and scripts cut fields.
        typer.echo("name\taddress\tx25519_public")
    for identity in identities:
        typer.echo(f"{identity.name}\t{identity.address}\t{identity.x25519_public_hex}")
    for exc in damaged:
        typer.echo(f"error: {exc}", err=True)
    if damaged:
        raise typer.Exit(EXIT_REFUSED)


@keys_app.command("show")
@reports_errors
def show_cmd(name: Name) -> None:
    """Show NAME's address, X25519 public key and file; writes nothing, needs no password."""
    identity = _keystore().show(name)
    _print_identity(identity)


@keys_app.command("delete")
@reports_errors
def delete_cmd(
    name: Name,
    yes: Annotated[bool, typer.Option("--yes", help="Delete without asking.")] = False,
) -> None:
    """Delete NAME: removes <keystore>/NAME.json.

    Its keys are lost for good unless backed up elsewhere. Asks first unless --yes.
    """
    store = _keystore()
    store.show(name)  # an unknown name is an error before the question
    if not yes and not typer.confirm(f"Delete identity {name!r} and its keys for good?", default=False):
        raise typer.Exit(1)
    store.delete(name)
    typer.echo(f"deleted {name}")
