"""``GET /v1/partners/{address}/key``: the X25519 key a party seals its update to, for anyone, as on-chain."""

from __future__ import annotations

import pytest
from service_world import fresh_account

from lepton_ledger.chain.state import Partner


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
