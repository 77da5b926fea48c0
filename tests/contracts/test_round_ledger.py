"""RoundLedger, one update at a time: opening rounds, submitting updates under the privacy budget, finalizing
rounds (and the vault allocation that goes with it), and the views. Batched commitments are in
test_batch_commit.py, challenges and fraud proofs in test_challenges.py."""

import pytest
from conftest import (
    AGGREGATE_DIGEST,
    DISPUTE_WINDOW,
    EPSILON_ONE,
    EVAL_COMMITMENT,
    MODEL_DIGEST,
    REPORT_DIGEST,
    REWARD_PER_ROUND,
    ROUND_LENGTH,
    ZERO_DIGEST,
    advance,
    digest_of,
    hex32,
    now,
    reverts_with,
    update_digests,
)

from lepton_ledger.chain.merkle import PayoutTree

pytestmark = pytest.mark.usefixtures("synced_clock")

ZERO = ZERO_DIGEST

NONE, OPEN, FINALIZED, VOIDED = range(4)
CAP = 8 * EPSILON_ONE
DAY = 86400
REASON = digest_of("reason")


def round_of(ledger, agreement_id, round_id) -> dict:
    return ledger.round(agreement_id, round_id).dict()


def submission_state(ledger, agreement_id, round_id, partner):
    return (
        ledger.hasSubmitted(agreement_id, round_id, partner),
        ledger.cumulativeEpsilon(agreement_id, partner),
        round_of(ledger, agreement_id, round_id)["submissions"],
    )


@pytest.fixture(scope="module")
def trio(partner_a, partner_b, partner_c):
    return [partner_a, partner_b, partner_c]


@pytest.fixture
def running(active_agreement, open_round):
    """(agreement id, round id) of an open round of the active agreement."""
    return active_agreement, open_round(active_agreement)


# ----------------------------------------------------------------------------------------------- deployment


def test_constructor_binds_registries_vault_and_window(ledger, partners, agreements, vault):
    assert ledger.partners() == partners
    assert ledger.agreements() == agreements
    assert ledger.vault() == vault
    assert ledger.disputeWindow() == DISPUTE_WINDOW


def test_update_commitment_typehash_is_the_documented_type(ledger):
    # The batched mode's signatures are made off-chain against this string (lepton_ledger.chain.typed_data).
    documented = (
        "UpdateCommitment(uint256 agreementId,uint64 round,address partner,bytes32 envelopeDigest,"
        "bytes32 manifestDigest,uint32 cumulativeEpsilon,uint64 sampleCount)"
    )
    assert ledger.UPDATE_COMMITMENT_TYPEHASH() == digest_of(documented)


# ------------------------------------------------------------------------------------------------ openRound


def test_open_round_records_round(ledger, active_agreement, coordinator):
    deadline = now() + ROUND_LENGTH
    tx = ledger.openRound(active_agreement, MODEL_DIGEST, deadline, EVAL_COMMITMENT, {"from": coordinator})
    assert tx.return_value == 1
    assert ledger.roundCount(active_agreement) == 1
    assert ledger.openRoundOf(active_agreement) == 1
    assert round_of(ledger, active_agreement, 1) == {
        "status": OPEN,
        "agreementVersion": 1,
        "submissions": 0,
        "openedAt": tx.timestamp,
        "deadline": deadline,
        "finalizedAt": 0,
        "modelDigest": MODEL_DIGEST,
        "evalCommitment": EVAL_COMMITMENT,
        "aggregateDigest": ZERO,
        "reportDigest": ZERO,
        "payoutRoot": ZERO,
        "payoutTotal": 0,
    }


def test_open_round_emits_round_opened(ledger, active_agreement, coordinator, assert_events):
    deadline = now() + ROUND_LENGTH
    tx = ledger.openRound(active_agreement, MODEL_DIGEST, deadline, EVAL_COMMITMENT, {"from": coordinator})
    assert_events(
        tx,
        (
            "RoundOpened",
            {
                "agreementId": active_agreement,
                "round": 1,
                "agreementVersion": 1,
                "modelDigest": MODEL_DIGEST,
                "evalCommitment": EVAL_COMMITMENT,
                "deadline": deadline,
            },
        ),
        # What a voided batch entry's budget goes back to: three parties fit one word, all zero so far.
        ("EpsilonsAtOpen", {"agreementId": active_agreement, "round": 1, "words": [0]}),
    )


