"""The service under test: a real `lepton-ledger serve` in a subprocess, on the local node of a data directory of
its own, with a deployment, three registered accounts, one funded agreement and one finished round."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "rounds"))  # agreement_setup, shared with the rounds
from service_world import PASSWORD, build_world

from lepton_ledger.chain import node

SERVE_START_TIMEOUT = 60.0
ENVELOPE_CAP = 1 << 20  # bytes: well above a logreg envelope, small enough to exceed in a test


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_healthy(api, process: subprocess.Popen) -> None:
    deadline = time.monotonic() + SERVE_START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"serve exited with {process.returncode}: {process.stderr.read()}")
        with contextlib.suppress(httpx.TransportError):  # the port is not listening yet
            if api.get("/v1/health").status_code == 200:
                return
        time.sleep(0.05)  # polling for the port to open; not synchronisation on an effect
    raise AssertionError("serve did not come up")


@pytest.fixture(scope="session")
def world(tmp_path_factory):
    data_dir = tmp_path_factory.mktemp("service-data")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("LEPTON_DATA_DIR", str(data_dir))
        for name in ("LEPTON_RPC_URL", "LEPTON_KUBO_API", "LEPTON_BLOCKSTORE_DIR", "LEPTON_IPFS"):
            mp.delenv(name, raising=False)
        info, _ = node.start(data_dir)
        try:
            world = build_world(data_dir, info.url)
            yield world
        finally:
            node.stop(data_dir)


class Server:
    """`lepton-ledger serve` in a subprocess on one port, which a test may kill -9 and start again."""

    def __init__(self, data_dir: Path, args: tuple[str, ...] = (), **env: str) -> None:
        self.port, self.args = _free_port(), args
        self.env = {
            **os.environ,
            "LEPTON_DATA_DIR": str(data_dir),
            "LEPTON_API_BLOCK_POLL": "0.05",
            # the address clients reach it at: the client signs no sign-in message for another domain
            "LEPTON_API_DOMAIN": f"127.0.0.1:{self.port}",
            "LEPTON_API_URI": f"http://127.0.0.1:{self.port}",
            "LEPTON_API_COORDINATOR_KEY": "coordinator",
            "LEPTON_KEYSTORE_PASSWORD": PASSWORD,
            "LEPTON_API_MAX_ENVELOPE_BYTES": str(ENVELOPE_CAP),
            **env,
        }
        self.client = httpx.Client(base_url=f"http://127.0.0.1:{self.port}", timeout=60)
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "lepton_ledger.cli", "serve", "--port", str(self.port), *self.args],
            env=self.env,
            stderr=subprocess.PIPE,
            text=True,
        )
        _wait_healthy(self.client, self.process)

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=30)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=30)


@pytest.fixture(scope="session")
def service(world):
    """The running service, with an httpx client bound to it (`service.api`) and its process (`service.server`)."""
    server = Server(world.data_dir, LEPTON_API_AUDITOR_KEY="auditor")
    try:
        server.start()
        world.attach(server.client)
        world.server = server
        yield world
    finally:
        server.client.close()
        server.stop()


@pytest.fixture
def start_server():
    """Starts `lepton-ledger serve` on another data directory (`start_server(data_dir, **env)`); stopped after."""
    servers: list[Server] = []

    def start(data_dir: Path, **env: str) -> Server:
        server = Server(data_dir, **env)
        servers.append(server)
        server.start()
        return server

    yield start
    for server in servers:
        server.client.close()
        server.stop()
