"""POST /v1/envelopes: a partner's sealed update, opened with the coordinator's key and checked against the
chain before anything is stored. Every refusal stores nothing."""

from __future__ import annotations

import sqlite3

import pytest
import torch
from service_world import lone_partner_agreement

from lepton_ledger.api.routes.envelopes import UPLOADS_PER_ROUND
from lepton_ledger.envelope import (
    DPRecord,
    seal,
    x25519_public_key,
)
from lepton_ledger.protocol.addressing import artifact_cid, digest_of_cid

DP = DPRecord(noise_multiplier=1.0, clipping_norm=1.0, sample_rate=0.1, steps=10, delta=1e-5, accountant="rdp")


def _sealed(
    service, account, *, round_id=None, base=None, recipients=None, size=8, agreement_id=None, epsilon=2.0
) -> bytes:
    recipients = recipients or [
        x25519_public_key(service.keys["coordinator"]),
        x25519_public_key(service.keys["auditor"]),
    ]
    return seal(
        {"w": torch.ones(size)},
        signer_key=bytes(account.key),
        recipients=recipients,
        chain_id=31337,
        ledger=service.d.ledger.address,
        agreement_id=agreement_id or service.agreement_id,
        round=round_id or service.open_round,
        base_model_digest=base or service.open_digest,
        dp=DP,
        cumulative_epsilon=epsilon,
        sample_count=100,
    ).data


def _post(service, data: bytes, account, *, round_id=None, headers=None, agreement_id=None):
    return service.api.post(
        "/v1/envelopes",
        content=data,
        params={"agreement_id": agreement_id or service.agreement_id, "round": round_id or service.open_round},
        headers=headers if headers is not None else service.headers(account),
    )


def _stored_blocks(service) -> int:
    return service.store.stat().blocks


def test_a_partner_uploads_its_sealed_update(service):
    data = _sealed(service, service.alpha)
    reply = _post(service, data, service.alpha, headers=service.headers(service.alpha) | {"Idempotency-Key": "e1"})
    assert reply.status_code == 200, reply.text
    body = reply.json()
    assert body["cid"] == artifact_cid(data) and service.store.get(body["cid"]) == data
    assert body["sample_count"] == 100 and body["cumulative_epsilon"] == 2_000_000
    # Its uploader reads it back; it is sealed to the coordinator and auditors, not to the other party.
    assert service.api.get(f"/v1/blobs/{body['cid']}", headers=service.headers(service.alpha)).content == data
    assert service.api.get(f"/v1/blobs/{body['cid']}", headers=service.headers(service.beta)).status_code == 403


def test_the_same_idempotency_key_twice_stores_once_and_answers_the_same(service):
    headers = service.headers(service.beta) | {"Idempotency-Key": "upload-beta"}
    data = _sealed(service, service.beta)
    first = _post(service, data, service.beta, headers=headers)
    blocks = _stored_blocks(service)
    again = _post(service, data, service.beta, headers=headers)
    assert first.status_code == again.status_code == 200 and first.json() == again.json()
    assert _stored_blocks(service) == blocks
    other = _post(service, _sealed(service, service.beta, size=9), service.beta, headers=headers)
    assert other.status_code == 409 and other.json()["error"]["code"] == "IdempotencyKeyReused"


def _flipped(data: bytes) -> bytes:
    middle = len(data) // 2
    return data[:middle] + bytes([data[middle] ^ 1]) + data[middle + 1 :]


@pytest.mark.parametrize(
    ("case", "status"),
    [
        ("flipped byte", 422),
        ("another round", 422),
        ("not sealed to the coordinator", 422),
        ("another partner's envelope", 422),
        ("another base model", 422),
        ("oversize", 413),
        ("empty", 422),
        ("over the privacy budget", 422),
    ],
)
def test_a_tampered_or_misdirected_envelope_is_refused_and_nothing_is_stored(service, case, status):
    alpha = service.alpha
    data = {
        "flipped byte": lambda: _flipped(_sealed(service, alpha)),
        "another round": lambda: _sealed(service, alpha, round_id=service.round_id),
        "not sealed to the coordinator": lambda: _sealed(
            service, alpha, recipients=[x25519_public_key(service.keys["auditor"])]
        ),
        "another partner's envelope": lambda: _sealed(service, service.beta),
        "another base model": lambda: _sealed(service, alpha, base=b"\x09" * 32),
        "oversize": lambda: _sealed(service, alpha, size=300_000),
        "empty": lambda: b"",
        "over the privacy budget": lambda: _sealed(service, alpha, epsilon=8.5),  # the agreement's cap is 8
    }[case]()
    blocks = _stored_blocks(service)
    reply = _post(service, data, alpha)
    assert reply.status_code == status, reply.text
    assert _stored_blocks(service) == blocks and not service.store.has(artifact_cid(data))