def test_open_round_numbers_rounds_consecutively(ledger, active_agreement, run_round, open_round):
    run_round(active_agreement)
    assert open_round(active_agreement) == 2
    assert ledger.roundCount(active_agreement) == 2
    assert ledger.openRoundOf(active_agreement) == 2


def test_open_round_numbers_each_agreement_separately(ledger, active_agreement, make_agreement, open_round, trio):
    other = make_agreement(trio, fund=REWARD_PER_ROUND)
    open_round(active_agreement)
    assert open_round(other) == 1


def test_open_round_records_agreement_version_in_force(
    ledger, agreements, active_agreement, coordinator, make_terms, trio, open_round
):
    agreements.amend(active_agreement, make_terms(trio, termsDigest=digest_of("v2")), {"from": coordinator})
    for party in trio:
        agreements.sign(active_agreement, {"from": party})
    round_id = open_round(active_agreement)
    assert round_of(ledger, active_agreement, round_id)["agreementVersion"] == 2


@pytest.mark.parametrize("caller", ["admin", "auditor", "partner_a", "rando"])
def test_open_round_refuses_non_coordinator(ledger, active_agreement, caller, request):
    account = request.getfixturevalue(caller)
    with reverts_with("RoundLedgerNotCoordinator", account):
        ledger.openRound(active_agreement, MODEL_DIGEST, now() + DAY, EVAL_COMMITMENT, {"from": account})
    assert ledger.roundCount(active_agreement) == 0


# --------------------------------------------------------------------------------------------- submitUpdate


def test_submit_records_submission_and_epsilon(ledger, running, partner_b, submit):
    agreement_id, round_id = running
    submit(agreement_id, round_id, partner_b, epsilon=1_250_000)
    assert ledger.hasSubmitted(agreement_id, round_id, partner_b)
    assert ledger.cumulativeEpsilon(agreement_id, partner_b) == 1_250_000
    assert round_of(ledger, agreement_id, round_id)["submissions"] == 1


def test_submit_emits_update_submitted(ledger, running, partner_b, assert_events):
    agreement_id, round_id = running
    envelope, manifest = update_digests(partner_b, round_id)
    tx = ledger.submitUpdate(agreement_id, round_id, envelope, manifest, 1_250_000, 4321, {"from": partner_b})
    assert_events(
        tx,
        (
            "UpdateSubmitted",
            {
                "agreementId": agreement_id,
                "round": round_id,
                "partner": partner_b,
                "envelopeDigest": envelope,
                "manifestDigest": manifest,
                "cumulativeEpsilon": 1_250_000,
                "sampleCount": 4321,
            },
        ),
    )


def test_submit_leaves_other_parties_untouched(ledger, running, partner_a, partner_b, partner_c, submit):
    agreement_id, round_id = running
    submit(agreement_id, round_id, partner_b, epsilon=2_000_000)
    assert not ledger.hasSubmitted(agreement_id, round_id, partner_a)
    assert not ledger.hasSubmitted(agreement_id, round_id, partner_c)
    assert ledger.cumulativeEpsilon(agreement_id, partner_a) == 0
    assert ledger.cumulativeEpsilon(agreement_id, partner_c) == 0


def test_submit_keeps_each_partners_epsilon_apart(ledger, running, trio, submit):
    agreement_id, round_id = running
    for i, partner in enumerate(trio, start=1):
        submit(agreement_id, round_id, partner, epsilon=i * 1_000_001)
    assert [ledger.cumulativeEpsilon(agreement_id, p) for p in trio] == [1_000_001, 2_000_002, 3_000_003]


def test_submit_carries_cumulative_epsilon_across_rounds(
    ledger, active_agreement, partner_a, partner_b, open_round, submit, finalize
):
    first = open_round(active_agreement)
    submit(active_agreement, first, partner_a, epsilon=1_500_000)
    advance(ROUND_LENGTH + 1)
    finalize(active_agreement, first)
    second = open_round(active_agreement)
    assert not ledger.hasSubmitted(active_agreement, second, partner_a)
    submit(active_agreement, second, partner_a, epsilon=2_600_000)
    assert ledger.cumulativeEpsilon(active_agreement, partner_a) == 2_600_000
    assert ledger.hasSubmitted(active_agreement, first, partner_a)
    assert ledger.hasSubmitted(active_agreement, second, partner_a)


