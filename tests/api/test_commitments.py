"""Batched commitments through the service: partners (through the client only) upload their sealed updates, get the
typed data of their commitment, sign it on their side and hand it in; the service checks each on arrival, keeps it,
and anchors the round's batch once with the coordinator's key, when every party has committed or near the deadline.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from dataclasses import replace
from types import SimpleNamespace

import pytest
import torch
from agreement_setup import agreement_terms
from eth_account import Account
from eth_account.messages import _hash_eip191_message, encode_typed_data
from service_world import (
    CLOSE,
    PASSWORD,
    client_partner,
    commit_through_client,
    follow_job,
    fresh_account,
    open_round,
)

from lepton_ledger import fl
from lepton_ledger.api.client import ServiceClient, ServiceError
from lepton_ledger.api.jobs import ANCHOR_LEAD, anchor_time
from lepton_ledger.chain import agreements, node
from lepton_ledger.chain.anvil import advance_time
from lepton_ledger.chain.artifacts import load_artifact
from lepton_ledger.chain.state import Round
from lepton_ledger.chain.typed_data import UpdateCommitment, sign_digest, update_commitment_digest
from lepton_ledger.envelope import DPRecord, generate_x25519_keypair, seal, x25519_public_key
from lepton_ledger.envelope.envelope import encode_payload, encrypt_envelope
from lepton_ledger.envelope.tensors import serialize_tensors
from lepton_ledger.keys import Keystore
from lepton_ledger.protocol.addressing import artifact_cid, publish
from lepton_ledger.rounds.partner import SignedCommitment, recipient_keys
from lepton_ledger.rounds.roles import publish_document, signed_commitment_document
from lepton_ledger.rounds.world import World
from lepton_ledger.units import RoundStatus

DP = DPRecord(noise_multiplier=1.0, clipping_norm=1.0, sample_rate=0.1, steps=10, delta=1e-5, accountant="rdp")


def _batches(service, agreement_id: int, round_id: int) -> list:
    return service.d.ledger.events.BatchCommitted().get_logs(
        from_block=0, argument_filters={"agreementId": agreement_id, "round": round_id}
    )


def _kept(service) -> list:
    """What the service keeps beside the chain that a commitment could change."""
    with sqlite3.connect(service.data_dir / "api" / "service.sqlite") as db:
        return [db.execute(f"SELECT * FROM {table} ORDER BY rowid").fetchall() for table in ("commitments", "jobs")]


def test_a_whole_batched_round_through_the_client_then_a_green_audit(service, tmp_path):
    w = service
    agreement_id, round_id = open_round(w, tmp_path / "coordinator")
    # alpha: the command on its own machine (its keystore, outbox and accountant there; no store of its own).
    home = tmp_path / "alpha-machine"
    Keystore(home / "keystore", scrypt_n=2**4).import_key(
        "alpha", w.alpha.key, PASSWORD, x25519_private_key=w.keys["alpha"]
    )
    env = {**os.environ, "LEPTON_DATA_DIR": str(home), "LEPTON_KEYSTORE_PASSWORD": PASSWORD}
    command = [sys.executable, "-m", "lepton_ledger.cli", "partner", "train-and-submit", str(agreement_id)]
    command += ["--key", "alpha", "--partition", "0", "--partitions", "2", "--mode", "batched"]
    command += ["--service", str(w.api.base_url), "--rpc-url", w.w3.provider.endpoint_uri]
    command += ["--deployment", str(w.data_dir / "deployment.json")]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"round {round_id}: committed " in done.stdout and "anchored by job" in done.stdout
    job_id = int(done.stdout.split("anchored by job ", 1)[1].split()[0])
    assert not (home / "blocks").exists()
    # One party of two committed, the deadline far: nothing is anchored yet.
    assert not _batches(w, agreement_id, round_id)
    # Run again (say, its answer was lost): its outbox resumes the same signed commitment, which the service
    # answers as the first time (the same Idempotency-Key), keeping nothing twice.
    again = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert again.returncode == 0 and again.stdout.splitlines()[0] == done.stdout.splitlines()[0], again.stderr

    # beta: the library's round code through the client. The last party's commitment makes the anchor due.
    kept = commit_through_client(w, w.beta, 1, agreement_id, round_id, tmp_path)
    assert kept["anchor_job"] == job_id
    coordinator = w.headers(w.roles.coordinator)
    job = follow_job(w, job_id, coordinator)
    assert job["status"] == "done", job
    assert sorted(job["result"]["partners"]) == sorted([w.alpha.address, w.beta.address])
    (batch,) = _batches(w, agreement_id, round_id)  # one anchor for the round
    assert w.w3.eth.get_transaction(batch["transactionHash"])["from"] == w.roles.coordinator.address
    assert w.store.has(job["result"]["batch_cid"])  # the batch document, in the service's store
    for account in (w.alpha, w.beta):
        assert w.d.ledger.functions.hasSubmitted(agreement_id, round_id, account.address).call()

    # Once anchored, the round takes no more commitments; a partner sees the anchor job.
    assert w.api.get(f"/v1/jobs/{job_id}", headers=w.headers(w.alpha)).status_code == 200
    close = w.api.post(f"/v1/agreements/{agreement_id}/rounds/{round_id}/close", json=CLOSE, headers=coordinator)
    assert close.status_code == 202, close.text
    closed = follow_job(w, close.json()["id"], coordinator)
    assert closed["status"] == "done", closed
    assert sorted(closed["result"]["accepted"]) == sorted([w.alpha.address, w.beta.address])

    audit = subprocess.run(
        [sys.executable, "-m", "lepton_ledger.cli", "audit", "--key", "auditor"]
        + ["--rpc-url", w.w3.provider.endpoint_uri, "--deployment", str(w.data_dir / "deployment.json")]
        + ["--ipfs", str(w.data_dir / "blocks"), "--state", str(tmp_path / "audit.sqlite")],
        env={**os.environ, "LEPTON_DATA_DIR": str(w.data_dir), "LEPTON_KEYSTORE_PASSWORD": PASSWORD},
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert audit.returncode == 0, audit.stdout[-3000:] + audit.stderr[-3000:]


def test_the_typed_data_is_the_ledgers_commitment_and_a_wallet_signature_of_it_is_kept(service, tmp_path):
    w = service
    agreement_id, round_id = open_round(w, tmp_path / "coordinator")
    with ServiceClient(str(w.api.base_url), w.alpha, chain_id=w.w3.eth.chain_id) as client:
        prepared = client_partner(w, client, w.alpha, 0, agreement_id, round_id, tmp_path).prepare_update(
            agreement_id, round_id, [w.roles.coordinator.address, w.roles.auditor.address]
        )
        typed = client.commitment_typed_data(agreement_id, round_id, prepared.envelope_cid)
        commitment = prepared.commitment(w.alpha.address)
        on_chain = w.d.ledger.functions.commitmentDigest(commitment.as_tuple()).call()
        assert typed["digest"] == "0x" + bytes(on_chain).hex()
        assert _hash_eip191_message(encode_typed_data(full_message=typed["typed_data"])) == bytes(on_chain)
        signature = Account.sign_typed_data(w.alpha.key, full_message=typed["typed_data"]).signature
        kept = client.submit_commitment(
            SignedCommitment(commitment, bytes(signature), prepared.envelope_cid),
            chain_id=w.w3.eth.chain_id,
            ledger=w.d.ledger.address,
        )
    assert kept["commitment"]["cumulativeEpsilon"] == prepared.cumulative_epsilon_fixed
    _finish(w, agreement_id, round_id, kept["anchor_job"], tmp_path)


def _finish(service, agreement_id: int, round_id: int, job_id: int, folder) -> None:
    """beta commits too, so that the round's batch is anchored now (no anchor job is left waiting for a deadline
    that another test's clock could bring, sending a coordinator transaction in the middle of it)."""
    commit_through_client(service, service.beta, 1, agreement_id, round_id, folder)
    assert follow_job(service, job_id, service.headers(service.roles.coordinator))["status"] == "done"


