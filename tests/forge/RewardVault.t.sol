// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.28;

import {ReentrancyGuard} from "@openzeppelin/contracts/utils/ReentrancyGuard.sol";
import {LedgerFixture} from "./utils/Fixture.sol";
import {Vm} from "./utils/Vm.sol";
import {Merkle} from "./utils/Merkle.sol";
import {RewardVault} from "../../contracts/RewardVault.sol";
import {FeeOnTransferToken} from "../../contracts/testing/FeeOnTransferToken.sol";
import {NoReturnToken} from "../../contracts/testing/NoReturnToken.sol";
import {ReentrantToken} from "../../contracts/testing/ReentrantToken.sol";
import {IRewardVault} from "../../interfaces/IRewardVault.sol";
import {IRoundLedger} from "../../interfaces/IRoundLedger.sol";
import {IAgreementRegistry} from "../../interfaces/IAgreementRegistry.sol";

/// @dev The vault: pool, stakes, allocations claimed by Merkle proof, slashing, forfeits, reclaim, hostile tokens.
contract RewardVaultTest is LedgerFixture {
    uint256 internal constant POOL = 1_000e18;
    uint256 internal constant ALICE_PAY = 120e18;
    uint256 internal constant BOB_PAY = 80e18;
    uint256 internal constant CAROL_PAY = 0;
    uint256 internal constant ROUND_TOTAL = ALICE_PAY + BOB_PAY + CAROL_PAY;

    uint256 internal id;
    address[] internal parties;
    address internal alice;
    address internal bob;
    address internal carol;

    function setUp() public override {
        super.setUp();
        (id, parties) = activeAgreement(3, POOL);
        (alice, bob, carol) = (parties[0], parties[1], parties[2]);
    }

    /*//////////////////////////////////////////////////////////////
                                HELPERS
    //////////////////////////////////////////////////////////////*/

    struct Payouts {
        uint64 round;
        address[] who;
        uint256[] amounts;
        bytes32[] leaves;
        bytes32 root;
    }

    function payoutsOf(uint256 agreementId, uint64 roundId, address[] memory who, uint256[] memory amounts)
        internal
        pure
        returns (Payouts memory p)
    {
        p.round = roundId;
        p.who = who;
        p.amounts = amounts;
        p.leaves = new bytes32[](who.length);
        for (uint256 i; i < who.length; ++i) {
            p.leaves[i] = payoutLeafOf(agreementId, roundId, who[i], amounts[i]);
        }
        p.root = Merkle.sortedRoot(p.leaves);
    }

    function proofOf(Payouts memory p, uint256 i) internal pure returns (bytes32[] memory) {
        return Merkle.sortedProof(p.leaves, i);
    }

    /// @dev A round where everyone submitted, finalized with the standard split (alice, bob, carol).
    function paidRound() internal returns (Payouts memory p) {
        uint64 r = openRoundOn(id);
        for (uint256 i; i < 3; ++i) {
            submitAs(parties[i], id, r, EPSILON_ONE * uint32(ledger.roundCount(id)));
        }
        uint256[] memory amounts = new uint256[](3);
        (amounts[0], amounts[1], amounts[2]) = (ALICE_PAY, BOB_PAY, CAROL_PAY);
        p = payoutsOf(id, r, parties, amounts);
        finalizeAs(id, r, p.root, ROUND_TOTAL);
    }

    function claimableAt(Payouts memory p) internal view returns (uint256) {
        return vault.allocation(id, p.round).claimableAt;
    }

    function claim(Payouts memory p, uint256 i) internal {
        vm.prank(p.who[i]);
        vault.claim(id, p.round, p.amounts[i], proofOf(p, i));
    }

    function challengeAndUphold(uint64 roundId, address partner) internal returns (uint256 cid) {
        vm.prank(auditor);
        cid = ledger.challenge(id, roundId, partner, keccak256("evidence"));
        vm.prank(arbiter);
        ledger.resolveChallenge(cid, true, keccak256("ruling"));
    }

    function terminate(uint256 agreementId) internal {
        vm.prank(coordinator);
        agreements.terminate(agreementId, keccak256("reason"));
    }

    /// @dev An Active agreement of the three parties paid in `tokenAddr`, without required stake.
    function agreementIn(address tokenAddr) internal returns (uint256) {
        IAgreementRegistry.Terms memory t = defaultTerms(parties);
        t.rewardToken = tokenAddr;
        t.requiredStake = 0;
        return proposeSignStake(t, 0);
    }

    /*//////////////////////////////////////////////////////////////
                       constructor, setRoundLedger
    //////////////////////////////////////////////////////////////*/

    function test_constructor_refusesZeroSlashRecipient() public {
        vm.expectRevert(abi.encodeWithSelector(IRewardVault.RewardVaultZeroAddress.selector));
        new RewardVault(partners, agreements, address(0));
    }

    function test_setRoundLedger_bindsTheLedgerOnce() public {
        RewardVault fresh = new RewardVault(partners, agreements, treasury);
        vm.expectEmit(true, true, true, true, address(fresh));
        emit IRewardVault.LedgerSet(address(ledger));
        vm.prank(admin);
        fresh.setRoundLedger(address(ledger));
        assertEq(fresh.roundLedger(), address(ledger), "ledger");
        assertEq(fresh.slashRecipient(), treasury, "slash recipient");
    }

    function test_setRoundLedger_refusesNonAdmin() public {
        RewardVault fresh = new RewardVault(partners, agreements, treasury);
        vm.expectRevert(abi.encodeWithSelector(IRewardVault.RewardVaultNotAdmin.selector, coordinator));
        vm.prank(coordinator);
        fresh.setRoundLedger(address(ledger));
    }

    function test_setRoundLedger_refusesSecondBinding() public {
        vm.expectRevert(abi.encodeWithSelector(IRewardVault.RewardVaultLedgerAlreadySet.selector, address(ledger)));
        vm.prank(admin);
        vault.setRoundLedger(rando);
    }

    function test_setRoundLedger_refusesZeroAddress() public {
        RewardVault fresh = new RewardVault(partners, agreements, treasury);
        vm.expectRevert(abi.encodeWithSelector(IRewardVault.RewardVaultZeroAddress.selector));
        vm.prank(admin);
        fresh.setRoundLedger(address(0));
    }

    /*//////////////////////////////////////////////////////////////
                                  fund
    //////////////////////////////////////////////////////////////*/

    function test_fund_creditsThePool() public {
        mintTo(address(token), rando, 5e18);
        approveFrom(address(token), rando, address(vault), 5e18);
        vm.expectEmit(true, true, true, true, address(vault));
        emit IRewardVault.Funded(id, rando, 5e18);
        vm.prank(rando);
        vault.fund(id, 5e18);
        assertEq(vault.pool(id).funded, POOL + 5e18, "funded");
        assertEq(vault.unallocated(id), POOL + 5e18, "unallocated");
        assertEq(token.balanceOf(rando), 0, "funder paid");
        assertEq(token.balanceOf(address(vault)), POOL + 5e18 + 3 * STAKE, "vault holds pool and stakes");
    }

    function test_fund_acceptsProposedAgreement() public {
        vm.prank(coordinator);
        uint256 proposed = agreements.propose(defaultTerms(parties));
        assertEq(fundAs(coordinator, proposed, 7e18), 7e18, "credited");
    }

    function test_fund_refusesUnknownAgreement() public {
        vm.expectRevert(abi.encodeWithSelector(IRewardVault.RewardVaultUnknownAgreement.selector, 99));
        vm.prank(coordinator);
        vault.fund(99, 1);
    }

    function test_fund_refusesTerminatedAgreement() public {
        terminate(id);
        vm.expectRevert(abi.encodeWithSelector(IRewardVault.RewardVaultAgreementTerminated.selector, id));
        vm.prank(coordinator);
        vault.fund(id, 1);
    }

    function test_fund_refusesZeroAmount() public {
        vm.expectRevert(abi.encodeWithSelector(IRewardVault.RewardVaultZeroAmount.selector));
        vm.prank(coordinator);
        vault.fund(id, 0);
    }

    function test_fund_creditsWhatAFeeOnTransferTokenDelivers() public {
        FeeOnTransferToken fee = new FeeOnTransferToken();
        uint256 feeId = agreementIn(address(fee));
        mintTo(address(fee), coordinator, 1_000e18);
        approveFrom(address(fee), coordinator, address(vault), 1_000e18);
        vm.expectEmit(true, true, true, true, address(vault));
        emit IRewardVault.Funded(feeId, coordinator, 990e18);
        vm.prank(coordinator);
        vault.fund(feeId, 1_000e18);
        assertEq(vault.pool(feeId).funded, 990e18, "credited the received amount");
        assertEq(fee.balanceOf(address(vault)), 990e18, "books match the balance");
    }

    /// @dev Whatever the amount, up to where the token's own fee arithmetic would overflow, the pool is credited
    /// exactly what arrived and the books equal the balance.
    function testFuzz_fund_creditsExactlyWhatAFeeOnTransferTokenDelivers(uint256 amount) public {
        FeeOnTransferToken fee = new FeeOnTransferToken();
        uint256 feeId = agreementIn(address(fee));
        amount = bound(amount, 1, type(uint256).max / fee.FEE_BPS());
        uint256 arrives = amount - (amount * fee.FEE_BPS()) / 10_000;
        assertEq(fundAs(coordinator, feeId, amount), arrives, "credited what arrived");
        assertEq(vault.unallocated(feeId), arrives, "unallocated");
        assertEq(fee.balanceOf(address(vault)), arrives, "books match the balance");
    }

    function test_fund_acceptsATokenWhoseTransferReturnsNothing() public {
        NoReturnToken noReturn = new NoReturnToken();
        uint256 nrId = agreementIn(address(noReturn));
        assertEq(fundAs(coordinator, nrId, 50e18), 50e18, "credited");
        assertEq(noReturn.balanceOf(address(vault)), 50e18, "held");
    }

    function test_fund_refusesReentryFromTheToken() public {
        ReentrantToken reentrant = new ReentrantToken();
        uint256 reId = agreementIn(address(reentrant));
        mintTo(address(reentrant), coordinator, 10e18);
        approveFrom(address(reentrant), coordinator, address(vault), 10e18);
        reentrant.arm(address(vault), abi.encodeCall(vault.fund, (reId, 1)));
        vm.expectRevert(abi.encodeWithSelector(ReentrancyGuard.ReentrancyGuardReentrantCall.selector));
        vm.prank(coordinator);
        vault.fund(reId, 10e18);
    }

    /*//////////////////////////////////////////////////////////////
                                 stake
    //////////////////////////////////////////////////////////////*/

    function test_stake_addsToThePartysStake() public {
        mintTo(address(token), alice, 30e18);
        approveFrom(address(token), alice, address(vault), 30e18);
        vm.expectEmit(true, true, true, true, address(vault));
        emit IRewardVault.Staked(id, alice, 30e18, STAKE + 30e18);
        vm.prank(alice);
        vault.stake(id, 30e18);
        assertEq(vault.stakeOf(id, alice), STAKE + 30e18, "stake");
        assertEq(vault.pool(id).staked, 3 * STAKE + 30e18, "pool staked");
        assertEq(vault.unallocated(id), POOL, "reward pool untouched");
    }

    function test_stake_activatesTheAgreementWithTheLastMissingStake() public {
        vm.prank(coordinator);
        uint256 fresh = agreements.propose(defaultTerms(parties));
        for (uint256 i; i < 3; ++i) {
            vm.prank(parties[i]);
            agreements.sign(fresh);
        }
        stakeAs(alice, fresh, STAKE);
        stakeAs(bob, fresh, STAKE);
        assertTrue(agreements.agreementState(fresh).status == IAgreementRegistry.AgreementStatus.Proposed, "waiting");
        mintTo(address(token), carol, STAKE);
        approveFrom(address(token), carol, address(vault), STAKE);
        vm.expectEmit(true, true, true, true, address(agreements));
        emit IAgreementRegistry.AgreementActivated(fresh, 1);
        vm.prank(carol);
        vault.stake(fresh, STAKE);
        assertTrue(agreements.agreementState(fresh).status == IAgreementRegistry.AgreementStatus.Active, "active");
    }

    function test_stake_refusesUnknownAgreement() public {
        vm.expectRevert(abi.encodeWithSelector(IRewardVault.RewardVaultUnknownAgreement.selector, 42));
        vm.prank(alice);
        vault.stake(42, 1);
    }

    function test_stake_refusesTerminatedAgreement() public {
        terminate(id);
        vm.expectRevert(abi.encodeWithSelector(IRewardVault.RewardVaultAgreementTerminated.selector, id));
        vm.prank(alice);
        vault.stake(id, 1);
    }

    function test_stake_refusesZeroAmount() public {
        vm.expectRevert(abi.encodeWithSelector(IRewardVault.RewardVaultZeroAmount.selector));
        vm.prank(alice);
        vault.stake(id, 0);
    }

    function test_stake_refusesNonParty() public {
        vm.expectRevert(abi.encodeWithSelector(IRewardVault.RewardVaultNotParty.selector, id, rando));
        vm.prank(rando);
        vault.stake(id, 1);
    }

    function test_stake_refusesSuspendedPartner() public {
        vm.prank(coordinator);
        partners.suspend(bob, keccak256("suspicious"));
        vm.expectRevert(abi.encodeWithSelector(IRewardVault.RewardVaultPartnerNotApproved.selector, bob));
        vm.prank(bob);
        vault.stake(id, 1);
    }

    function test_stake_creditsWhatAFeeOnTransferTokenDelivers() public {
        FeeOnTransferToken fee = new FeeOnTransferToken();
        uint256 feeId = agreementIn(address(fee));
        stakeAs(alice, feeId, 100e18);
        assertEq(vault.stakeOf(feeId, alice), 99e18, "stake is what arrived");
        assertEq(vault.pool(feeId).staked, 99e18, "pool staked");
        assertEq(fee.balanceOf(address(vault)), 99e18, "held");
    }

    /*//////////////////////////////////////////////////////////////
                                unstake
    //////////////////////////////////////////////////////////////*/

    function test_unstake_returnsStakeAfterTermination() public {
        terminate(id);
        vm.expectEmit(true, true, true, true, address(vault));
        emit IRewardVault.Unstaked(id, alice, STAKE, 0);
        vm.prank(alice);
        vault.unstake(id, STAKE);
        assertEq(token.balanceOf(alice), STAKE, "returned");
        assertEq(vault.stakeOf(id, alice), 0, "stake");
        assertEq(vault.pool(id).unstaked, STAKE, "pool unstaked");
    }

    function test_unstake_returnsPartOfTheStake() public {
        terminate(id);
        vm.expectEmit(true, true, true, true, address(vault));
        emit IRewardVault.Unstaked(id, alice, 40e18, STAKE - 40e18);
        vm.prank(alice);
        vault.unstake(id, 40e18);
        assertEq(vault.stakeOf(id, alice), STAKE - 40e18, "rest stays");
    }

    function test_unstake_returnsStakeOfAPartyThatExited() public {
        vm.warp(uint256(defaultTerms(parties).end) + 1);
        vm.prank(bob);
        agreements.exit(id);
        vm.prank(bob);
        vault.unstake(id, STAKE);
        assertEq(token.balanceOf(bob), STAKE, "returned");
    }

    function test_unstake_refusesWhileTheAgreementIsInForce() public {
        vm.expectRevert(abi.encodeWithSelector(IRewardVault.RewardVaultAgreementInForce.selector, id));
        vm.prank(alice);
        vault.unstake(id, 1);
    }

    function test_unstake_refusesZeroAmount() public {
        terminate(id);
        vm.expectRevert(abi.encodeWithSelector(IRewardVault.RewardVaultZeroAmount.selector));
        vm.prank(alice);
        vault.unstake(id, 0);
    }

    function test_unstake_refusesMoreThanTheStake() public {
        terminate(id);
        vm.expectRevert(
            abi.encodeWithSelector(IRewardVault.RewardVaultInsufficientStake.selector, id, alice, STAKE, STAKE + 1)
        );
        vm.prank(alice);
        vault.unstake(id, STAKE + 1);
    }

    function test_unstake_refusesUnknownAgreement() public {
        vm.expectRevert(abi.encodeWithSelector(IRewardVault.RewardVaultUnknownAgreement.selector, 77));
        vm.prank(alice);
        vault.unstake(77, 1);
    }

    function test_unstake_refusesDuringTheDisputeWindow() public {
        paidRound();
        terminate(id);
        vm.expectRevert(abi.encodeWithSelector(IRewardVault.RewardVaultStakeLocked.selector, id, alice));
        vm.prank(alice);
        vault.unstake(id, STAKE);
    }

    function test_unstake_returnsStakeOnceTheDisputeWindowEnds() public {
        Payouts memory p = paidRound();
        terminate(id);
        vm.warp(claimableAt(p));
        vm.prank(alice);
        vault.unstake(id, STAKE);
        assertEq(token.balanceOf(alice), STAKE, "returned");
    }

    /// @dev Termination in the middle of a round must not lock the stakes for ever: the coordinator can still
    /// close the round, without payouts, and the stakes come free after its dispute window.
    function test_unstake_returnsStakeOfAgreementTerminatedDuringARound() public {
        uint64 r = openRoundOn(id);
        submitAs(alice, id, r, EPSILON_ONE);
        terminate(id);
        assertTrue(ledger.isStakeLocked(id, alice), "locked while the round is open");
        closeRound(id, r, bytes32(0), 0);
        vm.warp(block.timestamp + DISPUTE_WINDOW);
        vm.prank(alice);
        vault.unstake(id, STAKE);
        assertEq(token.balanceOf(alice), STAKE, "returned");
    }

    function test_unstake_returnsATokenWhoseTransferReturnsNothing() public {
        NoReturnToken noReturn = new NoReturnToken();
        uint256 nrId = agreementIn(address(noReturn));
        stakeAs(carol, nrId, 25e18);
        terminate(nrId);
        vm.prank(carol);
        vault.unstake(nrId, 25e18);
        assertEq(noReturn.balanceOf(carol), 25e18, "returned");
        assertEq(noReturn.balanceOf(address(vault)), 0, "nothing left");
    }

    /*//////////////////////////////////////////////////////////////
                       allocate, revokeAllocation
    //////////////////////////////////////////////////////////////*/

    function test_allocate_refusesCallerOtherThanTheLedger() public {
        vm.expectRevert(abi.encodeWithSelector(IRewardVault.RewardVaultNotLedger.selector, coordinator));
        vm.prank(coordinator);
        vault.allocate(id, 1, keccak256("root"), 1, uint64(block.timestamp));
    }

    function test_allocate_refusesSecondAllocationOfARound() public {
        vm.startPrank(address(ledger));
        vault.allocate(id, 1, keccak256("root"), 1e18, uint64(block.timestamp));
        vm.expectRevert(abi.encodeWithSelector(IRewardVault.RewardVaultAlreadyAllocated.selector, id, 1));
        vault.allocate(id, 1, keccak256("root 2"), 1e18, uint64(block.timestamp));
        vm.stopPrank();
    }

    function test_allocate_refusesMoreThanTheUnallocatedPool() public {
        vm.expectRevert(
            abi.encodeWithSelector(IRewardVault.RewardVaultInsufficientUnallocated.selector, id, POOL, POOL + 1)
        );
        vm.prank(address(ledger));
        vault.allocate(id, 1, keccak256("root"), POOL + 1, uint64(block.timestamp));
    }

    function test_allocate_acceptsTheWholeUnallocatedPool() public {
        vm.prank(address(ledger));
        vault.allocate(id, 1, keccak256("root"), POOL, uint64(block.timestamp));
        assertEq(vault.unallocated(id), 0, "all allocated");
        assertEq(vault.claimable(id), POOL, "all claimable");
    }

    function test_revokeAllocation_refusesCallerOtherThanTheLedger() public {
        vm.expectRevert(abi.encodeWithSelector(IRewardVault.RewardVaultNotLedger.selector, auditor));
        vm.prank(auditor);
        vault.revokeAllocation(id, 1);
    }

    function test_revokeAllocation_refusesRoundWithoutAllocation() public {
        vm.expectRevert(abi.encodeWithSelector(IRewardVault.RewardVaultNoAllocation.selector, id, 1));
        vm.prank(address(ledger));
        vault.revokeAllocation(id, 1);
    }

    function test_revokeAllocation_refusesRevokedAllocation() public {
        Payouts memory p = paidRound();
        vm.startPrank(address(ledger));
        vault.revokeAllocation(id, p.round);
        vm.expectRevert(abi.encodeWithSelector(IRewardVault.RewardVaultAllocationRevoked.selector, id, p.round));
        vault.revokeAllocation(id, p.round);
        vm.stopPrank();
    }

    function test_revokeAllocation_returnsOnlyTheUnclaimedPart() public {
        Payouts memory p = paidRound();
        vm.warp(claimableAt(p));
        claim(p, 0);
        vm.expectEmit(true, true, true, true, address(vault));
        emit IRewardVault.AllocationRevoked(id, p.round, ROUND_TOTAL - ALICE_PAY);
        vm.prank(address(ledger));
        vault.revokeAllocation(id, p.round);
        assertEq(vault.unallocated(id), POOL - ALICE_PAY, "unclaimed part back in the pool");
        assertEq(vault.claimable(id), 0, "nothing claimable");
        assertEq(vault.pool(id).paid, ALICE_PAY, "the claim stands");
    }

    /*//////////////////////////////////////////////////////////////
                                 claim
    //////////////////////////////////////////////////////////////*/

    function test_claim_paysTheProvenAmount() public {
        Payouts memory p = paidRound();
        vm.warp(claimableAt(p));
        vm.expectEmit(true, true, true, true, address(vault));
        emit IRewardVault.Claimed(id, p.round, alice, ALICE_PAY);
        claim(p, 0);

        assertEq(token.balanceOf(alice), ALICE_PAY, "paid");
        assertTrue(vault.hasClaimed(id, p.round, alice), "claimed");
        assertFalse(vault.hasClaimed(id, p.round, bob), "bob not yet");
        assertEq(vault.allocation(id, p.round).claimed, ALICE_PAY, "allocation claimed");
        assertEq(vault.pool(id).paid, ALICE_PAY, "pool paid");
        assertEq(vault.claimable(id), ROUND_TOTAL - ALICE_PAY, "still claimable");
    }

    function test_claim_paysAZeroLeaf() public {
        Payouts memory p = paidRound();
        vm.warp(claimableAt(p));
        claim(p, 2);
        assertTrue(vault.hasClaimed(id, p.round, carol), "settled");
        assertEq(token.balanceOf(carol), 0, "nothing paid");
    }

    function test_claim_paysEveryLeafOfTheRound() public {
        Payouts memory p = paidRound();
        vm.warp(claimableAt(p));
        for (uint256 i; i < 3; ++i) {
            claim(p, i);
        }
        assertEq(vault.allocation(id, p.round).claimed, ROUND_TOTAL, "all claimed");
        assertEq(vault.claimable(id), 0, "nothing left");
    }

    function test_claim_refusesBeforeTheDisputeWindowEnds() public {
        Payouts memory p = paidRound();
        uint256 at = claimableAt(p);
        vm.warp(at - 1);
        vm.expectRevert(abi.encodeWithSelector(IRewardVault.RewardVaultClaimNotOpen.selector, id, p.round, at));
        claim(p, 0);
    }

    function test_claim_refusesRoundWithoutAllocation() public {
        vm.expectRevert(abi.encodeWithSelector(IRewardVault.RewardVaultNoAllocation.selector, id, 3));
        vm.prank(alice);
        vault.claim(id, 3, 1, new bytes32[](0));
    }

    function test_claim_refusesRevokedAllocation() public {
        Payouts memory p = paidRound();
        vm.prank(address(ledger));
        vault.revokeAllocation(id, p.round);
        vm.warp(claimableAt(p));
        vm.expectRevert(abi.encodeWithSelector(IRewardVault.RewardVaultAllocationRevoked.selector, id, p.round));
        claim(p, 0);
    }

    function test_claim_refusesRewardUnderChallenge() public {
        Payouts memory p = paidRound();
        vm.prank(auditor);
        ledger.challenge(id, p.round, alice, keccak256("evidence"));
        vm.warp(claimableAt(p));
        vm.expectRevert(abi.encodeWithSelector(IRewardVault.RewardVaultClaimBlocked.selector, id, p.round, alice));
        claim(p, 0);
    }

    function test_claim_paysOnceTheChallengeIsDismissed() public {
        Payouts memory p = paidRound();
        vm.prank(auditor);
        uint256 cid = ledger.challenge(id, p.round, alice, keccak256("evidence"));
        vm.prank(arbiter);
        ledger.resolveChallenge(cid, false, keccak256("ruling"));
        vm.warp(claimableAt(p));
        claim(p, 0);
        assertEq(token.balanceOf(alice), ALICE_PAY, "paid");
    }

    function test_claim_refusesNonParty() public {
        uint64 r = openRoundOn(id);
        address[] memory who = new address[](2);
        (who[0], who[1]) = (alice, rando);
        uint256[] memory amounts = new uint256[](2);
        (amounts[0], amounts[1]) = (10e18, 5e18);
        Payouts memory p = payoutsOf(id, r, who, amounts);
        closeRound(id, r, p.root, 15e18);
        vm.warp(claimableAt(p));
        vm.expectRevert(abi.encodeWithSelector(IRewardVault.RewardVaultNotParty.selector, id, rando));
        claim(p, 1);
    }

    function test_claim_refusesSecondClaim() public {
        Payouts memory p = paidRound();
        vm.warp(claimableAt(p));
        claim(p, 1);
        vm.expectRevert(abi.encodeWithSelector(IRewardVault.RewardVaultAlreadyClaimed.selector, id, p.round, bob));
        claim(p, 1);
    }

    function test_claim_refusesAnAmountOtherThanTheLeafs() public {
        Payouts memory p = paidRound();
        vm.warp(claimableAt(p));
        bytes32[] memory proof = proofOf(p, 0);
        vm.expectRevert(
            abi.encodeWithSelector(IRewardVault.RewardVaultInvalidProof.selector, id, p.round, alice, ALICE_PAY + 1)
        );
        vm.prank(alice);
        vault.claim(id, p.round, ALICE_PAY + 1, proof);
    }

    function test_claim_refusesAnotherPartnersLeaf() public {
        Payouts memory p = paidRound();
        vm.warp(claimableAt(p));
        bytes32[] memory proof = proofOf(p, 0);
        vm.expectRevert(
            abi.encodeWithSelector(IRewardVault.RewardVaultInvalidProof.selector, id, p.round, bob, ALICE_PAY)
        );
        vm.prank(bob);
        vault.claim(id, p.round, ALICE_PAY, proof);
    }

    function test_claim_refusesLeavesBeyondTheRoundTotal() public {
        uint64 r = openRoundOn(id);
        uint256[] memory amounts = new uint256[](3);
        (amounts[0], amounts[1], amounts[2]) = (60e18, 50e18, 1e18); // 111 under a total of 100
        Payouts memory p = payoutsOf(id, r, parties, amounts);
        closeRound(id, r, p.root, 100e18);
        vm.warp(claimableAt(p));
        claim(p, 0);
        vm.expectRevert(
            abi.encodeWithSelector(IRewardVault.RewardVaultAllocationExceeded.selector, id, r, 60e18, 100e18)
        );
        claim(p, 1);
        claim(p, 2);
        assertEq(vault.allocation(id, r).claimed, 61e18, "never beyond the total");
    }

    function test_claim_refusesReentryFromTheToken() public {
        ReentrantToken reentrant = new ReentrantToken();
        id = agreementIn(address(reentrant));
        fundAs(coordinator, id, 500e18);
        Payouts memory p = paidRound();
        vm.warp(claimableAt(p));
        bytes32[] memory proof = proofOf(p, 1);
        reentrant.arm(address(vault), abi.encodeCall(vault.claim, (id, p.round, BOB_PAY, proof)));
        vm.expectRevert(abi.encodeWithSelector(ReentrancyGuard.ReentrancyGuardReentrantCall.selector));
        claim(p, 0);
    }

    function test_claim_paysATokenWhoseTransferReturnsNothing() public {
        NoReturnToken noReturn = new NoReturnToken();
        id = agreementIn(address(noReturn));
        fundAs(coordinator, id, 500e18);
        Payouts memory p = paidRound();
        vm.warp(claimableAt(p));
        claim(p, 0);
        assertEq(noReturn.balanceOf(alice), ALICE_PAY, "paid");
    }

    function test_claim_paysTheFullLeafOutOfAFeeOnTransferPool() public {
        FeeOnTransferToken fee = new FeeOnTransferToken();
        id = agreementIn(address(fee));
        fundAs(coordinator, id, 1_000e18); // 990 arrive
        Payouts memory p = paidRound();
        vm.warp(claimableAt(p));
        claim(p, 0);
        assertEq(fee.balanceOf(address(vault)), 990e18 - ALICE_PAY, "the vault sent exactly the leaf");
        assertEq(vault.claimable(id) + vault.unallocated(id), fee.balanceOf(address(vault)), "books match");
    }

    /*//////////////////////////////////////////////////////////////
                                 slash
    //////////////////////////////////////////////////////////////*/

    function test_slash_sendsTheWholeStakeToTheSlashRecipient() public {
        Payouts memory p = paidRound();
        uint256 cid = challengeAndUphold(p.round, alice);
        vm.warp(claimableAt(p));
        vm.expectEmit(true, true, true, true, address(vault));
        emit IRewardVault.Slashed(cid, id, alice, STAKE, treasury);
        vm.prank(rando); // anyone may execute
        vault.slash(cid);

        assertEq(token.balanceOf(treasury), STAKE, "slashed");
        assertEq(vault.stakeOf(id, alice), 0, "stake gone");
        assertEq(vault.pool(id).stakeSlashed, STAKE, "pool stakeSlashed");
        assertTrue(ledger.challengeOf(cid).status == IRoundLedger.ChallengeStatus.Executed, "executed");
    }

    function test_slash_refusesChallengeNotUpheld() public {
        Payouts memory p = paidRound();
        vm.prank(auditor);
        uint256 cid = ledger.challenge(id, p.round, alice, keccak256("evidence"));
        vm.warp(claimableAt(p));
        vm.expectRevert(
            abi.encodeWithSelector(
                IRoundLedger.RoundLedgerInvalidChallengeStatus.selector, cid, IRoundLedger.ChallengeStatus.Open
            )
        );
        vault.slash(cid);
    }

    function test_slash_refusesDuringTheDisputeWindow() public {
        Payouts memory p = paidRound();
        uint256 cid = challengeAndUphold(p.round, alice);
        uint256 at = claimableAt(p);
        vm.expectRevert(abi.encodeWithSelector(IRoundLedger.RoundLedgerDisputeWindowOpen.selector, cid, at));
        vault.slash(cid);
    }

    function test_slash_ofAPartnerWithNoStakeLeftMovesNothing() public {
        Payouts memory first = paidRound();
        uint256 cid1 = challengeAndUphold(first.round, alice);
        vm.warp(claimableAt(first));
        Payouts memory second = paidRound();
        uint256 cid2 = challengeAndUphold(second.round, alice);
        vault.slash(cid1);
        vm.warp(claimableAt(second));

        vm.recordLogs();
        vault.slash(cid2);
        Vm.Log[] memory logs = vm.getRecordedLogs();
        assertEq(logs.length, 2, "ChallengeExecuted and Slashed, no Transfer");
        assertEq(logs[1].topics[0], IRewardVault.Slashed.selector, "Slashed");
        (uint256 amount,) = abi.decode(logs[1].data, (uint256, address));
        assertEq(amount, 0, "nothing slashed");
        assertEq(token.balanceOf(treasury), STAKE, "only the first slash paid");
    }

    /*//////////////////////////////////////////////////////////////
                             forfeitReward
    //////////////////////////////////////////////////////////////*/

    function slashedPartner() internal returns (Payouts memory p, uint256 cid) {
        p = paidRound();
        cid = challengeAndUphold(p.round, alice);
        vm.warp(claimableAt(p));
        vault.slash(cid);
    }

    function test_forfeitReward_sendsTheRewardToTheSlashRecipient() public {
        (Payouts memory p, uint256 cid) = slashedPartner();
        bytes32[] memory proof = proofOf(p, 0);
        vm.expectEmit(true, true, true, true, address(vault));
        emit IRewardVault.RewardForfeited(cid, id, p.round, alice, ALICE_PAY, treasury);
        vm.prank(rando);
        vault.forfeitReward(cid, ALICE_PAY, proof);

        assertEq(token.balanceOf(treasury), STAKE + ALICE_PAY, "reward forfeited");
        assertEq(vault.pool(id).slashed, ALICE_PAY, "pool slashed");
        assertTrue(vault.hasClaimed(id, p.round, alice), "settled");
        assertEq(vault.claimable(id), ROUND_TOTAL - ALICE_PAY, "claimable");
        assertEq(token.balanceOf(alice), 0, "alice got nothing");
    }

    function test_forfeitReward_refusesChallengeNotExecuted() public {
        Payouts memory p = paidRound();
        uint256 cid = challengeAndUphold(p.round, alice);
        bytes32[] memory proof = proofOf(p, 0);
        vm.expectRevert(abi.encodeWithSelector(IRewardVault.RewardVaultChallengeNotExecuted.selector, cid));
        vault.forfeitReward(cid, ALICE_PAY, proof);
    }

    function test_forfeitReward_refusesRoundWithoutAllocation() public {
        uint64 r = openRoundOn(id);
        submitAs(alice, id, r, EPSILON_ONE);
        uint256 cid = challengeAndUphold(r, alice);
        closeRound(id, r, bytes32(0), 0);
        vm.warp(block.timestamp + DISPUTE_WINDOW);
        vault.slash(cid);
        vm.expectRevert(abi.encodeWithSelector(IRewardVault.RewardVaultNoAllocation.selector, id, r));
        vault.forfeitReward(cid, 0, new bytes32[](0));
    }

    function test_forfeitReward_refusesSecondForfeit() public {
        (Payouts memory p, uint256 cid) = slashedPartner();
        bytes32[] memory proof = proofOf(p, 0);
        vault.forfeitReward(cid, ALICE_PAY, proof);
        vm.expectRevert(abi.encodeWithSelector(IRewardVault.RewardVaultAlreadyClaimed.selector, id, p.round, alice));
        vault.forfeitReward(cid, ALICE_PAY, proof);
    }

    function test_forfeitReward_refusesAnAmountOtherThanTheLeafs() public {
        (Payouts memory p, uint256 cid) = slashedPartner();
        bytes32[] memory proof = proofOf(p, 0);
        vm.expectRevert(
            abi.encodeWithSelector(IRewardVault.RewardVaultInvalidProof.selector, id, p.round, alice, ALICE_PAY - 1)
        );
        vault.forfeitReward(cid, ALICE_PAY - 1, proof);
    }

    function test_claim_refusesTheRewardOfAnExecutedChallenge() public {
        (Payouts memory p,) = slashedPartner();
        vm.expectRevert(abi.encodeWithSelector(IRewardVault.RewardVaultClaimBlocked.selector, id, p.round, alice));
        claim(p, 0);
    }

    /*//////////////////////////////////////////////////////////////
                                reclaim
    //////////////////////////////////////////////////////////////*/

    function test_reclaim_returnsTheUnallocatedPoolOfATerminatedAgreement() public {
        Payouts memory p = paidRound();
        terminate(id);
        vm.expectEmit(true, true, true, true, address(vault));
        emit IRewardVault.Reclaimed(id, coordinator, POOL - ROUND_TOTAL);
        vm.prank(coordinator);
        vault.reclaim(id);

        assertEq(token.balanceOf(coordinator), POOL - ROUND_TOTAL, "returned");
        assertEq(vault.pool(id).reclaimed, POOL - ROUND_TOTAL, "pool reclaimed");
        assertEq(vault.unallocated(id), 0, "nothing unallocated");
        assertEq(vault.claimable(id), ROUND_TOTAL, "allocations stay claimable");
        vm.warp(claimableAt(p));
        claim(p, 0);
        assertEq(token.balanceOf(alice), ALICE_PAY, "claims still paid");
    }

    function test_reclaim_returnsThePoolAfterTheAgreementEnds() public {
        vm.warp(uint256(defaultTerms(parties).end) + 1);
        vm.prank(coordinator);
        vault.reclaim(id);
        assertEq(token.balanceOf(coordinator), POOL, "returned");
    }

    /*//////////////////////////////////////////////////////////////
                            expireAllocation
    //////////////////////////////////////////////////////////////*/

    /// @dev Issue 10, item 7, as the attack: allocated money nobody claims would be stranded for ever. After the
    /// claim period its unclaimed part returns to the pool, and the funder reclaims it once the agreement is over.
    function test_attack_unclaimedRewardsAreNotStranded() public {
        Payouts memory p = paidRound();
        vm.warp(claimableAt(p));
        claim(p, 0); // alice claims; bob and carol never do
        uint256 expiresAt = claimableAt(p) + vault.CLAIM_PERIOD();
        vm.warp(expiresAt);
        vm.expectRevert(
            abi.encodeWithSelector(IRewardVault.RewardVaultClaimPeriodRunning.selector, id, p.round, expiresAt)
        );
        vault.expireAllocation(id, p.round);
        vm.warp(expiresAt + 1);
        vm.expectEmit(true, true, true, true, address(vault));
        emit IRewardVault.AllocationExpired(id, p.round, ROUND_TOTAL - ALICE_PAY);
        vm.prank(rando);
        vault.expireAllocation(id, p.round);
        assertEq(vault.unallocated(id), POOL - ALICE_PAY, "back in the pool");
        assertEq(vault.claimable(id), 0, "nothing claimable");
        vm.expectRevert(abi.encodeWithSelector(IRewardVault.RewardVaultAllocationExpired.selector, id, p.round));
        claim(p, 1);
        terminate(id);
        vm.prank(coordinator);
        vault.reclaim(id);
        assertEq(token.balanceOf(coordinator), POOL - ALICE_PAY, "the funder has it back");
    }

    /// @dev An expired allocation's unclaimed part has left `allocated`: a revocation must not take it twice.
    function test_revokeAllocation_refusesAnExpiredAllocation() public {
        Payouts memory p = paidRound();
        vm.warp(claimableAt(p) + vault.CLAIM_PERIOD() + 1);
        vault.expireAllocation(id, p.round);
        vm.expectRevert(abi.encodeWithSelector(IRewardVault.RewardVaultAllocationExpired.selector, id, p.round));
        vm.prank(address(ledger));
        vault.revokeAllocation(id, p.round);
        vm.expectRevert(abi.encodeWithSelector(IRewardVault.RewardVaultAllocationExpired.selector, id, p.round));
        vault.expireAllocation(id, p.round);
    }

    /// @dev Issue 10, item 2: reclaimed money goes back to whoever funded it, in proportion, never elsewhere.
    function test_reclaim_paysEachFunderItsShareAndNobodyElse() public {
        fundAs(rando, id, POOL); // rando funds as much as the coordinator did
        paidRound(); // ROUND_TOTAL allocated out of 2 * POOL
        terminate(id);
        uint256 half = (2 * POOL - ROUND_TOTAL) / 2;
        assertEq(vault.reclaimable(id, rando), half, "rando's share");
        vm.expectRevert(abi.encodeWithSelector(IRewardVault.RewardVaultNothingToReclaim.selector, id));
        vm.prank(admin); // funded nothing
        vault.reclaim(id);
        vm.prank(coordinator);
        vault.reclaim(id);
        vm.prank(rando);
        vault.reclaim(id);
        assertEq(token.balanceOf(coordinator), half, "coordinator's half");
        assertEq(token.balanceOf(rando), half, "rando's half");
        assertEq(vault.unallocated(id), 0, "nothing left unallocated");
    }

    /// @dev Found by an attacker's read: the coordinator reclaims the pool after the end, an amendment every party
    /// signs moves the end later, a second funder funds and a round allocates. The second funder's pro-rata share
    /// of `funded - allocated` ignored what had already been reclaimed and paid it more than the pool held.
    function test_attack_reclaimAfterAnAmendedEndPaysNoMoreThanThePoolHolds() public {
        vm.warp(uint256(defaultTerms(parties).end) + 1);
        vm.prank(coordinator);
        vault.reclaim(id);
        IAgreementRegistry.Terms memory t = defaultTerms(parties);
        t.end = uint64(block.timestamp + 30 days);
        vm.prank(coordinator);
        agreements.amend(id, t);
        for (uint256 i; i < 3; ++i) {
            vm.prank(parties[i]);
            agreements.sign(id);
        }
        fundAs(rando, id, POOL);
        paidRound();
        vm.warp(uint256(t.end) + 1);
        assertEq(vault.reclaimable(id, rando), POOL - ROUND_TOTAL, "at most what is unallocated");
        vm.prank(rando);
        vault.reclaim(id);
        assertEq(token.balanceOf(rando), POOL - ROUND_TOTAL, "rando gets what its money did not pay for");
        assertEq(vault.unallocated(id), 0, "nothing more than the pool left the vault");
    }

    function test_reclaim_refusesUnknownAgreement() public {
        vm.expectRevert(abi.encodeWithSelector(IRewardVault.RewardVaultUnknownAgreement.selector, 12));
        vm.prank(coordinator);
        vault.reclaim(12);
    }

    function test_reclaim_refusesWhileTheAgreementRuns() public {
        vm.expectRevert(abi.encodeWithSelector(IRewardVault.RewardVaultAgreementRunning.selector, id));
        vm.prank(coordinator);
        vault.reclaim(id);
    }

    function test_reclaim_refusesAfterTheEndWhileARoundIsOpen() public {
        uint64 end = defaultTerms(parties).end;
        vm.prank(coordinator);
        ledger.openRound(id, MODEL_DIGEST, end, EVAL_COMMITMENT);
        vm.warp(uint256(end) + 1);
        vm.expectRevert(abi.encodeWithSelector(IRewardVault.RewardVaultAgreementRunning.selector, id));
        vm.prank(coordinator);
        vault.reclaim(id);
    }

    function test_reclaim_refusesWhenNothingIsLeft() public {
        terminate(id);
        vm.startPrank(coordinator);
        vault.reclaim(id);
        vm.expectRevert(abi.encodeWithSelector(IRewardVault.RewardVaultNothingToReclaim.selector, id));
        vault.reclaim(id);
        vm.stopPrank();
    }

    function test_fund_refusesAfterTheEndOfTheTermsInForce() public {
        uint64 end = defaultTerms(parties).end;
        vm.warp(uint256(end) + 1);
        address tokenAddr = address(token);
        mintTo(tokenAddr, rando, 1e18);
        approveFrom(tokenAddr, rando, address(vault), 1e18);
        vm.expectRevert(abi.encodeWithSelector(IRewardVault.RewardVaultAgreementEnded.selector, id, end));
        vm.prank(rando);
        vault.fund(id, 1e18);
    }

    /*//////////////////////////////////////////////////////////////
                                 VIEWS
    //////////////////////////////////////////////////////////////*/

    function test_hasClaimed_isFalseForNonParty() public view {
        assertFalse(vault.hasClaimed(id, 1, rando), "non-party");
    }

    function test_payoutLeaf_isTheDoubleHashOfTheEncodedPayout() public view {
        assertEq(vault.payoutLeaf(id, 3, bob, 17e18), payoutLeafOf(id, 3, bob, 17e18), "leaf");
    }

    function test_pool_ofAnUnknownAgreementIsEmpty() public view {
        IRewardVault.Pool memory p = vault.pool(404);
        assertEq(p.funded + p.allocated + p.paid + p.slashed + p.reclaimed + p.staked, 0, "empty");
    }
}
