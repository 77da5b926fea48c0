"""Reads: health, partners' standing, agreements, rounds, rewards, blobs, metrics."""

from __future__ import annotations

import pytest
from service_world import fresh_account

from lepton_ledger.chain import node
from lepton_ledger.chain.merkle import payout_leaf, verify_sorted_proof
from lepton_ledger.chain.state import Round
from lepton_ledger.protocol.addressing import cid_for_digest


def test_health_names_the_chain_and_the_deployment(service):
    body = service.api.get("/v1/health").json()
    assert body["chain_id"] == 31337 and body["contracts"]["RoundLedger"] == service.d.ledger.address


def test_a_partner_reads_its_own_standing(service):
    reply = service.api.get(f"/v1/partners/{service.alpha.address.lower()}", headers=service.headers(service.alpha))
    assert reply.status_code == 200, reply.text
    body = reply.json()
    assert body["address"] == service.alpha.address and body["status"] == "approved"
    (held,) = [a for a in body["agreements"] if a["agreement_id"] == service.agreement_id]
    spent = service.d.ledger.functions.cumulativeEpsilon(service.agreement_id, service.alpha.address).call()
    assert held["agreement_id"] == service.agreement_id and held["epsilon"] == spent / 10**6 > 0
    assert held["epsilon_cap"] == 8.0 and held["stake"] == held["required_stake"] == str(100 * 10**18)
    # The dispute window has passed and nothing was claimed: the whole payout is claimable.
    assert held["claimable"] == str(service.payouts[service.alpha.address]) and held["claimed"] == "0"


def test_a_partner_may_not_read_another_partners_standing(service):
    reply = service.api.get(f"/v1/partners/{service.beta.address}", headers=service.headers(service.alpha))
    assert reply.status_code == 403 and reply.json()["error"]["code"] == "Forbidden"


def test_the_coordinator_reads_every_partner(service):
    headers = service.headers(service.roles.coordinator)
    assert service.api.get(f"/v1/partners/{service.beta.address}", headers=headers).status_code == 200
    assert service.api.get(f"/v1/partners/{fresh_account().address}", headers=headers).status_code == 404
    assert service.api.get("/v1/partners/0xnothex", headers=headers).status_code == 422
    assert service.api.get(f"/v1/partners/{service.beta.address}").status_code == 401


def test_agreement(service):
    body = service.api.get(f"/v1/agreements/{service.agreement_id}").json()
    assert body["status"] == "active" and body["parties"] == [service.alpha.address, service.beta.address]
    assert body["signed"] == {service.alpha.address: True, service.beta.address: True}
    assert body["coordinator"] == service.roles.coordinator.address and body["arbiter"] == service.roles.admin.address
    assert body["payout_rule"] == "by_sample_count" and body["rounds"] >= 1 and body["pool_funded"] == str(300 * 10**18)


@pytest.mark.parametrize(
    ("path", "status"),
    [
        ("/v1/agreements/99", 404),
        ("/v1/agreements/0", 422),
        ("/v1/agreements/abc", 422),
        ("/v1/agreements/1/rounds/99", 404),
        ("/v1/agreements/99/rounds/1", 404),
        ("/v1/agreements/1/rounds/0", 422),
        ("/v1/nowhere", 404),
    ],
)
def test_unknown_or_malformed_ids(service, path, status):
    reply = service.api.get(path)
    assert reply.status_code == status and set(reply.json()["error"]) == {"code", "message", "detail"}


def test_round(service):
    body = service.api.get(f"/v1/agreements/{service.agreement_id}/rounds/{service.round_id}").json()
    record = Round.read(service.d.ledger.functions.round(service.agreement_id, service.round_id))
    assert body["status"] == "finalized" and body["submissions"] == 2
    assert body["submitted"] == {service.alpha.address: True, service.beta.address: True}
    assert body["payout_root"] == "0x" + record.payout_root.hex() and body["payout_total"] == str(record.payout_total)


