"""Round trips to the node that a round costs (issue 15, counted at the provider on a real anvil): a partner's
round is four requests (its reads in one batch; its transaction's nonce, gas and fees in one; the send; the
receipt), a batched partner's one, and anchoring a batch four whatever its size."""

from __future__ import annotations

from agreement_setup import (
    NAMES,
    make_coordinator,
    make_partner,
    new_agreement,
    open_round,
    recipients,
)

from lepton_ledger.chain.connection import RequestCounter


def test_a_partners_round_costs_four_requests_and_a_batched_one_one(world, executor):
    agreement_id = new_agreement(world)
    coordinator = make_coordinator(world, "trips")
    round_id, _ = open_round(world, coordinator, agreement_id)
    alpha, beta, gamma = (make_partner(world, n, agreement_id, executor) for n in NAMES)
    for p in (alpha, beta, gamma):
        p.recipient_keys(recipients(world))  # read once per partner, in one request
    with RequestCounter(world["w3"]) as counter:
        alpha.run_round(agreement_id, round_id, recipients(world))
        single = counter.take()
        signed = [p.run_round_batched(agreement_id, round_id, recipients(world)) for p in (beta, gamma)]
        batched = counter.take()
        coordinator.anchor_batch(agreement_id, round_id, signed)
        anchor = counter.take()
    assert single <= 4
    assert batched <= 2  # one per partner
    assert anchor <= 4  # party indexes in one batch, the transaction in three: not one per partner
    assert world["d"].ledger.functions.hasSubmitted(agreement_id, round_id, gamma.address).call()
