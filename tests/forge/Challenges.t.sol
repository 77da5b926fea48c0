// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.28;

import {LedgerFixture} from "./utils/Fixture.sol";
import {IRoundLedger} from "../../interfaces/IRoundLedger.sol";

/// @dev Auditors' challenges: raising, ruling, execution by the vault, and what they lock and block meanwhile.
contract ChallengesTest is LedgerFixture {
    bytes32 internal constant EVIDENCE = keccak256("evidence");
    bytes32 internal constant RULING = keccak256("ruling");

    uint256 internal id;
    uint64 internal r;
    address internal alice;
    address internal bob;
    address internal carol;

    function setUp() public override {
        super.setUp();
        address[] memory parties;
        (id, parties) = activeAgreement(3, 1_000e18);
        (alice, bob, carol) = (parties[0], parties[1], parties[2]);
        r = openRoundOn(id);
        submitAs(alice, id, r, EPSILON_ONE);
        submitAs(bob, id, r, EPSILON_ONE);
    }

    function challengeAs(address who, address partner) internal returns (uint256) {
        vm.prank(who);
        return ledger.challenge(id, r, partner, EVIDENCE);
    }

    function resolve(uint256 challengeId, bool upheld) internal {
        vm.prank(arbiter);
        ledger.resolveChallenge(challengeId, upheld, RULING);
    }

    function finalizedAt() internal view returns (uint256) {
        return ledger.round(id, r).finalizedAt;
    }

    /*//////////////////////////////////////////////////////////////
                               challenge
    //////////////////////////////////////////////////////////////*/

    function test_challenge_recordsAnOpenChallenge() public {
        vm.expectEmit(true, true, true, true, address(ledger));
        emit IRoundLedger.ChallengeRaised(1, id, r, alice, auditor, EVIDENCE);
        uint256 cid = challengeAs(auditor, alice);

        assertEq(cid, 1, "challenge id");
        assertEq(ledger.challengeCount(), 1, "count");
        IRoundLedger.Challenge memory c = ledger.challengeOf(cid);
        assertTrue(c.status == IRoundLedger.ChallengeStatus.Open, "status");
        assertEq(c.round, r, "round");
        assertEq(c.raisedAt, block.timestamp, "raisedAt");
        assertEq(c.agreementId, id, "agreement");
        assertEq(c.partner, alice, "partner");
        assertEq(c.challenger, auditor, "challenger");
        assertEq(c.evidenceDigest, EVIDENCE, "evidence");
        assertEq(c.rulingDigest, bytes32(0), "no ruling");
    }

    function test_challenge_refusesNonAuditor() public {
        vm.expectRevert(abi.encodeWithSelector(IRoundLedger.RoundLedgerNotAuditor.selector, coordinator));
        challengeAs(coordinator, alice);
    }

    function test_challenge_refusesUnknownRound() public {
        vm.expectRevert(abi.encodeWithSelector(IRoundLedger.RoundLedgerUnknownRound.selector, id, 9));
        vm.prank(auditor);
        ledger.challenge(id, 9, alice, EVIDENCE);
    }

    function test_challenge_refusesNonParty() public {
        vm.expectRevert(abi.encodeWithSelector(IRoundLedger.RoundLedgerNotParty.selector, id, rando));
        challengeAs(auditor, rando);
    }

    function test_challenge_refusesPartyThatDidNotSubmit() public {
        vm.expectRevert(abi.encodeWithSelector(IRoundLedger.RoundLedgerNoSubmission.selector, id, r, carol));
        challengeAs(auditor, carol);
    }

    function test_challenge_refusesZeroEvidenceDigest() public {
        vm.expectRevert(abi.encodeWithSelector(IRoundLedger.RoundLedgerZeroDigest.selector));
        vm.prank(auditor);
        ledger.challenge(id, r, alice, bytes32(0));
    }

    function test_challenge_refusesUpdateAlreadyUnderChallenge() public {
        challengeAs(auditor, alice);
        vm.expectRevert(abi.encodeWithSelector(IRoundLedger.RoundLedgerAlreadyChallenged.selector, id, r, alice));
        challengeAs(auditor, alice);
    }

    function test_challenge_refusesUpdateWhoseChallengeWasUpheld() public {
        resolve(challengeAs(auditor, alice), true);
        vm.expectRevert(abi.encodeWithSelector(IRoundLedger.RoundLedgerAlreadyChallenged.selector, id, r, alice));
        challengeAs(auditor, alice);
    }

    function test_challenge_acceptsUpdateAgainAfterDismissal() public {
        resolve(challengeAs(auditor, alice), false);
        uint256 second = challengeAs(auditor, alice);
        assertEq(second, 2, "second challenge");
        assertTrue(ledger.challengeOf(second).status == IRoundLedger.ChallengeStatus.Open, "open");
        assertTrue(ledger.isClaimBlocked(id, r, alice), "blocked again");
    }

    function test_challenge_acceptsChallengesOfDifferentPartnersInOneRound() public {
        assertEq(challengeAs(auditor, alice), 1, "alice");
        assertEq(challengeAs(auditor, bob), 2, "bob");
    }

    function test_challenge_acceptsFinalizedRoundUntilItsDisputeWindowEnds() public {
        closeRound(id, r, bytes32(0), 0);
        vm.warp(finalizedAt() + DISPUTE_WINDOW - 1);
        assertEq(challengeAs(auditor, alice), 1, "last second of the window");
    }

    function test_challenge_refusesOnceTheDisputeWindowEnded() public {
        closeRound(id, r, bytes32(0), 0);
        vm.warp(finalizedAt() + DISPUTE_WINDOW + 1);
        vm.expectRevert(abi.encodeWithSelector(IRoundLedger.RoundLedgerDisputeWindowClosed.selector, id, r));
        challengeAs(auditor, alice);
    }

    /// @dev Claims, unstaking and execution open at finalizedAt + disputeWindow; a challenge raised at that same
    /// second would come after the stake it is meant to hold could already have left.
    function test_challenge_refusesAtTheSecondClaimsAndUnstakingOpen() public {
        closeRound(id, r, bytes32(0), 0);
        vm.warp(finalizedAt() + DISPUTE_WINDOW);
        assertFalse(ledger.isStakeLocked(id, alice), "stake already unlocked");
        vm.expectRevert(abi.encodeWithSelector(IRoundLedger.RoundLedgerDisputeWindowClosed.selector, id, r));
        challengeAs(auditor, alice);
    }

    /*//////////////////////////////////////////////////////////////
                            resolveChallenge
    //////////////////////////////////////////////////////////////*/

    function test_resolveChallenge_upholdsTheChallenge() public {
        uint256 cid = challengeAs(auditor, alice);
        vm.expectEmit(true, true, true, true, address(ledger));
        emit IRoundLedger.ChallengeResolved(cid, true, RULING);
        resolve(cid, true);
        IRoundLedger.Challenge memory c = ledger.challengeOf(cid);
        assertTrue(c.status == IRoundLedger.ChallengeStatus.Upheld, "upheld");
        assertEq(c.rulingDigest, RULING, "ruling");
        assertTrue(ledger.isClaimBlocked(id, r, alice), "claim blocked");
    }

    function test_resolveChallenge_dismissesTheChallenge() public {
        uint256 cid = challengeAs(auditor, alice);
        vm.expectEmit(true, true, true, true, address(ledger));
        emit IRoundLedger.ChallengeResolved(cid, false, RULING);
        resolve(cid, false);
        IRoundLedger.Challenge memory c = ledger.challengeOf(cid);
        assertTrue(c.status == IRoundLedger.ChallengeStatus.Dismissed, "dismissed");
        assertEq(c.rulingDigest, RULING, "ruling");
        assertFalse(ledger.isClaimBlocked(id, r, alice), "claim free");
    }

    /// @dev Issue 10, item 7: rulings come from the arbiter the parties signed for, not a global admin.
    function test_resolveChallenge_refusesAnyoneButTheAgreementsArbiter() public {
        uint256 cid = challengeAs(auditor, alice);
        address[3] memory callers = [admin, auditor, coordinator];
        for (uint256 i; i < callers.length; ++i) {
            vm.expectRevert(abi.encodeWithSelector(IRoundLedger.RoundLedgerNotArbiter.selector, id, callers[i]));
            vm.prank(callers[i]);
            ledger.resolveChallenge(cid, true, RULING);
        }
        assertTrue(ledger.challengeOf(cid).status == IRoundLedger.ChallengeStatus.Open, "still open");
    }

    function test_resolveChallenge_refusesUnknownChallenge() public {
        vm.expectRevert(abi.encodeWithSelector(IRoundLedger.RoundLedgerUnknownChallenge.selector, 5));
        resolve(5, true);
    }

    function test_resolveChallenge_refusesChallengeAlreadyResolved() public {
        uint256 cid = challengeAs(auditor, alice);
        resolve(cid, false);
        vm.expectRevert(
            abi.encodeWithSelector(
                IRoundLedger.RoundLedgerInvalidChallengeStatus.selector, cid, IRoundLedger.ChallengeStatus.Dismissed
            )
        );
        resolve(cid, true);
    }

    function test_challengeOf_refusesUnknownChallenge() public {
        vm.expectRevert(abi.encodeWithSelector(IRoundLedger.RoundLedgerUnknownChallenge.selector, 1));
        ledger.challengeOf(1);
    }

    /*//////////////////////////////////////////////////////////////
                          markChallengeExecuted
    //////////////////////////////////////////////////////////////*/

    function test_markChallengeExecuted_refusesCallerOtherThanTheVault() public {
        uint256 cid = challengeAs(auditor, alice);
        vm.expectRevert(abi.encodeWithSelector(IRoundLedger.RoundLedgerNotVault.selector, admin));
        vm.prank(admin);
        ledger.markChallengeExecuted(cid);
    }

    function test_markChallengeExecuted_refusesUnknownChallenge() public {
        vm.expectRevert(abi.encodeWithSelector(IRoundLedger.RoundLedgerUnknownChallenge.selector, 3));
        vm.prank(address(vault));
        ledger.markChallengeExecuted(3);
    }

    function test_markChallengeExecuted_refusesChallengeNotUpheld() public {
        uint256 cid = challengeAs(auditor, alice);
        vm.expectRevert(
            abi.encodeWithSelector(
                IRoundLedger.RoundLedgerInvalidChallengeStatus.selector, cid, IRoundLedger.ChallengeStatus.Open
            )
        );
        vm.prank(address(vault));
        ledger.markChallengeExecuted(cid);
    }

    function test_markChallengeExecuted_waitsWhileTheRoundIsOpen() public {
        uint256 cid = challengeAs(auditor, alice);
        resolve(cid, true);
        vm.warp(block.timestamp + 365 days);
        vm.expectRevert(
            abi.encodeWithSelector(IRoundLedger.RoundLedgerDisputeWindowOpen.selector, cid, type(uint256).max)
        );
        vm.prank(address(vault));
        ledger.markChallengeExecuted(cid);
    }

    function test_markChallengeExecuted_waitsForTheDisputeWindowToEnd() public {
        uint256 cid = challengeAs(auditor, alice);
        resolve(cid, true);
        closeRound(id, r, bytes32(0), 0);
        uint256 endsAt = finalizedAt() + DISPUTE_WINDOW;
        vm.warp(endsAt - 1);
        vm.expectRevert(abi.encodeWithSelector(IRoundLedger.RoundLedgerDisputeWindowOpen.selector, cid, endsAt));
        vm.prank(address(vault));
        ledger.markChallengeExecuted(cid);
    }

    function test_markChallengeExecuted_executesAfterTheDisputeWindow() public {
        uint256 cid = challengeAs(auditor, alice);
        resolve(cid, true);
        closeRound(id, r, bytes32(0), 0);
        vm.warp(finalizedAt() + DISPUTE_WINDOW);

        vm.expectEmit(true, true, true, true, address(ledger));
        emit IRoundLedger.ChallengeExecuted(cid);
        vm.prank(address(vault));
        IRoundLedger.Challenge memory c = ledger.markChallengeExecuted(cid);

        assertTrue(c.status == IRoundLedger.ChallengeStatus.Executed, "returned status");
        assertEq(c.partner, alice, "returned partner");
        assertEq(c.agreementId, id, "returned agreement");
        assertTrue(ledger.challengeOf(cid).status == IRoundLedger.ChallengeStatus.Executed, "stored status");
        assertFalse(ledger.isStakeLocked(id, alice), "stake released");
        assertTrue(ledger.isClaimBlocked(id, r, alice), "reward stays blocked");
    }

    function test_markChallengeExecuted_refusesSecondExecution() public {
        uint256 cid = challengeAs(auditor, alice);
        resolve(cid, true);
        closeRound(id, r, bytes32(0), 0);
        vm.warp(finalizedAt() + DISPUTE_WINDOW);
        vm.startPrank(address(vault));
        ledger.markChallengeExecuted(cid);
        vm.expectRevert(
            abi.encodeWithSelector(
                IRoundLedger.RoundLedgerInvalidChallengeStatus.selector, cid, IRoundLedger.ChallengeStatus.Executed
            )
        );
        ledger.markChallengeExecuted(cid);
        vm.stopPrank();
    }

    /*//////////////////////////////////////////////////////////////
                      isStakeLocked, isClaimBlocked
    //////////////////////////////////////////////////////////////*/

    function test_isStakeLocked_whileARoundIsOpen() public view {
        assertTrue(ledger.isStakeLocked(id, carol), "open round locks every party");
    }

    function test_isStakeLocked_untilTheDisputeWindowEnds() public {
        closeRound(id, r, bytes32(0), 0);
        vm.warp(finalizedAt() + DISPUTE_WINDOW - 1);
        assertTrue(ledger.isStakeLocked(id, carol), "locked during the window");
        vm.warp(finalizedAt() + DISPUTE_WINDOW);
        assertFalse(ledger.isStakeLocked(id, carol), "released when it ends");
    }

    function test_isStakeLocked_whileAChallengeIsPendingAfterTheWindow() public {
        challengeAs(auditor, alice);
        closeRound(id, r, bytes32(0), 0);
        vm.warp(finalizedAt() + DISPUTE_WINDOW);
        assertTrue(ledger.isStakeLocked(id, alice), "challenged partner locked");
        assertFalse(ledger.isStakeLocked(id, bob), "others released");
    }

    function test_isStakeLocked_whileAnUpheldChallengeAwaitsExecution() public {
        resolve(challengeAs(auditor, alice), true);
        closeRound(id, r, bytes32(0), 0);
        vm.warp(finalizedAt() + DISPUTE_WINDOW);
        assertTrue(ledger.isStakeLocked(id, alice), "locked until slashed");
    }

    function test_isStakeLocked_releasedByDismissal() public {
        uint256 cid = challengeAs(auditor, alice);
        resolve(cid, false);
        closeRound(id, r, bytes32(0), 0);
        vm.warp(finalizedAt() + DISPUTE_WINDOW);
        assertFalse(ledger.isStakeLocked(id, alice), "released");
    }

    /*//////////////////////////////////////////////////////////////
                    ruling window and lapsed challenges
    //////////////////////////////////////////////////////////////*/

    /// @dev Issue 10, item 7, as the attack: an arbiter that never rules would freeze the partner's stake and
    /// claims for ever. After the ruling window the arbiter can no longer rule, and anyone lapses the challenge.
    function test_attack_anArbiterThatNeverRulesFreezesNothing() public {
        uint256 cid = challengeAs(auditor, alice);
        closeRound(id, r, bytes32(0), 0);
        uint256 endsAt = uint256(ledger.challengeOf(cid).raisedAt) + DISPUTE_WINDOW;
        vm.warp(endsAt);
        vm.expectRevert(abi.encodeWithSelector(IRoundLedger.RoundLedgerRulingWindowClosed.selector, cid, endsAt));
        resolve(cid, true);
        vm.expectEmit(true, true, true, true, address(ledger));
        emit IRoundLedger.ChallengeLapsed(cid);
        vm.prank(rando);
        ledger.lapseChallenge(cid);
        assertTrue(ledger.challengeOf(cid).status == IRoundLedger.ChallengeStatus.Dismissed, "lapsed as dismissed");
        vm.warp(finalizedAt() + DISPUTE_WINDOW);
        assertFalse(ledger.isStakeLocked(id, alice), "stake free");
        assertFalse(ledger.isClaimBlocked(id, r, alice), "claim free");
    }

    function test_lapseChallenge_refusesWithinTheRulingWindow() public {
        uint256 cid = challengeAs(auditor, alice);
        uint256 endsAt = uint256(ledger.challengeOf(cid).raisedAt) + DISPUTE_WINDOW;
        vm.warp(endsAt - 1);
        vm.expectRevert(abi.encodeWithSelector(IRoundLedger.RoundLedgerRulingWindowOpen.selector, cid, endsAt));
        ledger.lapseChallenge(cid);
    }

    function test_lapseChallenge_refusesARuledChallenge() public {
        uint256 cid = challengeAs(auditor, alice);
        resolve(cid, true);
        vm.warp(block.timestamp + DISPUTE_WINDOW);
        vm.expectRevert(
            abi.encodeWithSelector(
                IRoundLedger.RoundLedgerInvalidChallengeStatus.selector, cid, IRoundLedger.ChallengeStatus.Upheld
            )
        );
        ledger.lapseChallenge(cid);
    }

    /*//////////////////////////////////////////////////////////////
                              abandonRound
    //////////////////////////////////////////////////////////////*/

    /// @dev Issue 10, item 7, as the attack: a coordinator that never finalizes keeps every stake locked. After
    /// the deadline plus the grace period anyone abandons the round: nothing is allocated, stakes come free.
    function test_attack_aCoordinatorThatNeverFinalizesLocksNoStake() public {
        uint256 abandonableAt = uint256(ledger.round(id, r).deadline) + DISPUTE_WINDOW;
        vm.warp(abandonableAt);
        vm.expectRevert(
            abi.encodeWithSelector(IRoundLedger.RoundLedgerNotAbandonable.selector, id, r, abandonableAt)
        );
        ledger.abandonRound(id, r);
        vm.warp(abandonableAt + 1);
        vm.expectEmit(true, true, true, true, address(ledger));
        emit IRoundLedger.RoundAbandoned(id, r);
        vm.prank(rando);
        ledger.abandonRound(id, r);
        assertTrue(ledger.round(id, r).status == IRoundLedger.RoundStatus.Voided, "voided");
        assertEq(ledger.openRoundOf(id), 0, "no round open");
        assertEq(vault.allocation(id, r).total, 0, "nothing allocated");
        assertFalse(ledger.isStakeLocked(id, bob), "stake free");
    }

    function test_abandonRound_refusesAFinalizedRound() public {
        closeRound(id, r, bytes32(0), 0);
        vm.warp(block.timestamp + 2 * DISPUTE_WINDOW);
        vm.expectRevert(abi.encodeWithSelector(IRoundLedger.RoundLedgerRoundNotOpen.selector, id, r));
        ledger.abandonRound(id, r);
    }

    function test_isClaimBlocked_isFalseWithoutChallenge() public view {
        assertFalse(ledger.isClaimBlocked(id, r, alice), "free");
    }

    function test_isClaimBlocked_whileChallengeIsOpen() public {
        challengeAs(auditor, alice);
        assertTrue(ledger.isClaimBlocked(id, r, alice), "blocked");
        assertFalse(ledger.isClaimBlocked(id, r, bob), "only the challenged partner");
    }
}