def test_a_partner_reads_its_reward_and_proof(service):
    reply = service.api.get(
        f"/v1/rewards/{service.agreement_id}/{service.round_id}/{service.alpha.address}",
        headers=service.headers(service.alpha),
    )
    assert reply.status_code == 200, reply.text
    body = reply.json()
    amount = service.payouts[service.alpha.address]
    assert body["amount"] == str(amount) and body["claimed"] is False
    root = Round.read(service.d.ledger.functions.round(service.agreement_id, service.round_id)).payout_root
    leaf = payout_leaf(service.agreement_id, service.round_id, service.alpha.address, amount)
    assert body["root"] == "0x" + root.hex()
    assert verify_sorted_proof([bytes.fromhex(p[2:]) for p in body["proof"]], root, leaf)


def test_reward_refusals(service):
    alpha = service.headers(service.alpha)
    base = f"/v1/rewards/{service.agreement_id}"
    assert service.api.get(f"{base}/{service.round_id}/{service.beta.address}", headers=alpha).status_code == 403
    coordinator = service.headers(service.roles.coordinator)
    assert (
        service.api.get(f"{base}/{service.round_id}/{service.outsider.address}", headers=coordinator).status_code == 404
    )
    assert service.api.get(f"{base}/99/{service.alpha.address}", headers=alpha).status_code == 404
    assert service.api.get(f"{base}/{service.round_id}/{service.alpha.address}").status_code == 401


def test_blobs(service):
    record = Round.read(service.d.ledger.functions.round(service.agreement_id, service.round_id))
    cid = cid_for_digest(record.report_digest)
    headers = service.headers(service.alpha)
    reply = service.api.get(f"/v1/blobs/{cid}", headers=headers)
    assert reply.status_code == 200 and reply.content == service.store.get(cid)
    head = service.api.head(f"/v1/blobs/{cid}", headers=headers)
    assert head.status_code == 200 and head.headers["etag"] == f'"{cid}"' and not head.content
    missing, overseer = cid_for_digest(b"\x01" * 32), service.headers(service.roles.coordinator)
    assert service.api.get(f"/v1/blobs/{missing}", headers=overseer).status_code == 404
    assert service.api.head(f"/v1/blobs/{missing}", headers=overseer).status_code == 404
    assert service.api.get("/v1/blobs/not-a-cid", headers=headers).status_code == 422
    assert service.api.get(f"/v1/blobs/{cid}").status_code == 401


def test_metrics_count_requests_by_route_and_status(service):
    service.api.get("/v1/agreements/99")
    text = service.api.get("/metrics").text
    assert 'lepton_http_requests_total{method="GET",route="/v1/agreements/{agreement_id}",status="404"}' in text
    assert "# TYPE lepton_chain_block gauge" in text and "lepton_chain_up 1" in text


def test_the_reward_of_an_open_round_is_a_conflict(service):
    reply = service.api.get(
        f"/v1/rewards/{service.agreement_id}/{service.open_round}/{service.alpha.address}",
        headers=service.headers(service.alpha),
    )
    assert reply.status_code == 409 and reply.json()["error"]["code"] == "RoundNotFinalized"


def test_the_read_model_follows_the_chain_block_by_block(service):
    """An account registered on-chain is known from the next block the service sees."""
    account = fresh_account()
    headers = service.headers(service.roles.coordinator)
    assert service.api.get(f"/v1/partners/{account.address}", headers=headers).status_code == 404
    node.fund(service.w3, account.address, 10**18)
    service.tx.add(account)
    receipt = service.tx.transact(service.d.partners.functions.register(b"\x05" * 32, b"\x06" * 32), account.address)
    service.wait_block(receipt["blockNumber"])
    reply = service.api.get(f"/v1/partners/{account.address}", headers=headers)
    assert reply.status_code == 200 and reply.json()["status"] == "pending" and reply.json()["agreements"] == []


def test_metrics_do_not_grow_a_counter_per_invented_method(service):
    """The HTTP parser takes any token as a method; an anonymous caller must not add a label value per request."""
    assert service.api.request("INVENTED", "/v1/health").status_code == 405
    text = service.api.get("/metrics").text
    assert "INVENTED" not in text and 'method="other"' in text
