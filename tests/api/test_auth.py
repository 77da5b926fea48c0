"""Sign-in with Ethereum: the message the service issues, the token it gives, and every way a sign-in fails
(401, no token issued)."""

from __future__ import annotations

import sqlite3
import time

import pytest
from service_world import fresh_account


def _db(service) -> sqlite3.Connection:
    return sqlite3.connect(service.data_dir / "api" / "service.sqlite", isolation_level=None)


def _tokens(service) -> int:
    with _db(service) as db:
        return db.execute("SELECT count(*) FROM tokens").fetchone()[0]


def test_nonce_is_an_eip4361_message_for_this_domain_and_chain(service):
    issued = service.nonce(service.alpha)
    lines, domain = issued["message"].splitlines(), f"127.0.0.1:{service.server.port}"
    assert lines[0] == f"{domain} wants you to sign in with your Ethereum account:"
    assert lines[1] == service.alpha.address
    assert "Chain ID: 31337" in lines and f"Nonce: {issued['nonce']}" in lines and f"URI: http://{domain}" in lines
    assert 295 <= issued["expires_at"] - time.time() <= 300


def test_login_gives_a_token_whose_roles_come_from_the_chain(service):
    agreement = str(service.agreement_id)
    me = service.api.get("/v1/auth/me", headers=service.headers(service.roles.coordinator)).json()
    assert me["address"] == service.roles.coordinator.address and me["roles"] == ["partner:pending", "coordinator"]
    assert me["agreements"][agreement] == ["coordinator"]
    me = service.api.get("/v1/auth/me", headers=service.headers(service.alpha)).json()
    assert me["roles"] == ["partner:approved"] and me["agreements"][agreement] == ["party"]
    me = service.api.get("/v1/auth/me", headers=service.headers(service.roles.admin)).json()
    assert me["roles"] == ["partner:none", "admin"] and me["agreements"][agreement] == ["arbiter"]


def test_tokens_are_stored_hashed(service):
    token = service.token_of(service.beta)
    with _db(service) as db:
        hashes = [row[0] for row in db.execute("SELECT token_hash FROM tokens")]
    assert token not in hashes and all(len(h) == 64 for h in hashes)


def test_a_used_message_cannot_sign_in_again(service):
    message = service.nonce(service.alpha)["message"]
    assert service.login(message, service.alpha).status_code == 200
    before = _tokens(service)
    replay = service.login(message, service.alpha)
    assert replay.status_code == 401 and "already used" in replay.json()["error"]["message"]
    assert _tokens(service) == before


def test_an_expired_message_is_refused(service):
    issued = service.nonce(service.alpha)
    with _db(service) as db:  # the service's record of when its message expires: moved into the past
        db.execute("UPDATE nonces SET expires_at = ? WHERE nonce = ?", (time.time() - 1, issued["nonce"]))
    reply = service.login(issued["message"], service.alpha)
    assert reply.status_code == 401 and "expired" in reply.json()["error"]["message"]


@pytest.mark.parametrize(
    ("old", "new", "why"),
    [
        ("{domain} wants", "evil.test wants", "domain 'evil.test'"),
        ("Chain ID: 31337", "Chain ID: 1", "chain 1"),
        ("URI: http://{domain}", "URI: https://evil.test", "did not issue"),
    ],
)
def test_a_message_for_another_domain_chain_or_uri_is_refused(service, old, new, why):
    old = old.format(domain=f"127.0.0.1:{service.server.port}")
    message = service.nonce(service.alpha)["message"].replace(old, new)
    before = _tokens(service)
    reply = service.login(message, service.alpha)
    assert reply.status_code == 401 and why in reply.json()["error"]["message"], reply.text
    assert _tokens(service) == before


def test_a_message_signed_by_another_account_is_refused_and_spent(service):
    message = service.nonce(service.alpha)["message"]
    reply = service.login(message, service.beta)
    assert reply.status_code == 401 and "does not verify" in reply.json()["error"]["message"]
    assert service.login(message, service.alpha).status_code == 401  # the nonce answered one attempt


def test_a_message_the_service_never_issued_is_refused(service):
    issued = service.nonce(service.alpha)
    forged = issued["message"].replace(issued["nonce"], "a" * 32)
    assert service.login(forged, service.alpha).status_code == 401


@pytest.mark.parametrize("body", [{}, {"message": "x"}, {"message": "not siwe", "signature": "0x00"}])
def test_malformed_logins_are_refused(service, body):
    reply = service.api.post("/v1/auth/login", json=body)
    assert reply.status_code in (401, 422) and set(reply.json()) == {"error"}


def test_nonce_for_a_malformed_address_is_422(service):
    reply = service.api.post("/v1/auth/nonce", json={"address": "0x1234"})
    assert reply.status_code == 422 and reply.json()["error"]["code"] == "Malformed"


@pytest.mark.parametrize("header", [None, "Bearer nope", "Basic abc", "Bearer"])
def test_requests_without_a_valid_token_are_401(service, header):
    reply = service.api.get("/v1/auth/me", headers={"Authorization": header} if header else {})
    assert reply.status_code == 401 and reply.headers["www-authenticate"] == "Bearer"


def test_an_expired_token_is_401(service):
    token = service.token_of(service.alpha)
    with _db(service) as db:
        db.execute("UPDATE tokens SET expires_at = ?", (time.time() - 1,))
    reply = service.api.get("/v1/auth/me", headers={"Authorization": f"Bearer {token}"})
    assert reply.status_code == 401 and "expired" in reply.json()["error"]["message"]


def test_an_unregistered_account_signs_in_with_no_role(service):
    account = fresh_account()
    me = service.api.get("/v1/auth/me", headers=service.headers(account))
    assert me.json() == {"address": account.address, "roles": ["partner:none"], "agreements": {}}


def test_a_message_longer_than_any_issued_is_refused_unparsed(service):
    """siwe's parser takes time quadratic in the message's length: an anonymous caller must not get to make the
    service parse a long one. The refusal happens before the nonce is even read, so it stays usable."""
    issued = service.nonce(service.alpha)
    padded = issued["message"].replace("Sign in to the lepton-ledger service.", "x" * 12_000)
    reply = service.login(padded, service.alpha)
    assert reply.status_code == 401 and "longer than any" in reply.json()["error"]["message"], reply.text
    assert service.login(issued["message"], service.alpha).status_code == 200
