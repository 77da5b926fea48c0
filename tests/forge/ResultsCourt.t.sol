// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.28;

import {LedgerFixture} from "./utils/Fixture.sol";
import {Merkle} from "./utils/Merkle.sol";
import {IAgreementRegistry} from "../../interfaces/IAgreementRegistry.sol";
import {IResultsCourt} from "../../interfaces/IResultsCourt.sol";
import {IRewardVault} from "../../interfaces/IRewardVault.sol";
import {IRoundLedger} from "../../interfaces/IRoundLedger.sol";
import {RewardVault} from "../../contracts/RewardVault.sol";

/// @dev A dishonest coordinator's results, challenged: the coordinator bond, results challenges and their rulings,
/// written as the attacks they stop.
contract ResultsCourtTest is LedgerFixture {
    uint256 internal constant BOND = 500e18;
    uint256 internal constant PAYOUT = 300e18;
    bytes32 internal constant EVIDENCE = keccak256("scores_and_payouts evidence");
    bytes32 internal constant RULING = keccak256("ruling");

    uint256 internal id;
    address[] internal parties;
    bytes32[] internal leaves;

    function setUp() public override {
        super.setUp();
        parties = approvedParties(0, 3);
        IAgreementRegistry.Terms memory t = defaultTerms(parties);
        t.coordinatorBond = BOND;
        id = proposeSignStake(t, STAKE);
        fundAs(coordinator, id, 1_000e18);
    }

    /*//////////////////////////////////////////////////////////////
                                HELPERS
    //////////////////////////////////////////////////////////////*/

    function postBond(address who, uint256 amount) internal {
        mintAndApprove(who, amount);
        vm.prank(who);
        court.postBond(id, amount);
    }

    function mintAndApprove(address who, uint256 amount) internal {
        mintTo(address(token), who, amount);
        approveFrom(address(token), who, address(court), amount);
    }

    /// @dev A round finalized by the coordinator with a payout root that gives the whole reward to the first
    /// party, whatever the scores said: the results an auditor finds wrong.
    function finalizedRound() internal returns (uint64 r) {
        r = openRoundOn(id);
        submitAs(parties[0], id, r, EPSILON_ONE);
        submitAs(parties[1], id, r, EPSILON_ONE);
        delete leaves;
        leaves.push(payoutLeafOf(id, r, parties[0], PAYOUT));
        leaves.push(payoutLeafOf(id, r, parties[1], 0));
        closeRound(id, r, Merkle.sortedRoot(leaves), PAYOUT);
    }

    function challengeAs(address who, uint64 r) internal returns (uint256) {
        vm.prank(who);
        return court.challengeResults(id, r, IResultsCourt.ResultsKind.Payouts, EVIDENCE);
    }

    function ruleAs(address who, uint256 challengeId, bool upheld) internal {
        vm.prank(who);
        court.ruleResults(challengeId, upheld, RULING);
    }

    function claimableAt(uint64 r) internal view returns (uint256) {
        return uint256(ledger.round(id, r).finalizedAt) + DISPUTE_WINDOW;
    }

    function claimAs(address party, uint64 r, uint256 amount, uint256 leaf) internal {
        bytes32[] memory proof = Merkle.sortedProof(leaves, leaf);
        vm.prank(party);
        vault.claim(id, r, amount, proof);
    }

    function statusOf(uint256 challengeId) internal view returns (IResultsCourt.ChallengeStatus) {
        return court.challengeOf(challengeId).status;
    }

    /*//////////////////////////////////////////////////////////////
                          THE ATTACKS, REFUSED
    //////////////////////////////////////////////////////////////*/

    function test_attack_wrongPayoutRootUpheld_noPartnerClaims_partiesGetTheBond() public {
        upheldRevokesThePayoutsAndSharesTheBond(IResultsCourt.ResultsKind.Payouts, EVIDENCE);
    }

    /// @dev The coordinator closes the round by rules the parties did not sign (exact Shapley where the terms
    /// document signs leave-one-out, say): on-chain a finalization like any other. The auditor's `rules_as_signed`
    /// evidence (terms digest, expected and found rules) goes to the court as kind Rules; the arbiter upholds;
    /// bond and payouts move exactly as for the other kinds.
    function test_attack_roundClosedByUnsignedRulesUpheld_noPartnerClaims_partiesGetTheBond() public {
        upheldRevokesThePayoutsAndSharesTheBond(IResultsCourt.ResultsKind.Rules, keccak256("rules_as_signed evidence"));
    }

    /// @dev Every kind of results challenge, upheld, moves the same money the same way.
    function testFuzz_everyKindUpheldMovesTheSame(uint8 kind, bytes32 evidence) public {
        vm.assume(evidence != bytes32(0));
        upheldRevokesThePayoutsAndSharesTheBond(IResultsCourt.ResultsKind(bound(kind, 0, 3)), evidence);
    }

    function test_challengeResults_refusesAKindOutOfRange() public {
        postBond(coordinator, BOND);
        uint64 r = finalizedRound();
        vm.prank(auditor);
        // The ABI decoder refuses an enum value past Rules before the court's code runs.
        (bool ok,) = address(court).call(
            abi.encodeWithSelector(IResultsCourt.challengeResults.selector, id, r, uint8(4), EVIDENCE)
        );
        assertTrue(!ok, "kind 4 refused");
        assertEq(court.challengeCount(), 0, "nothing raised");
    }

    function upheldRevokesThePayoutsAndSharesTheBond(IResultsCourt.ResultsKind kind, bytes32 evidence) internal {
        postBond(coordinator, BOND);
        uint64 r = finalizedRound();
        vm.expectEmit(true, true, true, true, address(court));
        emit IResultsCourt.ResultsChallengeRaised(1, id, r, kind, auditor, evidence);
        vm.prank(auditor);
        uint256 cid = court.challengeResults(id, r, kind, evidence);
        assertTrue(court.challengeOf(cid).kind == kind, "kind recorded");
        assertTrue(court.isClaimBlocked(id, r), "claims blocked while open");
        uint256 pooledBefore = vault.unallocated(id);

        vm.expectEmit(true, true, true, true, address(court));
        emit IResultsCourt.ResultsChallengeResolved(cid, true, RULING);
        vm.expectEmit(true, true, true, true, address(court));
        emit IResultsCourt.BondSlashed(cid, id, coordinator, BOND, BOND / 3);
        vm.expectEmit(true, true, true, true, address(vault));
        emit IRewardVault.AllocationRevoked(id, r, PAYOUT);
        ruleAs(arbiter, cid, true);

        assertTrue(statusOf(cid) == IResultsCourt.ChallengeStatus.Upheld, "upheld");
        assertTrue(vault.allocation(id, r).revoked, "allocation revoked");
        assertEq(vault.unallocated(id), pooledBefore + PAYOUT, "payouts back in the pool");
        vm.warp(claimableAt(r) + 1);
        bytes32[] memory proof = Merkle.sortedProof(leaves, 0);
        vm.expectRevert(abi.encodeWithSelector(IRewardVault.RewardVaultAllocationRevoked.selector, id, r));
        vm.prank(parties[0]);
        vault.claim(id, r, PAYOUT, proof);

        assertEq(court.bondOf(id, coordinator), 0, "bond slashed");
        uint256 share = BOND / 3;
        uint256 remainder = BOND - 3 * share;
        assertEq(court.bondShareOf(id, parties[0]), share + remainder, "first party: share and remainder");
        for (uint256 i; i < 3; ++i) {
            uint256 owed = court.bondShareOf(id, parties[i]);
            uint256 before = token.balanceOf(parties[i]);
            vm.expectEmit(true, true, true, true, address(court));
            emit IResultsCourt.BondShareClaimed(id, parties[i], owed);
            vm.prank(parties[i]);
            court.claimBondShare(id);
            assertEq(token.balanceOf(parties[i]) - before, i == 0 ? share + remainder : share, "share paid");
            assertEq(court.bondShareOf(id, parties[i]), 0, "nothing more owed");
        }
        assertEq(token.balanceOf(address(court)), 0, "the whole bond went to the parties");
        IResultsCourt.Bonds memory b = court.bonds(id);
        assertEq(b.posted, BOND, "posted");
        assertEq(b.slashed, BOND, "slashed");
        assertEq(b.sharesPaid, BOND, "shares paid");
    }

    function test_attack_roundCannotOpenWithoutTheBond() public {
        vm.expectRevert(abi.encodeWithSelector(IResultsCourt.ResultsCourtBondShort.selector, id, coordinator, 0, BOND));
        vm.prank(coordinator);
        ledger.openRound(id, MODEL_DIGEST, uint64(block.timestamp) + ROUND_LENGTH, EVAL_COMMITMENT);

        postBond(coordinator, BOND - 1);
        vm.expectRevert(
            abi.encodeWithSelector(IResultsCourt.ResultsCourtBondShort.selector, id, coordinator, BOND - 1, BOND)
        );
        vm.prank(coordinator);
        ledger.openRound(id, MODEL_DIGEST, uint64(block.timestamp) + ROUND_LENGTH, EVAL_COMMITMENT);
        assertEq(ledger.roundCount(id), 0, "no round opened");

        postBond(coordinator, 1);
        assertEq(openRoundOn(id), 1, "opens once bonded");
    }

    function test_attack_someoneElsesBondDoesNotCount() public {
        postBond(rando, BOND);
        vm.expectRevert(abi.encodeWithSelector(IResultsCourt.ResultsCourtBondShort.selector, id, coordinator, 0, BOND));
        vm.prank(coordinator);
        ledger.openRound(id, MODEL_DIGEST, uint64(block.timestamp) + ROUND_LENGTH, EVAL_COMMITMENT);
    }

    function test_attack_slashedCoordinatorOpensNoRoundUntilBondedAgain() public {
        postBond(coordinator, BOND);
        uint64 r = finalizedRound();
        ruleAs(arbiter, challengeAs(auditor, r), true);
        vm.expectRevert(abi.encodeWithSelector(IResultsCourt.ResultsCourtBondShort.selector, id, coordinator, 0, BOND));
        vm.prank(coordinator);
        ledger.openRound(id, MODEL_DIGEST, uint64(block.timestamp) + ROUND_LENGTH, EVAL_COMMITMENT);
        postBond(coordinator, BOND);
        assertEq(openRoundOn(id), r + 1, "opens after the bond is posted again");
    }

    function test_attack_nonArbiterCannotRule() public {
        postBond(coordinator, BOND);
        uint64 r = finalizedRound();
        uint256 cid = challengeAs(auditor, r);
        address[4] memory wrong = [coordinator, auditor, admin, parties[0]];
        for (uint256 i; i < wrong.length; ++i) {
            vm.expectRevert(abi.encodeWithSelector(IResultsCourt.ResultsCourtNotArbiter.selector, id, wrong[i]));
            ruleAs(wrong[i], cid, i % 2 == 0);
        }
        assertTrue(statusOf(cid) == IResultsCourt.ChallengeStatus.Open, "still open");
        assertEq(court.bondOf(id, coordinator), BOND, "bond intact");
    }

    function test_attack_lateRulingRevertsAndTheChallengeLapses() public {
        postBond(coordinator, BOND);
        uint64 r = finalizedRound();
        uint256 cid = challengeAs(auditor, r);
        uint256 endsAt = block.timestamp + DISPUTE_WINDOW;

        vm.expectRevert(abi.encodeWithSelector(IResultsCourt.ResultsCourtRulingWindowOpen.selector, cid, endsAt));
        court.lapseResults(cid);

        vm.warp(endsAt);
        vm.expectRevert(abi.encodeWithSelector(IResultsCourt.ResultsCourtRulingWindowClosed.selector, cid, endsAt));
        ruleAs(arbiter, cid, true);

        vm.expectEmit(true, true, true, true, address(court));
        emit IResultsCourt.ResultsChallengeLapsed(cid);
        vm.prank(rando);
        court.lapseResults(cid);
        assertTrue(statusOf(cid) == IResultsCourt.ChallengeStatus.Dismissed, "dismissed");
        assertEq(court.openChallenges(id), 0, "none open");
        assertEq(court.bondOf(id, coordinator), BOND, "bond intact");
        assertFalse(court.isClaimBlocked(id, r), "claims free again");
        claimAs(parties[0], r, PAYOUT, 0);
    }

    function test_attack_challengeAfterClaimsOpenedReverts() public {
        postBond(coordinator, BOND);
        uint64 r = finalizedRound();
        uint256 at = claimableAt(r);
        vm.warp(at);
        vm.expectRevert(abi.encodeWithSelector(IResultsCourt.ResultsCourtDisputeWindowClosed.selector, id, r, at));
        challengeAs(auditor, r);
        claimAs(parties[0], r, PAYOUT, 0);
    }

    function test_openChallengeBlocksClaimsPastClaimableAt_untilDismissed() public {
        postBond(coordinator, BOND);
        uint64 r = finalizedRound();
        vm.warp(claimableAt(r) - 1);
        uint256 cid = challengeAs(auditor, r);
        vm.warp(claimableAt(r) + 1);
        bytes32[] memory proof = Merkle.sortedProof(leaves, 0);
        vm.expectRevert(abi.encodeWithSelector(IRewardVault.RewardVaultClaimBlocked.selector, id, r, parties[0]));
        vm.prank(parties[0]);
        vault.claim(id, r, PAYOUT, proof);

        ruleAs(arbiter, cid, false);
        assertTrue(statusOf(cid) == IResultsCourt.ChallengeStatus.Dismissed, "dismissed");
        assertEq(court.bondOf(id, coordinator), BOND, "a dismissed challenge slashes nothing");
        claimAs(parties[0], r, PAYOUT, 0);
        assertEq(token.balanceOf(parties[0]), PAYOUT, "claimed once dismissed");
    }

    /// @dev The first party's update is upheld against and its stake slashed once claims open, while the round's
    /// results are under a results challenge raised just before.
    function partnerSlashedUnderAResultsChallenge() internal returns (uint64 r, uint256 partnerChallenge, uint256 cid) {
        postBond(coordinator, BOND);
        r = finalizedRound();
        vm.prank(auditor);
        partnerChallenge = ledger.challenge(id, r, parties[0], EVIDENCE);
        vm.prank(arbiter);
        ledger.resolveChallenge(partnerChallenge, true, RULING);
        vm.warp(claimableAt(r) - 1);
        cid = challengeAs(auditor, r);
        vm.warp(claimableAt(r));
        vault.slash(partnerChallenge);
    }

    /// @dev The wrongful payout goes to a partner whose own update is also upheld against (the coordinator's
    /// accomplice). Its reward must not be forfeited to the slash recipient while the round's results are under an
    /// open results challenge: once upheld, the whole allocation goes back to the pool, the funders' money.
    function test_attack_forfeitWaitsForAnOpenResultsChallenge_thePayoutGoesBackToThePool() public {
        (uint64 r, uint256 partnerChallenge, uint256 cid) = partnerSlashedUnderAResultsChallenge();

        bytes32[] memory proof = Merkle.sortedProof(leaves, 0);
        vm.expectRevert(abi.encodeWithSelector(IRewardVault.RewardVaultClaimBlocked.selector, id, r, parties[0]));
        vault.forfeitReward(partnerChallenge, PAYOUT, proof);

        uint256 pooled = vault.unallocated(id);
        ruleAs(arbiter, cid, true);
        assertEq(vault.unallocated(id), pooled + PAYOUT, "the whole payout is back in the pool");
        vm.expectRevert(abi.encodeWithSelector(IRewardVault.RewardVaultAllocationRevoked.selector, id, r));
        vault.forfeitReward(partnerChallenge, PAYOUT, proof);
        assertEq(token.balanceOf(treasury), STAKE, "the slash recipient has the stake, not the wrongful payout");
    }

    /// @dev The same, dismissed: the forfeit goes through once the results challenge is out of the way.
    function test_forfeitAfterADismissedResultsChallenge() public {
        (uint64 r, uint256 partnerChallenge, uint256 cid) = partnerSlashedUnderAResultsChallenge();
        ruleAs(arbiter, cid, false);
        vault.forfeitReward(partnerChallenge, PAYOUT, Merkle.sortedProof(leaves, 0));
        assertEq(token.balanceOf(treasury), STAKE + PAYOUT, "stake and forfeited reward");
    }

    /*//////////////////////////////////////////////////////////////
                           challengeResults
    //////////////////////////////////////////////////////////////*/

    function test_challengeResults_recordsTheChallenge() public {
        postBond(coordinator, BOND);
        uint64 r = finalizedRound();
        vm.expectEmit(true, true, true, true, address(court));
        emit IResultsCourt.ResultsChallengeRaised(1, id, r, IResultsCourt.ResultsKind.Payouts, auditor, EVIDENCE);
        uint256 cid = challengeAs(auditor, r);
        IResultsCourt.ResultsChallenge memory c = court.challengeOf(cid);
        assertEq(cid, 1, "id");
        assertEq(court.challengeCount(), 1, "count");
        assertEq(court.challengeOfRound(id, r), cid, "of round");
        assertTrue(c.kind == IResultsCourt.ResultsKind.Payouts, "kind");
        assertEq(c.round, r, "round");
        assertEq(c.agreementId, id, "agreement");
        assertEq(c.challenger, auditor, "challenger");
        assertEq(c.evidenceDigest, EVIDENCE, "evidence");
        assertEq(c.raisedAt, block.timestamp, "raisedAt");
        assertTrue(court.isClaimBlocked(id, r), "claims blocked");
        assertEq(court.openChallenges(id), 1, "open");
    }

    function test_challengeResults_onlyAuditor() public {
        postBond(coordinator, BOND);
        uint64 r = finalizedRound();
        address[4] memory wrong = [coordinator, arbiter, admin, parties[0]];
        for (uint256 i; i < wrong.length; ++i) {
            vm.expectRevert(abi.encodeWithSelector(IResultsCourt.ResultsCourtNotAuditor.selector, wrong[i]));
            challengeAs(wrong[i], r);
        }
        assertEq(court.challengeCount(), 0, "none raised");
    }

    function test_challengeResults_refusesAnOpenOrUnknownRound() public {
        postBond(coordinator, BOND);
        uint64 r = openRoundOn(id);
        vm.expectRevert(abi.encodeWithSelector(IResultsCourt.ResultsCourtRoundNotFinalized.selector, id, r));
        challengeAs(auditor, r);
        vm.expectRevert(abi.encodeWithSelector(IRoundLedger.RoundLedgerUnknownRound.selector, id, r + 1));
        challengeAs(auditor, r + 1);
    }

    function test_challengeResults_refusesZeroEvidence() public {
        postBond(coordinator, BOND);
        uint64 r = finalizedRound();
        vm.expectRevert(IResultsCourt.ResultsCourtZeroDigest.selector);
        vm.prank(auditor);
        court.challengeResults(id, r, IResultsCourt.ResultsKind.Aggregate, bytes32(0));
    }

    function test_challengeResults_oneLiveChallengePerRound_anotherAfterDismissal() public {
        postBond(coordinator, BOND);
        uint64 r = finalizedRound();
        uint256 first = challengeAs(auditor, r);
        vm.expectRevert(abi.encodeWithSelector(IResultsCourt.ResultsCourtAlreadyChallenged.selector, id, r, first));
        challengeAs(auditor, r);
        ruleAs(arbiter, first, false);
        uint256 second = challengeAs(auditor, r);
        assertEq(second, first + 1, "a new challenge after the dismissal");
        ruleAs(arbiter, second, true);
        vm.expectRevert(abi.encodeWithSelector(IResultsCourt.ResultsCourtAlreadyChallenged.selector, id, r, second));
        challengeAs(auditor, r);
    }

    /*//////////////////////////////////////////////////////////////
                         ruleResults, lapseResults
    //////////////////////////////////////////////////////////////*/

    function test_rule_refusesUnknownAndClosedChallenges() public {
        vm.expectRevert(abi.encodeWithSelector(IResultsCourt.ResultsCourtUnknownChallenge.selector, 7));
        ruleAs(arbiter, 7, true);
        vm.expectRevert(abi.encodeWithSelector(IResultsCourt.ResultsCourtUnknownChallenge.selector, 7));
        court.challengeOf(7);

        postBond(coordinator, BOND);
        uint64 r = finalizedRound();
        uint256 cid = challengeAs(auditor, r);
        ruleAs(arbiter, cid, false);
        vm.expectRevert(
            abi.encodeWithSelector(
                IResultsCourt.ResultsCourtChallengeNotOpen.selector, cid, IResultsCourt.ChallengeStatus.Dismissed
            )
        );
        ruleAs(arbiter, cid, true);
        vm.expectRevert(
            abi.encodeWithSelector(
                IResultsCourt.ResultsCourtChallengeNotOpen.selector, cid, IResultsCourt.ChallengeStatus.Dismissed
            )
        );
        court.lapseResults(cid);
    }

    function test_upheldWithoutPayouts_slashesAndRevokesNothing() public {
        postBond(coordinator, BOND);
        uint64 r = openRoundOn(id);
        closeRound(id, r, bytes32(0), 0);
        ruleAs(arbiter, challengeAs(auditor, r), true);
        assertEq(court.bondOf(id, coordinator), 0, "slashed");
        assertEq(vault.allocation(id, r).root, bytes32(0), "no allocation to revoke");
    }

    /*//////////////////////////////////////////////////////////////
                              BOND MONEY
    //////////////////////////////////////////////////////////////*/

    function test_postBond_refusesUnknownTerminatedAndZero() public {
        mintTo(address(token), coordinator, BOND);
        approveFrom(address(token), coordinator, address(court), BOND);
        vm.startPrank(coordinator);
        vm.expectRevert(abi.encodeWithSelector(IResultsCourt.ResultsCourtUnknownAgreement.selector, 99));
        court.postBond(99, BOND);
        vm.expectRevert(IResultsCourt.ResultsCourtZeroAmount.selector);
        court.postBond(id, 0);
        agreements.terminate(id, keccak256("reason"));
        vm.expectRevert(abi.encodeWithSelector(IResultsCourt.ResultsCourtAgreementTerminated.selector, id));
        court.postBond(id, BOND);
        vm.stopPrank();
        assertEq(token.balanceOf(address(court)), 0, "nothing posted");
    }

    function test_postBond_creditsTheCaller() public {
        mintAndApprove(coordinator, BOND);
        vm.expectEmit(true, true, true, true, address(court));
        emit IResultsCourt.BondPosted(id, coordinator, BOND, BOND);
        vm.prank(coordinator);
        court.postBond(id, BOND);
        assertEq(court.bondOf(id, coordinator), BOND, "bond");
        assertEq(court.bonds(id).posted, BOND, "books");
    }

    function test_withdrawBond_onlyAfterTheEnd_andNoOpenChallenge() public {
        postBond(coordinator, BOND);
        uint64 r = finalizedRound();
        vm.expectRevert(abi.encodeWithSelector(IResultsCourt.ResultsCourtAgreementRunning.selector, id));
        vm.prank(coordinator);
        court.withdrawBond(id);

        uint256 cid = challengeAs(auditor, r);
        uint64 end = agreements.roundConfig(id).end;
        vm.warp(uint256(end) + 1);
        vm.expectRevert(abi.encodeWithSelector(IResultsCourt.ResultsCourtBondLocked.selector, id));
        vm.prank(coordinator);
        court.withdrawBond(id);

        court.lapseResults(cid);
        uint256 before = token.balanceOf(coordinator);
        vm.expectEmit(true, true, true, true, address(court));
        emit IResultsCourt.BondWithdrawn(id, coordinator, BOND);
        vm.prank(coordinator);
        court.withdrawBond(id);
        assertEq(token.balanceOf(coordinator) - before, BOND, "bond returned");
        assertEq(court.bonds(id).withdrawn, BOND, "books");

        vm.expectRevert(abi.encodeWithSelector(IResultsCourt.ResultsCourtNoBond.selector, id, coordinator));
        vm.prank(coordinator);
        court.withdrawBond(id);
    }

    function test_withdrawBond_freeAtOnceAfterTerminationWithNoRounds() public {
        postBond(coordinator, BOND);
        vm.prank(coordinator);
        agreements.terminate(id, keccak256("reason"));
        // Terminated with nothing run: free at once.
        vm.prank(coordinator);
        court.withdrawBond(id);
        assertEq(court.bondOf(id, coordinator), 0, "withdrawn");
    }

    function test_withdrawBond_lockedDuringTheLastRoundsDisputeWindow() public {
        postBond(coordinator, BOND);
        uint64 end = agreements.roundConfig(id).end;
        vm.warp(uint256(end) - ROUND_LENGTH);
        vm.prank(coordinator);
        uint64 r = ledger.openRound(id, MODEL_DIGEST, end, EVAL_COMMITMENT);
        vm.warp(uint256(end) + 1);
        vm.expectRevert(abi.encodeWithSelector(IResultsCourt.ResultsCourtBondLocked.selector, id));
        vm.prank(coordinator);
        court.withdrawBond(id); // round open
        finalizeAs(id, r, bytes32(0), 0);
        vm.expectRevert(abi.encodeWithSelector(IResultsCourt.ResultsCourtBondLocked.selector, id));
        vm.prank(coordinator);
        court.withdrawBond(id); // results still challengeable
        vm.warp(claimableAt(r));
        vm.prank(coordinator);
        court.withdrawBond(id);
        assertEq(token.balanceOf(coordinator), BOND, "bond returned once nothing can be challenged");
    }

    function test_claimBondShare_refusesNonPartiesAndNothingOwed() public {
        vm.expectRevert(abi.encodeWithSelector(IResultsCourt.ResultsCourtNotParty.selector, id, rando));
        vm.prank(rando);
        court.claimBondShare(id);
        vm.expectRevert(abi.encodeWithSelector(IResultsCourt.ResultsCourtNothingToClaim.selector, id, parties[1]));
        vm.prank(parties[1]);
        court.claimBondShare(id);
        assertEq(court.bondShareOf(id, rando), 0, "a non-party is owed nothing");
    }

    /// @dev Money conservation including bonds: whatever is posted, slashed and claimed, the court holds exactly
    /// the bonds still posted plus the shares still owed, and every slashed wei reaches a party.
    function testFuzz_bondMoneyIsConserved(uint256 posted, uint256 extra, uint8 claimers) public {
        posted = bound(posted, BOND, 1e30);
        extra = bound(extra, 1, 1e24);
        postBond(coordinator, posted);
        postBond(rando, extra);
        uint64 r = finalizedRound();
        ruleAs(arbiter, challengeAs(auditor, r), true);
        uint256 claimed;
        for (uint256 i; i < 3; ++i) {
            if ((claimers >> i) & 1 == 0) continue;
            uint256 before = token.balanceOf(parties[i]);
            vm.prank(parties[i]);
            court.claimBondShare(id);
            claimed += token.balanceOf(parties[i]) - before;
        }
        uint256 owed;
        for (uint256 i; i < 3; ++i) {
            owed += court.bondShareOf(id, parties[i]);
        }
        IResultsCourt.Bonds memory b = court.bonds(id);
        uint256 held = court.bondOf(id, coordinator) + court.bondOf(id, rando);
        assertEq(b.posted, b.withdrawn + b.slashed + held, "posted = withdrawn + slashed + held");
        assertEq(b.slashed, b.sharesPaid + owed, "slashed = paid + owed");
        assertEq(b.sharesPaid, claimed, "paid = what parties received");
        assertEq(token.balanceOf(address(court)), held + owed, "balance = held + owed");
        assertEq(b.slashed, posted, "the coordinator's whole bond, and nobody else's");
    }

    function test_registry_coordinatorBondOfTheTermsInForce() public view {
        (address named, uint256 bond) = agreements.coordinatorBondOf(id);
        assertEq(named, coordinator, "coordinator");
        assertEq(bond, BOND, "bond");
        (named, bond) = agreements.coordinatorBondOf(99);
        assertEq(named, address(0), "unknown agreement: no coordinator");
        assertEq(bond, 0, "unknown agreement: no bond");
    }

    /*//////////////////////////////////////////////////////////////
                           THE VAULT'S WIRING
    //////////////////////////////////////////////////////////////*/

    function test_vault_setResultsCourt_onceByAdmin() public {
        RewardVault fresh = new RewardVault(partners, agreements, treasury);
        vm.expectRevert(abi.encodeWithSelector(IRewardVault.RewardVaultNotAdmin.selector, rando));
        vm.prank(rando);
        fresh.setResultsCourt(address(court));
        vm.expectRevert(IRewardVault.RewardVaultZeroAddress.selector);
        vm.prank(admin);
        fresh.setResultsCourt(address(0));
        vm.expectRevert(IRewardVault.RewardVaultNoCourt.selector);
        fresh.checkBond(id);

        vm.expectEmit(true, true, true, true, address(fresh));
        emit IRewardVault.CourtSet(address(court));
        vm.prank(admin);
        fresh.setResultsCourt(address(court));
        assertEq(fresh.resultsCourt(), address(court), "court");
        vm.expectRevert(abi.encodeWithSelector(IRewardVault.RewardVaultCourtAlreadySet.selector, address(court)));
        vm.prank(admin);
        fresh.setResultsCourt(address(rando));
    }

    function test_vault_onlyLedgerOrCourtRevokes() public {
        postBond(coordinator, BOND);
        uint64 r = finalizedRound();
        vm.expectRevert(abi.encodeWithSelector(IRewardVault.RewardVaultNotLedger.selector, rando));
        vm.prank(rando);
        vault.revokeAllocation(id, r);
        assertFalse(vault.allocation(id, r).revoked, "still allocated");
    }
}