def test_submit_under_a_pending_amendment_follows_the_terms_in_force(
    ledger, agreements, running, partner_a, coordinator, make_terms, trio, submit
):
    """A pending amendment (here a lower cap) changes nothing until every party signed it."""
    agreement_id, round_id = running
    agreements.amend(
        agreement_id, make_terms(trio, termsDigest=digest_of("v2"), epsilonCap=500_000), {"from": coordinator}
    )
    submit(agreement_id, round_id, partner_a, epsilon=1_000_000)
    assert ledger.cumulativeEpsilon(agreement_id, partner_a) == 1_000_000


# -------------------------------------------------------------------------------------------- finalizeRound


def test_finalize_records_results(ledger, running, trio, submit, coordinator):
    agreement_id, round_id = running
    for partner in trio:
        submit(agreement_id, round_id, partner)
    tree = PayoutTree(agreement_id, round_id, {str(trio[0]): 100, str(trio[1]): 50})
    tx = ledger.finalizeRound(
        agreement_id, round_id, AGGREGATE_DIGEST, REPORT_DIGEST, tree.root, tree.total, {"from": coordinator}
    )
    recorded = round_of(ledger, agreement_id, round_id)
    assert recorded["status"] == FINALIZED
    assert recorded["submissions"] == 3
    assert recorded["finalizedAt"] == tx.timestamp
    assert (recorded["aggregateDigest"], recorded["reportDigest"]) == (AGGREGATE_DIGEST, REPORT_DIGEST)
    assert (recorded["payoutRoot"], recorded["payoutTotal"]) == (hex32(tree.root), 150)
    assert ledger.openRoundOf(agreement_id) == 0


def test_finalize_emits_round_finalized_then_allocated(
    ledger, vault, running, trio, submit, coordinator, assert_events
):
    agreement_id, round_id = running
    for partner in trio:
        submit(agreement_id, round_id, partner)
    tree = PayoutTree(agreement_id, round_id, {str(trio[0]): 100})
    tx = ledger.finalizeRound(
        agreement_id, round_id, AGGREGATE_DIGEST, REPORT_DIGEST, tree.root, tree.total, {"from": coordinator}
    )
    assert_events(
        tx,
        (
            "RoundFinalized",
            {
                "agreementId": agreement_id,
                "round": round_id,
                "aggregateDigest": AGGREGATE_DIGEST,
                "reportDigest": REPORT_DIGEST,
                "payoutRoot": tree.root,
                "payoutTotal": 100,
            },
        ),
        # The closing snapshot of the agreement's epsilon words (one word: three 24-bit lanes of 1.0 each).
        (
            "EpsilonsAtClose",
            {"agreementId": agreement_id, "round": round_id, "words": [EPSILON_ONE * (1 + 2**24 + 2**48)]},
        ),
        (
            "Allocated",
            {
                "agreementId": agreement_id,
                "round": round_id,
                "root": tree.root,
                "total": 100,
                "claimableAt": tx.timestamp + DISPUTE_WINDOW,
            },
        ),
    )


def test_finalize_allocates_payouts_in_vault(ledger, vault, running, trio, submit, finalize, assert_books):
    agreement_id, round_id = running
    for partner in trio:
        submit(agreement_id, round_id, partner)
    free = vault.unallocated(agreement_id)
    tree = finalize(agreement_id, round_id, {trio[0]: 120 * 10**18, trio[2]: 80 * 10**18})
    finalized_at = round_of(ledger, agreement_id, round_id)["finalizedAt"]
    assert vault.allocation(agreement_id, round_id).dict() == {
        "root": hex32(tree.root),
        "total": 200 * 10**18,
        "claimed": 0,
        "claimableAt": finalized_at + DISPUTE_WINDOW,
        "revoked": False,
        "expired": False,
    }
    assert vault.pool(agreement_id).dict()["allocated"] == 200 * 10**18
    assert vault.unallocated(agreement_id) == free - 200 * 10**18
    assert vault.claimable(agreement_id) == 200 * 10**18
    assert_books(agreement_id)


