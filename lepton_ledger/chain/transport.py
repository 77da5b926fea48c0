"""The way to the node: a Web3 whose requests cost little Python (:func:`node_web3`).

A ledger round sends dozens of JSON-RPC requests, from several threads at once, and on a local node their cost
is the Python around them, not the node. Measured against anvil, one ``eth_getTransactionReceipt`` after
another: web3's HTTPProvider posts through a ``requests`` session, ~0.5 ms of CPU a request; ``http.client``
~0.06 ms (most of it parsing headers with the email package); the exchange below, ~0.01 ms. And web3's
ENS middleware looks through every request's parameters for names to resolve, ~0.25 ms a request: the ledger
takes addresses only, so it is left out.

:class:`NodeProvider` is web3's HTTPProvider (batching, caching, formatting, retries) with only the posting
replaced: plain HTTP/1.1 on kept-alive connections, a small pool shared by the process's threads. Failures are
raised as ``requests``' exceptions, as web3's own transport raises them, so that every caller's handling of
"the node did not answer" stays the same.
"""

from __future__ import annotations

import base64
import os
import select
import socket
import threading
from typing import Any
from urllib.parse import unquote, urlsplit

import requests
from web3 import HTTPProvider, Web3

__all__ = ["NodeProvider", "node_web3"]

_KEPT_IDLE = 32  # connections kept open between requests (a round's partner threads each hold one at a time)
_MAX_HEADER_LINES = 100
_MAX_LINE = 65536
_PIECE = 1 << 20  # a body is read a piece at a time: memory follows what arrives, not what a length announces


def node_web3(url: str, *, timeout: float = 30, cache: bool = True) -> Web3:
    """A Web3 on the node at `url` through :class:`NodeProvider` (``http://``; any other URL, ``https://`` to a
    hosted node, through web3's own HTTPProvider), without ENS name resolution. `cache`: web3's cache of requests
    whose answer never changes (``eth_chainId``: web3 asks it before every call otherwise, half of all requests,
    measured)."""
    provider = NodeProvider if urlsplit(url).scheme == "http" else HTTPProvider
    w3 = Web3(provider(url, request_kwargs={"timeout": timeout}, cache_allowed_requests=cache))
    w3.middleware_onion.remove("ens_name_to_address")
    return w3


class NodeProvider(HTTPProvider):
    """web3's HTTPProvider posting through :class:`KeptAliveConnections`. Takes HTTPProvider's arguments; of
    ``request_kwargs`` only ``timeout`` (seconds, default 30) and ``headers`` are used."""

    def __init__(self, endpoint_uri: str, **kwargs: Any) -> None:
        super().__init__(endpoint_uri, **kwargs)
        self._request_session_manager = KeptAliveConnections()  # type: ignore[assignment]  # its one method web3 calls


