"""RewardVault with reward tokens that misbehave: one whose transfers return nothing (USDT-style), one that
burns a fee on every transfer (the books must count what arrived), and one that calls back into the vault
from inside a transfer (every value-moving entry point must refuse the re-entry, and nothing may move)."""

import brownie
import pytest
from conftest import (
    DISPUTE_WINDOW,
    REWARD_PER_ROUND,
    STAKE,
    advance,
    digest_of,
    reverts_with,
)

pytestmark = pytest.mark.usefixtures("synced_clock")

PROPOSED, ACTIVE = 1, 2
FUND = 3 * REWARD_PER_ROUND
FEE_BPS = 100
REASON = digest_of("terminated")


def after_fee(amount: int) -> int:
    return amount - amount * FEE_BPS // 10_000


def gross_for(net: int) -> int:
    """The smallest transfer of the fee token that delivers at least `net`."""
    gross = net * 10_000 // (10_000 - FEE_BPS)
    while after_fee(gross) < net:
        gross += 1
    return gross


@pytest.fixture(scope="module")
def trio(partner_a, partner_b, partner_c):
    return [partner_a, partner_b, partner_c]


@pytest.fixture(scope="module")
def hostile_agreement(make_agreement, vault, admin, coordinator, trio):
    """hostile_agreement(reward_token, stake=STAKE, fund=FUND) -> agreement id: the trio's agreement paid in
    `reward_token`, which is minted to them and the coordinator; each party stakes `stake` and the
    coordinator funds `fund` (amounts sent, so a fee token credits less)."""

    def _hostile_agreement(reward_token, stake=STAKE, fund=FUND):
        for holder in (coordinator, *trio):
            reward_token.mint(holder, 10_000 * 10**18, {"from": admin})
        agreement_id = make_agreement(trio, stake=False, rewardToken=reward_token)
        for party in trio:
            reward_token.approve(vault, stake, {"from": party})
            vault.stake(agreement_id, stake, {"from": party})
        if fund:
            reward_token.approve(vault, fund, {"from": coordinator})
            vault.fund(agreement_id, fund, {"from": coordinator})
        return agreement_id

    return _hostile_agreement


def snapshot(vault, reward_token, agreement_id, *holders):
    """Everything that must not change when a call is refused."""
    return (
        vault.pool(agreement_id).dict(),
        [vault.stakeOf(agreement_id, h) for h in holders],
        [reward_token.balanceOf(h) for h in (vault, *holders)],
    )


# ------------------------------------------------------------------------------------------ no-return token


def test_no_return_token_stakes_funds_and_activates(
    vault, agreements, no_return_token, hostile_agreement, trio, assert_books
):
    agreement_id = hostile_agreement(no_return_token)
    assert agreements.agreementState(agreement_id)[0] == ACTIVE
    assert [vault.stakeOf(agreement_id, p) for p in trio] == [STAKE] * 3
    assert vault.pool(agreement_id).dict()["funded"] == FUND
    assert no_return_token.balanceOf(vault) == FUND + 3 * STAKE
    assert_books(agreement_id)


def test_no_return_token_claim_pays_partner(vault, no_return_token, hostile_agreement, run_round, trio, assert_books):
    agreement_id = hostile_agreement(no_return_token)
    round_id, tree = run_round(agreement_id, {trio[0]: 70 * 10**18, trio[1]: 30 * 10**18})
    advance(DISPUTE_WINDOW)
    before = no_return_token.balanceOf(trio[0])
    vault.claim(agreement_id, round_id, 70 * 10**18, tree.proof(str(trio[0])), {"from": trio[0]})
    assert no_return_token.balanceOf(trio[0]) == before + 70 * 10**18
    assert_books(agreement_id)


def test_no_return_token_unstake_and_reclaim_after_termination(
    vault, agreements, no_return_token, hostile_agreement, trio, coordinator, treasury, assert_books
):
    agreement_id = hostile_agreement(no_return_token)
    agreements.terminate(agreement_id, REASON, {"from": coordinator})
    for party in trio:
        vault.unstake(agreement_id, STAKE, {"from": party})
    before = no_return_token.balanceOf(coordinator)
    vault.reclaim(agreement_id, {"from": coordinator})  # the coordinator funded the pool
    assert no_return_token.balanceOf(coordinator) == before + FUND
    assert no_return_token.balanceOf(vault) == 0
    assert_books(agreement_id)


def test_no_return_token_failed_transfer_is_not_taken_for_success(
    vault, no_return_token, hostile_agreement, coordinator, assert_books
):
    # A no-return token signals failure only by reverting; the vault must not book a transfer that failed.
    agreement_id = hostile_agreement(no_return_token)
    before = snapshot(vault, no_return_token, agreement_id, coordinator)
    no_return_token.approve(vault, 5, {"from": coordinator})
    with brownie.reverts("allowance"):
        vault.fund(agreement_id, 6, {"from": coordinator})
    assert snapshot(vault, no_return_token, agreement_id, coordinator) == before
    assert_books(agreement_id)