def test_finalize_without_payouts_allocates_nothing(ledger, vault, running, trio, submit, coordinator, assert_events):
    agreement_id, round_id = running
    for partner in trio:
        submit(agreement_id, round_id, partner)
    free = vault.unallocated(agreement_id)
    tx = ledger.finalizeRound(agreement_id, round_id, AGGREGATE_DIGEST, REPORT_DIGEST, ZERO, 0, {"from": coordinator})
    assert [event.name for event in tx.events] == ["RoundFinalized", "EpsilonsAtClose"]
    assert vault.allocation(agreement_id, round_id).dict()["root"] == ZERO
    assert vault.unallocated(agreement_id) == free
    assert round_of(ledger, agreement_id, round_id)["status"] == FINALIZED


def test_finalize_accepts_after_deadline_with_missing_submissions(ledger, running, partner_a, submit, finalize):
    agreement_id, round_id = running
    submit(agreement_id, round_id, partner_a)
    advance(ROUND_LENGTH + 1)
    finalize(agreement_id, round_id, {partner_a: 10**18})
    recorded = round_of(ledger, agreement_id, round_id)
    assert (recorded["status"], recorded["submissions"], recorded["payoutTotal"]) == (FINALIZED, 1, 10**18)


def test_finalize_accepts_round_without_any_submission_after_deadline(ledger, running, finalize):
    agreement_id, round_id = running
    advance(ROUND_LENGTH + 1)
    finalize(agreement_id, round_id)
    assert round_of(ledger, agreement_id, round_id)["status"] == FINALIZED


def test_finalize_refuses_allocation_of_funds_already_allocated(ledger, vault, make_agreement, trio, run_round):
    thin = make_agreement(trio, fund=250 * 10**18)
    run_round(thin, {trio[0]: 200 * 10**18})
    with reverts_with("RewardVaultInsufficientUnallocated", thin, 50 * 10**18, 200 * 10**18):
        run_round(thin, {trio[0]: 200 * 10**18})
    assert vault.unallocated(thin) == 50 * 10**18


@pytest.mark.parametrize("caller", ["admin", "auditor", "partner_a", "rando"])
def test_finalize_refuses_non_coordinator(ledger, running, caller, request):
    agreement_id, round_id = running
    account = request.getfixturevalue(caller)
    advance(ROUND_LENGTH + 1)
    with reverts_with("RoundLedgerNotCoordinator", account):
        ledger.finalizeRound(agreement_id, round_id, AGGREGATE_DIGEST, REPORT_DIGEST, ZERO, 0, {"from": account})
    assert round_of(ledger, agreement_id, round_id)["status"] == OPEN


def test_finalize_accepts_agreement_under_amendment(
    ledger, agreements, running, coordinator, make_terms, trio, finalize
):
    # An amendment mid-round stops new submissions but must not strand the round.
    agreement_id, round_id = running
    agreements.amend(agreement_id, make_terms(trio, termsDigest=digest_of("v2")), {"from": coordinator})
    advance(ROUND_LENGTH + 1)
    finalize(agreement_id, round_id)
    assert round_of(ledger, agreement_id, round_id)["status"] == FINALIZED


# ---------------------------------------------------------------------------------------------------- views


def test_stake_is_locked_while_round_open(ledger, running, partner_a):
    assert ledger.isStakeLocked(running[0], partner_a)


def test_stake_is_locked_during_dispute_window(ledger, active_agreement, run_round, partner_a):
    run_round(active_agreement)
    assert ledger.isStakeLocked(active_agreement, partner_a)
    advance(DISPUTE_WINDOW + 1)
    assert not ledger.isStakeLocked(active_agreement, partner_a)


def test_stake_is_free_before_any_round(ledger, active_agreement, partner_a):
    assert not ledger.isStakeLocked(active_agreement, partner_a)


def test_claim_is_not_blocked_without_challenge(ledger, active_agreement, run_round, partner_a):
    round_id, _ = run_round(active_agreement, {partner_a: 1})
    assert not ledger.isClaimBlocked(active_agreement, round_id, partner_a)
