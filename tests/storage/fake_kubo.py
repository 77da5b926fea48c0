"""An in-test kubo: a real HTTP server on 127.0.0.1 that answers the RPC calls KuboStore makes the way kubo's
RPC reference (docs.ipfs.tech/reference/kubo/rpc, generated from kubo) describes them.

What it copies from kubo: POST only (GET -> 405), unknown command -> 404 ``404 page not found``, a failed
command -> HTTP 500 with ``{"Message": ..., "Code": 0, "Type": "error"}``, streamed commands (add, repo/gc,
dag/export, dag/import) sent with chunked transfer encoding and ``X-Chunked-Output: 1``, ``add`` answering
newline-delimited ``{"Name","Hash","Size"}`` (Size a string), ``block/put`` answering ``{"Key","Size"}`` with a
CIDv1, ``repo/gc`` streaming ``{"Key": {"/": cid}}``, blocks keyed by multihash (so v0 and v1 CIDs of the same
bytes find the same block), and kubo's not-found wording (``block was not found locally (offline): ipld: could
not find <cid>``). Where the generated reference nests an embedded Go struct (pin/ls ``PinLsList``, repo/stat
``SizeStat``), the fake answers the flat form kubo's JSON encoder actually writes.

Blocks live in memory; ``add`` builds the DAG with the project's importer (its CIDs are cross-checked against
``ipfs_cid`` in the importer's own tests, and for a few sizes in test_kubo.py). A missing block is answered as
an offline node answers: there is no network to search.

Fault injection: `corrupt(cid)` flips a byte of a stored block, `fail(path, message)` makes the next calls of
a command answer 500, `stall(path)` makes a command hang until the server stops (for timeouts).
"""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Self
from urllib.parse import parse_qs, urlsplit

from lepton_ledger.storage import cid as cidlib
from lepton_ledger.storage import unixfs
from lepton_ledger.storage.store import InvalidCID, StorageError


class KuboError(Exception):
    """Raised inside a handler: becomes kubo's HTTP 500 JSON error reply."""


