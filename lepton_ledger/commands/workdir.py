"""A command's chain, deployment, store and signer, from the keystore or from a demo folder.

``--workdir DIR``, a folder left by ``lepton-ledger demo``: its chain is restarted from its state file (and saved
back when the command ends), its ``store/`` holds the documents, and ``--as ROLE`` picks which of its development
keys (``keys/dev-keys.json``: admin, coordinator, auditor, treasury, partner1...) signs, by default the role the
step needs. Otherwise the chain is ``--rpc-url`` (or the local node), the deployment ``--deployment``, the store
``--ipfs``, and the signer ``--key NAME`` from the encrypted keystore (context.py). Used by the challenge and
arbiter commands, whose steps an auditor often takes on a demo folder.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import typer

from ..protocol.jsonio import FILE_BYTES, load_json, read_bounded
from .context import CommandError, echo_json, load_deployment_document, open_session

__all__ = [
    "Signer",
    "need_sender",
    "print_tx",
    "signer",
]


@dataclass
class Signer:
    """What a step needs: the transactor, the bound deployment, the store, and who sends."""

    w3: Any
    tx: Any
    deployment: Any
    store: Any
    sender: str | None


def _dev_account(workdir: Path, document: dict[str, Any], role: str) -> Any:
    from eth_account import Account

    path = workdir / str(document.get("keys", "keys")) / "dev-keys.json"
    try:
        parties = load_json(read_bounded(path, FILE_BYTES), what=str(path), max_bytes=FILE_BYTES)["parties"]
    except FileNotFoundError:
        raise CommandError(f"no development keys at {path}: pass --key to sign with the keystore") from None
    except (ValueError, KeyError, TypeError):
        raise CommandError(f'{path} is not a demo keys file (no "parties")') from None
    if role not in parties:
        raise CommandError(f"no development key for {role!r} in {path}; there are: {', '.join(sorted(parties))}")
    return Account.from_key(parties[role]["ethereum_private_key"])


@contextmanager
def signer(
    workdir: Path | None,
    role: str | None,
    key: str | None,
    rpc_url: str | None,
    deployment: Path | None,
    ipfs: str | None,
    *,
    default_role: str | None,
) -> Iterator[Signer]:
    """The chain, deployment, store and signer of one command from its --workdir, --as, --key, --rpc-url,
    --deployment and --ipfs, in that order (see the module docstring); CommandError for a combination of options
    that does not name one."""
    if key is not None and role is not None:
        raise CommandError("give --key (a keystore identity) or --as (a development key of --workdir), not both")
    if workdir is None:
        if role is not None:
            raise CommandError("--as picks a development key of a --workdir; with a keystore, use --key")
        with open_session(rpc_url=rpc_url, deployment=deployment, key=key, ipfs=ipfs) as session:
            yield Signer(
                session.w3,
                session.tx,
                session.deployment,
                session.store,
                session.address if key else None,
            )
        return
    from ..chain.anvil import Anvil

    if rpc_url is not None or deployment is not None:
        raise CommandError(
            "--workdir brings its own chain and deployment: do not combine it with --rpc-url "
            "($LEPTON_RPC_URL) or --deployment"
        )
    if not workdir.is_dir():
        raise CommandError(f"no folder at {workdir} (make one with `lepton-ledger demo --out {workdir}`)")
    document = load_deployment_document(workdir / "deployment.json")
    state = workdir / str(document.get("state_file", "chain-state.json"))
    if not state.is_file():
        raise CommandError(f"{workdir} has no chain state file {state.name}: is it a `lepton-ledger demo` folder?")
    account = None
    if key is None and (role or default_role):
        account = _dev_account(workdir, document, str(role or default_role))
    store = ipfs or str(workdir / str(document.get("store", "store")))
    # Anvil keeps a resumed chain's clock where it stopped (the demo travelled in time to close its dispute
    # windows): chain time never runs back, so a closed window stays closed.
    with Anvil(state_file=state, chain_id=int(document.get("chain_id", 31337))) as w3:
        # The workdir's chain answers on a local port: the shared session code binds and checks the deployment.
        url = w3.provider.endpoint_uri  # type: ignore[attr-defined]
        with open_session(rpc_url=url, deployment=workdir / "deployment.json", key=key, ipfs=store) as session:
            sender = session.address if key else None
            if account is not None:
                sender = session.tx.add(account)
            yield Signer(session.w3, session.tx, session.deployment, session.store, sender)


def need_sender(signer: Signer) -> str:
    if signer.sender is None:
        raise CommandError("this step sends a transaction: pass --key (or --workdir with --as)")
    return signer.sender


def print_tx(result: Any, as_json: bool, *lines: str) -> None:
    """A step's result (``challenges.challenge.ChallengeTx``): its JSON, or `lines` and the transaction."""
    if as_json:
        echo_json(result.to_dict())
        return
    for line in lines:
        typer.echo(line)
    typer.echo(f"tx {result.tx_hash} (block {result.block})")