def _signed(service, account, commitment, envelope_cid: str, *, key=None) -> dict:
    digest = update_commitment_digest(service.w3.eth.chain_id, service.d.ledger.address, commitment)
    signature = sign_digest(bytes((key or account).key), digest)
    return signed_commitment_document(
        SignedCommitment(commitment, signature, envelope_cid),
        chain_id=service.w3.eth.chain_id,
        ledger=service.d.ledger.address,
    )


def test_every_refused_commitment_changes_nothing(service, tmp_path):
    w = service
    agreement_id, round_id = open_round(w, tmp_path / "coordinator")
    recipients = [w.roles.coordinator.address, w.roles.auditor.address]

    def sealed(size: int) -> bytes:
        return seal(
            {"w": torch.ones(size)},
            signer_key=bytes(w.alpha.key),
            recipients=[x25519_public_key(w.keys["coordinator"]), x25519_public_key(w.keys["auditor"])],
            chain_id=w.w3.eth.chain_id,
            ledger=w.d.ledger.address,
            agreement_id=agreement_id,
            round=round_id,
            base_model_digest=Round.read(w.d.ledger.functions.round(agreement_id, round_id)).model_digest,
            dp=DP,
            cumulative_epsilon=2.0,
            sample_count=100,
        ).data

    with ServiceClient(str(w.api.base_url), w.alpha, chain_id=w.w3.eth.chain_id) as client:
        # Another update alpha uploads first: a well-formed commitment to it is still a second one.
        other_cid = client.store(agreement_id, round_id).put(sealed(8))
        partner = client_partner(w, client, w.alpha, 0, agreement_id, round_id, tmp_path)
        signed = partner.run_round_batched(agreement_id, round_id, recipients)
        kept = client.submit_commitment(signed, chain_id=w.w3.eth.chain_id, ledger=w.d.ledger.address)
        fields = client.commitment_typed_data(agreement_id, round_id, other_cid)["typed_data"]["message"]
    second = UpdateCommitment(
        agreement_id,
        round_id,
        w.alpha.address,
        bytes.fromhex(fields["envelopeDigest"][2:]),
        bytes.fromhex(fields["manifestDigest"][2:]),
        fields["cumulativeEpsilon"],
        fields["sampleCount"],
    )
    c, cid = signed.commitment, signed.envelope_cid
    path = f"/v1/agreements/{agreement_id}/rounds/{round_id}/commitments"
    alpha = w.headers(w.alpha)
    before, nonce = _kept(w), w.coordinator_nonce()

    def refused(document, status: int, code: str | None = None, *, headers=alpha, at: str = path) -> None:
        reply = w.api.post(at, json=document, headers=headers)
        assert reply.status_code == status, reply.text
        assert code is None or reply.json()["error"]["code"] == code, reply.text

    document = _signed(w, w.alpha, c, cid)
    refused(document, 401, headers={})
    refused(document, 409, "AlreadyCommitted")  # the same commitment again, without its Idempotency-Key
    refused(_signed(w, w.alpha, second, other_cid), 409, "AlreadyCommitted")
    refused(_signed(w, w.beta, replace(c, partner=w.beta.address), cid), 403, "Forbidden")  # another partner's
    refused(_signed(w, w.outsider, replace(c, partner=w.outsider.address), cid), 403, headers=w.headers(w.outsider))
    refused(_signed(w, w.alpha, c, cid, key=w.beta), 422, "CommitmentRefused")  # not signed by alpha
    refused({**document, "signature": "0x00"}, 422, "CommitmentRefused")
    refused({"version": 1}, 422)
    refused(_signed(w, w.alpha, replace(c, round=round_id + 1), cid), 422, "WrongRound")
    refused(_signed(w, w.alpha, replace(c, cumulative_epsilon=8_000_001), cid), 422, "BudgetExceeded")
    refused(_signed(w, w.alpha, replace(c, cumulative_epsilon=0), cid), 422, "EpsilonNotIncreasing")
    refused(_signed(w, w.alpha, replace(c, sample_count=100_001), cid), 422, "SampleCountOutOfBounds")
    refused(_signed(w, w.alpha, replace(c, sample_count=0), cid), 422, "SampleCountOutOfBounds")
    not_uploaded = artifact_cid(b"an envelope the service never saw")
    refused(_signed(w, w.alpha, c, not_uploaded), 422, "EnvelopeNotUploaded")
    refused(_signed(w, w.alpha, replace(c, manifest_digest=b"\x01" * 32), cid), 422, "CommitmentMismatch")
    # A round that is not open (agreement 1's round 1 is finalized), an unknown agreement or round.
    finished = _signed(w, w.alpha, replace(c, agreement_id=w.agreement_id, round=w.round_id), cid)
    refused(finished, 409, "RoundNotOpen", at=f"/v1/agreements/{w.agreement_id}/rounds/{w.round_id}/commitments")
    refused(document, 404, at=f"/v1/agreements/99/rounds/{round_id}/commitments")
    refused(document, 404, at=f"/v1/agreements/{agreement_id}/rounds/99/commitments")
    prepare = f"{path}/prepare"
    assert w.api.post(prepare, json={"envelope_cid": not_uploaded}, headers=alpha).status_code == 422
    assert w.api.post(prepare, json={"envelope_cid": "not a cid"}, headers=alpha).status_code == 422
    assert w.api.post(prepare, json={"envelope_cid": cid}).status_code == 401
    # Committed: alpha's round takes no more uploads, and nothing of the refused one is stored.
    late = sealed(9)
    upload = w.api.post(
        "/v1/envelopes", content=late, params={"agreement_id": agreement_id, "round": round_id}, headers=alpha
    )
    assert upload.status_code == 409 and upload.json()["error"]["code"] == "AlreadyCommitted", upload.text
    assert not w.store.has(artifact_cid(late))
    assert _kept(w) == before and w.coordinator_nonce() == nonce
    assert not _batches(w, agreement_id, round_id)
    _finish(w, agreement_id, round_id, kept["anchor_job"], tmp_path)


