"""A whole round in which the partners act only through the service's client: each signs in with its own key,
fetches the round's model from the service, uploads its sealed update there and has its submitUpdate relayed
(``rounds.Partner``, unchanged, with the client's store and transactor); the coordinator closes the round as a
job; each partner then reads its reward through the client. And the sign-in message a client's key signs: only
one for the service, chain and account it expects (a hostile server's messages, signed never)."""

from __future__ import annotations

import contextlib
import http.server
import json
import re
import threading
import warnings

import httpx
import pytest
from eth_account import Account
from service_world import CLOSE, follow_job, open_round

from lepton_ledger import fl
from lepton_ledger.api.client import ANSWER_BYTES, ServiceClient, ServiceError
from lepton_ledger.errors import ChainError, LeptonError
from lepton_ledger.rounds.outbox import Outbox
from lepton_ledger.rounds.partner import Partner, TrainingSettings
from lepton_ledger.workers.inline import InlineExecutor

with warnings.catch_warnings():  # abnf warns about siwe's grammar on import
    warnings.simplefilter("ignore")
    import siwe


def _count(service, route: str) -> int:
    pattern = rf'lepton_http_requests_total{{method="POST",route="{re.escape(route)}",status="200"}} (\d+)'
    found = re.search(pattern, service.api.get("/metrics").text)
    return int(found.group(1)) if found else 0


def test_a_round_where_partners_act_only_through_the_client(service, tmp_path):
    w = service
    agreement_id, round_id = open_round(w, tmp_path / "coordinator")
    relayed, uploaded = _count(w, "/v1/transactions"), _count(w, "/v1/envelopes")
    url = str(w.api.base_url)
    for i, account in enumerate((w.alpha, w.beta)):
        with ServiceClient(url, account) as client:
            partner = Partner(
                account=account,
                tx=client.transactor(w.w3),
                deployment=w.d,
                store=client.store(agreement_id, round_id),
                accountant=fl.PrivacyAccountant(
                    partner=account.address, agreement=agreement_id, delta=1e-5, epsilon_cap=8.0
                ),
                data=w.split.partners[i],
                executor=InlineExecutor(),
                settings=TrainingSettings(model="logreg", epochs=1, batch_size=64, noise_multiplier=1.0),
                outbox=Outbox(tmp_path / f"partner-{i}.sqlite"),
            )
            submission = partner.run_round(
                agreement_id, round_id, [w.roles.coordinator.address, w.roles.auditor.address]
            )
            assert client.store(agreement_id, round_id).get(submission.envelope_cid) == w.store.get(
                submission.envelope_cid
            )  # stored by the service, read back by its uploader
    assert _count(w, "/v1/transactions") - relayed == 2 and _count(w, "/v1/envelopes") - uploaded == 2
    assert all(w.d.ledger.functions.hasSubmitted(agreement_id, round_id, a.address).call() for a in (w.alpha, w.beta))

    headers = w.headers(w.roles.coordinator)
    job = w.api.post(
        f"/v1/agreements/{agreement_id}/rounds/{round_id}/close",
        json=CLOSE,
        headers=headers,
    ).json()
    done = follow_job(w, job["id"], headers)
    assert done["status"] == "done" and sorted(done["result"]["accepted"]) == sorted(
        [w.alpha.address, w.beta.address]
    ), done
    with ServiceClient(url, w.alpha, chain_id=w.w3.eth.chain_id) as client:
        reward = client.request("GET", f"/v1/rewards/{agreement_id}/{round_id}/{w.alpha.address}").json()
        assert int(reward["amount"]) == int(done["result"]["payouts"][w.alpha.address]) > 0
        with pytest.raises(ServiceError) as refused:  # a partner reads only its own
            client.request("GET", f"/v1/rewards/{agreement_id}/{round_id}/{w.beta.address}")
        assert refused.value.status == 403


