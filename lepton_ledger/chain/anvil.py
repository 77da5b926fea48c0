"""Starts and stops a local anvil chain: the embedded default when no RPC URL is configured."""

from __future__ import annotations

import gzip
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType

from eth_account import Account
from eth_account.signers.local import LocalAccount
from web3 import Web3

from ..errors import ChainError, ConfigurationError, ToolchainError
from ..settings import anvil_binary
from .transport import node_web3

# anvil's (and brownie's) default mnemonic: its accounts are well-known test keys, for local chains only.
DEFAULT_MNEMONIC = "test test test test test test test test test test test junk"


def dev_account(index: int) -> LocalAccount:
    """Account `index` of the local chain's well-known mnemonic (local chains only: these keys are public)."""
    Account.enable_unaudited_hdwallet_features()
    account: LocalAccount = Account.from_mnemonic(DEFAULT_MNEMONIC, account_path=f"m/44'/60'/0'/0/{index}")
    return account


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Anvil:
    """An anvil process on a free loopback port; a context manager that yields a connected Web3.

    With `state_file`, the chain is loaded from it when it exists and written back to it on a clean stop
    (anvil's ``--state``), so that a restarted service finds its contracts again; `state_interval` (seconds)
    also writes it periodically, so that a node killed outright loses at most that much of its chain. A node
    restarted on the same `port` serves the same URL, so clients reconnect by themselves.
    """

    def __init__(
        self,
        *,
        port: int | None = None,
        accounts: int = 10,
        chain_id: int = 31337,
        state_file: Path | None = None,
        state_interval: int | None = None,
        gas_limit: int = 30_000_000,
        startup_timeout: float = 30.0,
    ) -> None:
        self.port = port or free_port()
        self.accounts = accounts
        self.chain_id = chain_id
        self.state_file = state_file
        self.state_interval = state_interval
        self.gas_limit = gas_limit
        self.startup_timeout = startup_timeout
        self._process: subprocess.Popen[bytes] | None = None
        self._resumed = False

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> Web3:
        """Starts anvil and returns a connected Web3.

        Raises:
            ToolchainError: the anvil binary is missing, exits early, or does not answer in time.
        """
        command = self.command()
        # Its own process group: the binary may be a wrapper script's child (npm's anvil), and kill() must reach both.
        self._process = subprocess.Popen(
            command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True
        )
        process = self._process

        def exited() -> str | None:
            if process.poll() is None:
                return None
            err = process.stderr.read().decode(errors="replace") if process.stderr else ""
            # One line: the commands print it as their one `error:` line (clap's usage hint would follow on its own).
            return f"anvil exited with code {process.returncode}: " + " ".join(err.split())

        try:
            return self.wait_ready(exited)
        except ToolchainError:
            self.stop()
            raise

    def command(self) -> list[str]:
        """The anvil command line of this node (after checking the binary exists and the port is free).

        Raises:
            ToolchainError: the anvil binary is missing, or the port is in use.
        """
        binary = anvil_binary()
        if shutil.which(binary) is None:
            raise ToolchainError(f"anvil not found ({binary}); run `make setup`")
        if _listening(self.port):
            raise ToolchainError(f"port {self.port} is in use: another node would answer in place of this one")
        command = [
            binary,
            "--port",
            str(self.port),
            "--host",
            "127.0.0.1",
            "--chain-id",
            str(self.chain_id),
            "--accounts",
            str(self.accounts),
            "--mnemonic",
            DEFAULT_MNEMONIC,
            "--gas-limit",
            str(self.gas_limit),
            "--silent",
        ]
        # Read now, before anvil may write it: a chain loaded from a file needs its clock kept (wait_ready).
        self._resumed = self.state_file is not None and self.state_file.exists()
        if self.state_file is not None:
            self.state_file.parent.mkdir(parents=True, exist_ok=True)
            command += ["--state", str(self.state_file)]
            if self.state_interval is not None:
                command += ["--state-interval", str(self.state_interval)]
        return command

    def wait_ready(self, exited: Callable[[], str | None]) -> Web3:
        """Polls the node until it answers with this chain id; `exited` says why the process died, or None.

        Raises:
            ToolchainError: the process died, or the node did not answer within ``startup_timeout``.
        """
        w3 = node_web3(self.url, timeout=60)
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            why = exited()
            if why is not None:
                raise ToolchainError(why)
            try:
                if w3.eth.chain_id == self.chain_id:
                    if self._resumed:
                        _keep_clock(w3)
                    return w3
            except Exception:  # noqa: BLE001 -- not listening yet: poll again until the deadline
                time.sleep(0.05)
        raise ToolchainError(f"anvil did not answer on {self.url} within {self.startup_timeout}s")

    def stop(self) -> None:
        """Stops anvil with SIGTERM (so that it writes its state file), killing it if it hangs."""
        if self._process is None:
            return
        group = self._process.pid
        # The whole group: the binary may be the child of npm's wrapper, and the wrapper may exit before the
        # binary has finished writing the state file. Done only when every process of the group is gone.
        _signal_group(group, signal.SIGTERM)
        if not _group_gone(group, timeout=60):  # dumping a large state file takes a while on a loaded machine
            _signal_group(group, signal.SIGKILL)
            _group_gone(group, timeout=10)
        self._process.wait()
        if self._process.stderr:
            self._process.stderr.close()
        self._process = None

    def kill(self) -> None:
        """Kills anvil at once with SIGKILL, as a crash would: nothing more is written to the state file."""
        if self._process is None:
            return
        try:
            os.killpg(self._process.pid, signal.SIGKILL)
        except ProcessLookupError:  # already gone
            pass
        self._process.wait()
        if self._process.stderr:
            self._process.stderr.close()
        self._process = None
        # The binary may be a grandchild, not waited for: until it is gone, a restart could find it still answering.
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and _listening(self.port):
            time.sleep(0.02)

    def save_state(self) -> Path:
        """Writes the chain's current state to `state_file` now (atomically); returns the file.

        Raises:
            ConfigurationError: this node has no `state_file`.
            ChainError: the node did not return its state.
        """
        if self.state_file is None:
            raise ConfigurationError("this anvil has no state_file to save to")
        response = node_web3(self.url, cache=False).provider.make_request("anvil_dumpState", [])  # type: ignore[arg-type]
        if "result" not in response:
            raise ChainError(f"anvil_dumpState failed: {response.get('error')}")
        # The RPC returns gzip'ed JSON; --state loads the plain JSON.
        document = gzip.decompress(bytes.fromhex(str(response["result"])[2:]))
        tmp = self.state_file.with_name(self.state_file.name + ".tmp")
        with open(tmp, "wb") as out:
            out.write(document)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, self.state_file)
        return self.state_file

    def __enter__(self) -> Web3:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def _signal_group(group: int, sig: signal.Signals) -> None:
    try:
        os.killpg(group, sig)
    except ProcessLookupError:  # already gone
        pass