def test_the_batch_is_anchored_near_the_deadline_with_a_party_missing(service, tmp_path):
    w = service
    seconds = 11 * ANCHOR_LEAD
    agreement_id, round_id = open_round(w, tmp_path / "coordinator", seconds=seconds)
    kept = commit_through_client(w, w.alpha, 0, agreement_id, round_id, tmp_path)
    coordinator = w.headers(w.roles.coordinator)
    assert w.api.get(f"/v1/jobs/{kept['anchor_job']}", headers=coordinator).json()["status"] == "queued"
    record = Round.read(w.d.ledger.functions.round(agreement_id, round_id))
    assert anchor_time(record) == record.deadline - ANCHOR_LEAD
    advance_time(w.w3, anchor_time(record) - w.w3.eth.get_block("latest")["timestamp"])  # the anchor is due
    w.wait_block(w.w3.eth.block_number)
    job = follow_job(w, kept["anchor_job"], coordinator)
    assert job["status"] == "done" and job["result"]["partners"] == [w.alpha.address], job
    (batch,) = _batches(w, agreement_id, round_id)
    assert w.d.ledger.functions.hasSubmitted(agreement_id, round_id, w.alpha.address).call()
    assert not w.d.ledger.functions.hasSubmitted(agreement_id, round_id, w.beta.address).call()
    # beta comes too late for the batch: refused, and nothing more is anchored.
    with pytest.raises(ServiceError) as late:
        commit_through_client(w, w.beta, 1, agreement_id, round_id, tmp_path)
    assert late.value.status == 409 and late.value.code == "BatchAnchored"
    assert len(_batches(w, agreement_id, round_id)) == 1 and batch["args"]["round"] == round_id


