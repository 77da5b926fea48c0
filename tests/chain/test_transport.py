"""chain.transport against real loopback HTTP servers: answers framed by length, by chunks or by the end of the
connection come back byte-exact; kept-alive connections are reused, by threads at once, and replaced when the
server closed them; failures raise what web3's own transport (``requests``) raises; a forked child opens its own
connections; and on a real anvil, answers are web3's HTTPProvider's."""

from __future__ import annotations

import datetime
import ipaddress
import json
import os
import re
import signal
import socketserver
import ssl
import sys
import threading
import time
import tracemalloc
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from web3 import HTTPProvider, Web3
from web3._utils.http_session_manager import HTTPSessionManager
from web3.exceptions import ContractCustomError

from lepton_ledger.chain.anvil import Anvil, dev_account, free_port
from lepton_ledger.chain.transport import KeptAliveConnections, node_web3


@dataclass(frozen=True)
class Request:
    connection: int  # which accepted connection carried it: 1, 2, ...
    target: bytes
    body: bytes
    headers: dict[bytes, bytes]  # by lower-case name


Reply = Callable[[Request], tuple[bytes, bool]]  # the exact bytes to answer, and whether to close after them


class _Handler(socketserver.StreamRequestHandler):
    server: Node

    def handle(self) -> None:
        with self.server.lock:
            self.server.accepted += 1
            number = self.server.accepted
        while line := self.rfile.readline():
            headers = {}
            while header := self.rfile.readline().rstrip(b"\r\n"):
                name, _, value = header.partition(b":")
                headers[name.strip().lower()] = value.strip()
            length = int(headers.get(b"content-length", 0))
            request = Request(number, line.split()[1], self.rfile.read(length), headers)
            with self.server.lock:
                self.server.requests.append(request)
            answer, close = self.server.reply(request)
            self.wfile.write(answer)
            if close:
                return


