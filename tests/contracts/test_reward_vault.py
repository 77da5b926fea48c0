"""RewardVault: binding the ledger, funding, staking and unstaking, claims proven by a PayoutTree, reclaiming
an ended agreement's pool, and the books (funded == paid + claimable + slashed + unallocated + reclaimed,
and the token balance behind them) after each scenario. Slashing and forfeits are in test_challenges.py,
hostile tokens in test_hostile_tokens.py."""

import pytest
from brownie import RewardVault
from conftest import (
    AGGREGATE_DIGEST,
    DISPUTE_WINDOW,
    REPORT_DIGEST,
    REWARD_PER_ROUND,
    ROUND_LENGTH,
    STAKE,
    advance,
    at_block,
    digest_of,
    reverts_with,
)

from lepton_ledger.chain.merkle import PayoutTree

pytestmark = pytest.mark.usefixtures("synced_clock")

ZERO_ADDRESS = "0x" + "00" * 20
PROPOSED, ACTIVE, TERMINATED = 1, 2, 3
FUNDED = 10 * REWARD_PER_ROUND
REASON = digest_of("terminated")
EVIDENCE = digest_of("evidence")


@pytest.fixture(scope="module")
def trio(partner_a, partner_b, partner_c):
    return [partner_a, partner_b, partner_c]


@pytest.fixture
def paid_round(active_agreement, run_round, partner_a, partner_b, partner_c):
    """A finalized round of the active agreement paying a 120, b 100 and c 80 tokens: (round id, tree)."""
    payouts = {partner_a: 120 * 10**18, partner_b: 100 * 10**18, partner_c: 80 * 10**18}
    return run_round(active_agreement, payouts)


@pytest.fixture
def claimable_round(paid_round):
    """`paid_round` after its dispute window."""
    advance(DISPUTE_WINDOW)
    return paid_round


def pool_of(vault, agreement_id) -> dict:
    return vault.pool(agreement_id).dict()


def terminate(agreements, agreement_id, coordinator):
    agreements.terminate(agreement_id, REASON, {"from": coordinator})


# ----------------------------------------------------------------------------------------------- deployment


def test_constructor_binds_registries_and_slash_recipient(vault, partners, agreements, ledger, treasury):
    assert (vault.partners(), vault.agreements()) == (partners, agreements)
    assert vault.slashRecipient() == treasury
    assert vault.roundLedger() == ledger


def test_constructor_refuses_zero_slash_recipient(partners, agreements, admin):
    with reverts_with("RewardVaultZeroAddress"):
        RewardVault.deploy(partners, agreements, ZERO_ADDRESS, {"from": admin})


def test_set_round_ledger_binds_ledger(partners, agreements, admin, treasury, rando, assert_events):
    fresh = RewardVault.deploy(partners, agreements, treasury, {"from": admin})
    tx = fresh.setRoundLedger(rando, {"from": admin})
    assert fresh.roundLedger() == rando
    assert_events(tx, ("LedgerSet", {"ledger": rando}))


def test_set_round_ledger_refuses_second_binding(vault, ledger, admin, rando):
    with reverts_with("RewardVaultLedgerAlreadySet", ledger):
        vault.setRoundLedger(rando, {"from": admin})
    assert vault.roundLedger() == ledger


def test_set_round_ledger_refuses_zero_address(partners, agreements, admin, treasury):
    fresh = RewardVault.deploy(partners, agreements, treasury, {"from": admin})
    with reverts_with("RewardVaultZeroAddress"):
        fresh.setRoundLedger(ZERO_ADDRESS, {"from": admin})
    assert fresh.roundLedger() == ZERO_ADDRESS


@pytest.mark.parametrize("caller", ["coordinator", "auditor", "rando"])
def test_set_round_ledger_refuses_non_admin(partners, agreements, admin, treasury, caller, request):
    fresh = RewardVault.deploy(partners, agreements, treasury, {"from": admin})
    account = request.getfixturevalue(caller)
    with reverts_with("RewardVaultNotAdmin", account):
        fresh.setRoundLedger(account, {"from": account})
    assert fresh.roundLedger() == ZERO_ADDRESS


# ---------------------------------------------------------------------------------------------------- fund


