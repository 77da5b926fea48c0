"""A whole round in which the partners act only through the service's client: each signs in with its own key,
fetches the round's model from the service, uploads its sealed update there and has its submitUpdate relayed
(``rounds.Partner``, unchanged, with the client's store and transactor); the coordinator closes the round as a
job; each partner then reads its reward through the client."""

from __future__ import annotations

import re

import httpx
import pytest
from service_world import CLOSE, follow_job, open_round

from lepton_ledger import fl
from lepton_ledger.api.client import ANSWER_BYTES, ServiceClient, ServiceError
from lepton_ledger.errors import ChainError, LeptonError
from lepton_ledger.rounds.outbox import Outbox
from lepton_ledger.rounds.partner import Partner, TrainingSettings
from lepton_ledger.workers.inline import InlineExecutor


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
    with ServiceClient(url, w.alpha) as client:
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
    with ServiceClient(str(w.api.base_url), w.alpha) as client:
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
    with ServiceClient(str(w.api.base_url), w.alpha) as client:
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
