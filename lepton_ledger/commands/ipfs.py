"""``lepton-ledger ipfs ...``: add, cat, export-car, import-car against the local block store.

The store lives at `settings.blockstore_dir()` (``$LEPTON_BLOCKSTORE_DIR``, else ``<data dir>/blocks``).
Errors are reported as ``errors`` says, without touching stdout or the output file.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from ..errors import LeptonError
from ..storage.store import DEFAULT_MAX_FILE_BYTES
from .context import command_group
from .errors import CommandError, reports_errors

__all__ = ["ipfs_app"]

if TYPE_CHECKING:  # the store loads on first use: --help stays fast
    from ..storage.local import LocalStore

ipfs_app = command_group("Content-addressed storage with kubo-identical CIDs (local block store).")


def _store() -> LocalStore:
    from ..storage.local import LocalStore

    return LocalStore()


@ipfs_app.command()
@reports_errors
def add(
    file: Annotated[Path, typer.Argument(metavar="FILE", help="File to add.")],
    cid_version: Annotated[int, typer.Option("--cid-version", help="0 (kubo default) or 1 (raw leaves, base32).")] = 0,
    only_hash: Annotated[bool, typer.Option("--only-hash", help="Compute the CID, store nothing.")] = False,
) -> None:
    """Adds FILE as `ipfs add` would and prints its CID alone."""
    from ..storage.unixfs import file_cid

    if cid_version not in (0, 1):
        raise CommandError(f"--cid-version must be 0 or 1, not {cid_version}")
    try:
        with open(file, "rb") as f:
            cid = file_cid(f, cid_version=cid_version) if only_hash else _store().put(f, cid_version=cid_version)
    except IsADirectoryError:
        raise CommandError(f"{file} is a directory (only files can be added)") from None
    except OSError as exc:
        raise CommandError(f"cannot read {file}: {exc.strerror or exc}") from None
    typer.echo(cid)


_MAX_BYTES_HELP = "Refuse a file larger than this many bytes (checked from its root node before reading)."


@ipfs_app.command()
@reports_errors
def cat(
    cid: Annotated[str, typer.Argument(metavar="CID", help="CID of a file.")],
    max_bytes: Annotated[int, typer.Option("--max-bytes", min=0, help=_MAX_BYTES_HELP)] = DEFAULT_MAX_FILE_BYTES,
) -> None:
    """Writes the file's bytes to stdout, every block verified.

    The whole DAG is checked before the first byte is written, so a missing or corrupted block fails the
    command with nothing on stdout (at the cost of reading the blocks twice)."""
    from ..storage.cid import parse_cid

    parsed = parse_cid(cid)
    store = _store()
    for _ in store.stream(str(parsed), max_bytes=max_bytes):
        pass  # a first pass verifies every block and the size bound before anything is written
    out = sys.stdout.buffer
    for piece in store.stream(str(parsed), max_bytes=max_bytes):
        out.write(piece)
    out.flush()


@ipfs_app.command("export-car")
@reports_errors
def export_car_cmd(
    cid: Annotated[str, typer.Argument(metavar="CID", help="Root CID.")],
    out: Annotated[Path, typer.Argument(metavar="OUT", help="CAR file to write.")],
) -> None:
    """Exports the DAG under CID to a CAR v1 file (as `ipfs dag export`)."""
    from ..storage.car import export_car
    from ..storage.cid import parse_cid

    try:
        export_car(_store(), parse_cid(cid), out)
    except OSError as exc:
        raise CommandError(f"cannot write {out}: {exc.strerror or exc}") from None


@ipfs_app.command("import-car")
@reports_errors
def import_car_cmd(
    car: Annotated[Path, typer.Argument(metavar="CAR", help="CAR v1 file to import.")],
    max_bytes: Annotated[
        int, typer.Option("--max-bytes", min=0, help="Refuse a CAR with more bytes of blocks.")
    ] = DEFAULT_MAX_FILE_BYTES,
) -> None:
    """Imports a CAR v1 file, verifying every block, pins its roots and prints them, one a line."""
    from ..storage.car import import_car

    try:
        roots = import_car(_store(), car, max_bytes=max_bytes)
    except OSError as exc:
        raise CommandError(f"cannot read {car}: {exc.strerror or exc}") from None
    except LeptonError as exc:
        raise CommandError(f"{car}: {exc}") from None
    for root in roots:
        typer.echo(root)
