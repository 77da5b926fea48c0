"""The service's client, for a partner's machine: signs in with the partner's own key (EIP-4361) and gives the
partner's round code what it needs from the service, so that ``rounds.Partner`` runs unchanged there:

- :meth:`ServiceClient.store`: a store over HTTP for one round: ``put`` uploads a sealed update
  (``POST /v1/envelopes``, its CID as the Idempotency-Key, so a retried put stores once), ``get``/``has`` read
  blobs (``GET``/``HEAD /v1/blobs``), every answer checked against its CID here;
- :meth:`ServiceClient.transactor`: a ``Transactor`` that signs with the partner's key as usual and hands the
  signed bytes to the service's relay (``POST /v1/transactions``) instead of the node;
- :meth:`ServiceClient.prepare` / :meth:`ServiceClient.relay`: the prepare and relay calls themselves;
- :meth:`ServiceClient.commitment_typed_data` / :meth:`ServiceClient.submit_commitment`: a batched round's
  commitment, signed here, checked, kept and anchored by the service.

The partner's outbox and accountant stay on its machine, and so do its chain reads (nonces, the round's model
digest, its on-chain epsilon): it reads the chain through its own RPC URL and trusts the service for none of
what the chain says. The service sees the partner's key never, only its signatures.

The key signs no sign-in message but one for this service: its EIP-4361 domain must be the one the client
expects (the service URL's host:port unless given), its URI on that domain (or the one given), its chain the
partner's own (given, or the chain of the ``w3`` handed to :meth:`ServiceClient.transactor`) and its address the
account's; anything else is refused with one line (``ServiceError`` ``ForeignSignIn``) and nothing is signed.
"""

from __future__ import annotations

import warnings
from typing import Any, Self

import httpx
from eth_account.messages import encode_defunct
from eth_utils import keccak
from hexbytes import HexBytes

from ..chain.transactions import Transactor
from ..errors import ChainError, LeptonError
from ..protocol.addressing import artifact_cid, content_digest, digest_of_cid
from ..storage.store import (
    DEFAULT_MAX_FILE_BYTES,
    BlockCorrupted,
    BlockNotFound,
    FileTooLarge,
    StorageError,
)

__all__ = ["ServiceClient", "ServiceError", "ServiceStore", "ServiceTransactor"]
ANSWER_BYTES = 1 << 20  # any answer but a blob's: the service's JSON answers weigh a few KiB
MESSAGE_CHARS = 2000  # a sign-in message weighs ~500 characters; the EIP-4361 parser's time grows with the square