class _AnotherHash(httpx.BaseTransport):
    """Between the client and the real service: passes every request on, and answers a relay with the hash of
    another (mined, successful) transaction, as a lying service would."""

    def __init__(self, other: str) -> None:
        self.inner, self.other = httpx.HTTPTransport(), other

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        reply = self.inner.handle_request(request)
        if request.method == "POST" and request.url.path == "/v1/transactions" and reply.status_code == 200:
            reply.read()
            return httpx.Response(200, json={**reply.json(), "tx_hash": self.other})
        return reply


def test_a_service_that_answers_a_relay_with_another_transactions_hash_is_refused(service):
    """The partner's transactor waits for the receipt of the hash it is given: it must be its own transaction's
    (the hash of the signed bytes), or an old success would pass for the new transaction."""
    w = service
    earlier = w.tx.transact(w.token.functions.approve(w.d.vault.address, 0), w.alpha.address)
    with ServiceClient(str(w.api.base_url), w.alpha) as client:
        client.http = httpx.Client(base_url=client.url, transport=_AnotherHash(earlier["transactionHash"].to_0x_hex()))
        transactor = client.transactor(w.w3)
        call = w.token.functions.approve(w.d.vault.address, 1)
        signed = transactor.sign({"to": w.token.address, "data": call._encode_transaction_data()}, w.alpha.address)
        with pytest.raises(ChainError, match="another transaction"):
            transactor.send_raw(signed.raw)  # as the partner's outbox sends what it signed


class _Answering(httpx.BaseTransport):
    """Between the client and the real service: passes every request on, but answers `path` with `body`."""

    def __init__(self, path: str, body: bytes, status: int = 200) -> None:
        self.inner, self.path, self.body, self.status = httpx.HTTPTransport(), path, body, status

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.path == self.path:
            return httpx.Response(self.status, content=self.body, headers={"Content-Type": "application/json"})
        return self.inner.handle_request(request)


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/v1/auth/nonce", b"<html>"),
        ("/v1/auth/login", b'{"token": 1}'),
        ("/v1/envelopes", b"[]"),
        ("/v1/transactions", b'{"tx": 1}'),
    ],
)
def test_an_answer_that_is_not_the_documented_object_is_a_service_error(service, path, body):
    """What the partner's commands print as one line (a LeptonError), never a traceback."""
    w = service
    with ServiceClient(str(w.api.base_url), w.alpha, chain_id=w.w3.eth.chain_id) as client:
        client.http = httpx.Client(base_url=client.url, transport=_Answering(path, body))
        with pytest.raises(LeptonError, match="not the JSON object it documents"):
            if path == "/v1/envelopes":
                client.store(w.agreement_id, w.open_round).put(b"an update")
            elif path == "/v1/transactions":
                client.transactor(w.w3).send_raw(b"\x02" + b"\x00" * 40)
            else:
                client.sign_in()


@pytest.mark.parametrize("path", ["/v1/auth/nonce", "/v1/blobs/QmYwAPJzv5CZsnA625s3Xf2nemtYgPpHdWEz79ojWnPbdG"])
def test_an_answer_over_its_bound_is_refused_as_it_streams(service, path):
    """A service (or what answers in its place) cannot make the partner's process hold an answer of any size:
    an error page, or any answer but a blob's, is read up to 1 MiB."""
    w = service
    with ServiceClient(str(w.api.base_url), w.alpha, chain_id=w.w3.eth.chain_id) as client:
        client._token = "a token, so that a blob read goes straight to the blob"
        client.http = httpx.Client(
            base_url=client.url,
            transport=_Answering(path, b"x" * (ANSWER_BYTES + 1), status=200 if "auth" in path else 500),
        )
        with pytest.raises(ServiceError) as refused:
            if "auth" in path:
                client.sign_in()
            else:
                client.store(w.agreement_id, w.open_round).get(path.rsplit("/", 1)[1])
        assert refused.value.code == "TooLarge"


# -- the sign-in message the client's key signs --------------------------------------------------------------