def test_refusals_by_who_and_where(service):
    data = _sealed(service, service.outsider)
    blocks = _stored_blocks(service)
    assert _post(service, data, service.outsider).status_code == 403  # not a party
    assert _post(service, _sealed(service, service.alpha), service.alpha, headers={}).status_code == 401
    assert _post(service, _sealed(service, service.alpha), service.alpha, agreement_id=99).status_code == 404
    assert _post(service, _sealed(service, service.alpha), service.alpha, round_id=99).status_code == 404
    closed = _post(
        service, _sealed(service, service.alpha, round_id=service.round_id), service.alpha, round_id=service.round_id
    )
    assert closed.status_code == 409 and closed.json()["error"]["code"] == "RoundNotOpen"
    assert (
        service.api.post(
            "/v1/envelopes",
            content=b"x",
            params={"agreement_id": 0, "round": 1},
            headers=service.headers(service.alpha),
        ).status_code
        == 422
    )
    assert _stored_blocks(service) == blocks


def test_a_suspended_partys_envelope_is_refused_and_nothing_is_stored(service):
    """The ledger refuses a suspended partner's commitment, so the service keeps none of its envelopes either."""
    gamma, agreement_id, coordinator = lone_partner_agreement(service, "suspended")
    _, digest = coordinator.publish_model({"w": torch.zeros(8)})
    round_id = coordinator.open_round(agreement_id, digest, service.w3.eth.get_block("latest")["timestamp"] + 3600)
    receipt = service.tx.transact(
        service.d.partners.functions.suspend(gamma.address, b"\x07" * 32), service.roles.coordinator.address
    )
    service.wait_block(receipt["blockNumber"])
    data = _sealed(service, gamma, agreement_id=agreement_id, round_id=round_id, base=digest)
    blocks = _stored_blocks(service)
    reply = _post(service, data, gamma, agreement_id=agreement_id, round_id=round_id)
    assert reply.status_code == 403 and "suspended" in reply.json()["error"]["message"], reply.text
    assert _stored_blocks(service) == blocks and not service.store.has(artifact_cid(data))


def _blob_rows(service) -> list:
    with sqlite3.connect(service.data_dir / "api" / "service.sqlite") as db:
        return db.execute("SELECT * FROM blobs ORDER BY rowid").fetchall()


def test_uploads_per_partner_and_round_are_bounded_and_end_with_its_submission(service):
    """Four distinct envelopes per partner and round (a re-upload takes no new place), none once its update is
    on-chain; a refused upload stores nothing."""
    gamma, agreement_id, coordinator = lone_partner_agreement(service, "uploader")
    _, digest = coordinator.publish_model({"w": torch.zeros(8)})
    round_id = coordinator.open_round(agreement_id, digest, service.w3.eth.get_block("latest")["timestamp"] + 3600)
    service.wait_block(service.w3.eth.block_number)

    def post(data: bytes):
        return _post(service, data, gamma, agreement_id=agreement_id, round_id=round_id)

    sealed = [
        _sealed(service, gamma, agreement_id=agreement_id, round_id=round_id, base=digest, size=size)
        for size in range(8, 9 + UPLOADS_PER_ROUND)
    ]
    stored = [post(data) for data in sealed[:-1]]
    assert all(reply.status_code == 200 for reply in stored), [reply.text for reply in stored]
    assert post(sealed[0]).status_code == 200  # the first one again: no new place taken

    def refused(data: bytes, code: str, *, new: bool = True) -> None:
        blocks, rows = _stored_blocks(service), _blob_rows(service)
        reply = post(data)
        assert reply.status_code == 409 and reply.json()["error"]["code"] == code, reply.text
        assert _stored_blocks(service) == blocks and _blob_rows(service) == rows
        assert service.store.has(artifact_cid(data)) is not new

    refused(sealed[-1], "UploadLimit")
    first = stored[0].json()
    service.tx.transact(
        service.d.ledger.functions.submitUpdate(
            agreement_id,
            round_id,
            digest_of_cid(first["cid"]),
            bytes.fromhex(first["manifest_digest"][2:]),
            first["cumulative_epsilon"],
            first["sample_count"],
        ),
        gamma.address,
    )
    refused(sealed[0], "AlreadySubmitted", new=False)  # even the envelope it submitted
