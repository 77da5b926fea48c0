"""Agreement signatures relayed by the coordinator: the typed data a party signs (its digest is the registry's),
and the relay that sends signBySig only for the signed-in party's own valid signature."""

from __future__ import annotations

import pytest
from eth_account import Account

from lepton_ledger.chain.state import AgreementState, Terms


@pytest.fixture(scope="module")
def proposed(service):
    """A new agreement on agreement 1's terms, proposed and signed by nobody yet."""
    d = service.d
    terms = Terms.read(d.agreements.functions.terms(service.agreement_id))
    receipt = service.tx.transact(d.agreements.functions.propose(terms.as_tuple()), service.roles.coordinator.address)
    service.wait_block(receipt["blockNumber"])  # the read model refreshes per block: it knows the agreement from then
    return int(d.agreements.functions.agreementCount().call())


def _prepare(service, account, agreement_id):
    return service.api.post(
        f"/v1/agreements/{agreement_id}/signatures/prepare", json={}, headers=service.headers(account)
    )


def _sign(account, prepared: dict) -> str:
    return Account.sign_typed_data(account.key, full_message=prepared["typed_data"]).signature.to_0x_hex()


def test_a_party_signs_the_typed_data_and_the_coordinator_relays_it_once(service, proposed):
    alpha, registry = service.alpha, service.d.agreements.functions
    reply = _prepare(service, alpha, proposed)
    assert reply.status_code == 200, reply.text
    prepared = reply.json()
    assert (
        bytes.fromhex(prepared["digest"][2:])
        == registry.signingDigest(proposed, alpha.address, prepared["deadline"]).call()
    )
    body = {"deadline": prepared["deadline"], "signature": _sign(alpha, prepared)}
    headers = service.headers(alpha) | {"Idempotency-Key": "sign-1"}
    before = service.coordinator_nonce()
    first = service.api.post(f"/v1/agreements/{proposed}/signatures", json=body, headers=headers)
    assert first.status_code == 200, first.text
    again = service.api.post(f"/v1/agreements/{proposed}/signatures", json=body, headers=headers)
    assert again.json() == first.json() and service.coordinator_nonce() == before + 1
    version = AgreementState.read(registry.agreementState(proposed)).version
    assert registry.hasSigned(proposed, version, alpha.address).call()


def test_refusals_send_nothing(service, proposed):
    alpha, beta = service.alpha, service.beta
    prepared = _prepare(service, beta, proposed).json()
    before = service.coordinator_nonce()
    # beta relays a signature alpha made over beta's typed data: the registry refuses it (409, by name).
    forged = {"deadline": prepared["deadline"], "signature": _sign(alpha, prepared)}
    reply = service.api.post(f"/v1/agreements/{proposed}/signatures", json=forged, headers=service.headers(beta))
    assert reply.status_code == 409 and reply.json()["error"]["code"].startswith("AgreementRegistry"), reply.text
    assert _prepare(service, service.outsider, proposed).status_code == 403
    assert (
        service.api.post(
            f"/v1/agreements/{proposed}/signatures", json=forged, headers=service.headers(service.outsider)
        ).status_code
        == 403
    )
    assert service.api.post(f"/v1/agreements/{proposed}/signatures", json=forged).status_code == 401
    assert _prepare(service, beta, 99).status_code == 404
    assert (
        service.api.post(
            f"/v1/agreements/{proposed}/signatures",
            json={"deadline": 1, "signature": "zz"},
            headers=service.headers(beta),
        ).status_code
        == 422
    )
    assert service.coordinator_nonce() == before