def test_a_short_round_is_anchored_a_tenth_of_it_before_its_deadline():
    """Not at its first commitment: the lead shrinks with the round."""
    record = Round(RoundStatus.OPEN, 1, 0, 1_000, 1_030, 0, *(b"\0" * 32,) * 5, 0)
    assert anchor_time(record) == 1_027
    assert anchor_time(replace(record, deadline=1_005)) == 1_004
    assert anchor_time(replace(record, deadline=1_000 + 3600)) == 1_000 + 3600 - ANCHOR_LEAD


def test_a_restart_between_commit_and_anchor_anchors_once(service, tmp_path):
    w = service
    agreement_id, round_id = open_round(w, tmp_path / "coordinator")
    kept = commit_through_client(w, w.alpha, 0, agreement_id, round_id, tmp_path)
    w.server.kill()  # kill -9 with the commitment kept and its anchor job queued
    w.server.start()
    commit_through_client(w, w.beta, 1, agreement_id, round_id, tmp_path)
    coordinator = w.headers(w.roles.coordinator)
    job = follow_job(w, kept["anchor_job"], coordinator)
    assert job["status"] == "done", job
    assert len(_batches(w, agreement_id, round_id)) == 1

    # A service killed after commitBatch was mined but before its job was marked done runs the job again: the chain
    # says both commitments are anchored, so it sends nothing and names the batch it finds there.
    w.server.kill()
    with sqlite3.connect(w.data_dir / "api" / "service.sqlite") as db:
        db.execute(
            "UPDATE jobs SET status = 'running', progress = 'anchoring', result = NULL WHERE id = ?",
            (kept["anchor_job"],),
        )
    nonce = w.coordinator_nonce()
    w.server.start()
    again = follow_job(w, kept["anchor_job"], w.headers(w.roles.coordinator))
    assert again["status"] == "done" and again["result"]["batch_cid"] == job["result"]["batch_cid"], again
    assert len(_batches(w, agreement_id, round_id)) == 1 and w.coordinator_nonce() == nonce


