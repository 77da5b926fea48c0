"""Sign-in with Ethereum (EIP-4361) and the bearer tokens it gives.

``issue_message``: a message naming the configured domain and URI, the chain id and a fresh nonce, valid for
``nonce_ttl`` seconds; the nonce is recorded with the exact message text. ``login``: the message must be one we
issued, unused and unexpired, for this domain and chain, signed by its address (ERC-1271 wallets through the
chain); its nonce is then spent (even when the signature is wrong: a nonce answers one attempt). The token is
32 random bytes; only its SHA-256 is stored, so the database alone lets nobody act. An address holds at most
``tokens_per_address`` live tokens (a login beyond revokes its oldest), expired ones are purged at each login, and
``logout`` revokes one.

Nonces are issued to anyone, so their table is bounded: expired ones are purged at each issue, and a new one is
refused (429, ``Retry-After``) beyond ``per_client`` unexpired ones asked for by a client (its IP address), used or
not, checked first: spending nonces (a login, even a failed one) frees no place before they expire, so one client
cannot fill the ``live`` unexpired ones the service holds in all; and beyond ``per_address`` unused ones for an
address asked for by one client.
"""

from __future__ import annotations

import hashlib
import secrets
import time
import warnings
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from .db import Database
from .errors import ApiError, unauthorized

STATEMENT = "Sign in to the lepton-ledger service."


def _siwe() -> Any:
    with warnings.catch_warnings():  # abnf warns about siwe's grammar on import; nothing to act on
        warnings.simplefilter("ignore")
        import siwe

    return siwe


