"""The local node: one long-lived anvil per data directory, which every command of that data directory shares.

Each command used to start its own anvil from the state file and write the file back on exit, so two commands at
once lost each other's transactions (last writer wins). Now one node serves them all, and only it writes its
state. Its files, under ``<data dir>/chain/``:

- ``node.json``: ``{"pid", "pgid", "port", "chain_id", "state_file", "started_at"}`` while a node runs;
- ``node.lock``: locked while a node is started or stopped, so that two commands never start two nodes;
- ``anvil-state.json``: the chain (anvil's ``--state``), written every ``STATE_INTERVAL`` s and when it stops;
- ``node.log``: anvil's output.
"""

from __future__ import annotations

import fcntl
import json
import os
import shlex
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

from web3 import Web3

from .. import settings
from ..errors import LeptonError, ToolchainError
from .anvil import Anvil, _group_gone, _signal_group
from .transport import node_web3

__all__ = [
    "STATE_INTERVAL",
    "NodeError",
    "NodeInfo",
    "ensure",
    "fund",
    "require_local",
    "start",
    "started_here",
    "status",
    "stop",
]

CHAIN_ID = 31337
STATE_INTERVAL = 2  # seconds: a node killed outright loses at most this much of its chain
ACCOUNTS = 10

_started_here: list[Path] = []  # data directories whose node this process started (started_here())


class NodeError(LeptonError, RuntimeError):
    """The local node cannot do what was asked (the message says what to run instead)."""


@dataclass(frozen=True)
class NodeInfo:
    """A running local node, as its ``node.json`` records it."""

    pid: int
    pgid: int
    port: int
    chain_id: int
    state_file: str
    started_at: float

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def chain_dir(data_dir: Path | None = None) -> Path:
    return (data_dir or settings.data_dir()) / "chain"


def status(data_dir: Path | None = None) -> NodeInfo | None:
    """The data directory's running node, or None (no ``node.json``, or its node is gone)."""
    info = _read(chain_dir(data_dir) / "node.json")
    return info if info is not None and _answers(info) else None


def ensure(data_dir: Path | None = None, *, announce: Callable[[str], None] | None = None) -> NodeInfo:
    """The data directory's running node, started first when none runs (`announce` is told so).

    Raises:
        ToolchainError: anvil cannot start.
    """
    info = status(data_dir)
    if info is not None:
        return info
    info, started = start(data_dir)
    if started and announce is not None:
        announce(
            f"started the local node on {info.url} (chain {info.chain_id}, state in {info.state_file}); "
            "`lepton-ledger node stop` stops it"
        )
    return info


def start(data_dir: Path | None = None, *, port: int | None = None) -> tuple[NodeInfo, bool]:
    """Starts the data directory's node unless one runs; returns it and whether this call started it.

    Raises:
        NodeError: a node already runs on another port than `port`.
        ToolchainError: anvil is missing, the port is taken, or the node does not come up.
    """
    directory = chain_dir(data_dir)
    with _locked(directory):
        current = status(data_dir)
        if current is not None:
            if port is not None and port != current.port:
                raise NodeError(
                    f"the local node of {directory.parent} already runs on port {current.port}; "
                    "`lepton-ledger node stop` it first to use another port"
                )
            return current, False
        anvil = Anvil(
            port=port,
            chain_id=CHAIN_ID,
            accounts=ACCOUNTS,
            state_file=directory / "anvil-state.json",
            state_interval=STATE_INTERVAL,
        )
        command = anvil.command()
        log = directory / "node.log"
        # Started through a shell that exits at once: the node is then nobody's child, outlives this command, and
        # leaves no zombie behind; its process group (the shell's) holds npm's wrapper and the binary alike.
        shell = subprocess.run(
            ["/bin/sh", "-c", f"{shlex.join(command)} >>{shlex.quote(str(log))} 2>&1 </dev/null & echo $!"],
            capture_output=True,
            text=True,
            start_new_session=True,
            check=True,
        )
        pid = int(shell.stdout.strip())
        try:
            pgid = os.getpgid(pid)
        except ProcessLookupError:
            raise ToolchainError(f"anvil exited at once: {_tail(log)}") from None

        def exited() -> str | None:
            try:
                os.killpg(pgid, 0)
            except ProcessLookupError:
                return f"anvil exited: {_tail(log)}"
            return None

        try:
            anvil.wait_ready(exited)
        except ToolchainError:
            _terminate(pgid)
            raise
        info = NodeInfo(
            pid=pid,
            pgid=pgid,
            port=anvil.port,
            chain_id=CHAIN_ID,
            state_file=str(anvil.state_file),
            started_at=time.time(),
        )
        _write(directory / "node.json", info)
        _started_here.append(directory.parent)
        return info, True


