"""The coordinator checks what the contracts check (issue 11, item 4): ``anchor_batch`` refuses a commitment
from a non-party, with a signature not valid for its party, or twice, before anything is anchored; an honest ERC-1271
(smart wallet) party's batched commitment and envelope are accepted, as SignatureChecker accepts them on-chain
(they used to make ``close_round`` raise BatchDocumentMismatch). (An envelope not sealed to the auditor is
rejected: test_round.py.)"""

from __future__ import annotations

import dataclasses

import pytest
import torch
from agreement_setup import (
    NAMES,
    agreement_terms,
    make_coordinator,
    make_partner,
    new_agreement,
    open_round,
    recipients,
)

from lepton_ledger import fl
from lepton_ledger.chain import agreements
from lepton_ledger.chain.anvil import dev_account
from lepton_ledger.chain.artifacts import load_artifact
from lepton_ledger.chain.state import Round
from lepton_ledger.chain.transactions import Transactor
from lepton_ledger.chain.typed_data import (
    UpdateCommitment,
    sign_digest,
    update_commitment_digest,
)
from lepton_ledger.envelope import DPRecord, generate_x25519_keypair, seal
from lepton_ledger.envelope.envelope import (
    SealedEnvelope,
    encode_payload,
    encrypt_envelope,
)
from lepton_ledger.envelope.tensors import serialize_tensors
from lepton_ledger.errors import ConfigurationError
from lepton_ledger.protocol.addressing import publish
from lepton_ledger.rounds.coordinator import CommitmentRefused
from lepton_ledger.rounds.outbox import Outbox
from lepton_ledger.rounds.partner import SignedCommitment, recipient_keys
from lepton_ledger.rounds.roles import build_partner, publish_document


def _resigned(signed: SignedCommitment, key: bytes, w3, ledger: str, **changes) -> SignedCommitment:
    commitment = dataclasses.replace(signed.commitment, **changes)
    digest = update_commitment_digest(w3.eth.chain_id, ledger, commitment)
    return SignedCommitment(commitment, sign_digest(key, digest), signed.envelope_cid)


def test_anchor_batch_refuses_a_non_party_or_a_bad_signature_and_anchors_nothing(world, executor):
    w3, d = world["w3"], world["d"]
    agreement_id = new_agreement(world)
    coordinator = make_coordinator(world, "refuse")
    round_id, _ = open_round(world, coordinator, agreement_id)
    alpha, beta = (make_partner(world, n, agreement_id, executor) for n in NAMES[:2])
    signed = [p.run_round_batched(agreement_id, round_id, recipients(world)) for p in (alpha, beta)]
    rando = dev_account(9)
    outsider = _resigned(signed[1], bytes(rando.key), w3, d.ledger.address, partner=rando.address)
    with pytest.raises(CommitmentRefused, match=f"{rando.address} is not a party"):
        coordinator.anchor_batch(agreement_id, round_id, [signed[0], outsider])
    forged = SignedCommitment(signed[1].commitment, signed[0].signature, signed[1].envelope_cid)  # alpha's, for beta
    with pytest.raises(CommitmentRefused, match=f"commitment of {beta.address} is not signed by it"):
        coordinator.anchor_batch(agreement_id, round_id, [signed[0], forged])
    with pytest.raises(CommitmentRefused, match=f"more than one commitment of {alpha.address}"):
        coordinator.anchor_batch(agreement_id, round_id, [signed[0], signed[1], signed[0]])
    for p in (alpha, beta):
        assert not d.ledger.functions.hasSubmitted(agreement_id, round_id, p.address).call()
    assert coordinator.outbox.operations(prefix=coordinator._key("batch-document", agreement_id)) == []


def _wallet_party(world) -> tuple[object, object, Transactor, object]:
    """A SmartWallet owned by anvil's key 8, registered with an X25519 key and approved; (wallet, owner, tx, execute through the wallet)."""
    w3, d, roles = world["w3"], world["d"], world["roles"]
    owner = dev_account(8)
    tx = Transactor(w3, [*roles.accounts(), owner, *world["accounts"].values()])
    wallet = tx.deploy(load_artifact("SmartWallet"), owner.address, sender=owner.address)
    _, public = generate_x25519_keypair()

    def execute(call):
        return tx.transact(wallet.functions.execute(call.address, call._encode_transaction_data()), owner.address)

    execute(d.partners.functions.register(bytes([9]) * 32, public))
    tx.transact(d.partners.functions.approve(wallet.address), roles.coordinator.address)
    return wallet, owner, tx, execute


