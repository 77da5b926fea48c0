"""Fixtures of the chain tests: a broken or lying node on loopback."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from web3 import Web3

from lepton_ledger.chain.transport import node_web3

# A broken or lying node: it answers each JSON-RPC request, alone or in a batch, with what `answer(method, id)` gives
# (its chain id aside, which a Transactor asks first).
Answer = Callable[[str, Any], Any]


@pytest.fixture
def fake_node() -> Iterator[Callable[[Answer], Web3]]:
    servers: list[ThreadingHTTPServer] = []

    def start(answer: Answer) -> Web3:
        def reply(request: dict[str, Any]) -> Any:
            if request["method"] == "eth_chainId":
                return {"jsonrpc": "2.0", "id": request["id"], "result": "0x7a69"}
            return answer(request["method"], request["id"])

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                request = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                answers = [reply(r) for r in request] if isinstance(request, list) else reply(request)
                body = json.dumps(answers).encode()
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        server.daemon_threads = True
        servers.append(server)
        threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        return node_web3(f"http://127.0.0.1:{server.server_address[1]}/")

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()
