"""Challenges over HTTP: ``GET /v1/challenges`` lists both courts' challenges to anyone (they are on-chain);
``GET /v1/challenges/{court}/{id}`` shows one with its evidence and ruling documents to the blobs' readers only,
and a document the store lacks or that is no JSON object is a note, never an error. ``POST /v1/challenges/evidence``
stores an update challenge's evidence for an auditor or a party, whose digest the challenge relayed names; a refused
upload stores nothing."""

from __future__ import annotations

import secrets

import pytest
from service_world import CLOSE, follow_job, round_with_commitments

from lepton_ledger.challenges.challenge import canonical_json, raise_challenge, resolve_challenge
from lepton_ledger.protocol.addressing import artifact_cid, publish
from lepton_ledger.units import ResultsKind

EVIDENCE = {"name": "update_norm", "ok": False, "message": "the update's norm is over the bound"}


@pytest.fixture(scope="module")
def challenged(service):
    """A finalized round with, within its dispute window: alpha's update challenged with evidence in the store,
    then dismissed with a ruling; beta's challenged with evidence the store lacks; the round's results challenged
    with evidence that is no JSON object."""
    w = service
    agreement_id, round_id = round_with_commitments(w)
    headers = w.headers(w.roles.coordinator)
    job = w.api.post(f"/v1/agreements/{agreement_id}/rounds/{round_id}/close", json=CLOSE, headers=headers).json()
    assert follow_job(w, job["id"], headers)["status"] == "done"
    auditor, arbiter = w.roles.auditor.address, w.roles.admin.address
    update = raise_challenge(
        w.tx,
        w.d,
        w.store,
        sender=auditor,
        agreement_id=agreement_id,
        round_id=round_id,
        partner=w.alpha.address,
        evidence=EVIDENCE,
    )
    ruling = resolve_challenge(
        w.tx, w.d, w.store, sender=arbiter, challenge_id=update.challenge_id, upheld=False, reason="within the bound"
    )
    w.tx.transact(w.d.ledger.functions.challenge(agreement_id, round_id, w.beta.address, b"\x07" * 32), auditor)
    _, junk = publish(w.store, b"not a JSON document")
    receipt = w.tx.transact(
        w.d.court.functions.challengeResults(agreement_id, round_id, int(ResultsKind.PAYOUTS), junk), auditor
    )
    w.wait_block(int(receipt["blockNumber"]))
    return w, agreement_id, round_id, update, ruling


def _listed(w, **params) -> list[dict]:
    reply = w.api.get("/v1/challenges", params=params)  # anonymous
    assert reply.status_code == 200, reply.text
    return reply.json()["challenges"]


def test_anyone_lists_both_courts_by_agreement_and_court(challenged):
    w, agreement_id, round_id, update, _ = challenged
    found = _listed(w, agreement_id=agreement_id)
    assert [(c["court"], c["status"], c["partner"], c["kind"]) for c in found] == [
        ("update", "dismissed", w.alpha.address, None),
        ("update", "open", w.beta.address, None),
        ("results", "open", None, "payouts"),
    ]
    assert all(c["agreement_id"] == agreement_id and c["round"] == round_id for c in found)
    assert found[0]["challenge_id"] == update.challenge_id and found[0]["challenger"] == w.roles.auditor.address
    assert [c["court"] for c in _listed(w, agreement_id=agreement_id, court="results")] == ["results"]
    assert _listed(w, agreement_id=w.agreement_id) == []  # agreement 1 was never challenged
    assert len(_listed(w)) >= 3


def test_a_party_reads_a_challenge_with_its_evidence_and_ruling(challenged):
    w, agreement_id, _, update, ruling = challenged
    reply = w.api.get(f"/v1/challenges/update/{update.challenge_id}", headers=w.headers(w.alpha))
    assert reply.status_code == 200, reply.text
    shown = reply.json()
    assert shown["evidence"] == {"cid": update.details["evidence_cid"], "document": EVIDENCE, "note": None}
    assert shown["ruling"]["cid"] == ruling.details["ruling_cid"]
    assert (
        shown["ruling"]["document"]["upheld"] is False and shown["ruling"]["document"]["reason"] == "within the bound"
    )
    assert shown["status"] == "dismissed" and shown["agreement_id"] == agreement_id


def test_a_document_the_store_lacks_or_that_is_no_json_object_is_a_note(challenged):
    w, agreement_id, _, _, _ = challenged
    headers = w.headers(w.roles.auditor)  # an overseer: party to nothing, reads every agreement's challenges
    missing, junk = (c for c in _listed(w, agreement_id=agreement_id) if c["status"] == "open")
    shown = w.api.get(f"/v1/challenges/update/{missing['challenge_id']}", headers=headers).json()
    assert shown["evidence"]["document"] is None and "BlockNotFound" in shown["evidence"]["note"]
    assert shown["ruling"] is None  # not ruled on
    shown = w.api.get(f"/v1/challenges/results/{junk['challenge_id']}", headers=headers).json()
    assert shown["evidence"]["document"] is None and shown["evidence"]["note"]


