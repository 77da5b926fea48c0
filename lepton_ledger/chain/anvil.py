"""Starts and stops a local anvil chain: the embedded default when no RPC URL is configured."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from pathlib import Path
from types import TracebackType

from eth_account import Account
from eth_account.signers.local import LocalAccount
from web3 import HTTPProvider, Web3

from ..errors import ToolchainError
from ..settings import anvil_binary

# anvil's (and brownie's) default mnemonic: its accounts are well-known test keys, for local chains only.
DEFAULT_MNEMONIC = "test test test test test test test test test test test junk"


def dev_account(index: int) -> LocalAccount:
    """Account `index` of the local chain's well-known mnemonic (local chains only: these keys are public)."""
    Account.enable_unaudited_hdwallet_features()
    return Account.from_mnemonic(DEFAULT_MNEMONIC, account_path=f"m/44'/60'/0'/0/{index}")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Anvil:
    """An anvil process on a free loopback port; a context manager that yields a connected Web3.

    With `state_file`, the chain is loaded from it when it exists and written back to it on a clean stop
    (anvil's ``--state``), so that a restarted service finds its contracts again.
    """

    def __init__(
        self,
        *,
        port: int | None = None,
        accounts: int = 10,
        chain_id: int = 31337,
        state_file: Path | None = None,
        gas_limit: int = 30_000_000,
        startup_timeout: float = 30.0,
    ) -> None:
        self.port = port or free_port()
        self.accounts = accounts
        self.chain_id = chain_id
        self.state_file = state_file
        self.gas_limit = gas_limit
        self.startup_timeout = startup_timeout
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> Web3:
        """Starts anvil and returns a connected Web3.

        Raises:
            ToolchainError: the anvil binary is missing, exits early, or does not answer in time.
        """
        binary = anvil_binary()
        if shutil.which(binary) is None:
            raise ToolchainError(f"anvil not found ({binary}); run `make setup`")
        command = [
            binary,
            "--port", str(self.port),
            "--host", "127.0.0.1",
            "--chain-id", str(self.chain_id),
            "--accounts", str(self.accounts),
            "--mnemonic", DEFAULT_MNEMONIC,
            "--gas-limit", str(self.gas_limit),
            "--silent",
        ]  # fmt: skip
        if self.state_file is not None:
            self.state_file.parent.mkdir(parents=True, exist_ok=True)
            command += ["--state", str(self.state_file)]
        self._process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        w3 = Web3(HTTPProvider(self.url, request_kwargs={"timeout": 60}))
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                err = self._process.stderr.read().decode(errors="replace") if self._process.stderr else ""
                raise ToolchainError(f"anvil exited with code {self._process.returncode}: {err.strip()}")
            try:
                if w3.eth.chain_id == self.chain_id:
                    return w3
            except Exception:  # not listening yet: poll again until the deadline
                time.sleep(0.05)
        self.stop()
        raise ToolchainError(f"anvil did not answer on {self.url} within {self.startup_timeout}s")

    def stop(self) -> None:
        """Stops anvil with SIGTERM (so that it writes its state file), killing it if it hangs."""
        if self._process is None:
            return
        self._process.terminate()
        try:
            self._process.wait(timeout=60)  # dumping a large state file takes a while on a loaded machine
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        if self._process.stderr:
            self._process.stderr.close()
        self._process = None

    def __enter__(self) -> Web3:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def advance_time(w3: Web3, seconds: int) -> int:
    """Moves a local chain's clock forward by `seconds` and mines a block at the new time; returns it.

    Only development nodes (anvil) accept this: on a real chain time passes by itself.
    """
    w3.provider.make_request("evm_increaseTime", [seconds])  # type: ignore[arg-type]
    w3.provider.make_request("evm_mine", [])  # type: ignore[arg-type]
    return w3.eth.get_block("latest")["timestamp"]