class Node(socketserver.ThreadingTCPServer):
    """A loopback HTTP server that answers each request with exactly the bytes `reply` gives: it counts the
    connections it accepts and records the requests, and `closed` is released each time it closes one."""

    daemon_threads = True
    block_on_close = False  # a client's idle kept-alive connection holds its handler until the client closes it

    def __init__(self, reply: Reply) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.reply = reply
        self.lock = threading.Lock()
        self.accepted = 0
        self.requests: list[Request] = []
        self.closed = threading.Semaphore(0)
        self.released = threading.Event()  # a reply that holds its answer back waits for this
        threading.Thread(target=self.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/"

    def shutdown_request(self, request) -> None:  # type: ignore[no-untyped-def]
        super().shutdown_request(request)
        self.closed.release()

    def handle_error(self, request, client_address) -> None:  # type: ignore[no-untyped-def]
        pass  # a client that gave up on an answer held back: writing it fails, as it should


@pytest.fixture
def serve():
    nodes: list[Node] = []

    def start(reply: Reply) -> Node:
        nodes.append(Node(reply))
        return nodes[-1]

    yield start
    for node in nodes:
        node.released.set()
        node.shutdown()
        node.server_close()


def http(body: bytes, *headers: str, status: str = "200 OK", version: str = "HTTP/1.1") -> bytes:
    return (f"{version} {status}\r\n" + "".join(f"{h}\r\n" for h in headers) + "\r\n").encode() + body


def with_length(body: bytes, *headers: str, **first_line: str) -> bytes:
    return http(body, f"Content-Length: {len(body)}", *headers, **first_line)


def chunked(body: bytes) -> bytes:
    """`body` in chunks of 1, 16 and the rest bytes, the first with a chunk extension, then two trailers."""
    cuts = [0, 1, 17, len(body)]
    chunks = [body[a:b] for a, b in zip(cuts, cuts[1:])]
    framed = b"".join(b"%x%s\r\n%s\r\n" % (len(c), b';name="v"' if i == 0 else b"", c) for i, c in enumerate(chunks))
    return http(framed + b"0\r\nX-Checksum: abc\r\nX-Other: 1\r\n\r\n", "Transfer-Encoding: chunked")


def rpc_answer(request: Request) -> bytes:
    return json.dumps({"jsonrpc": "2.0", "id": json.loads(request.body)["id"], "result": "0x2a"}).encode()


def rpc(request_id: int) -> bytes:
    return json.dumps({"jsonrpc": "2.0", "method": "eth_blockNumber", "params": [], "id": request_id}).encode()


BODY = b'{"jsonrpc":"2.0","id":1,"result":"0x\xff\x00\r\n\r\n0\r\nHTTP/1.1 200 OK"}' * 3  # framing look-alikes
FRAMINGS: dict[str, Callable[[bytes], tuple[bytes, bool]]] = {
    "content-length": lambda body: (with_length(body), False),
    "chunked": lambda body: (chunked(body), False),
    "to-eof": lambda body: (http(body, "Connection: close"), True),
}


def post(url: str, data: bytes, *, timeout: float = 10) -> bytes:
    return KeptAliveConnections().make_post_request(url, data, timeout=timeout)


@pytest.mark.parametrize("framing", FRAMINGS)
def test_an_answer_comes_back_byte_exact_and_a_kept_connection_carries_the_next(serve, framing):
    node = serve(lambda request: FRAMINGS[framing](BODY))
    pool = KeptAliveConnections()
    assert [pool.make_post_request(node.url, rpc(i), timeout=10) for i in (1, 2)] == [BODY, BODY]
    # trailers and chunk ends read to the last byte: the next answer starts where this one ended
    assert node.accepted == (2 if framing == "to-eof" else 1)
    assert [r.body for r in node.requests] == [rpc(1), rpc(2)]


@pytest.mark.parametrize("framing", FRAMINGS)
def test_a_json_rpc_answer_is_what_web3s_provider_reads(serve, framing):
    node = serve(lambda request: FRAMINGS[framing](rpc_answer(request)))
    ours = node_web3(node.url, cache=False).provider.make_request("eth_blockNumber", [])
    theirs = Web3(HTTPProvider(node.url)).provider.make_request("eth_blockNumber", [])
    assert ours["result"] == theirs["result"] == "0x2a"
    assert ours.keys() == theirs.keys()


def test_sequential_requests_share_one_connection(serve):
    node = serve(lambda request: (with_length(rpc_answer(request)), False))
    provider = node_web3(node.url, cache=False).provider
    answers = [provider.make_request("eth_blockNumber", [])["result"] for _ in range(5)]
    assert answers == ["0x2a"] * 5 and len(node.requests) == 5 and node.accepted == 1


def test_threads_at_once_each_get_their_own_answer(serve):
    node = serve(lambda request: (with_length(rpc_answer(request)), False))
    pool = KeptAliveConnections()
    together = threading.Barrier(8, timeout=30)
    answers: dict[int, list[int]] = {}

    def ask(thread: int) -> None:
        together.wait()
        answers[thread] = [
            json.loads(pool.make_post_request(node.url, rpc(thread * 100 + i), timeout=10))["id"] for i in range(5)
        ]

    threads = [threading.Thread(target=ask, args=(t,)) for t in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert answers == {t: [t * 100 + i for i in range(5)] for t in range(8)}
    opened = node.accepted
    assert 1 <= opened <= 8 and len(node.requests) == 40
    for i in range(opened):  # every connection went back to the pool: asking again opens none
        pool.make_post_request(node.url, rpc(i), timeout=10)
    assert node.accepted == opened


def test_a_connection_the_server_closed_while_idle_is_replaced_and_the_request_sent_once(serve):
    node = serve(lambda request: (with_length(rpc_answer(request)), request.connection == 1))
    pool = KeptAliveConnections()
    assert json.loads(pool.make_post_request(node.url, rpc(1), timeout=10))["id"] == 1
    assert node.closed.acquire(timeout=10)  # the server closed the kept-alive connection without saying so
    assert json.loads(pool.make_post_request(node.url, rpc(2), timeout=10))["id"] == 2
    assert [(r.connection, r.body) for r in node.requests] == [(1, rpc(1)), (2, rpc(2))]


@pytest.mark.parametrize(
    ("version", "headers", "reused"),
    [
        ("HTTP/1.1", ["Connection: close"], False),
        ("HTTP/1.1", ["Connection: Close"], False),
        ("HTTP/1.0", [], False),
        ("HTTP/1.0", ["Connection: keep-alive"], True),
        ("HTTP/1.1", ["Connection: keep-alive"], True),
    ],
)
def test_a_connection_is_reused_only_when_the_server_keeps_it(serve, version, headers, reused):
    # the server keeps every connection open: only the client's reading of the answer decides
    node = serve(lambda request: (with_length(rpc_answer(request), *headers, version=version), False))
    pool = KeptAliveConnections()
    for i in range(3):
        assert json.loads(pool.make_post_request(node.url, rpc(i), timeout=10))["id"] == i
    assert node.accepted == (1 if reused else 3)


def test_the_url_path_and_query_reach_the_server_as_web3_sends_them(serve):
    node = serve(lambda request: (with_length(rpc_answer(request)), False))
    base = node.url.rstrip("/")
    for target in ("/", "/rpc", "/v3/key?apikey=abc&x=1"):
        post(base + target, rpc(1))
        HTTPSessionManager().make_post_request(base + target, rpc(1), timeout=10)
    assert [r.target for r in node.requests[::2]] == [r.target for r in node.requests[1::2]]
    assert [r.target for r in node.requests[::2]] == [b"/", b"/rpc", b"/v3/key?apikey=abc&x=1"]


def test_credentials_in_the_url_are_sent_as_web3s_transport_sends_them_never_in_the_host(serve):
    node = serve(lambda request: (with_length(rpc_answer(request)), False))
    port = node.server_address[1]
    url = f"http://us%40er:p%3Ass@127.0.0.1:{port}/rpc"
    post(url, rpc(1))
    HTTPSessionManager().make_post_request(url, rpc(1), timeout=10)
    ours, web3s = node.requests
    assert ours.headers[b"host"] == f"127.0.0.1:{port}".encode()
    assert ours.headers[b"authorization"] == web3s.headers[b"authorization"]
    assert ours.headers[b"authorization"].startswith(b"Basic ")


# Failures: each raises what web3's own transport raises (its HTTPSessionManager posts with ``requests``).
TRANSPORTS = {"kept-alive": KeptAliveConnections, "web3": HTTPSessionManager}


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_nothing_listening_is_a_connection_error(transport):
    with pytest.raises(requests.ConnectionError):
        TRANSPORTS[transport]().make_post_request(f"http://127.0.0.1:{free_port()}/", rpc(1), timeout=5)


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_an_error_status_is_an_http_error(serve, transport):
    node = serve(lambda request: (with_length(b"oops", status="500 Internal Server Error"), False))
    with pytest.raises(requests.HTTPError, match="500"):
        TRANSPORTS[transport]().make_post_request(node.url, rpc(1), timeout=10)


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_a_server_that_never_answers_is_a_timeout_and_its_connection_is_dropped(serve, transport):
    def reply(request: Request) -> tuple[bytes, bool]:
        if request.connection == 1:
            node.released.wait()  # the first connection's answer is held back until the test ends
        return with_length(rpc_answer(request)), False

    node = serve(reply)
    manager = TRANSPORTS[transport]()
    started = time.monotonic()
    with pytest.raises(requests.Timeout):
        manager.make_post_request(node.url, rpc(1), timeout=0.3)
    assert 0.3 <= time.monotonic() - started < 10
    # a late answer on the first connection would be read as the next request's: that connection is not reused
    assert json.loads(manager.make_post_request(node.url, rpc(2), timeout=10))["id"] == 2
    assert node.accepted == 2


BROKEN = {
    "garbage status line": b"SSH-2.0-OpenSSH_9.6\r\n",
    "no status line": b"\r\n",
    "closed mid-headers": b"HTTP/1.1 200 OK\r\nContent-Len",
    "closed mid-body": http(b"0123456789", "Content-Length: 100"),
    "closed mid-chunk": http(b"64\r\n0123456789", "Transfer-Encoding: chunked"),
    "bad chunk size": http(b"zz\r\n0123456789\r\n0\r\n\r\n", "Transfer-Encoding: chunked"),
    "bad length": http(b"0123456789", "Content-Length: ten"),
    "negative length": http(b"0123456789", "Content-Length: -1"),
    "negative chunk size": http(b"-1\r\n0123456789\r\n0\r\n\r\n", "Transfer-Encoding: chunked"),
}


@pytest.mark.parametrize("broken", BROKEN)
def test_a_broken_answer_is_a_connection_error_and_its_connection_is_dropped(serve, broken):
    def reply(request: Request) -> tuple[bytes, bool]:
        if request.connection == 1:  # kept open unless it broke off: a client that pooled it would reuse it
            return BROKEN[broken], broken.startswith("closed")
        return with_length(rpc_answer(request)), False

    node = serve(reply)
    pool = KeptAliveConnections()
    with pytest.raises(requests.ConnectionError) as failure:
        pool.make_post_request(node.url, rpc(1), timeout=10)
    assert "\n" not in str(failure.value) and node.url.rstrip("/") in str(failure.value)
    assert json.loads(pool.make_post_request(node.url, rpc(2), timeout=10))["id"] == 2
    assert node.accepted == 2


UNASKED = {
    "more than its length": lambda body: http(body + b"HTTP/1.1 200 OK", f"Content-Length: {len(body)}"),
    "a second answer": lambda body: with_length(body) + with_length(b'{"jsonrpc":"2.0","id":2,"result":"0xbad"}'),
}


@pytest.mark.parametrize("unasked", UNASKED)
def test_bytes_no_request_asked_for_are_never_read_as_the_next_answer(serve, unasked):
    def reply(request: Request) -> tuple[bytes, bool]:
        if request.connection == 1:  # kept open: a client that pooled it would read the rest as its next answer
            return UNASKED[unasked](rpc_answer(request)), False
        return with_length(b'{"jsonrpc":"2.0","id":2,"result":"0x2a"}'), False

    node = serve(reply)
    pool = KeptAliveConnections()
    assert json.loads(pool.make_post_request(node.url, rpc(1), timeout=10))["id"] == 1
    assert json.loads(pool.make_post_request(node.url, rpc(2), timeout=10))["result"] == "0x2a"
    assert [r.connection for r in node.requests] == [1, 2]


def test_a_length_announced_but_never_sent_holds_no_memory_for_it(serve):
    node = serve(lambda request: (http(b"0123456789", "Content-Length: 100000000000000"), True))
    tracemalloc.start()
    try:
        with pytest.raises(requests.ConnectionError, match="mid-answer"):
            post(node.url, rpc(1))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 16 * 2**20


def self_signed(folder: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 that signs itself, and its key: ``(certificate, key)`` files."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.timezone.utc)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
        .sign(key, hashes.SHA256())
    )
    (folder / "node.crt").write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    (folder / "node.key").write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return folder / "node.crt", folder / "node.key"


def test_a_hosted_node_behind_https_is_asked_through_web3s_own_transport(serve, tmp_path, monkeypatch):
    node = serve(lambda request: (with_length(rpc_answer(request)), False))
    certificate, key = self_signed(tmp_path)
    tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    tls.load_cert_chain(certificate, key)
    node.socket = tls.wrap_socket(node.socket, server_side=True)
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(certificate))  # the node's certificate is trusted
    w3 = node_web3(node.url.replace("http://", "https://"), cache=False)
    assert w3.eth.block_number == 42 and len(node.requests) == 1
    assert "ens_name_to_address" not in w3.middleware_onion


@pytest.mark.parametrize(
    "url", ["https://127.0.0.1:1/", "ws://127.0.0.1:1/", "127.0.0.1:8545", "http://", "http://127.0.0.1:99999/"]
)
def test_a_url_that_is_not_http_is_a_connection_error(url):
    with pytest.raises(requests.ConnectionError, match=re.escape(url)):
        post(url, rpc(1))


def asked_in_a_child(pool: KeptAliveConnections, url: str) -> int:
    """The exit code of a forked child that asks `pool` once: 0 when its request got its own answer."""
    pid = os.fork()
    if pid == 0:
        signal.alarm(30)  # a child waiting on a lock no thread of its own will release would never exit
        try:
            code = 0 if json.loads(pool.make_post_request(url, rpc(2), timeout=10))["id"] == 2 else 1
        except BaseException:  # noqa: BLE001 -- anything else is a failure the parent reports
            code = 2
        os._exit(code)
    return os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="os.fork: Linux only")
