"""``GET /v1/partners/{address}/key``: the X25519 key a party seals its update to, for anyone, as on-chain; and a
party's standing, which a round report the store cannot give does not turn into a refusal."""

from __future__ import annotations

import pytest
from service_world import fresh_account

from lepton_ledger.chain.state import Partner, Round
from lepton_ledger.protocol.addressing import cid_for_digest
from lepton_ledger.storage.cid import normalize


def test_anyone_reads_the_key_an_update_is_sealed_to(service):
    w = service
    coordinator = w.roles.coordinator.address
    reply = w.api.get(f"/v1/partners/{coordinator.lower()}/key")  # anonymous, any case
    assert reply.status_code == 200, reply.text
    registered = Partner.read(w.d.partners.functions.partnerOf(coordinator)).encryption_key
    assert reply.json() == {"address": coordinator, "status": "pending", "encryption_key": "0x" + registered.hex()}


@pytest.mark.parametrize(("address", "status"), [(None, 404), ("0x1234", 422), ("nobody", 422)])
def test_an_unregistered_or_malformed_address_is_refused(service, address, status):
    reply = service.api.get(f"/v1/partners/{address or fresh_account().address}/key")
    assert reply.status_code == status, reply.text
    assert set(reply.json()["error"]) == {"code", "message", "detail"}


def test_a_round_report_the_store_cannot_give_is_named_on_its_row_not_a_422(service):
    """The party's standing still answers: the round whose report is unreadable is named on its agreement's row
    and counts for nothing; the rest of the row is the chain's."""
    w = service
    report = Round.read(w.d.ledger.functions.round(w.agreement_id, w.round_id)).report_digest
    block = w.store._path(normalize(cid_for_digest(report)))  # the report's root block on disk
    aside = block.with_suffix(".aside")
    block.rename(aside)
    try:
        _next_block(w)  # the service's views of the block before still hold the readable report
        reply = w.api.get(f"/v1/partners/{w.alpha.address}", headers=w.headers(w.alpha))
    finally:
        aside.rename(block)
        _next_block(w)
    assert reply.status_code == 200, reply.text
    (row,) = [a for a in reply.json()["agreements"] if a["agreement_id"] == w.agreement_id]
    assert row["claimable"] == row["claimed"] == "0" and row["epsilon"] > 0 and int(row["stake"]) > 0
    (unreadable,) = row["unreadable_rounds"]
    assert (
        unreadable["round"] == w.round_id
        and unreadable["error"].startswith("ArtifactNotFound: ")
        and "\n" not in unreadable["error"]
    )
    (row,) = [
        a
        for a in w.api.get(f"/v1/partners/{w.alpha.address}", headers=w.headers(w.alpha)).json()["agreements"]
        if a["agreement_id"] == w.agreement_id
    ]
    assert row["unreadable_rounds"] == [] and row["claimable"] == str(w.payouts[w.alpha.address])


def _next_block(w) -> None:
    w.w3.provider.make_request("evm_mine", [])
    w.wait_block(w.w3.eth.block_number)