def test_an_erc1271_wallet_party_is_accepted_in_a_batched_round(world, executor):
    w3, d, token, roles, store = world["w3"], world["d"], world["token"], world["roles"], world["store"]
    wallet, owner, tx, execute = _wallet_party(world)
    alpha, beta = (world["accounts"][n] for n in NAMES[:2])
    terms = agreement_terms(w3, token, roles, [alpha.address, beta.address, wallet.address], {"task": "wallet"})
    publish_document(store, terms.document)
    agreement_id = agreements.propose(tx, d, roles.coordinator.address, terms)
    for account in (alpha, beta):
        agreements.sign(tx, d, agreement_id, account)
        tx.transact(token.functions.mint(account.address, terms.required_stake), roles.admin.address)
        agreements.stake(tx, d, token, agreement_id, account.address, terms.required_stake)
    execute(d.agreements.functions.sign(agreement_id))
    tx.transact(token.functions.mint(wallet.address, terms.required_stake), roles.admin.address)
    execute(token.functions.approve(d.vault.address, terms.required_stake))
    execute(d.vault.functions.stake(agreement_id, terms.required_stake))
    tx.transact(token.functions.mint(roles.coordinator.address, terms.reward_per_round), roles.admin.address)
    agreements.fund(tx, d, token, agreement_id, roles.coordinator.address, terms.reward_per_round)

    coordinator = make_coordinator(world, "wallet")
    round_id, _ = open_round(world, coordinator, agreement_id)
    signed = [
        make_partner(world, n, agreement_id, executor).run_round_batched(agreement_id, round_id, recipients(world))
        for n in NAMES[:2]
    ]
    # The wallet's owner seals an update whose manifest names the wallet, signed with the owner's key (ERC-1271).
    split, model_digest = world["split"], Round.read(d.ledger.functions.round(agreement_id, round_id)).model_digest
    delta = {
        k: torch.zeros_like(v) + 0.01
        for k, v in fl.build_model("logreg", split.input_dim, split.num_classes, seed=0).state_dict().items()
    }
    keys = recipient_keys(d, recipients(world))
    honest = seal(
        delta,
        signer_key=bytes(owner.key),
        recipients=keys,
        chain_id=w3.eth.chain_id,
        ledger=d.ledger.address,
        agreement_id=agreement_id,
        round=round_id,
        base_model_digest=model_digest,
        dp=DPRecord(1.0, 1.0, 0.05, 20, 1e-5, "rdp"),
        cumulative_epsilon=1.0,
        sample_count=100,
    )
    manifest = dataclasses.replace(honest.manifest, partner=wallet.address)
    signature = sign_digest(bytes(owner.key), manifest.digest())
    data = encrypt_envelope(encode_payload(manifest.to_document(), signature, serialize_tensors(delta)), keys)
    sealed = SealedEnvelope(data, manifest, signature, manifest.digest())
    cid, envelope_digest = publish(store, sealed.data)
    commitment = UpdateCommitment(
        agreement_id,
        round_id,
        wallet.address,
        envelope_digest,
        sealed.manifest_digest,
        manifest.cumulative_epsilon,
        manifest.sample_count,
    )
    digest = update_commitment_digest(w3.eth.chain_id, d.ledger.address, commitment)
    signed.append(SignedCommitment(commitment, sign_digest(bytes(owner.key), digest), cid))

    coordinator.anchor_batch(agreement_id, round_id, signed)
    outcome = coordinator.close_round(agreement_id, round_id)
    assert wallet.address in outcome.report.accepted and len(outcome.report.accepted) == 3


def test_a_partner_built_without_data_or_executor_refuses_to_train_in_one_line(world, tmp_path):
    account = world["accounts"]["alpha"]
    partner = build_partner(  # as the claim command builds it: nothing to train with
        account=account,
        tx=world["tx"],
        deployment=world["d"],
        store=world["store"],
        accountant=fl.PrivacyAccountant(partner=account.address, agreement=1, delta=1e-5, epsilon_cap=8.0),
        outbox=Outbox(tmp_path / "outbox.sqlite"),
    )
    for step in (partner.check_budget, lambda: partner.train(b"")):
        with pytest.raises(ConfigurationError, match=f"partner {account.address} was built without data or an"):
            step()