# --------------------------------------------------------------------------------------- fee-on-transfer token


def test_fee_token_stake_credits_what_arrived(
    vault, fee_token, hostile_agreement, partner_a, assert_events, assert_books
):
    agreement_id = hostile_agreement(fee_token, stake=gross_for(STAKE), fund=0)
    fee_token.approve(vault, 1000, {"from": partner_a})
    held = vault.stakeOf(agreement_id, partner_a)
    tx = vault.stake(agreement_id, 1000, {"from": partner_a})
    assert_events(
        tx,
        ("Staked", {"agreementId": agreement_id, "party": partner_a, "amount": 990, "totalStake": held + 990}),
        emitter=vault,
    )
    assert vault.stakeOf(agreement_id, partner_a) == held + 990
    assert_books(agreement_id)


def test_fee_token_fund_credits_what_arrived(
    vault, fee_token, hostile_agreement, coordinator, assert_events, assert_books
):
    agreement_id = hostile_agreement(fee_token, stake=gross_for(STAKE), fund=0)
    fee_token.approve(vault, 10_000, {"from": coordinator})
    tx = vault.fund(agreement_id, 10_000, {"from": coordinator})
    assert_events(tx, ("Funded", {"agreementId": agreement_id, "funder": coordinator, "amount": 9_900}), emitter=vault)
    assert vault.pool(agreement_id).dict()["funded"] == 9_900
    assert vault.unallocated(agreement_id) == 9_900
    assert_books(agreement_id)


def test_fee_token_stake_of_the_nominal_requirement_falls_short(vault, agreements, fee_token, hostile_agreement, trio):
    # Staking exactly the required amount delivers 1% less, so the agreement is not activated on it.
    agreement_id = hostile_agreement(fee_token, stake=STAKE, fund=0)
    assert [vault.stakeOf(agreement_id, p) for p in trio] == [after_fee(STAKE)] * 3
    assert agreements.agreementState(agreement_id)[0] == PROPOSED
    assert agreements.pendingParty(agreement_id) == (trio[0], False)


def test_fee_token_topped_up_stake_activates(vault, agreements, fee_token, hostile_agreement, trio):
    agreement_id = hostile_agreement(fee_token, stake=STAKE, fund=0)
    for party in trio:
        shortfall = STAKE - vault.stakeOf(agreement_id, party)
        fee_token.approve(vault, gross_for(shortfall), {"from": party})
        vault.stake(agreement_id, gross_for(shortfall), {"from": party})
    assert agreements.agreementState(agreement_id)[0] == ACTIVE


def test_fee_token_books_match_balance_through_a_whole_agreement(
    vault, agreements, fee_token, hostile_agreement, run_round, trio, coordinator, treasury, assert_books
):
    agreement_id = hostile_agreement(fee_token, stake=gross_for(STAKE))
    funded = vault.pool(agreement_id).dict()["funded"]
    assert funded == after_fee(FUND)
    round_id, tree = run_round(agreement_id, {trio[0]: 100 * 10**18, trio[1]: 50 * 10**18})
    assert_books(agreement_id)
    advance(DISPUTE_WINDOW)
    before = fee_token.balanceOf(trio[0])
    vault.claim(agreement_id, round_id, 100 * 10**18, tree.proof(str(trio[0])), {"from": trio[0]})
    assert fee_token.balanceOf(trio[0]) == before + after_fee(100 * 10**18)
    assert_books(agreement_id)
    agreements.terminate(agreement_id, REASON, {"from": coordinator})
    for party in trio:
        vault.unstake(agreement_id, vault.stakeOf(agreement_id, party), {"from": party})
    vault.reclaim(agreement_id, {"from": coordinator})
    assert_books(agreement_id)
    # What is left is exactly b's unclaimed reward: the books never promised more than the vault holds.
    assert fee_token.balanceOf(vault) == vault.claimable(agreement_id) == 50 * 10**18


# ----------------------------------------------------------------------------------------- re-entrant token


@pytest.fixture
def reentrant_round(vault, reentrant_token, hostile_agreement, run_round, trio):
    """An agreement paid in the re-entrant token with a claimable round paying a 60 and b 40:
    (agreement id, round id, tree)."""
    agreement_id = hostile_agreement(reentrant_token)
    round_id, tree = run_round(agreement_id, {trio[0]: 60 * 10**18, trio[1]: 40 * 10**18})
    advance(DISPUTE_WINDOW)
    return agreement_id, round_id, tree


