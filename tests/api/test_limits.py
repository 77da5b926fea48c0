"""What bounds what a caller can make the service hold: request bodies (413), sign-in nonces (429, expired ones
purged) and bearer tokens (a few live ones per address, expired ones purged, logout revokes one)."""

from __future__ import annotations

import json
import time

import httpx
import pytest
from eth_account.messages import encode_defunct
from service_world import fresh_account

from lepton_ledger.api.auth import Authenticator
from lepton_ledger.api.db import Database
from lepton_ledger.api.errors import ApiError

ADDRESS = "0x90F79bf6EB2c4f870365E785982E1f101E93b906"
JSON_CAP = 1 << 20  # Settings.max_json_bytes's default, which the test service runs with


def _padded_json(size: int) -> bytes:
    return json.dumps({"address": ADDRESS, "pad": "x" * size}).encode()


def test_a_json_body_over_the_cap_is_413_in_the_one_shape(service):
    reply = service.api.post(
        "/v1/auth/nonce", content=_padded_json(JSON_CAP), headers={"Content-Type": "application/json"}
    )
    assert reply.status_code == 413 and reply.json()["error"]["code"] == "TooLarge", reply.text


def test_a_chunked_body_over_the_cap_is_413_too(service):
    """Without a Content-Length the cap counts the bytes as they come."""
    body = _padded_json(JSON_CAP)
    chunks = (body[i : i + 65536] for i in range(0, len(body), 65536))
    reply = service.api.post("/v1/auth/nonce", content=chunks, headers={"Content-Type": "application/json"})
    assert reply.status_code == 413 and reply.json()["error"]["code"] == "TooLarge", reply.text


def test_a_body_under_the_cap_is_served(service):
    reply = service.api.post(
        "/v1/auth/nonce",
        content=_padded_json(1000),
        headers={"Content-Type": "application/json"},
    )
    assert reply.status_code == 200, reply.text


def test_nonces_beyond_an_addresss_limit_are_429_until_one_is_used(service):
    account = fresh_account()
    issued = [service.nonce(account) for _ in range(16)]
    refused = service.api.post("/v1/auth/nonce", json={"address": account.address})
    assert refused.status_code == 429 and refused.json()["error"]["code"] == "TooManyNonces", refused.text
    assert 1 <= int(refused.headers["Retry-After"]) <= 301
    assert service.login(issued[0]["message"], account).status_code == 200  # spends one
    assert service.api.post("/v1/auth/nonce", json={"address": account.address}).status_code == 200


def test_a_stranger_cannot_keep_an_address_from_signing_in(service):
    """Nonces naming an address, asked for from another client, leave the address's own client its nonces."""
    victim = fresh_account()
    stranger = httpx.Client(
        base_url=str(service.api.base_url), timeout=60, transport=httpx.HTTPTransport(local_address="127.0.0.2")
    )
    with stranger:
        for _ in range(16):
            assert stranger.post("/v1/auth/nonce", json={"address": victim.address}).status_code == 200
        assert stranger.post("/v1/auth/nonce", json={"address": victim.address}).status_code == 429
    reply = service.login(service.nonce(victim)["message"], victim)  # from 127.0.0.1
    assert reply.status_code == 200, reply.text


@pytest.fixture
def authenticator(tmp_path):
    return Authenticator(
        Database(tmp_path / "service.sqlite"),
        domain="ledger.test",
        uri="https://ledger.test",
        chain_id=31337,
        nonce_ttl=300,
        token_ttl=900,
        per_address=3,
        per_client=5,
        live=8,
        tokens_per_address=3,
    )


def _refused(authenticator, address: str, client: str) -> ApiError:
    with pytest.raises(ApiError) as refused:
        authenticator.issue_message(address, client)
    assert refused.value.status == 429
    return refused.value


def _rows(authenticator) -> int:
    return authenticator.db.connection().execute("SELECT COUNT(*) FROM nonces").fetchone()[0]