def test_who_may_not_read_a_challenge(challenged):
    w, _, _, update, _ = challenged
    path = f"/v1/challenges/update/{update.challenge_id}"
    reply = w.api.get(path)
    assert reply.status_code == 401 and reply.json()["error"]["code"] == "Unauthorized"
    reply = w.api.get(path, headers=w.headers(w.outsider))  # registered, party to nothing
    assert reply.status_code == 403 and "holds no role in agreement" in reply.json()["error"]["message"]


@pytest.mark.parametrize(
    ("path", "status"),
    [
        ("/v1/challenges/update/1000000", 404),
        ("/v1/challenges/results/1000000", 404),
        ("/v1/challenges/update/0", 422),
        ("/v1/challenges/update/x", 422),
        ("/v1/challenges/other/1", 422),
        ("/v1/challenges?court=other", 422),
        ("/v1/challenges?agreement_id=0", 422),
    ],
)
def test_unknown_or_malformed_challenges(challenged, path, status):
    w = challenged[0]
    reply = w.api.get(path, headers=w.headers(w.roles.auditor))
    assert reply.status_code == status, reply.text
    assert set(reply.json()["error"]) == {"code", "message", "detail"}


def _evidence(w, account, **body):
    headers = w.headers(account) if account is not None else {}
    return w.api.post("/v1/challenges/evidence", json=body, headers=headers)


def test_an_auditor_uploads_evidence_and_relays_the_challenge_it_names(service):
    w = service
    agreement_id, round_id = round_with_commitments(w)
    auditor = w.roles.auditor
    reply = _evidence(w, auditor, agreement_id=agreement_id, round=round_id, partner=w.alpha.address, evidence=EVIDENCE)
    assert reply.status_code == 200, reply.text
    stored = reply.json()
    assert stored["partner"] == w.alpha.address and w.store.has(stored["cid"])
    args = [agreement_id, round_id, w.alpha.address, stored["evidence_digest"]]
    headers = w.headers(auditor)
    unsigned = w.api.post(
        "/v1/transactions/prepare",
        json={"contract": "RoundLedger", "function": "challenge", "args": args},
        headers=headers,
    )
    assert unsigned.status_code == 200, unsigned.text
    tx = {k: v for k, v in unsigned.json().items() if k != "from"}
    raw = auditor.sign_transaction(tx).raw_transaction.to_0x_hex()
    relayed = w.api.post("/v1/transactions", json={"raw": raw}, headers=headers)
    assert relayed.status_code == 200 and relayed.json()["status"] == 1, relayed.text
    w.wait_block(relayed.json()["block_number"])
    (challenge,) = _listed(w, agreement_id=agreement_id, court="update")
    shown = w.api.get(f"/v1/challenges/update/{challenge['challenge_id']}", headers=w.headers(w.alpha)).json()
    assert shown["evidence"] == {"cid": stored["cid"], "document": EVIDENCE, "note": None}


@pytest.mark.parametrize(
    ("who", "members", "status"),
    [
        ("auditor", {"evidence": {}}, 422),  # the challenges package's rule: a non-empty JSON object
        ("auditor", {"evidence": ["a", "list"]}, 422),
        ("auditor", {"partner": "0x1234"}, 422),
        ("auditor", {"round": 0}, 422),
        ("auditor", {"evidence": {"pad": "x" * (1 << 18)}}, 413),
        ("auditor", {"agreement_id": 10**6}, 404),
        (None, {}, 401),
        ("outsider", {}, 403),  # registered, party to nothing, no auditor
    ],
    ids=["empty", "not-an-object", "bad-partner", "round-0", "oversize", "no-agreement", "no-token", "no-role"],
)
def test_refused_evidence_stores_nothing(service, who, members, status):
    w = service
    account = {"auditor": w.roles.auditor, "outsider": w.outsider, None: None}[who]
    evidence = EVIDENCE | {"nonce": secrets.token_hex(8)}  # a document no other test stored
    body = {"agreement_id": w.agreement_id, "round": w.round_id, "partner": w.alpha.address, "evidence": evidence}
    body |= members
    blocks = w.store.stat().blocks
    reply = _evidence(w, account, **body)
    assert reply.status_code == status, reply.text
    assert set(reply.json()["error"]) == {"code", "message", "detail"}
    assert w.store.stat().blocks == blocks
    if isinstance(body["evidence"], dict):
        assert not w.store.has(artifact_cid(canonical_json(body["evidence"])))
