"""`KuboStore`: the `Store` interface over a kubo node's RPC API (``/api/v0/...``, always POST).

Why plain httpx and not ipfshttpclient
--------------------------------------
ipfshttpclient 0.8.0a2 (the last release, an alpha from 2021) only knows daemons in ``0.5.0 <= v < 0.9.0``;
current kubo is 0.3x. With 0.8.0a2 ``connect()`` warns ``VersionMismatch: Unsupported daemon version`` on
every current kubo (earlier releases raised it: py-ipfs-http-client issues #298, #310, #315, #319, #329, where
the advice is to patch ``assert_version`` out). The project is effectively unmaintained (issue #316, "Looking
for a maintainer", and web3.py issue #2629 "ipfshttpclient is unmaintained"), its tests were broken by kubo
0.13's ``block/put`` change (issue #321), its transport is ``requests`` unless an environment variable selects
httpx, and it has no retry policy. Everything this store needs is a dozen POSTs with query arguments, a
multipart body and newline-delimited JSON replies, and every byte read back is verified here block by block
anyway, so a wrapper would add a dependency without removing any work. So: httpx, which the project already
uses.

What the store guarantees
-------------------------
- `get` / `stream` never trust the daemon's file reassembly (``cat``): they fetch every block with
  ``block/get``, check that its bytes hash to the CID that named it, and walk the UnixFS DAG themselves. A
  daemon that serves a wrong block raises `BlockCorrupted` naming that block; a block the node does not have
  raises `BlockNotFound` naming it.
- Connection errors (nothing reached the daemon: refused, connect timeout) are retried with exponential
  backoff. A request the daemon answered is never retried: an error reply (HTTP 500 with kubo's JSON body
  ``{"Message", "Code", "Type": "error"}``) becomes a `StorageError` carrying the daemon's message at once.
- A read timeout raises `StorageError`: a timed-out fetch is not proof that a block is missing.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Iterable, Iterator
from types import TracebackType
from typing import Any, BinaryIO, Self

import httpx

from ..errors import ConfigurationError
from . import cid as cidlib
from . import unixfs
from .store import (
    DEFAULT_MAX_FILE_BYTES,
    MAX_BLOCK_BYTES,
    BlockCorrupted,
    BlockNotFound,
    InvalidCID,
    StorageError,
    Store,
    StoreStat,
)

KUBO_API_ENV = "LEPTON_KUBO_API"

# kubo's default chunker and hash, passed explicitly: a node's Import.* config can change its defaults, and
# the CIDs this store returns must be the ones `ipfs add` gives with kubo's *built-in* defaults.
_CHUNKER = "size-262144"
_HASH = "sha2-256"

# How kubo words "this block is not here" (go-ipld-format's ErrNotFound, with or without the offline prefix
# "block was not found locally (offline): "); the CID it names is the block at fault, which can be a child
# of the one asked for (pin/add walks the DAG).
_NOT_FOUND_CID = re.compile(r"could not find\s+(\S+)")
_NOT_FOUND_WORDS = ("not found", "could not find")


def kubo_api_url() -> str:
    """The kubo RPC base URL from ``$LEPTON_KUBO_API`` (e.g. ``http://127.0.0.1:5001``).

    Raises:
        ConfigurationError: the variable is unset or empty.
    """
    from ..settings import kubo_api

    url = kubo_api()
    if not url:
        raise ConfigurationError(f"{KUBO_API_ENV} is not set (expected e.g. http://127.0.0.1:5001)")
    return url


class _CountingReader:
    """A read-only, non-seekable view of the caller's stream.

    httpx rewinds a seekable upload to offset 0 before sending it, which would upload bytes the caller had
    already consumed; hiding `seek` keeps the upload starting where the caller's stream is. The count tells
    the retry loop whether any byte left, because a stream cannot be replayed.
    """

    def __init__(self, stream: BinaryIO) -> None:
        self._stream = stream
        self.consumed = 0

    def read(self, size: int = -1) -> bytes:
        chunk = self._stream.read(size)
        self.consumed += len(chunk)
        return chunk


class KuboStore(Store):
    """A `Store` backed by a kubo daemon's RPC API.

    Args:
        api_url: the RPC base URL (``http://127.0.0.1:5001``); ``$LEPTON_KUBO_API`` when omitted.
        timeout: seconds to wait for a reply or between two chunks of a streamed reply.
        connect_timeout: seconds to wait for a TCP connection.
        retries: how many times a request is retried after a connection error (so at most retries + 1
            attempts).
        backoff: the first retry's delay in seconds; each later one doubles it.
        offline: ask the node not to fetch missing blocks from the network (kubo's ``offline`` option). When
            False, a block the node lacks is searched on the IPFS network until `timeout`.
        sleep: the function that waits between retries (tests pass their own).
        check_cids: when `put` gets bytes, also compute the CID locally with the project's importer and
            refuse a daemon answer that differs (a stream is uploaded as it is read, so it is not re-hashed).

    Raises:
        ConfigurationError: no URL given and ``$LEPTON_KUBO_API`` unset, or the URL is not http(s).
    """

    def __init__(
        self,
        api_url: str | None = None,
        *,
        timeout: float = 60.0,
        connect_timeout: float = 5.0,
        retries: int = 3,
        backoff: float = 0.25,
        offline: bool = False,
        sleep: Callable[[float], None] = time.sleep,
        check_cids: bool = True,
    ) -> None:
        url = (api_url or kubo_api_url()).rstrip("/")
        if not url.startswith(("http://", "https://")):
            raise ConfigurationError(f"kubo API URL must be http(s)://host:port, got {url!r}")
        url = url.removesuffix("/api/v0")
        if retries < 0 or backoff < 0:
            raise ConfigurationError("retries and backoff must be non-negative")
        self.api_url = url
        self.retries = retries
        self.backoff = backoff
        self.offline = offline
        self._sleep = sleep
        self.check_cids = check_cids
        self._client = httpx.Client(
            base_url=f"{url}/api/v0/",
            timeout=httpx.Timeout(timeout, connect=connect_timeout),
        )

    # ------------------------------------------------------------------ lifecycle

    def close(self) -> None:
        """Closes the HTTP connection pool."""
        self._client.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"KuboStore({self.api_url!r})"

    # ------------------------------------------------------------------ Store: files

    def put(self, data: bytes | BinaryIO, *, cid_version: int = 0, pin: bool = True) -> str:
        """Adds `data` with ``add`` as ``ipfs add [--cid-version=1]`` would; returns the root CID.

        Raises:
            ValueError: cid_version is not 0 or 1.
            StorageError: the daemon refused or could not be reached, or its reply names no CID, or (bytes
                input, `check_cids`) its CID is not the one kubo's defaults give; the node then already holds
                the data under its own CID.
        """
        return self._add(data, cid_version=cid_version, pin=pin, only_hash=False)

    def hash_only(self, data: bytes | BinaryIO, *, cid_version: int = 0) -> str:
        """The CID `put` would return, computed by the daemon without storing anything (``only-hash``).

        Raises:
            ValueError, StorageError: as `put`.
        """
        return self._add(data, cid_version=cid_version, pin=False, only_hash=True)

    def get(self, cid: str, *, max_bytes: int = DEFAULT_MAX_FILE_BYTES) -> bytes:
        """The file's bytes, every block verified. Raises InvalidCID, BlockNotFound / BlockCorrupted naming
        the block at fault, FileTooLarge (over `max_bytes`), StorageError (not a UnixFS file, daemon error,
        timeout)."""
        return b"".join(self.stream(cid, max_bytes=max_bytes))

    def stream(self, cid: str, *, max_bytes: int = DEFAULT_MAX_FILE_BYTES) -> Iterator[bytes]:
        """The file's bytes in DAG order, one block's payload at a time, each block verified before its
        bytes are yielded. Memory: one block plus the CIDs of the links not yet visited.

        Raises:
            InvalidCID: `cid` is not a CID this project handles (at once).
        Raises (while iterating):
            BlockNotFound: a block of the DAG is not on the node (named).
            BlockCorrupted: the node served bytes that do not hash to the block's CID (named).
            FileTooLarge: the file declares or yields more than `max_bytes` (before fetching its leaves).
            StorageError: a block is not dag-pb/UnixFS file data, daemon error or timeout.
        """
        # The same walk LocalStore uses, over blocks this store fetched and verified one by one.
        return unixfs.iter_file(self.get_block, cidlib.parse_cid(cid), max_bytes=max_bytes)

    def has(self, cid: str) -> bool:
        """Whether the node holds block `cid` locally (never asks the network).

        Raises:
            InvalidCID: `cid` is not a CID.
            StorageError: any daemon error other than "not found", or the daemon is unreachable.
        """
        parsed = str(cidlib.parse_cid(cid))
        try:
            self._json("block/stat", [("arg", parsed), ("offline", "true")], cid=parsed)
        except BlockNotFound:
            return False
        return True

    # ------------------------------------------------------------------ Store: pins and gc

    def pin(self, cid: str) -> None:
        """Pins the DAG under `cid` recursively (``pin/add``).

        Raises:
            InvalidCID: `cid` is not a CID.
            BlockNotFound: a block of the DAG is missing (named, as kubo names it).
            StorageError: any other daemon error.
        """
        parsed = str(cidlib.parse_cid(cid))
        reply = self._json(
            "pin/add",
            [("arg", parsed), ("recursive", "true"), ("progress", "false"), *self._offline_arg()],
            cid=parsed,
        )
        if not isinstance(reply, dict) or "Pins" not in reply:
            raise StorageError(f"kubo pin/add {parsed}: unexpected reply {reply!r}")

    def unpin(self, cid: str) -> None:
        """Removes the recursive pin on `cid` (``pin/rm``).

        Raises:
            InvalidCID: `cid` is not a CID.
            StorageError: `cid` was not pinned (kubo's message, naming the CID), or any daemon error.
        """
        parsed = str(cidlib.parse_cid(cid))
        try:
            self._json("pin/rm", [("arg", parsed), ("recursive", "true")])
        except StorageError as exc:
            raise StorageError(f"cannot unpin {parsed}: {exc}") from exc

    def pins(self) -> list[str]:
        """The recursively pinned roots (``pin/ls?type=recursive``), sorted.

        Raises:
            StorageError: daemon error or malformed reply.
        """
        reply = self._json("pin/ls", [("type", "recursive")])
        if not isinstance(reply, dict):
            raise StorageError(f"kubo pin/ls: unexpected reply {reply!r}")
        # kubo's Go type embeds PinLsList, so the wire form is {"Keys": {...}}; the generated RPC reference
        # shows it nested under "PinLsList". Accept both.
        keys = reply.get("Keys")
        if keys is None and isinstance(reply.get("PinLsList"), dict):
            keys = reply["PinLsList"].get("Keys")
        if keys is None:
            return []
        if not isinstance(keys, dict):
            raise StorageError(f"kubo pin/ls: unexpected reply {reply!r}")
        return sorted(keys)

    def gc(self) -> int:
        """Runs ``repo/gc``; returns how many blocks the node removed.

        Raises:
            StorageError: the daemon reported an error during the sweep (its messages), or any daemon error.
        """
        removed = 0
        errors: list[str] = []
        for event in self._ndjson("repo/gc", [("stream-errors", "true")]):
            if event.get("Error"):
                errors.append(str(event["Error"]))
            elif isinstance(event.get("Key"), dict) and event["Key"].get("/"):
                removed += 1
        if errors:
            shown = "; ".join(errors[:3]) + (f" (+{len(errors) - 3} more)" if len(errors) > 3 else "")
            raise StorageError(f"kubo repo/gc removed {removed} blocks and reported errors: {shown}")
        return removed

    def stat(self) -> StoreStat:
        """Block count and repo size from ``repo/stat``, pin count from ``pin/ls``.

        Raises:
            StorageError: daemon error or malformed reply.
        """
        reply = self._json("repo/stat", [])
        if not isinstance(reply, dict):
            raise StorageError(f"kubo repo/stat: unexpected reply {reply!r}")
        # Same embedding story as pin/ls: the wire form is flat, the reference shows "SizeStat" nested.
        nested = reply.get("SizeStat")
        sizes = nested if isinstance(nested, dict) else reply
        try:
            blocks = int(reply["NumObjects"])
            size = int(sizes["RepoSize"])
        except (KeyError, TypeError, ValueError):
            raise StorageError(f"kubo repo/stat: unexpected reply {reply!r}") from None
        return StoreStat(blocks=blocks, size=size, pins=len(self.pins()))

    # ------------------------------------------------------------------ Store: raw blocks

    def get_block(self, cid: str) -> bytes:
        """One block (``block/get``), verified against its CID.

        Raises:
            InvalidCID: `cid` is not a CID.
            BlockNotFound: the node does not have it (with `offline`) or says it cannot find it.
            BlockCorrupted: the bytes served do not hash to `cid`.
            StorageError: daemon error, unreachable daemon, timeout.
        """
        parsed = cidlib.parse_cid(cid)
        name = str(parsed)
        data = self._bytes("block/get", [("arg", name), *self._offline_arg()], cid=name)
        try:
            cidlib.verify_block(parsed, data)
        except BlockCorrupted:
            raise BlockCorrupted(
                name,
                f"kubo at {self.api_url} served {len(data)} bytes for block {name} that do not hash "
                "to its CID (corrupted)",
            ) from None
        return data

    def put_block(self, cid: str, data: bytes) -> None:
        """Stores one block (``block/put`` with the CID's codec) after checking it hashes to `cid`.

        Raises:
            InvalidCID: `cid` is not a CID.
            BlockCorrupted: `data` does not hash to `cid` (nothing is sent).
            StorageError: daemon error, or the daemon keyed the block under another hash.
        """
        parsed = cidlib.parse_cid(cid)
        cidlib.verify_block(parsed, data)
        reply = self._json(
            "block/put",
            [("cid-codec", parsed.codec_name), ("mhtype", _HASH), ("pin", "false")],
            files={"file": ("block", data, "application/octet-stream")},
        )
        key = reply.get("Key") if isinstance(reply, dict) else None
        try:
            stored = cidlib.parse_cid(key) if isinstance(key, str) else None
        except InvalidCID:
            stored = None
        # kubo answers with a CIDv1 even for a v0 block; the multihash is what identifies the block.
        if stored is None or stored.digest != parsed.digest or stored.codec != parsed.codec:
            raise StorageError(f"kubo block/put stored {parsed!s} under {key!r}")

    # ------------------------------------------------------------------ CAR files

    def export_car(self, cid: str) -> Iterator[bytes]:
        """The DAG under `cid` as a CAR v1 byte stream (``dag/export``), as kubo writes it. The bytes are not
        verified here: import them with the project's CAR reader, which checks every block.

        Raises (while iterating):
            InvalidCID, BlockNotFound, StorageError: as `get_block`.
        """
        parsed = str(cidlib.parse_cid(cid))
        with self._send(
            "dag/export", [("arg", parsed), ("progress", "false"), *self._offline_arg()], cid=parsed
        ) as response:
            yield from self._read_stream(response, "dag/export", response.iter_bytes)

    def import_car(self, car: bytes | BinaryIO, *, pin_roots: bool = True) -> list[str]:
        """Imports a CAR v1 file (``dag/import``); returns the roots the daemon reports. kubo checks each
        block against its CID as it imports.

        Raises:
            StorageError: the daemon refused the CAR (its message) or pinning a root failed.
        """
        body = car if isinstance(car, bytes) else _CountingReader(car)
        roots: list[str] = []
        pin_errors: list[str] = []
        for event in self._ndjson(
            "dag/import",
            [("pin-roots", "true" if pin_roots else "false"), ("stats", "false")],
            files={"file": ("import.car", body, "application/vnd.ipld.car")},
            upload=body,
        ):
            root = event.get("Root")
            if isinstance(root, dict):
                cid_obj = root.get("Cid")
                if isinstance(cid_obj, dict) and cid_obj.get("/"):
                    roots.append(str(cid_obj["/"]))
                if root.get("PinErrorMsg"):
                    pin_errors.append(f"{cid_obj}: {root['PinErrorMsg']}")
        if pin_errors:
            raise StorageError(f"kubo dag/import could not pin roots: {'; '.join(pin_errors)}")
        return roots

    # ------------------------------------------------------------------ internals

    def _offline_arg(self) -> list[tuple[str, str]]:
        return [("offline", "true")] if self.offline else []

    def _add(self, data: bytes | BinaryIO, *, cid_version: int, pin: bool, only_hash: bool) -> str:
        if cid_version not in (0, 1):
            raise ValueError(f"cid_version must be 0 or 1, got {cid_version!r}")
        body: bytes | _CountingReader = (
            bytes(data) if isinstance(data, (bytes, bytearray, memoryview)) else _CountingReader(data)
        )
        params = [
            ("cid-version", str(cid_version)),
            # Explicit, because the node's Import.UnixFSRawLeaves would otherwise decide.
            ("raw-leaves", "true" if cid_version == 1 else "false"),
            ("chunker", _CHUNKER),
            ("hash", _HASH),
            ("trickle", "false"),
            ("only-hash", "true" if only_hash else "false"),
            ("pin", "true" if pin and not only_hash else "false"),
            ("progress", "false"),
        ]
        last: dict[str, Any] | None = None
        for event in self._ndjson(
            "add", params, files={"file": ("file", body, "application/octet-stream")}, upload=body
        ):
            if "Hash" in event:
                last = event
        if last is None:
            raise StorageError("kubo add replied without a CID")
        root = str(last["Hash"])
        try:
            parsed = cidlib.parse_cid(root)
        except InvalidCID as exc:
            raise StorageError(f"kubo add replied with {root!r}, not a CID: {exc}") from None
        if self.check_cids and isinstance(body, bytes):
            # A node whose Import.* config departs from kubo's defaults in a way no add argument overrides
            # (e.g. Import.UnixFSFileMaxLinks) would address the same bytes differently from LocalStore; the
            # digests anchored on-chain must not depend on which backend wrote them.
            expected = unixfs.file_cid(body, cid_version=cid_version)
            if cidlib.parse_cid(expected).binary != parsed.binary:
                raise StorageError(
                    f"kubo add returned {root} but kubo's defaults give {expected} for these bytes: the node's "
                    "Import settings differ from kubo's defaults"
                )
        return root

    def _send(
        self,
        path: str,
        params: list[tuple[str, str]],
        *,
        files: dict[str, Any] | None = None,
        upload: object = None,
        cid: str | None = None,
    ) -> _Reply:
        """Sends one POST, retrying connection errors only; returns the open, 200 response.

        Raises:
            BlockNotFound / StorageError: the daemon answered with an error (never retried), the daemon could
                not be reached after all retries, or a timeout.
        """
        attempt = 0
        while True:
            # A tuple, whose type is covariant, where httpx types a list of (str, primitive) pairs.
            request = self._client.build_request("POST", path, params=tuple(params), files=files)
            try:
                response = self._client.send(request, stream=True)
            except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
                # Nothing reached the daemon, so sending again cannot do anything twice. A streamed upload can
                # only be replayed if none of it was read.
                replayable = not isinstance(upload, _CountingReader) or upload.consumed == 0
                if attempt >= self.retries or not replayable:
                    raise StorageError(
                        f"kubo at {self.api_url} unreachable for {path} after {attempt + 1} attempt(s): {exc}"
                    ) from exc
                self._sleep(self.backoff * (2**attempt))
                attempt += 1
                continue
            except httpx.TimeoutException as exc:
                raise StorageError(f"kubo {path}{_for(cid)} timed out: {exc!r}") from exc
            except httpx.HTTPError as exc:
                raise StorageError(f"kubo {path}{_for(cid)} failed: {exc!r}") from exc
            if response.status_code != 200:
                try:
                    body = response.read()
                except httpx.HTTPError:
                    body = b""
                finally:
                    response.close()
                raise _reply_error(path, response.status_code, body, cid)
            return _Reply(response)

    def _read_stream(self, response: httpx.Response, path: str, reader: Callable[[], Iterable[Any]]) -> Iterator[Any]:
        try:
            yield from reader()
        except httpx.TimeoutException as exc:
            raise StorageError(f"kubo {path} timed out while streaming: {exc!r}") from exc
        except httpx.HTTPError as exc:
            raise StorageError(f"kubo {path} failed while streaming: {exc!r}") from exc
        # kubo reports an error that happens after the 200 in the X-Stream-Error trailer, which httpx does not
        # expose; for ndjson commands it also writes the error object last (handled by _ndjson), and for
        # bytes every block is verified against its CID anyway.

    def _bytes(self, path: str, params: list[tuple[str, str]], *, cid: str | None = None) -> bytes:
        """The reply's bytes, at most MAX_BLOCK_BYTES (a daemon that sends more is refused as it streams)."""
        out = bytearray()
        with self._send(path, params, cid=cid) as response:
            for piece in self._read_stream(response, path, response.iter_bytes):
                out += piece
                if len(out) > MAX_BLOCK_BYTES:
                    raise StorageError(f"kubo {path}{_for(cid)} sent more than {MAX_BLOCK_BYTES} bytes for one block")
        return bytes(out)

    def _ndjson(
        self,
        path: str,
        params: list[tuple[str, str]],
        *,
        files: dict[str, Any] | None = None,
        upload: object = None,
        cid: str | None = None,
    ) -> Iterator[dict[str, Any]]:
        """Yields each JSON object of a newline-delimited reply. Raises StorageError on an error object."""
        with self._send(path, params, files=files, upload=upload, cid=cid) as response:
            for line in self._read_stream(response, path, response.iter_lines):
                if not line.strip():
                    continue
                try:
                    event = json.loads(line)
                except ValueError:
                    raise StorageError(f"kubo {path}: reply line is not JSON: {line[:200]!r}") from None
                if not isinstance(event, dict):
                    raise StorageError(f"kubo {path}: reply line is not an object: {line[:200]!r}")
                if event.get("Type") == "error" and "Message" in event:
                    raise _reply_error(path, 200, line.encode(), cid)
                yield event

    def _json(
        self,
        path: str,
        params: list[tuple[str, str]],
        *,
        files: dict[str, Any] | None = None,
        cid: str | None = None,
    ) -> Any:
        """The single JSON value of a reply (the last, when the daemon streams several)."""
        last: Any = None
        for event in self._ndjson(path, params, files=files, cid=cid):
            last = event
        if last is None:
            raise StorageError(f"kubo {path}: empty reply")
        return last


class _Reply:
    """Context manager closing a streamed response."""

    def __init__(self, response: httpx.Response) -> None:
        self.response = response

    def __enter__(self) -> httpx.Response:
        return self.response

    def __exit__(self, *exc: object) -> None:
        self.response.close()


def _for(cid: str | None) -> str:
    return f" for {cid}" if cid else ""


def _reply_error(path: str, status: int, body: bytes, cid: str | None) -> StorageError:
    """Maps a daemon's error reply to the project's exceptions.

    kubo answers a failed command with HTTP 500 and ``{"Message": ..., "Code": ..., "Type": "error"}``; 400
    for a malformed call, 403 (Origin), 404 (no such endpoint), 405 (not POST) with a JSON or text body.
    """
    message = body.decode("utf-8", "replace").strip()
    try:
        parsed = json.loads(message)
        if isinstance(parsed, dict) and "Message" in parsed:
            message = str(parsed["Message"])
    except ValueError:
        pass
    message = message[:500] or f"HTTP {status} with an empty body"
    lowered = message.lower()
    if status in (200, 500) and any(word in lowered for word in _NOT_FOUND_WORDS):
        match = _NOT_FOUND_CID.search(message)
        missing = match.group(1).rstrip(".,;:") if match else cid
        if missing:
            return BlockNotFound(missing, f"block {missing} is not on the kubo node (kubo {path}: {message})")
    if status == 404:
        return StorageError(f"kubo {path}: no such RPC endpoint (HTTP 404: {message}); is this a kubo RPC API?")
    return StorageError(f"kubo {path}{_for(cid)} failed (HTTP {status}): {message}")
