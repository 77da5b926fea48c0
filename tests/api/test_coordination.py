"""The coordinator's steps over HTTP with the service's coordinator key: approve a partner, propose, fund, post
the bond, open the next round. Only the coordinator signed in may take them; a refusal sends nothing (the
coordinator's nonce is unchanged) and an Idempotency-Key given twice takes the step once."""

from __future__ import annotations

import dataclasses
import json
import shutil
import sqlite3

import pytest
from agreement_setup import funded_agreement
from service_world import CLOSE, fresh_account

from lepton_ledger.chain import agreements, node
from lepton_ledger.chain.anvil import advance_time
from lepton_ledger.chain.deployment import REGISTRAR_ROLE
from lepton_ledger.chain.state import Partner, Pool
from lepton_ledger.envelope import generate_x25519_keypair
from lepton_ledger.units import TOKEN, PartnerStatus


def _count(service) -> int:
    return int(service.d.agreements.functions.agreementCount().call())


def _post(service, path: str, body, account=None, key: str | None = "k"):
    headers = service.headers(account) if account is not None else {}
    if key is not None:
        headers["Idempotency-Key"] = key
    return service.api.post(path, json=body, headers=headers)


def _terms(service, **members):
    return {
        "parties": [service.alpha.address, service.beta.address],
        "days": 30,
        "rounds": 3,
        "arbiter": service.roles.admin.address,  # the test deployment names no admin (the default arbiter)
        "document": {"task": "digits over HTTP", "model": "logreg"},
        **members,
    }


def test_the_coordinator_proposes_once_per_idempotency_key(service):
    coordinator, before, count = service.roles.coordinator, service.coordinator_nonce(), _count(service)
    first = _post(service, "/v1/agreements", _terms(service), coordinator, key="propose-1")
    assert first.status_code == 200, first.text
    again = _post(service, "/v1/agreements", _terms(service), coordinator, key="propose-1")
    assert again.json() == first.json()
    proposed = first.json()
    assert proposed["agreement_id"] == count + 1 == _count(service) and service.coordinator_nonce() == before + 1
    assert proposed["parties"] == [service.alpha.address, service.beta.address]
    service.wait_block(service.w3.eth.block_number)
    agreement = service.api.get(f"/v1/agreements/{proposed['agreement_id']}").json()
    assert agreement["coordinator"] == coordinator.address and agreement["max_rounds"] == 3
    document = service.api.get(f"/v1/blobs/{proposed['terms_cid']}", headers=service.headers(coordinator))
    assert document.status_code == 200 and b"digits over HTTP" in document.content


@pytest.mark.parametrize(
    ("members", "status", "code"),
    [
        (lambda s: {"parties": []}, 422, "CommandError"),
        (lambda s: {"rounds": "many"}, 422, "CommandError"),
        (lambda s: {"payout_rule": ["equal"]}, 422, "CommandError"),
        (lambda s: {"document": "not an object"}, 422, "CommandError"),
        (lambda s: {"parties": ["0x1234"]}, 422, "CommandError"),
        (lambda s: {"parties": [fresh_account().address]}, 422, "CommandError"),  # not an approved partner
        (lambda s: {"parties": [s.alpha.address, s.alpha.address]}, 409, "AgreementRegistryDuplicateParty"),
        (lambda s: {"reward_token": s.alpha.address}, 422, "CommandError"),  # an account: no code
        (lambda s: {"reward_token": s.d.partners.address}, 422, "CommandError"),  # a contract, not an ERC-20
    ],
    ids=[
        "no-party",
        "rounds-not-a-number",
        "rule-not-a-name",
        "document-not-an-object",
        "malformed-address",
        "party-not-approved",
        "duplicate-party",
        "token-not-a-contract",
        "token-not-an-erc20",
    ],
)
def test_a_refused_proposal_sends_nothing(service, members, status, code):
    body = members(service)
    before, count = service.coordinator_nonce(), _count(service)
    reply = _post(service, "/v1/agreements", _terms(service, **body), service.roles.coordinator)
    assert reply.status_code == status and reply.json()["error"]["code"] == code, reply.text
    assert service.coordinator_nonce() == before and _count(service) == count