def test_fund_credits_pool_and_moves_tokens(vault, token, active_agreement, coordinator, assert_events, assert_books):
    before = token.balanceOf(coordinator), token.balanceOf(vault)
    token.approve(vault, 50 * 10**18, {"from": coordinator})
    tx = vault.fund(active_agreement, 50 * 10**18, {"from": coordinator})
    assert_events(
        tx,
        ("Transfer", {"from": coordinator, "to": vault, "value": 50 * 10**18}),
        ("Funded", {"agreementId": active_agreement, "funder": coordinator, "amount": 50 * 10**18}),
    )
    assert pool_of(vault, active_agreement)["funded"] == FUNDED + 50 * 10**18
    assert vault.unallocated(active_agreement) == FUNDED + 50 * 10**18
    assert (token.balanceOf(coordinator), token.balanceOf(vault)) == (before[0] - 50 * 10**18, before[1] + 50 * 10**18)
    assert_books(active_agreement)


def test_fund_accepts_anyone(vault, token, active_agreement, admin, rando):
    token.mint(rando, 7, {"from": admin})
    token.approve(vault, 7, {"from": rando})
    vault.fund(active_agreement, 7, {"from": rando})
    assert pool_of(vault, active_agreement)["funded"] == FUNDED + 7


def test_fund_accepts_proposed_agreement(vault, token, make_agreement, trio, coordinator):
    proposed = make_agreement(trio, sign=False, stake=False)
    token.approve(vault, 10, {"from": coordinator})
    vault.fund(proposed, 10, {"from": coordinator})
    assert pool_of(vault, proposed)["funded"] == 10


def test_fund_refuses_zero_amount(vault, active_agreement, coordinator):
    with reverts_with("RewardVaultZeroAmount"):
        vault.fund(active_agreement, 0, {"from": coordinator})
    assert pool_of(vault, active_agreement)["funded"] == FUNDED


def test_fund_refuses_unknown_agreement(vault, token, coordinator):
    token.approve(vault, 10, {"from": coordinator})
    held = token.balanceOf(vault)
    with reverts_with("RewardVaultUnknownAgreement", 42):
        vault.fund(42, 10, {"from": coordinator})
    assert token.balanceOf(vault) == held
    assert pool_of(vault, 42)["funded"] == 0


def test_fund_refuses_terminated_agreement(vault, token, agreements, active_agreement, coordinator):
    terminate(agreements, active_agreement, coordinator)
    token.approve(vault, 10, {"from": coordinator})
    held = token.balanceOf(vault)
    with reverts_with("RewardVaultAgreementTerminated", active_agreement):
        vault.fund(active_agreement, 10, {"from": coordinator})
    assert (pool_of(vault, active_agreement)["funded"], token.balanceOf(vault)) == (FUNDED, held)


def test_fund_refuses_without_allowance(vault, token, active_agreement, coordinator):
    with reverts_with("ERC20InsufficientAllowance", vault, 0, 10):
        vault.fund(active_agreement, 10, {"from": coordinator})
    assert pool_of(vault, active_agreement)["funded"] == FUNDED


# --------------------------------------------------------------------------------------------------- stake


def test_stake_records_stake_and_moves_tokens(vault, token, active_agreement, partner_a, assert_events, assert_books):
    token.approve(vault, 5 * 10**18, {"from": partner_a})
    before = token.balanceOf(partner_a)
    tx = vault.stake(active_agreement, 5 * 10**18, {"from": partner_a})
    assert_events(
        tx,
        ("Transfer", {"from": partner_a, "to": vault, "value": 5 * 10**18}),
        (
            "Staked",
            {
                "agreementId": active_agreement,
                "party": partner_a,
                "amount": 5 * 10**18,
                "totalStake": STAKE + 5 * 10**18,
            },
        ),
    )
    assert vault.stakeOf(active_agreement, partner_a) == STAKE + 5 * 10**18
    assert pool_of(vault, active_agreement)["staked"] == 3 * STAKE + 5 * 10**18
    assert token.balanceOf(partner_a) == before - 5 * 10**18
    assert_books(active_agreement)