def _iso(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class Issued:
    message: str
    nonce: str
    expires_at: float


@dataclass(frozen=True)
class Session:
    token: str
    address: str
    expires_at: float


class Authenticator:
    """Nonces and tokens of one service (its database, domain, URI and chain)."""

    def __init__(
        self,
        db: Database,
        *,
        domain: str,
        uri: str,
        chain_id: int,
        nonce_ttl: int,
        token_ttl: int,
        provider: Any = None,
        per_address: int = 16,
        per_client: int = 1024,
        live: int = 50_000,
        tokens_per_address: int = 8,
    ) -> None:
        self.db, self.domain, self.uri, self.chain_id = db, domain, uri, chain_id
        self.nonce_ttl, self.token_ttl, self.provider = nonce_ttl, token_ttl, provider
        self.per_address, self.per_client, self.live = per_address, per_client, live
        self.tokens_per_address = tokens_per_address

    def _message(self, address: str, nonce: str, now: float) -> str:
        return (
            _siwe()
            .SiweMessage(
                domain=self.domain,
                address=address,
                uri=self.uri,
                version="1",
                chain_id=self.chain_id,
                nonce=nonce,
                issued_at=_iso(now),
                expiration_time=_iso(now + self.nonce_ttl),
                statement=STATEMENT,
            )
            .prepare_message()
        )

    def issue_message(self, address: str, client: str = "") -> Issued:
        """A sign-in message for `address`, asked for by `client`.

        Raises:
            ApiError: 429 beyond the limits (module docstring); nothing is recorded.
        """
        now = time.time()
        nonce = secrets.token_hex(16)  # 128 bits, alphanumeric as EIP-4361 requires
        message = self._message(address, nonce, now)
        with self.db.transaction() as db:
            db.execute("DELETE FROM nonces WHERE expires_at <= ?", (now,))
            # An address's limit counts the nonces its own client asked for: anyone may ask for nonces naming
            # any address, and counting those would let a stranger keep the address from signing in.
            for where, values, limit, whose in (
                ("client = ?", (client,), self.per_client, "this client"),
                ("address = ? AND client = ? AND used = 0", (address, client), self.per_address, address),
                ("expires_at > ?", (now,), self.live, "the service"),
            ):
                count, first = db.execute(
                    f"SELECT COUNT(*), MIN(expires_at) FROM nonces WHERE {where}", values
                ).fetchone()
                if count >= limit:
                    wait = max(1, int(first - now) + 1)
                    raise ApiError(
                        429,
                        "TooManyNonces",
                        f"{whose} holds {count} outstanding sign-in messages: sign in with one, or retry in {wait} s",
                        headers={"Retry-After": str(wait)},
                    )
            db.execute(
                "INSERT INTO nonces (nonce, address, message, expires_at, client) VALUES (?, ?, ?, ?, ?)",
                (nonce, address, message, now + self.nonce_ttl, client),
            )
        return Issued(message=message, nonce=nonce, expires_at=now + self.nonce_ttl)

    def login(self, message: str, signature: str) -> Session:
        """A new bearer token for the message's address.

        Raises:
            ApiError: 401 naming why (malformed, other domain or chain, unknown, replayed or expired nonce, bad
                signature); nothing is recorded but the spent nonce.
        """
        siwe = _siwe()
        # Every message we issue has the same length (fixed-width address, nonce and times); siwe's parser takes
        # time quadratic in the length, so a longer one is refused unparsed.
        if len(message) > len(self._message("0x" + "0" * 40, "0" * 32, time.time())):
            raise unauthorized("the sign-in message is longer than any this service issues")
        try:
            parsed = siwe.SiweMessage.from_message(message)
        except Exception:  # noqa: BLE001 -- the parser raises many types; any of them means "not a message"
            raise unauthorized("not an EIP-4361 sign-in message") from None
        if parsed.domain != self.domain:
            raise unauthorized(f"the message is for domain {parsed.domain!r}, this service is {self.domain!r}")
        if int(parsed.chain_id) != self.chain_id:
            raise unauthorized(f"the message is for chain {parsed.chain_id}, this service is chain {self.chain_id}")
        now = time.time()
        with self.db.transaction() as db:
            row = db.execute("SELECT * FROM nonces WHERE nonce = ?", (parsed.nonce,)).fetchone()
            if row is not None and not row["used"]:
                db.execute("UPDATE nonces SET used = 1 WHERE nonce = ?", (parsed.nonce,))
        if row is None or row["message"] != message:
            raise unauthorized("this service did not issue that sign-in message")
        if row["used"]:
            raise unauthorized("that sign-in message was already used")
        if now >= row["expires_at"]:
            raise unauthorized("that sign-in message has expired: ask for a new one")
        try:
            parsed.verify(signature, domain=self.domain, nonce=row["nonce"], provider=self.provider)
        except siwe.VerificationError as exc:
            raise unauthorized(f"the signature does not verify ({type(exc).__name__})") from None
        except Exception:  # noqa: BLE001 -- malformed signature bytes
            raise unauthorized("the signature is malformed") from None
        token = secrets.token_urlsafe(32)
        with self.db.transaction() as db:
            db.execute("DELETE FROM tokens WHERE expires_at <= ?", (now,))
            db.execute(  # the address's oldest live tokens beyond its cap, less one for the new token
                "DELETE FROM tokens WHERE token_hash IN (SELECT token_hash FROM tokens WHERE address = ? "
                "ORDER BY expires_at DESC, rowid DESC LIMIT -1 OFFSET ?)",
                (parsed.address, self.tokens_per_address - 1),
            )
            db.execute(
                "INSERT INTO tokens (token_hash, address, expires_at) VALUES (?, ?, ?)",
                (_hash(token), parsed.address, now + self.token_ttl),
            )
        return Session(token=token, address=parsed.address, expires_at=now + self.token_ttl)

    def address_of(self, authorization: str | None) -> str:
        """The address a ``Bearer`` token signs in.

        Raises:
            ApiError: 401 without a token, or with an unknown (revoked) or expired one.
        """
        row = (
            self.db.connection()
            .execute("SELECT address, expires_at FROM tokens WHERE token_hash = ?", (_token_hash(authorization),))
            .fetchone()
        )
        if row is None:
            raise unauthorized("unknown token: sign in again")
        if time.time() >= row["expires_at"]:
            raise unauthorized("the token has expired: sign in again")
        return str(row["address"])

    def logout(self, authorization: str | None) -> str:
        """Revokes the ``Bearer`` token; the address it signed in.

        Raises:
            ApiError: 401 as :meth:`address_of`; nothing is revoked.
        """
        address = self.address_of(authorization)
        with self.db.transaction() as db:
            db.execute("DELETE FROM tokens WHERE token_hash = ?", (_token_hash(authorization),))
        return address


def _token_hash(authorization: str | None) -> str:
    """The stored hash of the token of an ``Authorization: Bearer <token>`` header.

    Raises:
        ApiError: 401 without a header, or with another scheme.
    """
    if not authorization:
        raise unauthorized("sign in first: Authorization: Bearer <token> (POST /v1/auth/nonce, /v1/auth/login)")
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise unauthorized("the Authorization header must be: Bearer <token>")
    return _hash(token.strip())


__all__ = ["ApiError", "Authenticator", "Issued", "Session"]