class _Signer:
    """A real account that remembers every message it signs."""

    def __init__(self) -> None:
        self.account, self.signed = Account.create(), []

    @property
    def address(self) -> str:
        return self.account.address

    def sign_message(self, message):
        self.signed.append(message)
        return self.account.sign_message(message)


@contextlib.contextmanager
def _sign_in_service(message_of):
    """A real HTTP server on 127.0.0.1 that answers a nonce request with `message_of(address, port)` and a login
    with a token; yields its URL and the logins it received."""
    logins: list[dict] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 -- http.server's name
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            if self.path == "/v1/auth/nonce":
                answer = {
                    "message": message_of(body["address"], self.server.server_port),
                    "nonce": "n",
                    "expires_at": 0,
                }
            else:
                logins.append(body)
                answer = {"token": "t", "address": "", "expires_at": 0}
            data = json.dumps(answer).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}", logins
    finally:
        server.shutdown()
        server.server_close()


def _message(address: str, port: int, **changes) -> str:
    fields = {
        "domain": f"127.0.0.1:{port}",
        "address": address,
        "uri": f"http://127.0.0.1:{port}",
        "version": "1",
        "chain_id": 31337,
        "nonce": "0123456789abcdef0123",
        "issued_at": "2026-01-01T00:00:00.000Z",
        "statement": "Sign in to the lepton-ledger service.",
        **changes,
    }
    return siwe.SiweMessage(**fields).prepare_message()


@pytest.mark.parametrize(
    ("message_of", "why"),
    [
        (lambda a, port: _message(a, port, domain="ledger.evil"), "domain 'ledger.evil'"),
        (lambda a, port: _message(a, port, domain=f"127.0.0.1:{port + 1}"), "domain '127.0.0.1:"),
        (lambda a, port: _message(a, port, uri="https://ledger.evil/login"), "URI 'https://ledger.evil/login'"),
        (lambda a, port: _message(a, port, chain_id=1), "chain 1, this client expects 31337"),
        (lambda a, port: _message(Account.create().address, port), "address '0x"),
        (lambda a, port: "Sign this to give away your funds.", "not an EIP-4361 message"),
        (lambda a, port: _message(a, port) + "x" * 2000, "over 2000 characters"),
    ],
)
def test_the_key_never_signs_a_sign_in_message_for_another_service(message_of, why):
    signer = _Signer()
    with _sign_in_service(message_of) as (url, logins), ServiceClient(url, signer, chain_id=31337) as client:
        with pytest.raises(ServiceError, match=why) as refused:
            client.sign_in()
    assert refused.value.code == "ForeignSignIn" and "\n" not in str(refused.value)
    assert signer.signed == [] and logins == []


def test_the_key_signs_the_message_of_the_service_it_expects():
    """The same server, handing out a message for itself: signed and sent (what the refusals above differ in)."""
    signer = _Signer()
    with _sign_in_service(_message) as (url, logins), ServiceClient(url, signer, chain_id=31337) as client:
        assert client.sign_in() == "t"
    assert len(signer.signed) == 1 and len(logins) == 1


def test_a_domain_given_replaces_the_one_of_the_url():
    """A service reached at another address than its domain (a tunnel, a proxy): its domain is given."""
    signer = _Signer()

    def message_of(address: str, port: int) -> str:
        return _message(address, port, domain="ledger.example", uri="https://ledger.example")

    with _sign_in_service(message_of) as (url, logins):
        with ServiceClient(url, signer, chain_id=31337) as client, pytest.raises(ServiceError, match="domain"):
            client.sign_in()
        with ServiceClient(url, signer, chain_id=31337, domain="ledger.example") as client:
            assert client.sign_in() == "t"
    assert len(logins) == 1


def test_without_a_chain_to_expect_the_key_signs_nothing():
    signer = _Signer()
    with _sign_in_service(_message) as (url, logins), ServiceClient(url, signer) as client:
        with pytest.raises(ServiceError, match="give it a chain_id"):
            client.sign_in()
    assert signer.signed == [] and logins == []