def test_a_client_is_limited_across_addresses(authenticator):
    for i in range(5):
        authenticator.issue_message(f"0x{i:040x}", "10.0.0.1")
    assert "this client" in _refused(authenticator, "0x" + "9" * 40, "10.0.0.1").message
    authenticator.issue_message("0x" + "9" * 40, "10.0.0.2")  # another client is not


def test_the_table_is_bounded_and_expired_nonces_are_purged(authenticator):
    for i in range(8):
        authenticator.issue_message(f"0x{i:040x}", f"10.0.0.{i}")
    assert "the service" in _refused(authenticator, "0x" + "9" * 40, "10.0.1.1").message
    assert _rows(authenticator) == 8  # a refusal records nothing
    with authenticator.db.transaction() as db:  # their five minutes, passed
        db.execute("UPDATE nonces SET expires_at = ?", (time.time() - 1,))
    authenticator.issue_message("0x" + "9" * 40, "10.0.1.1")
    assert _rows(authenticator) == 1


def test_an_addresss_limit_counts_its_own_clients_nonces(authenticator):
    victim = "0x" + "7" * 40
    for _ in range(3):
        authenticator.issue_message(victim, "10.0.0.66")
    assert victim in _refused(authenticator, victim, "10.0.0.66").message
    authenticator.issue_message(victim, "10.0.0.1")  # the victim's own client still gets one


def test_one_client_spending_its_nonces_cannot_fill_the_services_table(authenticator):
    """A nonce spent by a login (a failed one costs nothing to send) keeps its row until it expires, for the
    replay check: the client's own cap counts those too, so one client alone never reaches the service's cap."""
    client = "10.0.0.9"
    for i in range(5):
        issued = authenticator.issue_message(f"0x{i:040x}", client)
        with pytest.raises(ApiError):
            authenticator.login(issued.message, "0x" + "00" * 65)  # spends the nonce
    assert "this client" in _refused(authenticator, "0x" + "9" * 40, client).message
    authenticator.issue_message("0x" + "9" * 40, "10.0.0.10")  # the service still has room for others


def _login(authenticator, account) -> str:
    issued = authenticator.issue_message(account.address, "10.0.0.1")
    signature = account.sign_message(encode_defunct(text=issued.message)).signature.to_0x_hex()
    return authenticator.login(issued.message, signature).token


def _live_tokens(authenticator, address: str) -> int:
    query = "SELECT COUNT(*) FROM tokens WHERE address = ?"
    return authenticator.db.connection().execute(query, (address,)).fetchone()[0]


def test_an_addresss_live_tokens_are_capped_its_oldest_revoked(authenticator):
    account = fresh_account()
    tokens = [_login(authenticator, account) for _ in range(4)]  # the fixture's cap is 3
    with pytest.raises(ApiError) as revoked:
        authenticator.address_of(f"Bearer {tokens[0]}")
    assert revoked.value.status == 401
    assert all(authenticator.address_of(f"Bearer {t}") == account.address for t in tokens[1:])
    assert _live_tokens(authenticator, account.address) == 3


def test_expired_tokens_are_purged_at_a_login(authenticator):
    stale, fresh = fresh_account(), fresh_account()
    _login(authenticator, stale)
    with authenticator.db.transaction() as db:  # its fifteen minutes, passed
        db.execute("UPDATE tokens SET expires_at = ?", (time.time(),))
    _login(authenticator, fresh)
    assert _live_tokens(authenticator, stale.address) == 0 and _live_tokens(authenticator, fresh.address) == 1


def test_logout_revokes_the_callers_token_and_no_other(service):
    account = fresh_account()
    first, second = service.headers(account), service.headers(account)
    reply = service.api.post("/v1/auth/logout", headers=first)
    assert reply.status_code == 200 and reply.json() == {"address": account.address}, reply.text
    assert service.api.get("/v1/auth/me", headers=first).status_code == 401
    assert service.api.get("/v1/auth/me", headers=second).status_code == 200
    again = service.api.post("/v1/auth/logout", headers=first)
    assert again.status_code == 401 and again.json()["error"]["code"] == "Unauthorized", again.text
    assert service.api.post("/v1/auth/logout").status_code == 401