def free_port() -> int:
    """A TCP port nothing listens on right now (for the connection-refused test)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class FakeKubo:
    """The daemon's state plus the HTTP server in a thread. Use as a context manager or call start/stop."""

    def __init__(self, port: int = 0) -> None:
        self.blocks: dict[bytes, bytes] = {}  # sha2-256 digest -> block bytes
        self.pins: dict[str, None] = {}  # recursive pin roots, in the CID form they were given
        self.requests: list[str] = []  # command path of every request received, in order
        self.queries: list[tuple[str, dict[str, list[str]]]] = []  # (path, query arguments), in order
        self.failures: dict[str, str] = {}
        self.stalled: set[str] = set()
        self.release = threading.Event()
        self.lock = threading.Lock()
        self._port = port
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------ lifecycle

    def start(self) -> Self:
        server = ThreadingHTTPServer(("127.0.0.1", self._port), _Handler)
        server.daemon_threads = True
        server.kubo = self  # type: ignore[attr-defined]
        self._server = server
        # serve_forever runs once the socket is bound and listening, so clients can connect right away.
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.02}, name="fake-kubo", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self.release.set()  # lets stalled handlers finish
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    # ------------------------------------------------------------ fault injection

    def corrupt(self, cid: str) -> None:
        digest = cidlib.parse_cid(cid).digest
        block = bytearray(self.blocks[digest])
        block[len(block) // 2] ^= 0x01
        self.blocks[digest] = bytes(block)

    def drop(self, cid: str) -> None:
        del self.blocks[cidlib.parse_cid(cid).digest]

    def fail(self, path: str, message: str) -> None:
        self.failures[path] = message

    def stall(self, path: str) -> None:
        self.stalled.add(path)

    def count(self, path: str) -> int:
        return sum(1 for p in self.requests if p == path)

    # ------------------------------------------------------------ block helpers

    def _get(self, cid: str) -> bytes:
        try:
            parsed = cidlib.parse_cid(cid)
        except InvalidCID as exc:
            raise KuboError(f"invalid path {cid!r}: {exc}") from None
        try:
            return self.blocks[parsed.digest]
        except KeyError:
            raise KuboError(f"block was not found locally (offline): ipld: could not find {cid}") from None

    def _reachable(self, root: str) -> Iterator[tuple[str, bytes]]:
        """Pre-order walk of the DAG under `root`, each block once. Raises KuboError for a missing block."""
        seen: set[bytes] = set()
        stack = [root]
        while stack:
            cid = stack.pop()
            parsed = cidlib.parse_cid(cid)
            if parsed.digest in seen:
                continue
            seen.add(parsed.digest)
            block = self._get(cid)
            yield cid, block
            try:
                children = unixfs.child_cids(parsed, block)
            except StorageError as exc:
                raise KuboError(str(exc)) from None
            stack.extend(reversed(children))

    # ------------------------------------------------------------ commands: each returns (body, streamed)

    def cmd_add(self, q: dict[str, list[str]], files: list[tuple[str, bytes]]) -> list[dict]:
        version = int(_opt(q, "cid-version", "0"))
        raw_leaves = _flag(q, "raw-leaves", version == 1)
        if _opt(q, "chunker", "size-262144") != "size-262144" or _opt(q, "hash", "sha2-256") != "sha2-256":
            raise KuboError("this fake only implements kubo's default chunker and hash")
        only_hash = _flag(q, "only-hash", False)
        out = []
        for name, content in files:
            new: dict[bytes, bytes] = {}
            result = unixfs.import_file(
                content,
                cid_version=version,
                raw_leaves=raw_leaves,
                sink=lambda c, parts, new=new: new.__setitem__(
                    cidlib.parse_cid(c).digest, b"".join(bytes(p) for p in parts)
                ),
            )
            if not only_hash:
                self.blocks.update(new)
                if _flag(q, "pin", True):
                    self.pins[result.cid] = None
            out.append({"Name": name, "Hash": result.cid, "Size": str(sum(len(b) for b in new.values()))})
        return out

    def cmd_cat(self, q: dict[str, list[str]], files: object) -> bytes:
        try:
            return b"".join(unixfs.iter_file(self._get, _arg(q)))
        except (StorageError, InvalidCID) as exc:
            raise KuboError(str(exc)) from None

    def cmd_block_get(self, q: dict[str, list[str]], files: object) -> bytes:
        return self._get(_arg(q))

    def cmd_block_stat(self, q: dict[str, list[str]], files: object) -> dict:
        cid = _arg(q)
        return {"Key": cid, "Size": len(self._get(cid))}

    def cmd_block_put(self, q: dict[str, list[str]], files: list[tuple[str, bytes]]) -> dict:
        codec = {"raw": cidlib.RAW, "dag-pb": cidlib.DAG_PB}.get(_opt(q, "cid-codec", "raw"))
        if codec is None or _opt(q, "mhtype", "sha2-256") != "sha2-256":
            raise KuboError("this fake only implements raw/dag-pb with sha2-256")
        ((_, data),) = files
        binary = cidlib.make_cid(data, version=1, codec=codec)
        self.blocks[cidlib.parse_cid(binary).digest] = data
        return {"Key": cidlib.cid_to_str(binary), "Size": len(data)}

    def cmd_pin_add(self, q: dict[str, list[str]], files: object) -> dict:
        cid = _arg(q)
        for _ in self._reachable(cid):
            pass  # kubo fetches (here: checks) the whole DAG before recording a recursive pin
        self.pins[cid] = None
        return {"Pins": [cid]}

    def cmd_pin_rm(self, q: dict[str, list[str]], files: object) -> dict:
        cid = _arg(q)
        if cid not in self.pins:
            raise KuboError("not pinned or pinned indirectly")
        del self.pins[cid]
        return {"Pins": [cid]}

    def cmd_pin_ls(self, q: dict[str, list[str]], files: object) -> dict:
        if _opt(q, "type", "all") != "recursive":
            raise KuboError("this fake only lists recursive pins")
        return {"Keys": {cid: {"Type": "recursive"} for cid in self.pins}}

    def cmd_repo_gc(self, q: dict[str, list[str]], files: object) -> list[dict]:
        live: set[bytes] = set()
        for root in self.pins:
            live.update(cidlib.parse_cid(c).digest for c, _ in self._reachable(root))
        removed = [d for d in self.blocks if d not in live]
        for digest in removed:
            del self.blocks[digest]
        # kubo's blockstore is keyed by multihash, so it reports removed blocks as CIDv1 raw.
        return [
            {"Key": {"/": cidlib.cid_to_str(cidlib.cid_from_digest(d, version=1, codec=cidlib.RAW))}} for d in removed
        ]

    def cmd_repo_stat(self, q: dict[str, list[str]], files: object) -> dict:
        return {
            "RepoSize": sum(len(b) for b in self.blocks.values()),
            "StorageMax": 10_000_000_000,
            "NumObjects": len(self.blocks),
            "RepoPath": "/fake/.ipfs",
            "Version": "fs-repo@16",
        }

    def cmd_dag_export(self, q: dict[str, list[str]], files: object) -> bytes:
        root = _arg(q)
        root_binary = cidlib.parse_cid(root).binary
        # CAR v1 header: dag-cbor {"roots": [CID], "version": 1}, keys in dag-cbor's canonical order.
        link = b"\x00" + root_binary
        header = b"\xa2\x65roots\x81\xd8\x2a" + _cbor_bytes_head(len(link)) + link + b"\x67version\x01"
        out = bytearray(cidlib.encode_varint(len(header)) + header)
        for cid, block in self._reachable(root):
            binary = cidlib.parse_cid(cid).binary
            out += cidlib.encode_varint(len(binary) + len(block)) + binary + block
        return bytes(out)

    def cmd_dag_import(self, q: dict[str, list[str]], files: list[tuple[str, bytes]]) -> list[dict]:
        out = []
        for _, car in files:
            header_len, pos = cidlib.decode_varint(car, 0)
            header = car[pos : pos + header_len]
            pos += header_len
            roots = []
            i = header.find(b"\xd8\x2a")
            while i >= 0:  # each root is tag 42 over bytes(0x00 + binary CID)
                length, start = _cbor_bytes_len(header, i + 2)
                roots.append(cidlib.cid_to_str(header[start + 1 : start + length]))
                i = header.find(b"\xd8\x2a", start + length)
            while pos < len(car):
                section_len, pos = cidlib.decode_varint(car, pos)
                parsed, after = cidlib.parse_binary(car, pos)
                block = car[after : pos + section_len]
                try:
                    cidlib.verify_block(parsed, block)
                except StorageError:
                    raise KuboError(f"block {parsed} in car does not match its hash") from None
                self.blocks[parsed.digest] = block
                pos += section_len
            for root in roots:
                pin_error = ""
                if _flag(q, "pin-roots", True):
                    try:
                        self.cmd_pin_add({"arg": [root]}, None)
                    except KuboError as exc:
                        pin_error = str(exc)
                out.append({"Root": {"Cid": {"/": root}, "PinErrorMsg": pin_error}})
        return out


STREAMED = {"add", "repo/gc", "dag/export", "dag/import"}


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive and chunked replies, like kubo's Go server

    def log_message(self, format: str, *args: object) -> None:
        pass

    def handle(self) -> None:
        try:
            super().handle()
        except ConnectionError:
            pass  # a client that timed out and hung up: a real daemon just drops the connection too

    @property
    def kubo(self) -> FakeKubo:
        return self.server.kubo  # type: ignore[attr-defined,no-any-return]

    def do_GET(self) -> None:
        self._read_body()
        self._reply(405, b"405 - Method Not Allowed\n", "text/plain")

    def do_POST(self) -> None:
        body = self._read_body()
        url = urlsplit(self.path)
        if not url.path.startswith("/api/v0/"):
            self._reply(404, b"404 page not found\n", "text/plain")
            return
        path = url.path[len("/api/v0/") :]
        kubo = self.kubo
        with kubo.lock:
            kubo.requests.append(path)
        query = parse_qs(url.query, keep_blank_values=True)
        with kubo.lock:
            kubo.queries.append((path, query))
        handler = getattr(kubo, "cmd_" + path.replace("/", "_"), None)
        if handler is None:
            self._reply(404, b"404 page not found\n", "text/plain")
            return
        if path in kubo.stalled:
            kubo.release.wait()
            self.close_connection = True  # the client gave up long ago; answer nothing
            return
        try:
            if path in kubo.failures:
                raise KuboError(kubo.failures[path])
            files = _multipart(self.headers.get("Content-Type", ""), body)
            with kubo.lock:
                result = handler(query, files)
        except KuboError as exc:
            error = json.dumps({"Message": str(exc), "Code": 0, "Type": "error"}).encode() + b"\n"
            self._reply(500, error, "application/json")
            return
        if isinstance(result, bytes):
            if path in STREAMED:
                self._stream([result], "application/octet-stream")
            else:
                self._reply(200, result, "text/plain")
        elif isinstance(result, list):
            self._stream([json.dumps(e).encode() + b"\n" for e in result], "application/json")
        else:
            self._reply(200, json.dumps(result).encode() + b"\n", "application/json")

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            out = bytearray()
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip(), 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    return bytes(out)
                out += self.rfile.read(size)
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _reply(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _stream(self, pieces: list[bytes], content_type: str) -> None:
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("X-Chunked-Output", "1")
        self.send_header("Trailer", "X-Stream-Error")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        for piece in pieces:
            if piece:
                self.wfile.write(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")
        self.wfile.write(b"0\r\n\r\n")


def _multipart(content_type: str, body: bytes) -> list[tuple[str, bytes]]:
    """The (filename, content) of each part of a multipart/form-data body."""
    if not content_type.startswith("multipart/form-data"):
        return []
    boundary = content_type.split("boundary=", 1)[1].strip().strip('"').encode()
    parts = []
    for chunk in body.split(b"--" + boundary)[1:]:
        if chunk.startswith(b"--"):
            break
        head, _, content = chunk.partition(b"\r\n\r\n")
        name = "file"
        for line in head.decode("utf-8", "replace").split("\r\n"):
            if line.lower().startswith("content-disposition") and 'filename="' in line:
                name = line.split('filename="', 1)[1].split('"', 1)[0]
        parts.append((name, content[:-2] if content.endswith(b"\r\n") else content))
    return parts


def _arg(q: dict[str, list[str]]) -> str:
    try:
        return q["arg"][0]
    except (KeyError, IndexError):
        raise KuboError('argument "arg" is required') from None


def _opt(q: dict[str, list[str]], key: str, default: str) -> str:
    return q.get(key, [default])[0]


def _flag(q: dict[str, list[str]], key: str, default: bool) -> bool:
    return _opt(q, key, "true" if default else "false").lower() in ("true", "1", "")


def _cbor_bytes_head(n: int) -> bytes:
    if n < 24:
        return bytes([0x40 | n])
    if n < 256:
        return bytes([0x58, n])
    return bytes([0x59]) + n.to_bytes(2, "big")


def _cbor_bytes_len(buf: bytes, pos: int) -> tuple[int, int]:
    head = buf[pos]
    if head < 0x58:
        return head & 0x1F, pos + 1
    if head == 0x58:
        return buf[pos + 1], pos + 2
    return int.from_bytes(buf[pos + 1 : pos + 3], "big"), pos + 3