def test_last_stake_activates_agreement(vault, token, agreements, make_agreement, trio, assert_events):
    agreement_id = make_agreement(trio, stake=False)
    for party in trio[:2]:
        token.approve(vault, STAKE, {"from": party})
        vault.stake(agreement_id, STAKE, {"from": party})
    assert agreements.agreementState(agreement_id)[0] == PROPOSED
    token.approve(vault, STAKE, {"from": trio[2]})
    tx = vault.stake(agreement_id, STAKE, {"from": trio[2]})
    assert_events(
        tx,
        ("Transfer", {"from": trio[2], "to": vault, "value": STAKE}),
        ("Staked", {"agreementId": agreement_id, "party": trio[2], "amount": STAKE, "totalStake": STAKE}),
        ("AgreementActivated", {"agreementId": agreement_id, "version": 1}),
    )
    assert agreements.agreementState(agreement_id)[0] == ACTIVE


def test_stake_before_signing_does_not_activate(vault, token, agreements, make_agreement, trio):
    agreement_id = make_agreement(trio, sign=False)
    assert [vault.stakeOf(agreement_id, p) for p in trio] == [STAKE] * 3
    assert agreements.agreementState(agreement_id)[0] == PROPOSED


def test_stake_refuses_non_party(vault, token, active_agreement, rando, register, admin):
    register(rando)
    token.mint(rando, STAKE, {"from": admin})
    token.approve(vault, STAKE, {"from": rando})
    with reverts_with("RewardVaultNotParty", active_agreement, rando):
        vault.stake(active_agreement, STAKE, {"from": rando})
    assert vault.stakeOf(active_agreement, rando) == 0
    assert token.balanceOf(rando) == STAKE


def test_stake_refuses_suspended_partner(vault, token, partners, active_agreement, partner_a, coordinator):
    partners.suspend(partner_a, REASON, {"from": coordinator})
    token.approve(vault, 1, {"from": partner_a})
    with reverts_with("RewardVaultPartnerNotApproved", partner_a):
        vault.stake(active_agreement, 1, {"from": partner_a})
    assert vault.stakeOf(active_agreement, partner_a) == STAKE


def test_stake_refuses_zero_amount(vault, active_agreement, partner_a):
    with reverts_with("RewardVaultZeroAmount"):
        vault.stake(active_agreement, 0, {"from": partner_a})
    assert vault.stakeOf(active_agreement, partner_a) == STAKE


def test_stake_refuses_terminated_agreement(vault, token, agreements, active_agreement, partner_a, coordinator):
    terminate(agreements, active_agreement, coordinator)
    token.approve(vault, 1, {"from": partner_a})
    with reverts_with("RewardVaultAgreementTerminated", active_agreement):
        vault.stake(active_agreement, 1, {"from": partner_a})
    assert vault.stakeOf(active_agreement, partner_a) == STAKE


def test_stake_refuses_unknown_agreement(vault, partner_a):
    with reverts_with("RewardVaultUnknownAgreement", 42):
        vault.stake(42, 1, {"from": partner_a})


# ------------------------------------------------------------------------------------------------- unstake


def test_unstake_refuses_agreement_in_force(vault, token, active_agreement, partner_a):
    before = token.balanceOf(partner_a)
    with reverts_with("RewardVaultAgreementInForce", active_agreement):
        vault.unstake(active_agreement, STAKE, {"from": partner_a})
    assert (vault.stakeOf(active_agreement, partner_a), token.balanceOf(partner_a)) == (STAKE, before)


def test_unstake_after_termination_returns_stake(
    vault, token, agreements, active_agreement, partner_a, coordinator, assert_events, assert_books
):
    terminate(agreements, active_agreement, coordinator)
    before = token.balanceOf(partner_a)
    tx = vault.unstake(active_agreement, STAKE, {"from": partner_a})
    assert_events(
        tx,
        ("Unstaked", {"agreementId": active_agreement, "party": partner_a, "amount": STAKE, "totalStake": 0}),
        ("Transfer", {"from": vault, "to": partner_a, "value": STAKE}),
    )
    assert vault.stakeOf(active_agreement, partner_a) == 0
    assert pool_of(vault, active_agreement)["unstaked"] == STAKE
    assert token.balanceOf(partner_a) == before + STAKE
    assert_books(active_agreement)