def stop(data_dir: Path | None = None) -> NodeInfo | None:
    """Stops the data directory's node (it writes its state as it stops); returns what ran, or None."""
    directory = chain_dir(data_dir)
    with _locked(directory):
        info = _read(directory / "node.json")
        if info is None:
            return None
        if _answers(info):
            _terminate(info.pgid)
        (directory / "node.json").unlink(missing_ok=True)
        return info


def started_here() -> list[Path]:
    """The data directories whose node this process started (a test suite stops them when it is done)."""
    return list(_started_here)


def require_local(rpc_url: str | None, what: str) -> None:
    """Refuses `what` when commands talk to another chain than the local node (an RPC URL is configured).

    Raises:
        NodeError: naming the chain commands use instead.
    """
    url = rpc_url or settings.rpc_url()
    if url:
        raise NodeError(
            f"{what} works on the local node only; commands here use the chain at {url} "
            "($LEPTON_RPC_URL or --rpc-url): unset it to use the local node"
        )


def fund(w3: Web3, address: str, wei: int) -> int:
    """Adds `wei` development ether to `address` on the local node; returns its new balance."""
    balance = int(w3.eth.get_balance(address)) + wei  # type: ignore[arg-type]
    w3.provider.make_request("anvil_setBalance", [address, hex(balance)])  # type: ignore[arg-type]
    return balance


def _answers(info: NodeInfo) -> bool:
    """The recorded process group lives and a node with the recorded chain id answers on the recorded port."""
    try:
        os.killpg(info.pgid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    w3 = node_web3(info.url, timeout=5, cache=False)
    try:
        return int(w3.eth.chain_id) == info.chain_id
    except Exception:  # noqa: BLE001 -- anything but an answer means no node of ours there
        return False


def _terminate(pgid: int) -> None:
    """SIGTERM (anvil writes its state file), SIGKILL when it hangs."""
    _signal_group(pgid, signal.SIGTERM)
    if not _group_gone(pgid, timeout=60):
        _signal_group(pgid, signal.SIGKILL)
        _group_gone(pgid, timeout=10)


@contextmanager
def _locked(directory: Path) -> Iterator[None]:
    directory.mkdir(parents=True, exist_ok=True)
    with open(directory / "node.lock", "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)  # released when the file closes, also when this process dies
        yield


def _read(path: Path) -> NodeInfo | None:
    try:
        return NodeInfo(**json.loads(path.read_text()))
    except FileNotFoundError:
        return None
    except (ValueError, TypeError):  # a torn or foreign file: treated as no node, rewritten by the next start
        return None


def _write(path: Path, info: NodeInfo) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(asdict(info), indent=2) + "\n")
    os.replace(tmp, path)


def _tail(log: Path) -> str:
    """What anvil said last when it stopped: its error line rather than its usage hint, and the way out when the
    saved chain state cannot be read (a copy cut short by a crash)."""
    try:
        lines = log.read_text(errors="replace").strip().splitlines()
    except FileNotFoundError:
        return "(no output)"
    errors = [line for line in lines if "error" in line.lower() or "failed" in line.lower()]
    line = errors[-1] if errors else (lines[-1] if lines else "(no output)")
    if "state" in line.lower() and ("parse" in line.lower() or "json" in line.lower()):
        line += " -- the saved chain state is damaged: move it aside to start a fresh chain"
    return line
