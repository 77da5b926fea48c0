"""Round trips to the node that a round costs (issue 15, counted at the provider on a real anvil): a partner's
round is three requests (its reads in one batch: its epsilon on-chain, the round's model digest, the recipients'
keys, and its transaction's nonce, gas and fees, read before it trains; the send; the receipt), a batched
partner's one, and
anchoring a batch four whatever its size; closing a round eight whatever its size. Keys read ahead are read
again each round: a rotated key is sealed to. What was read ahead and went stale is read again (a nonce taken
meanwhile), or the ledger's refusal is decoded from the mined transaction (a deadline passed meanwhile)."""

from __future__ import annotations

import pytest
from agreement_setup import (
    NAMES,
    make_coordinator,
    make_partner,
    new_agreement,
    open_round,
    recipients,
)

from lepton_ledger.chain.anvil import advance_time
from lepton_ledger.chain.connection import RequestCounter
from lepton_ledger.envelope import generate_x25519_keypair
from lepton_ledger.errors import ContractReverted


def test_a_partners_round_costs_three_requests_and_a_batched_one_one(world, executor):
    agreement_id = new_agreement(world)
    coordinator = make_coordinator(world, "trips")
    round_id, _ = open_round(world, coordinator, agreement_id)
    alpha, beta, gamma = (make_partner(world, n, agreement_id, executor) for n in NAMES)
    with RequestCounter(world["w3"]) as counter:
        alpha.run_round(agreement_id, round_id, recipients(world))
        single = counter.take()
        signed = [p.run_round_batched(agreement_id, round_id, recipients(world)) for p in (beta, gamma)]
        batched = counter.take()
        coordinator.anchor_batch(agreement_id, round_id, signed)
        anchor = counter.take()
    assert single <= 3, single
    assert batched <= 2  # one per partner
    assert anchor <= 4  # party indexes in one batch, the transaction in three: not one per partner
    assert world["d"].ledger.functions.hasSubmitted(agreement_id, round_id, gamma.address).call()


def test_closing_a_round_costs_the_same_requests_whatever_its_size(world, executor):
    agreement_id = new_agreement(world)
    coordinator = make_coordinator(world, "close-trips")
    round_id, _ = open_round(world, coordinator, agreement_id)
    for name in NAMES:
        make_partner(world, name, agreement_id, executor).run_round(agreement_id, round_id, recipients(world))
    with RequestCounter(world["w3"]) as counter:
        outcome = coordinator.close_round(agreement_id, round_id)
        close = counter.take()
    assert len(outcome.report.partners) == len(NAMES)
    # The finalize dry run; the round, its reward and the terms in one batch; the auditors' keys in one; one sync
    # of the event index (two: the head and the last indexed block's hash, the logs); the transaction in three.
    # With two syncs, each reading block hashes one by one, 13.
    assert close <= 8, close


def test_keys_read_ahead_are_fresh_each_round_so_a_rotated_key_is_sealed_to(world, executor):
    agreement_id = new_agreement(world)
    coordinator = make_coordinator(world, "rotation")
    round_id, _ = open_round(world, coordinator, agreement_id)
    alpha = make_partner(world, "alpha", agreement_id, executor)
    alpha.reconcile(agreement_id, round_id, recipients(world))  # an earlier reconcile read the auditor's old key
    _, rotated = generate_x25519_keypair()
    auditor = world["roles"].auditor.address
    world["tx"].transact(world["d"].partners.functions.rotateEncryptionKey(rotated), auditor)
    alpha.run_round(agreement_id, round_id, recipients(world))
    events = coordinator.commitments(agreement_id, round_id)
    opened, failed = coordinator.open_updates(events, coordinator.round_state(agreement_id, round_id)[0])
    assert not failed and rotated in opened[alpha.address].recipients


def test_a_nonce_read_ahead_and_taken_meanwhile_is_read_again_and_the_update_committed_once(world, executor):
    agreement_id = new_agreement(world)
    coordinator = make_coordinator(world, "stale-nonce")
    round_id, _ = open_round(world, coordinator, agreement_id)
    alpha = make_partner(world, "alpha", agreement_id, executor)
    alpha.reconcile(agreement_id, round_id, recipients(world), submitting=True)  # reads the nonce ahead
    # While it trains, another process sends from the same account: the nonce read ahead is taken.
    world["tx"].transact(world["token"].functions.approve(world["d"].vault.address, 1), alpha.address)
    submission = alpha.commit(alpha.prepare_update(agreement_id, round_id, recipients(world)))
    (event,) = world["d"].ledger.events.UpdateSubmitted.get_logs(
        from_block=0, argument_filters={"agreementId": agreement_id}
    )
    assert event["transactionHash"].to_0x_hex() == submission.tx_hash


def test_a_commitment_refused_after_its_gas_was_read_ahead_is_refused_with_the_ledgers_reason(world, executor):
    agreement_id = new_agreement(world)
    coordinator = make_coordinator(world, "late-after-read")
    round_id, _ = open_round(world, coordinator, agreement_id)
    alpha = make_partner(world, "alpha", agreement_id, executor)
    alpha.reconcile(agreement_id, round_id, recipients(world), submitting=True)  # the dry run passes: gas read
    advance_time(world["w3"], 3601)  # the deadline passes while it trains
    with pytest.raises(ContractReverted, match="RoundLedgerDeadlinePassed"):  # mined and reverted: replayed, decoded
        alpha.commit(alpha.prepare_update(agreement_id, round_id, recipients(world)))
    assert len(alpha.accountant.history) == 1  # its envelope was released: its epsilon counts