def test_unstake_in_parts(vault, agreements, active_agreement, partner_b, coordinator, assert_books):
    terminate(agreements, active_agreement, coordinator)
    vault.unstake(active_agreement, STAKE // 4, {"from": partner_b})
    tx = vault.unstake(active_agreement, STAKE // 2, {"from": partner_b})
    assert tx.events["Unstaked"]["totalStake"] == STAKE // 4
    assert vault.stakeOf(active_agreement, partner_b) == STAKE // 4
    assert_books(active_agreement)


def test_unstake_after_exit_returns_stake(vault, token, agreements, make_agreement, trio, assert_books):
    short = make_agreement(trio, fund=REWARD_PER_ROUND)
    end = agreements.terms(short)[9]
    advance(end - agreements.terms(short)[8])
    agreements.exit(short, {"from": trio[1]})
    before = token.balanceOf(trio[1])
    vault.unstake(short, STAKE, {"from": trio[1]})
    assert token.balanceOf(trio[1]) == before + STAKE
    assert_books(short)


def test_unstake_refuses_party_that_did_not_exit(vault, agreements, make_agreement, trio):
    short = make_agreement(trio)
    advance(agreements.terms(short)[9] - agreements.terms(short)[8])
    agreements.exit(short, {"from": trio[1]})
    with reverts_with("RewardVaultAgreementInForce", short):
        vault.unstake(short, STAKE, {"from": trio[0]})
    assert vault.stakeOf(short, trio[0]) == STAKE


def test_unstake_refuses_while_round_open(vault, agreements, make_agreement, trio, open_round, coordinator):
    agreement_id = make_agreement(trio, fund=REWARD_PER_ROUND)
    open_round(agreement_id)
    advance(agreements.terms(agreement_id)[9] - agreements.terms(agreement_id)[8])
    agreements.exit(agreement_id, {"from": trio[0]})
    with reverts_with("RewardVaultStakeLocked", agreement_id, trio[0]):
        vault.unstake(agreement_id, STAKE, {"from": trio[0]})
    assert vault.stakeOf(agreement_id, trio[0]) == STAKE


def test_unstake_refuses_during_dispute_window(vault, agreements, active_agreement, run_round, partner_a, coordinator):
    run_round(active_agreement)
    terminate(agreements, active_agreement, coordinator)
    with reverts_with("RewardVaultStakeLocked", active_agreement, partner_a):
        vault.unstake(active_agreement, STAKE, {"from": partner_a})
    advance(DISPUTE_WINDOW)
    vault.unstake(active_agreement, STAKE, {"from": partner_a})
    assert vault.stakeOf(active_agreement, partner_a) == 0


def test_unstake_after_terminated_agreements_open_round_is_closed(
    vault, ledger, agreements, active_agreement, open_round, partner_a, coordinator, assert_books
):
    round_id = open_round(active_agreement)
    terminate(agreements, active_agreement, coordinator)
    with reverts_with("RewardVaultStakeLocked", active_agreement, partner_a):
        vault.unstake(active_agreement, STAKE, {"from": partner_a})
    advance(ROUND_LENGTH + 1)
    ledger.finalizeRound(
        active_agreement, round_id, AGGREGATE_DIGEST, REPORT_DIGEST, b"\x00" * 32, 0, {"from": coordinator}
    )
    advance(DISPUTE_WINDOW)
    vault.unstake(active_agreement, STAKE, {"from": partner_a})
    assert vault.stakeOf(active_agreement, partner_a) == 0
    assert_books(active_agreement)


def test_unstake_refuses_more_than_held(vault, agreements, active_agreement, partner_a, coordinator):
    terminate(agreements, active_agreement, coordinator)
    with reverts_with("RewardVaultInsufficientStake", active_agreement, partner_a, STAKE, STAKE + 1):
        vault.unstake(active_agreement, STAKE + 1, {"from": partner_a})
    assert vault.stakeOf(active_agreement, partner_a) == STAKE


def test_unstake_refuses_non_party(vault, agreements, active_agreement, rando, coordinator):
    terminate(agreements, active_agreement, coordinator)
    with reverts_with("RewardVaultInsufficientStake", active_agreement, rando, 0, 1):
        vault.unstake(active_agreement, 1, {"from": rando})


def test_unstake_refuses_zero_amount(vault, agreements, active_agreement, partner_a, coordinator):
    terminate(agreements, active_agreement, coordinator)
    with reverts_with("RewardVaultZeroAmount"):
        vault.unstake(active_agreement, 0, {"from": partner_a})


def test_unstake_refuses_unknown_agreement(vault, partner_a):
    with reverts_with("RewardVaultUnknownAgreement", 42):
        vault.unstake(42, 1, {"from": partner_a})


# ---------------------------------------------------------------------------------- allocate / revoke (ledger)


@pytest.mark.parametrize("caller", ["admin", "coordinator", "rando"])
def test_allocate_refuses_anyone_but_ledger(vault, active_agreement, caller, request):
    account = request.getfixturevalue(caller)
    with reverts_with("RewardVaultNotLedger", account):
        vault.allocate(active_agreement, 1, digest_of("root"), 1, 0, {"from": account})
    assert pool_of(vault, active_agreement)["allocated"] == 0


@pytest.mark.parametrize("caller", ["admin", "coordinator", "rando"])
def test_revoke_allocation_refuses_anyone_but_ledger(vault, active_agreement, paid_round, caller, request):
    account = request.getfixturevalue(caller)
    round_id, tree = paid_round
    with reverts_with("RewardVaultNotLedger", account):
        vault.revokeAllocation(active_agreement, round_id, {"from": account})
    assert vault.allocation(active_agreement, round_id).dict()["revoked"] is False
    assert pool_of(vault, active_agreement)["allocated"] == tree.total


# --------------------------------------------------------------------------------------------------- claim


def test_claim_pays_partner_and_records_it(
    vault, token, active_agreement, claimable_round, partner_b, assert_events, assert_books
):
    round_id, tree = claimable_round
    before = token.balanceOf(partner_b)
    tx = vault.claim(active_agreement, round_id, 100 * 10**18, tree.proof(str(partner_b)), {"from": partner_b})
    assert_events(
        tx,
        ("Claimed", {"agreementId": active_agreement, "round": round_id, "partner": partner_b, "amount": 100 * 10**18}),
        ("Transfer", {"from": vault, "to": partner_b, "value": 100 * 10**18}),
    )
    assert token.balanceOf(partner_b) == before + 100 * 10**18
    assert vault.hasClaimed(active_agreement, round_id, partner_b)
    assert vault.allocation(active_agreement, round_id).dict()["claimed"] == 100 * 10**18
    assert pool_of(vault, active_agreement)["paid"] == 100 * 10**18
    assert vault.claimable(active_agreement) == tree.total - 100 * 10**18
    assert_books(active_agreement)


def test_claim_by_every_partner_empties_allocation(vault, active_agreement, claimable_round, trio, assert_books):
    round_id, tree = claimable_round
    for partner in trio:
        vault.claim(active_agreement, round_id, tree.amount(str(partner)), tree.proof(str(partner)), {"from": partner})
    assert vault.claimable(active_agreement) == 0
    assert pool_of(vault, active_agreement)["paid"] == tree.total
    assert vault.unallocated(active_agreement) == FUNDED - tree.total
    assert_books(active_agreement)


def test_claim_with_single_payout_uses_empty_proof(vault, token, active_agreement, run_round, partner_c):
    round_id, tree = run_round(active_agreement, {partner_c: 42})
    advance(DISPUTE_WINDOW)
    assert tree.proof(str(partner_c)) == []
    before = token.balanceOf(partner_c)
    vault.claim(active_agreement, round_id, 42, [], {"from": partner_c})
    assert token.balanceOf(partner_c) == before + 42


def test_claim_opens_exactly_when_dispute_window_ends(vault, ledger, active_agreement, paid_round, partner_a):
    round_id, tree = paid_round
    claimable_at = vault.allocation(active_agreement, round_id).dict()["claimableAt"]
    assert claimable_at == ledger.round(active_agreement, round_id).dict()["finalizedAt"] + DISPUTE_WINDOW
    at_block(claimable_at)
    tx = vault.claim(
        active_agreement, round_id, 120 * 10**18, tree.proof(str(partner_a)), {"from": partner_a, "gas_limit": 10**6}
    )
    assert tx.timestamp == claimable_at
    assert vault.hasClaimed(active_agreement, round_id, partner_a)


def test_claim_refuses_one_second_before_dispute_window_ends(vault, active_agreement, paid_round, partner_a):
    round_id, tree = paid_round
    claimable_at = vault.allocation(active_agreement, round_id).dict()["claimableAt"]
    at_block(claimable_at - 1)
    with reverts_with("RewardVaultClaimNotOpen", active_agreement, round_id, claimable_at):
        vault.claim(
            active_agreement,
            round_id,
            120 * 10**18,
            tree.proof(str(partner_a)),
            {"from": partner_a, "gas_limit": 10**6},
        )
    assert not vault.hasClaimed(active_agreement, round_id, partner_a)


def test_claim_refuses_before_dispute_window_ends(vault, token, active_agreement, paid_round, partner_a):
    round_id, tree = paid_round
    claimable_at = vault.allocation(active_agreement, round_id).dict()["claimableAt"]
    before = token.balanceOf(partner_a)
    with reverts_with("RewardVaultClaimNotOpen", active_agreement, round_id, claimable_at):
        vault.claim(active_agreement, round_id, 120 * 10**18, tree.proof(str(partner_a)), {"from": partner_a})
    assert not vault.hasClaimed(active_agreement, round_id, partner_a)
    assert token.balanceOf(partner_a) == before


def test_claim_refuses_second_claim(vault, token, active_agreement, claimable_round, partner_a, assert_books):
    round_id, tree = claimable_round
    vault.claim(active_agreement, round_id, 120 * 10**18, tree.proof(str(partner_a)), {"from": partner_a})
    before = token.balanceOf(partner_a)
    with reverts_with("RewardVaultAlreadyClaimed", active_agreement, round_id, partner_a):
        vault.claim(active_agreement, round_id, 120 * 10**18, tree.proof(str(partner_a)), {"from": partner_a})
    assert token.balanceOf(partner_a) == before
    assert pool_of(vault, active_agreement)["paid"] == 120 * 10**18
    assert_books(active_agreement)


def test_claim_refuses_wrong_amount(vault, active_agreement, claimable_round, partner_a):
    round_id, tree = claimable_round
    with reverts_with("RewardVaultInvalidProof", active_agreement, round_id, partner_a, 121 * 10**18):
        vault.claim(active_agreement, round_id, 121 * 10**18, tree.proof(str(partner_a)), {"from": partner_a})
    assert not vault.hasClaimed(active_agreement, round_id, partner_a)
    assert pool_of(vault, active_agreement)["paid"] == 0


def test_claim_refuses_proof_of_another_partner(vault, active_agreement, claimable_round, partner_a, partner_b):
    round_id, tree = claimable_round
    with reverts_with("RewardVaultInvalidProof", active_agreement, round_id, partner_a, 120 * 10**18):
        vault.claim(active_agreement, round_id, 120 * 10**18, tree.proof(str(partner_b)), {"from": partner_a})
    assert not vault.hasClaimed(active_agreement, round_id, partner_a)


def test_claim_refuses_partners_leaf_claimed_by_someone_else(
    vault, active_agreement, claimable_round, partner_a, partner_b
):
    round_id, tree = claimable_round
    with reverts_with("RewardVaultInvalidProof", active_agreement, round_id, partner_b, 120 * 10**18):
        vault.claim(active_agreement, round_id, 120 * 10**18, tree.proof(str(partner_a)), {"from": partner_b})
    assert not vault.hasClaimed(active_agreement, round_id, partner_a)


def test_claim_refuses_proof_of_another_round(vault, active_agreement, claimable_round, run_round, trio):
    _, first_tree = claimable_round
    second, _ = run_round(active_agreement, {trio[0]: 1, trio[1]: 2})
    advance(DISPUTE_WINDOW)
    with reverts_with("RewardVaultInvalidProof", active_agreement, second, trio[0], 120 * 10**18):
        vault.claim(active_agreement, second, 120 * 10**18, first_tree.proof(str(trio[0])), {"from": trio[0]})


def test_claim_refuses_non_party(vault, active_agreement, run_round, rando, partner_a):
    # A payout root may name anyone; only parties can claim.
    round_id, tree = run_round(active_agreement, {rando: 5, partner_a: 5})
    advance(DISPUTE_WINDOW)
    with reverts_with("RewardVaultNotParty", active_agreement, rando):
        vault.claim(active_agreement, round_id, 5, tree.proof(str(rando)), {"from": rando})
    assert pool_of(vault, active_agreement)["paid"] == 0


def test_claim_refuses_round_without_allocation(vault, active_agreement, run_round, partner_a):
    round_id, _ = run_round(active_agreement)
    advance(DISPUTE_WINDOW)
    with reverts_with("RewardVaultNoAllocation", active_agreement, round_id):
        vault.claim(active_agreement, round_id, 0, [], {"from": partner_a})
    with reverts_with("RewardVaultNoAllocation", active_agreement, 9):
        vault.claim(active_agreement, 9, 0, [], {"from": partner_a})


def test_claim_refuses_beyond_allocation_of_inconsistent_root(
    vault, ledger, token, active_agreement, open_round, submit, trio, coordinator, assert_books
):
    # A root whose leaves add up to more than its total: the second claim would take other rounds' money.
    round_id = open_round(active_agreement)
    for party in trio:
        submit(active_agreement, round_id, party)
    tree = PayoutTree(active_agreement, round_id, {str(trio[0]): 200 * 10**18, str(trio[1]): 200 * 10**18})
    ledger.finalizeRound(
        active_agreement, round_id, AGGREGATE_DIGEST, REPORT_DIGEST, tree.root, 300 * 10**18, {"from": coordinator}
    )
    advance(DISPUTE_WINDOW)
    vault.claim(active_agreement, round_id, 200 * 10**18, tree.proof(str(trio[0])), {"from": trio[0]})
    before = token.balanceOf(trio[1])
    with reverts_with("RewardVaultAllocationExceeded", active_agreement, round_id, 200 * 10**18, 300 * 10**18):
        vault.claim(active_agreement, round_id, 200 * 10**18, tree.proof(str(trio[1])), {"from": trio[1]})
    assert token.balanceOf(trio[1]) == before
    assert not vault.hasClaimed(active_agreement, round_id, trio[1])
    assert_books(active_agreement)


def test_claim_refuses_while_challenge_pending(vault, ledger, active_agreement, paid_round, partner_b, auditor):
    round_id, tree = paid_round
    ledger.challenge(active_agreement, round_id, partner_b, EVIDENCE, {"from": auditor})
    advance(DISPUTE_WINDOW)
    with reverts_with("RewardVaultClaimBlocked", active_agreement, round_id, partner_b):
        vault.claim(active_agreement, round_id, 100 * 10**18, tree.proof(str(partner_b)), {"from": partner_b})
    assert not vault.hasClaimed(active_agreement, round_id, partner_b)


def test_claim_after_termination_still_pays(
    vault, agreements, active_agreement, claimable_round, partner_c, coordinator
):
    round_id, tree = claimable_round
    terminate(agreements, active_agreement, coordinator)
    vault.claim(active_agreement, round_id, 80 * 10**18, tree.proof(str(partner_c)), {"from": partner_c})
    assert vault.hasClaimed(active_agreement, round_id, partner_c)


def test_claims_of_one_agreement_leave_another_untouched(
    vault, make_agreement, active_agreement, claimable_round, trio, assert_books
):
    other = make_agreement(trio, fund=REWARD_PER_ROUND)
    round_id, tree = claimable_round
    vault.claim(active_agreement, round_id, 120 * 10**18, tree.proof(str(trio[0])), {"from": trio[0]})
    assert pool_of(vault, other)["paid"] == 0
    assert vault.unallocated(other) == REWARD_PER_ROUND
    assert not vault.hasClaimed(other, round_id, trio[0])
    assert_books(active_agreement, other)


# -------------------------------------------------------------------------------------------------- reclaim


def test_reclaim_after_termination_returns_unallocated(
    vault, token, agreements, active_agreement, paid_round, coordinator, treasury, assert_events, assert_books
):
    _, tree = paid_round
    terminate(agreements, active_agreement, coordinator)
    unallocated = FUNDED - tree.total
    before = token.balanceOf(coordinator)
    tx = vault.reclaim(active_agreement, {"from": coordinator})  # the coordinator funded the whole pool
    assert_events(
        tx,
        ("Reclaimed", {"agreementId": active_agreement, "funder": coordinator, "amount": unallocated}),
        ("Transfer", {"from": vault, "to": coordinator, "value": unallocated}),
    )
    assert token.balanceOf(coordinator) == before + unallocated
    assert pool_of(vault, active_agreement)["reclaimed"] == unallocated
    assert vault.unallocated(active_agreement) == 0
    assert vault.claimable(active_agreement) == tree.total
    assert_books(active_agreement)


def test_reclaim_leaves_allocated_rewards_claimable(
    vault, agreements, active_agreement, paid_round, trio, coordinator, assert_books
):
    round_id, tree = paid_round
    terminate(agreements, active_agreement, coordinator)
    vault.reclaim(active_agreement, {"from": coordinator})
    advance(DISPUTE_WINDOW)
    for partner in trio:
        vault.claim(active_agreement, round_id, tree.amount(str(partner)), tree.proof(str(partner)), {"from": partner})
    assert vault.claimable(active_agreement) == 0
    assert_books(active_agreement)


def test_reclaim_after_end_with_no_round_open(vault, agreements, active_agreement, run_round, coordinator):
    run_round(active_agreement)
    terms = agreements.terms(active_agreement)
    advance(terms[9] - terms[8])
    vault.reclaim(active_agreement, {"from": coordinator})
    assert vault.unallocated(active_agreement) == 0


def test_reclaim_refuses_running_agreement(vault, active_agreement, coordinator):
    with reverts_with("RewardVaultAgreementRunning", active_agreement):
        vault.reclaim(active_agreement, {"from": coordinator})
    assert vault.unallocated(active_agreement) == FUNDED


def test_reclaim_refuses_after_end_while_round_open(vault, agreements, active_agreement, open_round, coordinator):
    open_round(active_agreement)
    terms = agreements.terms(active_agreement)
    advance(terms[9] - terms[8])
    with reverts_with("RewardVaultAgreementRunning", active_agreement):
        vault.reclaim(active_agreement, {"from": coordinator})
    assert vault.unallocated(active_agreement) == FUNDED


def test_reclaim_refuses_nothing_to_reclaim(vault, agreements, active_agreement, coordinator):
    terminate(agreements, active_agreement, coordinator)
    vault.reclaim(active_agreement, {"from": coordinator})
    with reverts_with("RewardVaultNothingToReclaim", active_agreement):
        vault.reclaim(active_agreement, {"from": coordinator})
    assert pool_of(vault, active_agreement)["reclaimed"] == FUNDED


@pytest.mark.parametrize("caller", ["admin", "auditor", "partner_a", "rando"])
def test_reclaim_refuses_whoever_funded_nothing(vault, agreements, active_agreement, coordinator, caller, request):
    terminate(agreements, active_agreement, coordinator)
    account = request.getfixturevalue(caller)
    with reverts_with("RewardVaultNothingToReclaim", active_agreement):
        vault.reclaim(active_agreement, {"from": account})
    assert vault.unallocated(active_agreement) == FUNDED


def test_reclaim_refuses_unknown_agreement(vault, coordinator):
    with reverts_with("RewardVaultUnknownAgreement", 42):
        vault.reclaim(42, {"from": coordinator})


# ---------------------------------------------------------------------------------------------- scenarios


def test_books_balance_through_a_whole_agreement(
    vault, token, agreements, active_agreement, run_round, trio, coordinator, treasury, assert_books
):
    """Three rounds paid and claimed in part, termination, reclaim, every stake withdrawn: the vault ends
    holding exactly the rewards still claimable."""
    trees = []
    for shares in ((120, 100, 80), (0, 150, 150), (300, 0, 0)):
        payouts = {p: s * 10**18 for p, s in zip(trio, shares) if s}
        trees.append(run_round(active_agreement, payouts))
        assert_books(active_agreement)
    advance(DISPUTE_WINDOW)
    for round_id, tree in trees:
        for partner in list(tree.payouts)[:1]:
            vault.claim(active_agreement, round_id, tree.payouts[partner], tree.proof(partner), {"from": partner})
    assert_books(active_agreement)
    terminate(agreements, active_agreement, coordinator)
    vault.reclaim(active_agreement, {"from": coordinator})
    for party in trio:
        vault.unstake(active_agreement, STAKE, {"from": party})
    assert_books(active_agreement)
    pool = pool_of(vault, active_agreement)
    assert token.balanceOf(vault) == vault.claimable(active_agreement) == pool["allocated"] - pool["paid"]