class _Connection:
    """One HTTP/1.1 connection to the node: a socket and its buffered reader."""

    def __init__(self, host: str, port: int, timeout: float) -> None:
        self.address = (host, port)
        self.sock = socket.create_connection(self.address, timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.reader = self.sock.makefile("rb")

    def exchange(self, request: bytes) -> tuple[int, str, bytes, bool]:
        """Sends `request` and reads the answer: ``(status, reason, body, keep_alive)``.

        Raises:
            OSError: the connection failed or broke off (ValueError: the answer is not HTTP/1.x).
        """
        self.sock.sendall(request)
        status_line = self._line()
        version, _, rest = status_line.partition(b" ")
        code, _, reason = rest.partition(b" ")
        if not version.startswith(b"HTTP/1.") or not code.isdigit():
            raise ValueError(f"not an HTTP/1.x answer: {status_line[:80]!r}")
        length, chunked, keep_alive = None, False, version == b"HTTP/1.1"
        for _ in range(_MAX_HEADER_LINES):
            line = self._line()
            if not line:
                break
            name, _, value = line.partition(b":")
            name, value = name.strip().lower(), value.strip().lower()
            if name == b"content-length":
                length = int(value)
            elif name == b"transfer-encoding":
                chunked = value.endswith(b"chunked")
            elif name == b"connection":
                keep_alive = value == b"keep-alive" or (keep_alive and value != b"close")
        else:
            raise ValueError("more than 100 header lines")
        if chunked:
            body = self._chunks()
        elif length is not None:
            body = self._exactly(length)
        else:  # no length: the body runs to the end of the connection
            body, keep_alive = self.reader.read(), False
        return int(code), reason.decode("latin-1"), body, keep_alive

    def close(self) -> None:
        self.reader.close()
        self.sock.close()

    def still_open(self) -> bool:
        """Whether this idle connection can carry a request: the node may have closed it since (it then reads as
        readable, at end of file), and a request sent on it would be lost without an answer; or it may have sent
        bytes no request asked for (more than an answer's length, a second answer), which the next request would
        read as its own answer."""
        poller = select.poll()
        poller.register(self.sock, select.POLLIN)
        if poller.poll(0):
            return False
        self.sock.settimeout(0)  # a look at what the reader holds, without waiting for more
        try:
            return not self.reader.peek(1)
        except OSError:
            return False

    def _line(self) -> bytes:
        line = self.reader.readline(_MAX_LINE)
        if not line.endswith(b"\n"):
            raise ConnectionResetError("the node closed the connection mid-answer")
        return line.rstrip(b"\r\n")

    def _exactly(self, n: int) -> bytes:
        if n < 0:
            raise ValueError(f"a body or chunk length of {n}")
        parts, left = [], n
        while left > 0:
            part = self.reader.read(min(left, _PIECE))
            if not part:
                raise ConnectionResetError("the node closed the connection mid-answer")
            parts.append(part)
            left -= len(part)
        return b"".join(parts)

    def _chunks(self) -> bytes:
        parts = []
        while size := int(self._line().split(b";")[0], 16):
            parts.append(self._exactly(size))
            self._line()
        while self._line():  # trailer lines, up to the empty one
            pass
        return b"".join(parts)


class KeptAliveConnections:
    """Stands in for web3's HTTPSessionManager where web3 posts a request: ``make_post_request(url, data,
    timeout=..., headers=...)`` answers the response's body. Thread-safe: each request takes an idle connection
    (or opens one) and gives it back when its answer is read. A forked child opens its own."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._idle: list[_Connection] = []
        self._pid = os.getpid()

    def make_post_request(self, endpoint_uri: str, data: bytes, **kwargs: Any) -> bytes:
        """POSTs `data` to `endpoint_uri` and answers the response's body.

        Raises:
            requests.Timeout: no answer within ``timeout`` seconds.
            requests.ConnectionError: the node cannot be reached, or its answer broke off.
            requests.HTTPError: the node answered with an HTTP error status.
        """
        url = urlsplit(str(endpoint_uri))
        if url.scheme != "http" or not url.hostname:
            raise requests.ConnectionError(f"not an http:// URL: {endpoint_uri}")
        timeout = float(kwargs.get("timeout") or 30)
        headers = {"Content-Type": "application/json", **(kwargs.get("headers") or {})}
        target = (url.path or "/") + (f"?{url.query}" if url.query else "")  # a provider's key may be in the query
        host = url.netloc.rpartition("@")[2]  # credentials in the URL go in an Authorization header, as requests does
        head = [f"POST {target} HTTP/1.1", f"Host: {host}", f"Content-Length: {len(data)}"]
        if url.username is not None:
            credentials = f"{unquote(url.username)}:{unquote(url.password or '')}".encode()
            head.append("Authorization: Basic " + base64.b64encode(credentials).decode())
        head += [f"{k}: {v}" for k, v in headers.items() if k.lower() not in ("host", "content-length")]
        request = ("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + bytes(data)
        connection = None
        try:
            connection = self._take(url.hostname, url.port or 80, timeout)
            status, reason, body, keep_alive = connection.exchange(request)
        except TimeoutError:
            if connection is not None:
                connection.close()
            raise requests.Timeout(f"the node at {endpoint_uri} did not answer within {timeout}s") from None
        except (OSError, ValueError) as exc:
            if connection is not None:
                connection.close()
            raise requests.ConnectionError(f"the node at {endpoint_uri}: {type(exc).__name__}: {exc}") from None
        if keep_alive:
            self._give_back(connection)
        else:
            connection.close()
        if status >= 400:
            raise requests.HTTPError(f"the node at {endpoint_uri} answered HTTP {status} {reason}")
        return body

    def _take(self, host: str, port: int, timeout: float) -> _Connection:
        # Forked: the parent's sockets are the parent's, and its lock may be held by a thread the child lacks.
        if self._pid != os.getpid():
            self._lock, self._idle, self._pid = threading.Lock(), [], os.getpid()
        with self._lock:
            while self._idle:
                connection = self._idle.pop()
                if connection.address == (host, port) and connection.still_open():
                    connection.sock.settimeout(timeout)
                    return connection
                connection.close()
        return _Connection(host, port, timeout)

    def _give_back(self, connection: _Connection) -> None:
        with self._lock:
            if self._pid == os.getpid() and len(self._idle) < _KEPT_IDLE:
                self._idle.append(connection)
                return
        connection.close()