def test_only_the_signed_in_coordinator_proposes_with_a_key(service):
    before, count = service.coordinator_nonce(), _count(service)
    assert _post(service, "/v1/agreements", _terms(service)).status_code == 401
    for account in (service.alpha, service.roles.auditor, service.outsider):
        assert _post(service, "/v1/agreements", _terms(service), account).status_code == 403
    missing_key = _post(service, "/v1/agreements", _terms(service), service.roles.coordinator, key=None)
    assert missing_key.status_code == 422 and "idempotency-key" in missing_key.text.lower()
    assert _post(service, "/v1/agreements", ["a list"], service.roles.coordinator).status_code == 422
    assert service.coordinator_nonce() == before and _count(service) == count


def _funded(service, agreement_id: int) -> int:
    return Pool.read(service.d.vault.functions.pool(agreement_id)).funded


def test_the_coordinator_funds_once_per_idempotency_key(service):
    coordinator = service.roles.coordinator  # funds an agreement of its own: agreement 1's pool is other tests'
    agreement_id = _post(service, "/v1/agreements", _terms(service), coordinator, key="to-fund").json()["agreement_id"]
    service.wait_block(service.w3.eth.block_number)
    funded, before = _funded(service, agreement_id), service.coordinator_nonce()
    first = _post(service, f"/v1/agreements/{agreement_id}/fund", {"amount": "12.5"}, coordinator, key="fund-1")
    assert first.status_code == 200, first.text
    again = _post(service, f"/v1/agreements/{agreement_id}/fund", {"amount": "12.5"}, coordinator, key="fund-1")
    assert again.json() == first.json() and first.json()["amount"] == str(125 * TOKEN // 10)
    assert _funded(service, agreement_id) == funded + 125 * TOKEN // 10
    assert service.coordinator_nonce() == before + 2  # approve, fund


def _refuses_malformed_amounts(service, path: str) -> None:
    for amount in ("abc", "-1", "0", "0.0000000000000000001", "1000000000"):  # the last: more than it holds
        reply = _post(service, path, {"amount": amount}, service.roles.coordinator)
        assert reply.status_code == 422, (amount, reply.text)


def test_a_refused_funding_sends_nothing(service):
    coordinator, agreement_id = service.roles.coordinator, service.agreement_id
    # An agreement that ends in seconds, proposed through the service, then ended.
    ending = _post(service, "/v1/agreements", _terms(service, days=0.0002), coordinator, key="ending").json()
    advance_time(service.w3, 60)
    service.wait_block(service.w3.eth.block_number)
    before, funded = service.coordinator_nonce(), _funded(service, agreement_id)
    path = f"/v1/agreements/{agreement_id}/fund"
    assert _post(service, path, {"amount": "1"}).status_code == 401
    assert _post(service, path, {"amount": "1"}, service.alpha).status_code == 403
    assert _post(service, path, {"amount": "1"}, service.roles.auditor).status_code == 403
    assert _post(service, "/v1/agreements/99/fund", {"amount": "1"}, coordinator).status_code == 404
    _refuses_malformed_amounts(service, path)
    assert _post(service, path, {"amount": "1"}, coordinator, key=None).status_code == 422
    ended = _post(service, f"/v1/agreements/{ending['agreement_id']}/fund", {"amount": "1"}, coordinator)
    assert ended.status_code == 409 and ended.json()["error"]["code"] == "AgreementEnded", ended.text
    assert service.coordinator_nonce() == before and _funded(service, agreement_id) == funded


def test_the_coordinator_opens_the_next_round_once_per_idempotency_key(service):
    agreement_id = funded_agreement(
        service.tx, service.d, service.token, service.roles, [service.alpha, service.beta], store=service.store
    )
    service.wait_block(service.w3.eth.block_number)
    path, coordinator = f"/v1/agreements/{agreement_id}/rounds", service.roles.coordinator
    first = _post(service, path, {**CLOSE, "round_seconds": 600}, coordinator, key="open-1")
    assert first.status_code == 200, first.text
    after = service.coordinator_nonce()
    again = _post(service, path, {**CLOSE, "round_seconds": 600}, coordinator, key="open-1")
    assert again.json() == first.json() and service.coordinator_nonce() == after
    opened = first.json()
    assert opened["round"] == 1 and opened["previous"] == 0
    assert opened["recorded_for_audit"] is False  # the deployment file holds this data set and model already
    assert int(service.d.ledger.functions.openRoundOf(agreement_id).call()) == 1
    service.wait_block(service.w3.eth.block_number)
    status = service.api.get(f"/v1/agreements/{agreement_id}/rounds/1").json()
    assert status["status"] == "open" and status["deadline"] == opened["deadline"]


def test_a_refused_opening_sends_nothing(service):
    coordinator, before = service.roles.coordinator, service.coordinator_nonce()
    path = f"/v1/agreements/{service.agreement_id}/rounds"
    assert _post(service, path, CLOSE).status_code == 401
    assert _post(service, path, CLOSE, service.alpha).status_code == 403
    assert _post(service, "/v1/agreements/99/rounds", CLOSE, coordinator).status_code == 404
    assert _post(service, path, {**CLOSE, "dataset": "nope"}, coordinator).status_code == 422
    assert _post(service, path, {**CLOSE, "round_seconds": 0}, coordinator).status_code == 422
    assert _post(service, path, CLOSE, coordinator, key=None).status_code == 422
    still_open = _post(service, path, CLOSE, coordinator)  # its round 2 is open
    assert still_open.status_code == 409 and still_open.json()["error"]["code"] == "RoundStillOpen", still_open.text
    assert service.coordinator_nonce() == before


def _interrupt(service, key: str) -> None:
    """Leaves the coordinator's request with Idempotency-Key `key` as a process killed mid-request leaves it: its
    row unanswered, owned by another (dead) instance."""
    with sqlite3.connect(service.data_dir / "api" / "service.sqlite", isolation_level=None) as db:
        db.execute(
            "UPDATE idempotency SET body = NULL, status = NULL, owner = 'a-dead-instance' WHERE caller = ? AND key = ?",
            (service.roles.coordinator.address, key),
        )


def test_a_proposal_a_restart_interrupted_answers_its_outcome_from_the_outbox(service):
    """The retry of a request whose process died mid-way runs it again: its transaction, found in the coordinator's
    outbox under the request's key, is answered, not sent a second time."""
    coordinator = service.roles.coordinator
    first = _post(service, "/v1/agreements", _terms(service), coordinator, key="propose-interrupted")
    assert first.status_code == 200, first.text
    _interrupt(service, "propose-interrupted")
    before, count = service.coordinator_nonce(), _count(service)
    retry = _post(service, "/v1/agreements", _terms(service), coordinator, key="propose-interrupted")
    assert retry.status_code == 200 and retry.json() == first.json(), retry.text
    assert service.coordinator_nonce() == before and _count(service) == count


def test_a_bond_a_restart_interrupted_is_409_interrupted_naming_its_transactions(service):
    """Run again, the bond's check finds the bond its first run posted: 409 Interrupted names what the outbox holds
    for the request, and nothing is sent."""
    coordinator = service.roles.coordinator
    agreement_id = _post(service, "/v1/agreements", _terms(service), coordinator, key="to-bond-interrupted").json()[
        "agreement_id"
    ]
    service.wait_block(service.w3.eth.block_number)
    path = f"/v1/agreements/{agreement_id}/bond"
    first = _post(service, path, {"amount": "100"}, coordinator, key="bond-interrupted")
    assert first.status_code == 200, first.text
    _interrupt(service, "bond-interrupted")
    before = service.coordinator_nonce()
    retry = _post(service, path, {"amount": "100"}, coordinator, key="bond-interrupted")
    assert retry.status_code == 409 and retry.json()["error"]["code"] == "Interrupted", retry.text
    sent = retry.json()["error"]["detail"]["transactions"]
    assert [t["status"] for t in sent] == ["confirmed", "confirmed"]  # approve, postBond
    assert sent[1]["tx_hash"] == first.json()["tx_hash"]
    assert service.coordinator_nonce() == before and _bond(service, agreement_id) == 100 * TOKEN


def _pending_partner(service):
    """A fresh account, funded and registered, awaiting approval."""
    account = fresh_account()
    node.fund(service.w3, account.address, 10**19)
    service.tx.add(account)
    agreements.register(service.tx, service.d, account.address, {"name": "pending"}, generate_x25519_keypair()[1])
    return account


def _status(service, address: str) -> PartnerStatus:
    return Partner.read(service.d.partners.functions.partnerOf(address)).status


def test_the_coordinator_approves_a_pending_partner_once_per_idempotency_key(service):
    partner, coordinator, before = _pending_partner(service), service.roles.coordinator, service.coordinator_nonce()
    path = f"/v1/partners/{partner.address}/approve"
    first = _post(service, path, None, coordinator, key="approve-1")
    assert first.status_code == 200, first.text
    assert _post(service, path, None, coordinator, key="approve-1").json() == first.json()
    assert first.json()["address"] == partner.address and first.json()["status"] == "approved"
    assert _status(service, partner.address) is PartnerStatus.APPROVED and service.coordinator_nonce() == before + 1
    again = _post(service, path, None, coordinator, key="approve-2")
    assert again.status_code == 409 and again.json()["error"]["code"] == "PartnerNotPending", again.text
    assert service.coordinator_nonce() == before + 1


def test_a_refused_approval_sends_nothing(service):
    partner, coordinator, before = _pending_partner(service), service.roles.coordinator, service.coordinator_nonce()
    path = f"/v1/partners/{partner.address}/approve"
    assert _post(service, path, None).status_code == 401
    for account in (service.alpha, service.roles.auditor, service.outsider, partner):
        assert _post(service, path, None, account).status_code == 403
    unknown = _post(service, f"/v1/partners/{fresh_account().address}/approve", None, coordinator)
    assert unknown.status_code == 404, unknown.text
    assert _post(service, "/v1/partners/0x1234/approve", None, coordinator).status_code == 422
    assert _post(service, path, None, coordinator, key=None).status_code == 422
    approved = _post(service, f"/v1/partners/{service.alpha.address}/approve", None, coordinator)
    assert approved.status_code == 409 and approved.json()["error"]["code"] == "PartnerNotPending", approved.text
    # The coordinator without the registry's REGISTRAR_ROLE (the admin takes it away, then gives it back).
    admin, registry = service.roles.admin.address, service.d.partners.functions
    service.tx.transact(registry.revokeRole(REGISTRAR_ROLE, coordinator.address), admin)
    try:
        no_role = _post(service, path, None, coordinator)
        assert no_role.status_code == 403 and "REGISTRAR_ROLE" in no_role.text, no_role.text
    finally:
        service.tx.transact(registry.grantRole(REGISTRAR_ROLE, coordinator.address), admin)
    assert service.coordinator_nonce() == before and _status(service, partner.address) is PartnerStatus.PENDING


def _bond(service, agreement_id: int) -> int:
    return int(service.d.court.functions.bondOf(agreement_id, service.roles.coordinator.address).call())


def test_the_coordinator_posts_its_bond_once_per_idempotency_key(service):
    coordinator = service.roles.coordinator  # an agreement proposed through the service: its bond not yet posted
    agreement_id = _post(service, "/v1/agreements", _terms(service), coordinator, key="to-bond").json()["agreement_id"]
    service.wait_block(service.w3.eth.block_number)
    path, before = f"/v1/agreements/{agreement_id}/bond", service.coordinator_nonce()
    first = _post(service, path, {"amount": "100"}, coordinator, key="bond-1")
    assert first.status_code == 200, first.text
    assert _post(service, path, {"amount": "100"}, coordinator, key="bond-1").json() == first.json()
    assert first.json()["amount"] == first.json()["bond"] == str(100 * TOKEN) == str(_bond(service, agreement_id))
    assert service.coordinator_nonce() == before + 2  # approve, postBond
    posted = _post(service, path, {"amount": "1"}, coordinator, key="bond-2")
    assert posted.status_code == 409 and posted.json()["error"]["code"] == "BondAlreadyPosted", posted.text
    assert service.coordinator_nonce() == before + 2 and _bond(service, agreement_id) == 100 * TOKEN


def test_a_refused_bond_sends_nothing(service):
    coordinator = service.roles.coordinator
    agreement_id = _post(service, "/v1/agreements", _terms(service), coordinator, key="unbonded").json()["agreement_id"]
    ending = _post(service, "/v1/agreements", _terms(service, days=0.0002), coordinator, key="bond-ending").json()
    advance_time(service.w3, 60)
    service.wait_block(service.w3.eth.block_number)
    path, before = f"/v1/agreements/{agreement_id}/bond", service.coordinator_nonce()
    assert _post(service, path, {"amount": "1"}).status_code == 401
    for account in (service.alpha, service.roles.auditor):
        assert _post(service, path, {"amount": "1"}, account).status_code == 403
    assert _post(service, "/v1/agreements/99/bond", {"amount": "1"}, coordinator).status_code == 404
    _refuses_malformed_amounts(service, path)
    assert _post(service, path, {"amount": "1"}, coordinator, key=None).status_code == 422
    ended = _post(service, f"/v1/agreements/{ending['agreement_id']}/bond", {"amount": "1"}, coordinator)
    assert ended.status_code == 409 and ended.json()["error"]["code"] == "AgreementEnded", ended.text
    assert service.coordinator_nonce() == before and _bond(service, agreement_id) == 0


def _beside(service, tmp_path, start_server, **env):
    """Another service on the same chain and deployment, in a data directory of its own (a copy of the deployment
    file and keystore), and the world signing in to it."""
    shutil.copy(service.data_dir / "deployment.json", tmp_path / "deployment.json")
    shutil.copytree(service.data_dir / "keystore", tmp_path / "keystore")
    server = start_server(tmp_path, LEPTON_RPC_URL=service.w3.provider.endpoint_uri, **env)
    return dataclasses.replace(service, api=server.client)


def test_a_caller_who_is_not_the_coordinator_is_refused_before_the_service_says_it_has_no_key(
    service, tmp_path, start_server
):
    keyless, before = (
        _beside(service, tmp_path, start_server, LEPTON_API_COORDINATOR_KEY=""),
        service.coordinator_nonce(),
    )
    agreement_id, coordinator = service.agreement_id, service.roles.coordinator
    posts = [
        ("/v1/agreements", _terms(service)),
        (f"/v1/agreements/{agreement_id}/fund", {"amount": "1"}),
        (f"/v1/agreements/{agreement_id}/bond", {"amount": "1"}),
        (f"/v1/agreements/{agreement_id}/rounds", CLOSE),
        (f"/v1/partners/{service.outsider.address}/approve", None),
    ]
    for path, body in posts:
        assert _post(keyless, path, body).status_code == 401, path
        for account in (service.alpha, service.roles.auditor):
            assert _post(keyless, path, body, account).status_code == 403, (path, account.address)
        refused = _post(keyless, path, body, coordinator)
        assert refused.status_code == 503 and refused.json()["error"]["code"] == "NoCoordinatorKey", refused.text
    assert service.coordinator_nonce() == before


def test_an_opened_round_records_its_evaluation_set_for_the_audit_as_the_command_does(service, tmp_path, start_server):
    """The service's own deployment file already holds the data set the other tests open with: this one opens a
    round with another seed through a service beside it, whose deployment file then names that one."""
    beside = _beside(service, tmp_path, start_server)
    agreement_id = funded_agreement(
        service.tx, service.d, service.token, service.roles, [service.alpha], store=service.store
    )
    beside.wait_block(service.w3.eth.block_number)
    seed = CLOSE["seed"] + 1
    reply = _post(beside, f"/v1/agreements/{agreement_id}/rounds", {**CLOSE, "seed": seed}, service.roles.coordinator)
    assert reply.status_code == 200 and reply.json()["recorded_for_audit"] is True, reply.text
    recorded = json.loads((tmp_path / "deployment.json").read_text())
    original = json.loads((service.data_dir / "deployment.json").read_text())
    assert recorded == {**original, "eval_set": {"dataset": CLOSE["dataset"], "num_partners": 1, "seed": seed}}