def test_a_partner_suspended_after_it_committed_is_left_out_of_the_batch(service, tmp_path):
    """commitBatch refuses a batch naming a suspended partner: the others' commitments are anchored without it."""
    w = service
    gamma, delta = (fresh_account() for _ in range(2))
    for account in (gamma, delta):
        node.fund(w.w3, account.address, 10**19)
        w.tx.add(account)
        agreements.register(w.tx, w.d, account.address, {"name": "fresh"}, generate_x25519_keypair()[1])
        w.tx.transact(w.d.partners.functions.approve(account.address), w.roles.coordinator.address)
    agreement_id, round_id = open_round(w, tmp_path / "coordinator", partners=[gamma, delta])
    kept = commit_through_client(w, gamma, 0, agreement_id, round_id, tmp_path)
    receipt = w.tx.transact(w.d.partners.functions.suspend(gamma.address, b"\x07" * 32), w.roles.coordinator.address)
    w.wait_block(receipt["blockNumber"])
    commit_through_client(w, delta, 1, agreement_id, round_id, tmp_path)  # every party has committed: the anchor is due
    job = follow_job(w, kept["anchor_job"], w.headers(w.roles.coordinator))
    assert job["status"] == "done", job
    assert job["result"]["partners"] == [delta.address]
    assert job["result"]["left_out"] == [
        {"partner": gamma.address, "reason": "not an approved partner any more (suspended since it committed)"}
    ]
    assert w.d.ledger.functions.hasSubmitted(agreement_id, round_id, delta.address).call()
    assert not w.d.ledger.functions.hasSubmitted(agreement_id, round_id, gamma.address).call()


def _wallet_party(service):
    """A SmartWallet (ERC-1271) owned by a fresh key, registered and approved; (wallet, owner, execute a call
    through the wallet)."""
    w = service
    owner = fresh_account()
    node.fund(w.w3, owner.address, 10**19)
    w.tx.add(owner)
    wallet = w.tx.deploy(load_artifact("SmartWallet"), owner.address, sender=owner.address)

    def execute(call):
        return w.tx.transact(wallet.functions.execute(call.address, call._encode_transaction_data()), owner.address)

    execute(w.d.partners.functions.register(bytes([9]) * 32, generate_x25519_keypair()[1]))
    w.tx.transact(w.d.partners.functions.approve(wallet.address), w.roles.coordinator.address)
    return wallet, owner, execute


def _wallet_agreement(service, wallet, execute) -> int:
    """An active, funded agreement between alpha and the wallet."""
    w = service
    document = {"task": "a wallet party"}
    publish_document(w.store, document)
    terms = agreement_terms(w.w3, w.token, w.roles, [w.alpha.address, wallet.address], document)
    agreement_id = agreements.propose(w.tx, w.d, w.roles.coordinator.address, terms)
    execute(w.d.agreements.functions.sign(agreement_id))
    w.tx.transact(w.token.functions.mint(wallet.address, terms.required_stake), w.roles.admin.address)
    execute(w.token.functions.approve(w.d.vault.address, terms.required_stake))
    execute(w.d.vault.functions.stake(agreement_id, terms.required_stake))
    World(w.tx, w.d, w.token, w.roles, {"alpha": w.alpha}, {}).join_and_fund(agreement_id, terms)
    return agreement_id


def _wallet_commits(service, wallet, owner, agreement_id: int, round_id: int) -> dict:
    """The wallet's owner seals an update naming the wallet, uploads it and commits it, signed with the owner's key
    (ERC-1271), all signed in as the wallet; the service's answer."""
    w = service
    recipients = [w.roles.coordinator.address, w.roles.auditor.address]
    model_digest = Round.read(w.d.ledger.functions.round(agreement_id, round_id)).model_digest
    model = fl.build_model("logreg", w.split.input_dim, w.split.num_classes, seed=0)
    delta = {k: torch.zeros_like(v) + 0.01 for k, v in model.state_dict().items()}
    keys = recipient_keys(w.d, recipients)
    honest = seal(
        delta,
        signer_key=bytes(owner.key),
        recipients=keys,
        chain_id=w.w3.eth.chain_id,
        ledger=w.d.ledger.address,
        agreement_id=agreement_id,
        round=round_id,
        base_model_digest=model_digest,
        dp=DP,
        cumulative_epsilon=1.0,
        sample_count=100,
    )
    manifest = replace(honest.manifest, partner=wallet.address)
    signature = sign_digest(bytes(owner.key), manifest.digest())
    data = encrypt_envelope(encode_payload(manifest.to_document(), signature, serialize_tensors(delta)), keys)
    signer = SimpleNamespace(address=wallet.address, sign_message=owner.sign_message)  # signs in as the wallet
    with ServiceClient(str(w.api.base_url), signer, chain_id=w.w3.eth.chain_id) as client:
        cid, envelope_digest = publish(client.store(agreement_id, round_id), data)
        commitment = UpdateCommitment(
            agreement_id,
            round_id,
            wallet.address,
            envelope_digest,
            manifest.digest(),
            manifest.cumulative_epsilon,
            manifest.sample_count,
        )
        digest = update_commitment_digest(w.w3.eth.chain_id, w.d.ledger.address, commitment)
        signed = SignedCommitment(commitment, sign_digest(bytes(owner.key), digest), cid)
        return client.submit_commitment(signed, chain_id=w.w3.eth.chain_id, ledger=w.d.ledger.address)