def _group_gone(group: int, *, timeout: float) -> bool:
    """Waits until no process of the group is alive (zombies of ours are reaped on the way); False on timeout."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.waitpid(-group, os.WNOHANG)  # reaps our direct child once it exits, so it stops counting
        except ChildProcessError:
            pass
        try:
            os.killpg(group, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.02)
    return False


def _listening(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _keep_clock(w3: Web3) -> None:
    """A node loaded from a state file stamps new blocks with the wall clock, which is behind its last block when
    the chain had been moved forward (advance_time): move the clock past that block, so time never goes back."""
    latest = int(w3.eth.get_block("latest")["timestamp"])
    behind = latest - int(time.time())
    if behind >= 0:
        w3.provider.make_request("evm_increaseTime", [behind + 1])  # type: ignore[arg-type]


def advance_time(w3: Web3, seconds: int) -> int:
    """Moves a local chain's clock forward by `seconds` and mines a block at the new time; returns it.

    Only development nodes (anvil) accept this: on a real chain time passes by itself.
    """
    for method, params in (("evm_increaseTime", [seconds]), ("evm_mine", [])):
        reply = w3.provider.make_request(method, params)  # type: ignore[arg-type]
        if "error" in reply:  # e.g. a time anvil cannot represent: say so rather than report a move that never was
            raise ChainError(f"the node refused {method}({seconds if params else ''}): {reply['error'].get('message')}")
    return w3.eth.get_block("latest")["timestamp"]