class ServiceError(LeptonError, RuntimeError):
    """The service refused a request (`status`, its error `code`), could not be reached (`status` 0, code
    ``Unreachable``) or handed out a sign-in message the client does not sign (`status` 0, ``ForeignSignIn``)."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"the service answered {status} {code}: {message}" if status else message)
        self.status, self.code = status, code


def _siwe() -> Any:
    with warnings.catch_warnings():  # abnf warns about siwe's grammar on import; nothing to act on
        warnings.simplefilter("ignore")
        import siwe

    return siwe


def _refusal(reply: httpx.Response) -> ServiceError:
    """The service's refusal, from its one error shape (or what else answered, a proxy's page say)."""
    try:
        error = reply.json()["error"]
        code, message = str(error["code"]), str(error["message"])
    except (ValueError, KeyError, TypeError):
        code, message = "HTTPError", reply.text[:200]
    return ServiceError(reply.status_code, code, message)


def _read(reply: httpx.Response, max_bytes: int, what: str) -> bytes:
    """A streamed answer's body, refused as soon as it passes `max_bytes` (counted decoded: a compressed answer
    weighs what it inflates to).

    Raises:
        FileTooLarge: over `max_bytes` (`what` names it).
    """
    chunks, size = [], 0
    for chunk in reply.iter_bytes():
        size += len(chunk)
        if size > max_bytes:
            raise FileTooLarge(what, max_bytes)
        chunks.append(chunk)
    return b"".join(chunks)


def _bounded(reply: httpx.Response) -> httpx.Response:
    """A streamed answer read within ANSWER_BYTES, as a plain answer; a ServiceError ``TooLarge`` beyond."""
    try:
        body = _read(reply, ANSWER_BYTES, f"the answer to {reply.request.method} {reply.request.url.path}")
    except FileTooLarge as exc:
        raise ServiceError(reply.status_code, "TooLarge", str(exc)) from None
    headers = [
        (k, v)
        for k, v in reply.headers.multi_items()
        if k.lower() not in ("content-encoding", "content-length", "transfer-encoding")
    ]  # body: decoded
    return httpx.Response(reply.status_code, headers=headers, content=body, request=reply.request)


def _object(reply: httpx.Response, *strings: str) -> dict[str, Any]:
    """The answer's JSON object, with a string in each of `strings`; a ServiceError when the service answered
    anything else (it is not trusted to answer well)."""
    try:
        body = reply.json()
    except ValueError:  # not JSON
        body = None
    if not isinstance(body, dict) or not all(isinstance(body.get(name), str) for name in strings):
        raise ServiceError(
            reply.status_code,
            "MalformedAnswer",
            f"the service's answer to {reply.request.method} "
            f"{reply.request.url.path} is not the JSON object it documents",
        )
    return body


class ServiceClient:
    """One account signed in to one service (`url`); signs in again when its token expires."""

    def __init__(
        self,
        url: str,
        account: Any,
        *,
        chain_id: int | None = None,
        domain: str | None = None,
        uri: str | None = None,
        timeout: float = 120.0,
    ) -> None:
        """`chain_id`, `domain`, `uri`: what a sign-in message must name (module docstring); `domain` defaults to
        the host:port of `url`, and the URI to any on that domain."""
        self.url, self.account = url.rstrip("/"), account
        self.chain_id, self.uri = chain_id, uri
        self.domain = domain or httpx.URL(self.url).netloc.decode("ascii")
        self.http = httpx.Client(base_url=self.url, timeout=timeout)
        self._token: str | None = None

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- sign-in and requests ----------------------------------------------------------------------------

    def sign_in(self) -> str:
        """A fresh bearer token: the service's sign-in message, signed with the account's key."""
        issued = _object(self._send("POST", "/v1/auth/nonce", json={"address": self.account.address}), "message")
        self.check_sign_in(issued["message"])
        signature = self.account.sign_message(encode_defunct(text=issued["message"])).signature.to_0x_hex()
        session = _object(
            self._send("POST", "/v1/auth/login", json={"message": issued["message"], "signature": signature}), "token"
        )
        self._token = str(session["token"])
        return self._token

    def check_sign_in(self, message: str) -> None:
        """Raises ServiceError ``ForeignSignIn`` unless `message` is an EIP-4361 message for this service, chain
        and account (module docstring): what the key may sign."""
        if self.chain_id is None:
            raise ServiceError(
                0, "ForeignSignIn", "the client knows no chain to expect in a sign-in message: give it a chain_id"
            )
        if len(message) > MESSAGE_CHARS:
            raise ServiceError(0, "ForeignSignIn", f"the service's sign-in message is over {MESSAGE_CHARS} characters")
        try:
            parsed = _siwe().SiweMessage.from_message(message)
            uri_domain = httpx.URL(parsed.uri).netloc.decode("ascii")
        except Exception:  # noqa: BLE001 -- the parsers raise many types; any of them means "not a message"
            raise ServiceError(0, "ForeignSignIn", "the service's sign-in message is not an EIP-4361 message") from None
        wrong = [
            f"{what} {got!r}, this client expects {wanted!r}"
            for what, got, wanted, ok in (
                ("domain", parsed.domain, self.domain, parsed.domain == self.domain),
                (
                    "URI",
                    parsed.uri,
                    self.uri or f"a URI on {self.domain}",
                    parsed.uri == self.uri or (self.uri is None and uri_domain == self.domain),
                ),
                ("chain", int(parsed.chain_id), self.chain_id, int(parsed.chain_id) == self.chain_id),
                ("address", parsed.address, self.account.address, parsed.address == self.account.address),
            )
            if not ok
        ]
        if wrong:
            raise ServiceError(0, "ForeignSignIn", f"not signed: the service's sign-in message names {wrong[0]}")

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """`method` `path` signed in (once more after a 401: the token expired).

        Raises:
            ServiceError: a refusal (status and code as the service gave them), or the service unreachable.
        """
        for attempt in (1, 2):
            token = self._token or self.sign_in()
            headers = {**kwargs.pop("headers", {}), "Authorization": f"Bearer {token}"}
            try:
                return self._send(method, path, headers=headers, **kwargs)
            except ServiceError as exc:
                if exc.status != 401 or attempt == 2:
                    raise
                self._token = None
                kwargs["headers"] = {k: v for k, v in headers.items() if k != "Authorization"}
        raise AssertionError("unreachable")

    def _send(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            with self.http.stream(method, path, **kwargs) as streamed:
                reply = _bounded(streamed)
        except httpx.TransportError as exc:
            raise self._unreachable(exc) from None
        if reply.status_code >= 400:
            raise _refusal(reply)
        return reply

    def download(self, path: str, max_bytes: int) -> bytes:
        """The body of ``GET path``, read as it streams and refused as soon as it passes `max_bytes`.

        Raises:
            FileTooLarge: over `max_bytes` (`path` names it).
            ServiceError: as :meth:`request`.
        """
        for attempt in (1, 2):
            headers = {"Authorization": f"Bearer {self._token or self.sign_in()}"}
            try:
                with self.http.stream("GET", path, headers=headers) as reply:
                    if reply.status_code == 401 and attempt == 1:
                        self._token = None
                        continue
                    if reply.status_code >= 400:
                        raise _refusal(_bounded(reply))
                    return _read(reply, max_bytes, path)
            except httpx.TransportError as exc:
                raise self._unreachable(exc) from None
        raise AssertionError("unreachable")

    def _unreachable(self, exc: Exception) -> ServiceError:
        return ServiceError(0, "Unreachable", f"the service at {self.url} does not answer: {exc}")

    # -- what the partner's round code uses ----------------------------------------------------------------

    def prepare(self, contract: str, function: str, args: list[Any]) -> dict[str, Any]:
        """The unsigned transaction of `contract.function(*args)` from this account (``/v1/transactions/prepare``)."""
        body = {"contract": contract, "function": function, "args": args}
        return _object(self.request("POST", "/v1/transactions/prepare", json=body))

    def relay(self, raw: bytes, *, idempotency_key: str | None = None) -> dict[str, Any]:
        """Relays a transaction this account signed; the service answers once it is mined."""
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
        return _object(
            self.request("POST", "/v1/transactions", json={"raw": HexBytes(raw).to_0x_hex()}, headers=headers),
            "tx_hash",
        )

    # -- batched commitments -----------------------------------------------------------------------------

    def commitment_typed_data(self, agreement_id: int, round_id: int, envelope_cid: str) -> dict[str, Any]:
        """The EIP-712 typed data of this account's commitment to the envelope it uploaded (`envelope_cid`), with
        its digest and fields (``.../commitments/prepare``)."""
        return _object(
            self.request(
                "POST",
                f"/v1/agreements/{agreement_id}/rounds/{round_id}/commitments/prepare",
                json={"envelope_cid": envelope_cid},
            ),
            "digest",
        )

    def submit_commitment(self, signed: Any, *, chain_id: int, ledger: str) -> dict[str, Any]:
        """Hands this account's signed commitment (``rounds.partner.SignedCommitment``, signed for `ledger` on
        `chain_id`, as the partner's own node names them) to the service, which anchors it in the round's batch;
        the answer names the anchor job. The service's typed data for the envelope must be the very commitment
        signed here (its digest), so that both sides mean one commitment.

        Raises:
            ServiceError: a refusal (409 ``AlreadyCommitted``...), or ``CommitmentMismatch`` when the service's
                typed data is another commitment than the one signed.
        """
        from ..chain.typed_data import update_commitment_digest
        from ..rounds.roles import signed_commitment_document

        c = signed.commitment
        digest = "0x" + update_commitment_digest(chain_id, ledger, c).hex()
        typed = self.commitment_typed_data(c.agreement_id, c.round, signed.envelope_cid)
        if typed["digest"] != digest:
            raise ServiceError(
                200,
                "CommitmentMismatch",
                f"the service's typed data for {signed.envelope_cid} has digest {typed['digest'][:66]}, not the "
                f"{digest} signed here",
            )
        return _object(
            self.request(
                "POST",
                f"/v1/agreements/{c.agreement_id}/rounds/{c.round}/commitments",
                json=signed_commitment_document(signed, chain_id=chain_id, ledger=ledger),
                headers={"Idempotency-Key": f"commitment:{digest}"},
            ),
            "envelope_cid",
        )

    def store(self, agreement_id: int, round_id: int) -> ServiceStore:
        """The service's store, for this account's update to `round_id` of `agreement_id`."""
        return ServiceStore(self, agreement_id, round_id)

    def transactor(self, w3: Any) -> ServiceTransactor:
        """A Transactor of this account that relays through the service (`w3`: the partner's own chain reads, whose
        chain a sign-in message must then name, when the client was given none)."""
        if self.chain_id is None:
            self.chain_id = int(w3.eth.chain_id)
        return ServiceTransactor(self, w3)


class ServiceStore:
    """The store interface ``rounds.Partner`` uses (``put``, ``get``, ``has``) over the service (module docstring)."""

    def __init__(self, client: ServiceClient, agreement_id: int, round_id: int) -> None:
        self.client, self.agreement_id, self.round_id = client, agreement_id, round_id

    def put(self, data: bytes, *, cid_version: int = 0, pin: bool = True) -> str:
        """Uploads a sealed update; returns its CID (the one the bytes give, checked against the service's).

        Raises:
            StorageError: `cid_version` is not 0 (the service stores artifacts as the chain names them), or the
                service answered another CID.
            ServiceError: the service refused the envelope (its code says why) or is unreachable.
        """
        if cid_version != 0:
            raise StorageError("the service stores artifacts as CIDv0, as the chain's digests name them")
        cid = artifact_cid(bytes(data))
        reply = _object(
            self.client.request(
                "POST",
                "/v1/envelopes",
                content=bytes(data),
                params={"agreement_id": self.agreement_id, "round": self.round_id},
                headers={"Idempotency-Key": f"envelope:{cid}", "Content-Type": "application/octet-stream"},
            )
        )
        if reply.get("cid") != cid:
            raise StorageError(f"the service stored the update as {reply.get('cid')!r}; its bytes give {cid}")
        return cid

    def get(self, cid: str, *, max_bytes: int = DEFAULT_MAX_FILE_BYTES) -> bytes:
        """The artifact's bytes, checked against `cid` here (the service is not trusted for them).

        Raises:
            BlockNotFound: the service holds no such artifact (404).
            BlockCorrupted: the bytes do not give `cid`.
            FileTooLarge: over `max_bytes`.
            ServiceError: another refusal (403: not the caller's to read), or the service unreachable.
        """
        try:
            data = self.client.download(f"/v1/blobs/{cid}", max_bytes)
        except ServiceError as exc:
            if exc.status == 404:
                raise BlockNotFound(cid) from None
            raise
        if content_digest(data) != digest_of_cid(cid):
            raise BlockCorrupted(cid, f"the service's bytes for {cid} do not give that CID")
        return data

    def has(self, cid: str) -> bool:
        try:
            self.client.request("HEAD", f"/v1/blobs/{cid}")
        except ServiceError as exc:
            if exc.status == 404:
                return False
            raise
        return True


class ServiceTransactor(Transactor):
    """A ``Transactor`` of the client's account: signs and waits as any, sends through the service's relay."""

    def __init__(self, client: ServiceClient, w3: Any) -> None:
        super().__init__(w3, [client.account])
        self.client = client

    def send_raw(self, raw: bytes) -> HexBytes:
        """Relays `raw`; its hash once the service has it mined (the same bytes relayed again: the same hash).

        Raises:
            ChainError: the service refused it (a revert, another nonce...), is unreachable, or answered another
                transaction's hash (this transactor waits for the receipt of the hash it returns: an old success
                must not pass for this transaction).
        """
        own = HexBytes(keccak(bytes(raw)))
        try:
            answered = self.client.relay(raw)["tx_hash"]
        except ServiceError as exc:
            raise ChainError(f"the service did not relay the transaction: {exc}") from None
        if answered.lower() != own.to_0x_hex():
            raise ChainError(f"the service answered another transaction ({str(answered)[:80]}) for {own.to_0x_hex()}")
        return own