def test_a_wallet_whose_signature_no_longer_validates_is_left_out_of_the_batch(service, tmp_path):
    """An ERC-1271 wallet answers anew at every call: one that stops accepting its commitment's signature before the
    anchor could not be revealed, and its anchored entry proven forged would void the whole round; it is left out
    and the others anchored."""
    w = service
    wallet, owner, execute = _wallet_party(w)
    agreement_id = _wallet_agreement(w, wallet, execute)
    agreement_id, round_id = open_round(w, tmp_path / "coordinator", agreement_id=agreement_id)
    kept = _wallet_commits(w, wallet, owner, agreement_id, round_id)
    # The wallet changes its mind: its code becomes that of a wallet of another owner.
    other = w.tx.deploy(load_artifact("SmartWallet"), w.alpha.address, sender=owner.address)
    w.w3.provider.make_request("anvil_setCode", [wallet.address, w.w3.eth.get_code(other.address).to_0x_hex()])
    commit_through_client(
        w, w.alpha, 0, agreement_id, round_id, tmp_path
    )  # every party has committed: the anchor is due
    job = follow_job(w, kept["anchor_job"], w.headers(w.roles.coordinator), timeout=60.0)
    assert job["status"] == "done", job
    assert job["result"]["partners"] == [w.alpha.address]
    assert job["result"]["left_out"] == [
        {
            "partner": wallet.address,
            "reason": "its commitment's signature is no longer valid for it on-chain (ERC-1271)",
        }
    ]
    assert w.d.ledger.functions.hasSubmitted(agreement_id, round_id, w.alpha.address).call()
    assert not w.d.ledger.functions.hasSubmitted(agreement_id, round_id, wallet.address).call()


def test_a_wallets_anchored_commitment_is_revealed_so_no_auditor_can_void_the_round_with_it(service, tmp_path):
    """The ledger judges a batch entry's signature by ECDSA alone unless it was revealed (answerDispute before any
    dispute, ERC-1271 checked then): the anchor job reveals a wallet's entry while the wallet accepts it, so that an
    auditor cannot prove it forged and void the round of every party."""
    from web3.exceptions import ContractCustomError

    from lepton_ledger.chain import disputes
    from lepton_ledger.chain.transactions import decode_revert

    w = service
    wallet, owner, execute = _wallet_party(w)
    agreement_id = _wallet_agreement(w, wallet, execute)
    agreement_id, round_id = open_round(w, tmp_path / "coordinator", agreement_id=agreement_id)
    kept = _wallet_commits(w, wallet, owner, agreement_id, round_id)
    commit_through_client(w, w.alpha, 0, agreement_id, round_id, tmp_path)  # every party committed: anchor due
    job = follow_job(w, kept["anchor_job"], w.headers(w.roles.coordinator), timeout=60.0)
    assert job["status"] == "done" and sorted(job["result"]["partners"]) == sorted([w.alpha.address, wallet.address])
    assert list(job["result"]["revealed"]) == [wallet.address], job["result"]  # alpha signs ECDSA: nothing to reveal
    entry = disputes.entry_of(w.d, agreement_id, round_id, wallet.address)
    record = disputes.DisputeRecord(
        agreement_id, round_id, wallet.address, "None", entry.batch_index, entry.position, entry.epsilon, 0
    )
    evidence, commitment, signature = disputes.answer_for(w.d, w.store, record)
    prove = w.d.ledger.functions.proveForgedCommitment(evidence, commitment, signature)
    with pytest.raises(ContractCustomError) as refused:  # asked as an auditor would send it, nothing sent
        prove.call({"from": w.roles.auditor.address})
    assert decode_revert(refused.value.data).error == "RoundLedgerCommitmentValid"
