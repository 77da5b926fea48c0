"""``lepton-ledger audit``: re-verify a demo folder (``--workdir DIR``) or a live deployment (by default the
commands' own: the local node, ``<data dir>/deployment.json`` and the data directory's block store; or
``--rpc-url URL --deployment FILE --ipfs LOCATION``) with the auditor's key (``--key NAME | --key-file FILE``),
print a table, optionally write the JSON (``--json-out FILE``, format in audit/model.py) and the HTML report
(``--html FILE``, audit/html.py).

Exit status: 0 every check holds, 1 a check failed, 2 the audit could not run (one ``error:`` line on stderr says
why, as commands/errors.py: among others, a key that is not a recipient of the deployment's updates, or a folder
that is not a block store, so that neither reads as tampering).

``--deployment FILE`` is a JSON document with the contract addresses under ``contracts`` (as
``deployment.json``, which ``deploy`` and ``coordinator open`` keep ready for the audit), the evaluation set's
``fl.make_federated`` arguments under ``eval_set`` and the model name under ``model``. ``--ipfs LOCATION`` is a
LocalStore folder or a Kubo RPC URL (``http(s)://...``). ``--key NAME`` unlocks that keystore identity (password
from ``$LEPTON_KEYSTORE_PASSWORD`` or a prompt), as for every command; ``--key-file FILE`` is a JSON file with
``x25519_private_key`` (hex), or a demo's ``keys/dev-keys.json``.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from ..audit.model import CHECK_NAMES, AuditResult
from ..protocol.errors import ProtocolError
from ..protocol.jsonio import FILE_BYTES, load_object, read_bounded
from .context import DeploymentOpt, IpfsOpt, RpcUrlOpt, WorkdirOpt, password
from .errors import EXIT_USAGE, reports_errors

__all__ = ["audit", "audit_app"]

audit_app = typer.Typer(pretty_exceptions_show_locals=False)


@audit_app.command()
@reports_errors(code=EXIT_USAGE, prefix="audit could not run: ")  # exit 1 says that a check failed
def audit(
    workdir: WorkdirOpt = None,
    rpc_url: RpcUrlOpt = None,
    deployment: DeploymentOpt = None,
    ipfs: IpfsOpt = None,
    key: Annotated[
        str | None,
        typer.Option(
            help="Keystore identity holding the auditor's X25519 key (password: $LEPTON_KEYSTORE_PASSWORD or a prompt)."
        ),
    ] = None,
    key_file: Annotated[
        Path | None, typer.Option(help="JSON file with the auditor's x25519_private_key, instead of --key.")
    ] = None,
    json_out: Annotated[Path | None, typer.Option("--json-out", help="Write every check as JSON to this file.")] = None,
    html_out: Annotated[Path | None, typer.Option("--html", help="Write a self-contained HTML report here.")] = None,
    full: Annotated[bool, typer.Option("--full", help="Re-check every round, not only new ones.")] = False,
    state: Annotated[
        Path | None,
        typer.Option(
            help="Audit state file (default: DIR/audit/state.sqlite with "
            "--workdir, else <data dir>/audit/state.sqlite)."
        ),
    ] = None,
) -> None:
    """Re-verifies every round of a deployment from the chain, the store and the auditor key."""
    from ..workers import use_evaluation_threads

    use_evaluation_threads()  # this process re-evaluates rounds and trains nothing
    result = _run(workdir, rpc_url, deployment, ipfs, key, key_file, state, full)
    if json_out is not None:
        json_out.parent.mkdir(parents=True, exist_ok=True)
        json_out.write_text(json.dumps(result.to_dict(), indent=2) + "\n")
    if html_out is not None:
        from ..audit.html import write_html

        write_html(result.to_dict(), html_out)
    # A console per run: one made at import fixes the width of whatever COLUMNS said then.
    print_result(result, Console(soft_wrap=True))
    raise typer.Exit(0 if result.ok else 1)


def _run(
    workdir: Path | None,
    rpc_url: str | None,
    deployment: Path | None,
    ipfs: str | None,
    key: str | None,
    key_file: Path | None,
    state: Path | None,
    full: bool,
) -> AuditResult:
    from ..audit.runner import (
        AuditCannotRun,
        audit_deployment,
        audit_workdir,
        deployment_contracts,
        load_auditor_key,
    )

    if workdir is not None:
        options = {
            "--rpc-url ($LEPTON_RPC_URL)": rpc_url,
            "--deployment": deployment,
            "--ipfs": ipfs,
            "--key": key,
            "--key-file": key_file,
        }
        given = [name for name, value in options.items() if value is not None]
        if given:
            raise AuditCannotRun(f"--workdir takes everything from the folder; drop {', '.join(given)}")
        return audit_workdir(workdir, state_path=state, full=full)
    if (key is None) == (key_file is None):
        raise AuditCannotRun("give --workdir DIR, or the auditor's key: --key NAME (keystore) or --key-file FILE")
    from .. import settings

    deployment = deployment or settings.data_dir() / "deployment.json"
    try:
        document = load_object(read_bounded(deployment, FILE_BYTES), what=str(deployment), max_bytes=FILE_BYTES)
    except FileNotFoundError:
        raise AuditCannotRun(f"no deployment file at {deployment} (pass --deployment)") from None
    except ProtocolError as exc:
        raise AuditCannotRun(f"{deployment} is not a deployment document: {exc}") from None
    secret = load_auditor_key(key_file) if key_file is not None else _keystore_key(str(key))
    from ..chain.connection import connect

    store = _store(ipfs)
    with connect(rpc_url) as w3:
        contracts = deployment_contracts(document)
        _require_recipient(w3, contracts, document, secret)
        return audit_deployment(
            w3,
            contracts,
            store,
            secret,
            eval_set_spec=document.get("eval_set"),
            model_name=document.get("model", "logreg"),
            state_path=state,
            full=full,
        )


def _store(location: str | None) -> Any:
    """The block store to audit: `location` (a Kubo RPC URL or a LocalStore folder), by default the commands'
    store; a folder that is no block store is refused here, so that it does not read as missing artifacts."""
    from ..audit.runner import AuditCannotRun

    if location is None:
        from ..storage import open_store

        return open_store(None)
    if location.startswith(("http://", "https://")):
        from ..storage.kubo import KuboStore

        return KuboStore(location)
    root = Path(location)
    if not ((root / "blocks").is_dir() and (root / "pins.sqlite").is_file()):
        inner = root / "blocks" / "pins.sqlite"
        hint = f" (the block store of that data directory is {root / 'blocks'})" if inner.is_file() else ""
        raise AuditCannotRun(f"--ipfs {location} is not a block store: wrong store location{hint}")
    from ..storage.local import LocalStore

    return LocalStore(location, durable=False)


def _require_recipient(w3: Any, contracts: dict[str, str], document: dict[str, Any], secret: bytes) -> None:
    """Refuses a key no update of this deployment is encrypted to (its X25519 key is not the registered key of
    the deployment's coordinator or of an auditor), which would otherwise read as undecryptable envelopes."""
    from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

    from ..audit.runner import AuditCannotRun
    from ..chain.deployment import Deployment
    from ..chain.state import Partner

    readers = [a for a in [document.get("coordinator"), *document.get("auditors", [])] if isinstance(a, str)]
    if not readers:
        return  # a deployment file that does not say who reads the updates: the checks will tell
    public = X25519PrivateKey.from_private_bytes(secret).public_key().public_bytes_raw()
    partners = Deployment.at(w3, contracts).partners.functions
    registered = {Partner.read(partners.partnerOf(w3.to_checksum_address(a))).encryption_key for a in readers}
    if public not in registered:
        raise AuditCannotRun(
            f"this key (X25519 {public.hex()[:16]}...) is not a recipient of this deployment: "
            f"updates are encrypted to its coordinator and auditors ({', '.join(readers)})"
        )


def _keystore_key(name: str) -> bytes:
    from ..keys import Keystore

    keystore = Keystore()
    keystore.show(name)  # an unknown name is reported before the password is asked for
    return keystore.unlock(name, password()).x25519_private_bytes()


def print_result(result: AuditResult, out: Console) -> None:
    """A table of every check's passes and failures, then the failures with their explanation."""
    passed = Counter(c.name for c in result.checks if c.ok)
    failed = Counter(c.name for c in result.checks if not c.ok)
    table = Table(
        title=f"audit of chain {result.chain_id} at block {result.audited_at_block}: "
        f"{len(result.rounds_checked)} round(s) checked in full, {len(result.rounds_rechecked)} "
        "re-checked (artifacts re-fetched and re-hashed, other checks from earlier audits), "
        f"{len(result.rounds)} verified in all"
    )
    for column in ("check", "passed", "failed"):
        table.add_column(column, justify="left" if column == "check" else "right")
    for name in [*CHECK_NAMES, *sorted((set(passed) | set(failed)) - set(CHECK_NAMES))]:
        if passed[name] or failed[name]:
            table.add_row(name, str(passed[name]), f"[red]{failed[name]}[/]" if failed[name] else "0")
    out.print(table)
    if result.failed:
        failures = Table(title="failed checks", show_lines=True)
        for column in ("check", "agreement", "round", "partner", "cid", "why"):
            failures.add_column(column, overflow="fold")
        for c in result.failed:
            failures.add_row(c.name, _text(c.agreement_id), _text(c.round), _text(c.partner), _text(c.cid), c.message)
        out.print(failures)
    out.print("[green]every check holds[/]" if result.ok else f"[red]{len(result.failed)} check(s) failed[/]")


def _text(value: Any) -> str:
    return "-" if value is None else str(value)