def test_a_forked_child_opens_its_own_connection_and_leaves_the_parents_alone(serve):
    node = serve(lambda request: (with_length(rpc_answer(request)), False))
    pool = KeptAliveConnections()
    assert json.loads(pool.make_post_request(node.url, rpc(1), timeout=10))["id"] == 1
    assert asked_in_a_child(pool, node.url) == 0
    assert json.loads(pool.make_post_request(node.url, rpc(3), timeout=10))["id"] == 3
    assert [(r.connection, r.body) for r in node.requests] == [(1, rpc(1)), (2, rpc(2)), (1, rpc(3))]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="os.fork: Linux only")
def test_a_child_forked_while_a_thread_held_the_pool_still_asks(serve):
    node = serve(lambda request: (with_length(rpc_answer(request)), False))
    pool = KeptAliveConnections()
    with pool._lock:  # as another thread taking a connection at the moment of the fork would hold it
        assert asked_in_a_child(pool, node.url) == 0


# On a real anvil: the answers are web3's own HTTPProvider's.

REVERTS = "0x63deadbeef6000526004601cfd"  # init code: mstore(0, 0xdeadbeef); revert(28, 4)


@pytest.fixture(scope="module")
def anvil():
    with Anvil() as w3:
        yield w3.provider.endpoint_uri