def test_reentrant_token_pays_claim_when_not_armed(vault, reentrant_token, reentrant_round, partner_a, assert_books):
    # Control: the token itself works; the refusals below come from the re-entry alone.
    agreement_id, round_id, tree = reentrant_round
    before = reentrant_token.balanceOf(partner_a)
    vault.claim(agreement_id, round_id, 60 * 10**18, tree.proof(str(partner_a)), {"from": partner_a})
    assert reentrant_token.balanceOf(partner_a) == before + 60 * 10**18
    assert_books(agreement_id)


def test_claim_refuses_reentry_into_claim(vault, reentrant_token, reentrant_round, partner_a, partner_b, assert_books):
    agreement_id, round_id, tree = reentrant_round
    # While paying a, the token tries to claim b's reward (the re-entering caller is the token itself).
    reentrant_token.arm(
        vault, vault.claim.encode_input(agreement_id, round_id, 40 * 10**18, tree.proof(str(partner_b)))
    )
    before = snapshot(vault, reentrant_token, agreement_id, partner_a, partner_b)
    with reverts_with("ReentrancyGuardReentrantCall"):
        vault.claim(agreement_id, round_id, 60 * 10**18, tree.proof(str(partner_a)), {"from": partner_a})
    assert snapshot(vault, reentrant_token, agreement_id, partner_a, partner_b) == before
    assert not vault.hasClaimed(agreement_id, round_id, partner_a)
    assert_books(agreement_id)


def test_unstake_refuses_reentry_into_unstake(
    vault, agreements, reentrant_token, reentrant_round, partner_a, coordinator, assert_books
):
    agreement_id, _, _ = reentrant_round
    agreements.terminate(agreement_id, REASON, {"from": coordinator})
    reentrant_token.arm(vault, vault.unstake.encode_input(agreement_id, STAKE))
    before = snapshot(vault, reentrant_token, agreement_id, partner_a)
    with reverts_with("ReentrancyGuardReentrantCall"):
        vault.unstake(agreement_id, STAKE, {"from": partner_a})
    assert snapshot(vault, reentrant_token, agreement_id, partner_a) == before
    assert_books(agreement_id)


def test_fund_refuses_reentry_into_stake(vault, reentrant_token, reentrant_round, coordinator, partner_a, assert_books):
    # The pull into the vault (transferFrom) is a transfer too.
    agreement_id, _, _ = reentrant_round
    reentrant_token.approve(vault, 10**18, {"from": coordinator})
    reentrant_token.arm(vault, vault.stake.encode_input(agreement_id, 1))
    before = snapshot(vault, reentrant_token, agreement_id, coordinator, partner_a)
    with reverts_with("ReentrancyGuardReentrantCall"):
        vault.fund(agreement_id, 10**18, {"from": coordinator})
    assert snapshot(vault, reentrant_token, agreement_id, coordinator, partner_a) == before
    assert_books(agreement_id)


def test_reclaim_refuses_reentry_into_claim(
    vault, agreements, reentrant_token, reentrant_round, coordinator, treasury, partner_b, assert_books
):
    agreement_id, round_id, tree = reentrant_round
    agreements.terminate(agreement_id, REASON, {"from": coordinator})
    reentrant_token.arm(
        vault, vault.claim.encode_input(agreement_id, round_id, 40 * 10**18, tree.proof(str(partner_b)))
    )
    before = snapshot(vault, reentrant_token, agreement_id, treasury, partner_b)
    with reverts_with("ReentrancyGuardReentrantCall"):
        vault.reclaim(agreement_id, {"from": coordinator})
    assert snapshot(vault, reentrant_token, agreement_id, treasury, partner_b) == before
    assert_books(agreement_id)


def test_slash_refuses_reentry_into_forfeit(
    vault, ledger, reentrant_token, hostile_agreement, run_round, trio, auditor, admin, treasury, assert_books
):
    agreement_id = hostile_agreement(reentrant_token)
    round_id, tree = run_round(agreement_id, {trio[1]: 40 * 10**18})
    challenge_id = ledger.challenge(
        agreement_id, round_id, trio[1], digest_of("evidence"), {"from": auditor}
    ).return_value
    ledger.resolveChallenge(challenge_id, True, digest_of("ruling"), {"from": admin})
    advance(DISPUTE_WINDOW)
    reentrant_token.arm(vault, vault.forfeitReward.encode_input(challenge_id, 40 * 10**18, tree.proof(str(trio[1]))))
    before = snapshot(vault, reentrant_token, agreement_id, treasury, trio[1])
    with reverts_with("ReentrancyGuardReentrantCall"):
        vault.slash(challenge_id, {"from": treasury})
    assert snapshot(vault, reentrant_token, agreement_id, treasury, trio[1]) == before
    assert ledger.challengeOf(challenge_id).dict()["status"] == 2  # still Upheld: the execution was undone too
    assert_books(agreement_id)