def test_on_anvil_answers_are_web3s(anvil):
    ours, theirs = node_web3(anvil), Web3(HTTPProvider(anvil))
    assert ours.eth.chain_id == theirs.eth.chain_id == 31337
    account = dev_account(0).address
    batches = []
    for w3 in (ours, theirs):
        with w3.batch_requests() as batch:
            batch.add(w3.eth.get_balance(account))
            batch.add(w3.eth.get_block(0))
            batch.add(w3.eth.get_transaction_count(account))
            batches.append(batch.execute())
    assert batches[0] == batches[1] and batches[0][1]["number"] == 0
    raised = []
    for w3 in (ours, theirs):
        with pytest.raises(ContractCustomError) as failure:
            w3.eth.call({"data": REVERTS})
        raised.append((failure.value.args, failure.value.data))
    assert raised[0] == raised[1] == (("0xdeadbeef", "0xdeadbeef"), "0xdeadbeef")


def test_the_ens_middleware_is_left_out_and_the_others_kept(anvil):
    ours, theirs = (
        [name for _, name in w3.middleware_onion.middleware] for w3 in (node_web3(anvil), Web3(HTTPProvider(anvil)))
    )
    assert "ens_name_to_address" in theirs and "ens_name_to_address" not in ours
    assert ours == [name for name in theirs if name != "ens_name_to_address"]
