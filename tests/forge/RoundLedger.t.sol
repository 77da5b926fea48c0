// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.28;

import {LedgerFixture} from "./utils/Fixture.sol";
import {Vm} from "./utils/Vm.sol";
import {IRoundLedger} from "../../interfaces/IRoundLedger.sol";
import {IRewardVault} from "../../interfaces/IRewardVault.sol";
import {IAgreementRegistry} from "../../interfaces/IAgreementRegistry.sol";

/// @dev Rounds and single-update commitments: openRound, submitUpdate, finalizeRound and the views.
contract RoundLedgerTest is LedgerFixture {
    uint256 internal id;
    address[] internal parties;
    address internal alice;
    address internal bob;
    address internal carol;

    function setUp() public override {
        super.setUp();
        (id, parties) = activeAgreement(3, 1_000e18);
        (alice, bob, carol) = (parties[0], parties[1], parties[2]);
    }

    /// @dev An Active agreement of the three fixture partners on custom terms.
    function agreementWith(IAgreementRegistry.Terms memory t) internal returns (uint256) {
        return proposeSignStake(t, STAKE);
    }

    /*//////////////////////////////////////////////////////////////
                               openRound
    //////////////////////////////////////////////////////////////*/

    function test_openRound_opensRoundOneWithItsParameters() public {
        uint64 deadline = uint64(block.timestamp) + ROUND_LENGTH;
        vm.expectEmit(true, true, true, true, address(ledger));
        emit IRoundLedger.RoundOpened(id, 1, 1, MODEL_DIGEST, EVAL_COMMITMENT, deadline);
        vm.prank(coordinator);
        uint64 roundId = ledger.openRound(id, MODEL_DIGEST, deadline, EVAL_COMMITMENT);

        assertEq(roundId, 1, "round id");
        assertEq(ledger.roundCount(id), 1, "roundCount");
        assertEq(ledger.openRoundOf(id), 1, "openRoundOf");
        IRoundLedger.Round memory r = ledger.round(id, 1);
        assertTrue(r.status == IRoundLedger.RoundStatus.Open, "status");
        assertEq(r.agreementVersion, 1, "version");
        assertEq(r.submissions, 0, "submissions");
        assertEq(r.openedAt, block.timestamp, "openedAt");
        assertEq(r.deadline, deadline, "deadline");
        assertEq(r.modelDigest, MODEL_DIGEST, "model");
        assertEq(r.evalCommitment, EVAL_COMMITMENT, "eval");
        assertEq(r.finalizedAt, 0, "finalizedAt");
    }

    function test_openRound_numbersRoundsOnAfterFinalization() public {
        closeRound(id, openRoundOn(id), bytes32(0), 0);
        assertEq(openRoundOn(id), 2, "second round");
        assertEq(ledger.roundCount(id), 2, "roundCount");
    }

    function test_openRound_refusesNonCoordinator() public {
        vm.expectRevert(abi.encodeWithSelector(IRoundLedger.RoundLedgerNotCoordinator.selector, rando));
        vm.prank(rando);
        ledger.openRound(id, MODEL_DIGEST, uint64(block.timestamp) + ROUND_LENGTH, EVAL_COMMITMENT);
    }

    /// @dev Issue 10, item 2, as the attack: a second holder of the coordinator role runs someone else's
    /// agreement (opens, finalizes with its own payout root). Only the agreement's coordinator may.
    function test_attack_anotherCoordinatorCannotRunThisAgreementsRounds() public {
        address other = address(0xC1);
        vm.startPrank(admin);
        partners.grantRole(partners.COORDINATOR_ROLE(), other);
        vm.stopPrank();
        vm.expectRevert(abi.encodeWithSelector(IRoundLedger.RoundLedgerNotCoordinator.selector, other));
        vm.prank(other);
        ledger.openRound(id, MODEL_DIGEST, uint64(block.timestamp) + ROUND_LENGTH, EVAL_COMMITMENT);
        uint64 r = openRoundOn(id);
        vm.warp(uint256(block.timestamp) + ROUND_LENGTH + 1);
        vm.expectRevert(abi.encodeWithSelector(IRoundLedger.RoundLedgerNotCoordinator.selector, other));
        vm.prank(other);
        ledger.finalizeRound(id, r, AGGREGATE_DIGEST, REPORT_DIGEST, keccak256("root"), REWARD_PER_ROUND);
        assertEq(ledger.openRoundOf(id), r, "still open");
    }

    function test_openRound_refusesProposedAgreement() public {
        vm.prank(coordinator);
        uint256 proposed = agreements.propose(defaultTerms(parties));
        vm.expectRevert(abi.encodeWithSelector(IRoundLedger.RoundLedgerAgreementNotActive.selector, proposed));
        vm.prank(coordinator);
        ledger.openRound(proposed, MODEL_DIGEST, uint64(block.timestamp) + ROUND_LENGTH, EVAL_COMMITMENT);
    }

    function test_openRound_refusesUnknownAgreement() public {
        vm.expectRevert(abi.encodeWithSelector(IRoundLedger.RoundLedgerAgreementNotActive.selector, 99));
        vm.prank(coordinator);
        ledger.openRound(99, MODEL_DIGEST, uint64(block.timestamp) + ROUND_LENGTH, EVAL_COMMITMENT);
    }

    function test_openRound_refusesTerminatedAgreement() public {
        vm.prank(coordinator);
        agreements.terminate(id, keccak256("reason"));
        vm.expectRevert(abi.encodeWithSelector(IRoundLedger.RoundLedgerAgreementNotActive.selector, id));
        vm.prank(coordinator);
        ledger.openRound(id, MODEL_DIGEST, uint64(block.timestamp) + ROUND_LENGTH, EVAL_COMMITMENT);
    }

    function test_openRound_refusesBeforeAgreementStart() public {
        IAgreementRegistry.Terms memory t = defaultTerms(parties);
        t.start = uint64(block.timestamp + 1 days);
        uint256 later = agreementWith(t);
        vm.expectRevert(
            abi.encodeWithSelector(IRoundLedger.RoundLedgerOutsideAgreementPeriod.selector, later, t.start, t.end)
        );
        vm.prank(coordinator);
        ledger.openRound(later, MODEL_DIGEST, uint64(block.timestamp) + ROUND_LENGTH, EVAL_COMMITMENT);
    }

    function test_openRound_refusesAfterAgreementEnd() public {
        IAgreementRegistry.Terms memory t = defaultTerms(parties);
        vm.warp(uint256(t.end) + 1);
        vm.expectRevert(
            abi.encodeWithSelector(IRoundLedger.RoundLedgerOutsideAgreementPeriod.selector, id, t.start, t.end)
        );
        vm.prank(coordinator);
        ledger.openRound(id, MODEL_DIGEST, uint64(block.timestamp) + ROUND_LENGTH, EVAL_COMMITMENT);
    }

    function test_openRound_refusesWhileARoundIsOpen() public {
        openRoundOn(id);
        vm.expectRevert(abi.encodeWithSelector(IRoundLedger.RoundLedgerRoundAlreadyOpen.selector, id, 1));
        vm.prank(coordinator);
        ledger.openRound(id, MODEL_DIGEST, uint64(block.timestamp) + ROUND_LENGTH, EVAL_COMMITMENT);
    }

    function test_openRound_refusesBeyondMaxRounds() public {
        IAgreementRegistry.Terms memory t = defaultTerms(parties);
        t.maxRounds = 1;
        uint256 single = agreementWith(t);
        closeRound(single, openRoundOn(single), bytes32(0), 0);
        vm.expectRevert(abi.encodeWithSelector(IRoundLedger.RoundLedgerMaxRoundsReached.selector, single, 1));
        vm.prank(coordinator);
        ledger.openRound(single, MODEL_DIGEST, uint64(block.timestamp) + ROUND_LENGTH, EVAL_COMMITMENT);
    }

    function test_openRound_refusesDeadlineNotInTheFuture() public {
        uint64 deadline = uint64(block.timestamp);
        vm.expectRevert(abi.encodeWithSelector(IRoundLedger.RoundLedgerInvalidDeadline.selector, deadline));
        vm.prank(coordinator);
        ledger.openRound(id, MODEL_DIGEST, deadline, EVAL_COMMITMENT);
    }

    function test_openRound_refusesDeadlineAfterAgreementEnd() public {
        uint64 deadline = defaultTerms(parties).end + 1;
        vm.expectRevert(abi.encodeWithSelector(IRoundLedger.RoundLedgerInvalidDeadline.selector, deadline));
        vm.prank(coordinator);
        ledger.openRound(id, MODEL_DIGEST, deadline, EVAL_COMMITMENT);
    }

    function test_openRound_acceptsDeadlineAtAgreementEnd() public {
        uint64 end = defaultTerms(parties).end;
        vm.prank(coordinator);
        ledger.openRound(id, MODEL_DIGEST, end, EVAL_COMMITMENT);
        assertEq(ledger.round(id, 1).deadline, end, "deadline");
    }

    function test_openRound_refusesZeroModelDigest() public {
        vm.expectRevert(abi.encodeWithSelector(IRoundLedger.RoundLedgerZeroDigest.selector));
        vm.prank(coordinator);
        ledger.openRound(id, bytes32(0), uint64(block.timestamp) + ROUND_LENGTH, EVAL_COMMITMENT);
    }

    function test_openRound_refusesZeroEvalCommitment() public {
        vm.expectRevert(abi.encodeWithSelector(IRoundLedger.RoundLedgerZeroDigest.selector));
        vm.prank(coordinator);
        ledger.openRound(id, MODEL_DIGEST, uint64(block.timestamp) + ROUND_LENGTH, bytes32(0));
    }

    /*//////////////////////////////////////////////////////////////
                              submitUpdate
    //////////////////////////////////////////////////////////////*/

    function test_submitUpdate_recordsTheCommitment() public {
        uint64 r = openRoundOn(id);
        vm.expectEmit(true, true, true, true, address(ledger));
        emit IRoundLedger.UpdateSubmitted(
            id, r, alice, envelopeOf(alice, r), manifestOf(alice, r), 2 * EPSILON_ONE, SAMPLES
        );
        submitAs(alice, id, r, 2 * EPSILON_ONE);

        assertEq(ledger.cumulativeEpsilon(id, alice), 2 * EPSILON_ONE, "epsilon");
        assertTrue(ledger.hasSubmitted(id, r, alice), "submitted");
        assertFalse(ledger.hasSubmitted(id, r, bob), "bob not submitted");
        assertEq(ledger.cumulativeEpsilon(id, bob), 0, "bob epsilon");
        assertEq(ledger.round(id, r).submissions, 1, "submissions");
    }

    function test_submitUpdate_acceptsEpsilonExactlyAtTheCap() public {
        uint64 r = openRoundOn(id);
        submitAs(alice, id, r, 8 * EPSILON_ONE);
        assertEq(ledger.cumulativeEpsilon(id, alice), 8 * EPSILON_ONE, "epsilon at cap");
    }

    function test_submitUpdate_refusesEpsilonOverTheCap() public {
        uint64 r = openRoundOn(id);
        vm.expectRevert(
            abi.encodeWithSelector(
                IRoundLedger.RoundLedgerBudgetExceeded.selector, alice, 8 * EPSILON_ONE + 1, 8 * EPSILON_ONE
            )
        );
        submitAs(alice, id, r, 8 * EPSILON_ONE + 1);
    }

    function test_submitUpdate_refusesZeroEpsilon() public {
        uint64 r = openRoundOn(id);
        vm.expectRevert(abi.encodeWithSelector(IRoundLedger.RoundLedgerEpsilonNotIncreasing.selector, alice, 0, 0));
        submitAs(alice, id, r, 0);
    }

    function test_submitUpdate_refusesEpsilonThatDoesNotIncrease() public {
        closeRoundAfter(alice, 3 * EPSILON_ONE);
        uint64 r = openRoundOn(id);
        vm.expectRevert(
            abi.encodeWithSelector(
                IRoundLedger.RoundLedgerEpsilonNotIncreasing.selector, alice, 3 * EPSILON_ONE, 3 * EPSILON_ONE
            )
        );
        submitAs(alice, id, r, 3 * EPSILON_ONE);
    }

    function test_submitUpdate_refusesEpsilonThatDecreases() public {
        closeRoundAfter(alice, 3 * EPSILON_ONE);
        uint64 r = openRoundOn(id);
        vm.expectRevert(
            abi.encodeWithSelector(
                IRoundLedger.RoundLedgerEpsilonNotIncreasing.selector, alice, 3 * EPSILON_ONE, EPSILON_ONE
            )
        );
        submitAs(alice, id, r, EPSILON_ONE);
    }

    function test_submitUpdate_accumulatesEpsilonAcrossRounds() public {
        closeRoundAfter(alice, 3 * EPSILON_ONE);
        uint64 r = openRoundOn(id);
        submitAs(alice, id, r, 5 * EPSILON_ONE);
        assertEq(ledger.cumulativeEpsilon(id, alice), 5 * EPSILON_ONE, "raised");
    }

    function test_submitUpdate_refusesSecondSubmissionInARound() public {
        uint64 r = openRoundOn(id);
        submitAs(alice, id, r, EPSILON_ONE);
        vm.expectRevert(abi.encodeWithSelector(IRoundLedger.RoundLedgerAlreadySubmitted.selector, id, r, alice));
        submitAs(alice, id, r, 2 * EPSILON_ONE);
    }

    function test_submitUpdate_refusesInactiveAgreement() public {
        uint64 r = openRoundOn(id);
        vm.prank(coordinator);
        agreements.terminate(id, keccak256("reason"));
        vm.expectRevert(abi.encodeWithSelector(IRoundLedger.RoundLedgerAgreementNotActive.selector, id));
        submitAs(alice, id, r, EPSILON_ONE);
    }

    function test_submitUpdate_refusesUnknownRound() public {
        vm.expectRevert(abi.encodeWithSelector(IRoundLedger.RoundLedgerUnknownRound.selector, id, 1));
        submitAs(alice, id, 1, EPSILON_ONE);
    }

    function test_submitUpdate_refusesFinalizedRound() public {
        uint64 r = openRoundOn(id);
        closeRound(id, r, bytes32(0), 0);
        vm.expectRevert(abi.encodeWithSelector(IRoundLedger.RoundLedgerRoundNotOpen.selector, id, r));
        submitAs(alice, id, r, EPSILON_ONE);
    }

    function test_submitUpdate_refusesAfterTheDeadline() public {
        uint64 r = openRoundOn(id);
        uint64 deadline = ledger.round(id, r).deadline;
        vm.warp(uint256(deadline) + 1);
        vm.expectRevert(abi.encodeWithSelector(IRoundLedger.RoundLedgerDeadlinePassed.selector, id, r, deadline));
        submitAs(alice, id, r, EPSILON_ONE);
    }

    function test_submitUpdate_acceptsAtTheDeadline() public {
        uint64 r = openRoundOn(id);
        vm.warp(ledger.round(id, r).deadline);
        submitAs(alice, id, r, EPSILON_ONE);
        assertTrue(ledger.hasSubmitted(id, r, alice), "submitted at deadline");
    }

    function test_submitUpdate_refusesNonParty() public {
        uint64 r = openRoundOn(id);
        vm.expectRevert(abi.encodeWithSelector(IRoundLedger.RoundLedgerNotParty.selector, id, rando));
        submitAs(rando, id, r, EPSILON_ONE);
    }

    function test_submitUpdate_refusesSuspendedPartner() public {
        uint64 r = openRoundOn(id);
        vm.prank(coordinator);
        partners.suspend(alice, keccak256("suspicious"));
        vm.expectRevert(abi.encodeWithSelector(IRoundLedger.RoundLedgerPartnerNotApproved.selector, alice));
        submitAs(alice, id, r, EPSILON_ONE);
    }

    function test_submitUpdate_refusesZeroEnvelopeDigest() public {
        uint64 r = openRoundOn(id);
        vm.expectRevert(abi.encodeWithSelector(IRoundLedger.RoundLedgerZeroDigest.selector));
        vm.prank(alice);
        ledger.submitUpdate(id, r, bytes32(0), manifestOf(alice, r), EPSILON_ONE, SAMPLES);
    }

    function test_submitUpdate_refusesZeroManifestDigest() public {
        uint64 r = openRoundOn(id);
        vm.expectRevert(abi.encodeWithSelector(IRoundLedger.RoundLedgerZeroDigest.selector));
        vm.prank(alice);
        ledger.submitUpdate(id, r, envelopeOf(alice, r), bytes32(0), EPSILON_ONE, SAMPLES);
    }

    /// @dev Issue 10, item 5, as the attack: a partner claims 2^64-1 samples to take the whole reward under the
    /// by-sample-count rule and dominate FedAvg. The bound the parties signed refuses it.
    function test_attack_sampleCountAboveTheSignedBoundIsRefused() public {
        uint64 r = openRoundOn(id);
        vm.expectRevert(
            abi.encodeWithSelector(
                IRoundLedger.RoundLedgerSampleCountExceeded.selector, type(uint64).max, MAX_SAMPLES
            )
        );
        vm.prank(alice);
        ledger.submitUpdate(id, r, envelopeOf(alice, r), manifestOf(alice, r), EPSILON_ONE, type(uint64).max);
        vm.prank(alice);
        ledger.submitUpdate(id, r, envelopeOf(alice, r), manifestOf(alice, r), EPSILON_ONE, MAX_SAMPLES);
        assertTrue(ledger.hasSubmitted(id, r, alice), "the bound itself is accepted");
    }

    function test_submitUpdate_refusesZeroSampleCount() public {
        uint64 r = openRoundOn(id);
        vm.expectRevert(abi.encodeWithSelector(IRoundLedger.RoundLedgerZeroSampleCount.selector));
        vm.prank(alice);
        ledger.submitUpdate(id, r, envelopeOf(alice, r), manifestOf(alice, r), EPSILON_ONE, 0);
    }

    /*//////////////////////////////////////////////////////////////
                             finalizeRound
    //////////////////////////////////////////////////////////////*/

    function test_finalizeRound_recordsResultsAndAllocatesPayouts() public {
        uint64 r = openRoundOn(id);
        submitAs(alice, id, r, EPSILON_ONE);
        vm.warp(uint256(ledger.round(id, r).deadline) + 1);
        bytes32 root = keccak256("payout root");
        uint64 claimableAt = uint64(block.timestamp) + DISPUTE_WINDOW;

        vm.expectEmit(true, true, true, true, address(ledger));
        emit IRoundLedger.RoundFinalized(id, r, AGGREGATE_DIGEST, REPORT_DIGEST, root, 200e18);
        vm.expectEmit(true, true, true, true, address(vault));
        emit IRewardVault.Allocated(id, r, root, 200e18, claimableAt);
        finalizeAs(id, r, root, 200e18);

        IRoundLedger.Round memory round_ = ledger.round(id, r);
        assertTrue(round_.status == IRoundLedger.RoundStatus.Finalized, "status");
        assertEq(round_.finalizedAt, block.timestamp, "finalizedAt");
        assertEq(round_.aggregateDigest, AGGREGATE_DIGEST, "aggregate");
        assertEq(round_.reportDigest, REPORT_DIGEST, "report");
        assertEq(round_.payoutRoot, root, "root");
        assertEq(round_.payoutTotal, 200e18, "total");
        assertEq(ledger.openRoundOf(id), 0, "no open round");
        IRewardVault.Allocation memory a = vault.allocation(id, r);
        assertEq(a.root, root, "allocation root");
        assertEq(a.total, 200e18, "allocation total");
        assertEq(a.claimableAt, claimableAt, "claimableAt");
        assertEq(vault.unallocated(id), 800e18, "unallocated");
    }

    function test_finalizeRound_withoutPayoutAllocatesNothing() public {
        uint64 r = openRoundOn(id);
        vm.warp(uint256(ledger.round(id, r).deadline) + 1);
        vm.recordLogs();
        finalizeAs(id, r, bytes32(0), 0);
        Vm.Log[] memory logs = vm.getRecordedLogs();
        assertEq(logs.length, 2, "RoundFinalized and the closing snapshot only");
        assertEq(logs[0].emitter, address(ledger), "emitter");
        assertEq(logs[0].topics[0], IRoundLedger.RoundFinalized.selector, "event");
        assertEq(logs[1].topics[0], IRoundLedger.EpsilonsAtClose.selector, "snapshot");
        assertEq(vault.allocation(id, r).root, bytes32(0), "no allocation");
        assertEq(vault.pool(id).allocated, 0, "nothing allocated");
        assertTrue(ledger.round(id, r).status == IRoundLedger.RoundStatus.Finalized, "finalized");
    }

    function test_finalizeRound_acceptsBeforeDeadlineOnceEveryPartySubmitted() public {
        uint64 r = openRoundOn(id);
        submitAs(alice, id, r, EPSILON_ONE);
        submitAs(bob, id, r, EPSILON_ONE);
        submitAs(carol, id, r, EPSILON_ONE);
        finalizeAs(id, r, bytes32(0), 0);
        assertTrue(ledger.round(id, r).status == IRoundLedger.RoundStatus.Finalized, "finalized early");
    }

    function test_finalizeRound_refusesBeforeDeadlineWhileSubmissionsAreMissing() public {
        uint64 r = openRoundOn(id);
        submitAs(alice, id, r, EPSILON_ONE);
        submitAs(bob, id, r, EPSILON_ONE);
        uint64 deadline = ledger.round(id, r).deadline;
        vm.warp(deadline);
        vm.expectRevert(abi.encodeWithSelector(IRoundLedger.RoundLedgerRoundStillRunning.selector, id, r, deadline));
        finalizeAs(id, r, bytes32(0), 0);
    }

    function test_finalizeRound_refusesNonCoordinator() public {
        uint64 r = openRoundOn(id);
        vm.warp(uint256(ledger.round(id, r).deadline) + 1);
        vm.expectRevert(abi.encodeWithSelector(IRoundLedger.RoundLedgerNotCoordinator.selector, alice));
        vm.prank(alice);
        ledger.finalizeRound(id, r, AGGREGATE_DIGEST, REPORT_DIGEST, bytes32(0), 0);
    }

    function test_finalizeRound_refusesUnknownRound() public {
        vm.expectRevert(abi.encodeWithSelector(IRoundLedger.RoundLedgerUnknownRound.selector, id, 1));
        finalizeAs(id, 1, bytes32(0), 0);
    }

    function test_finalizeRound_refusesFinalizedRound() public {
        uint64 r = openRoundOn(id);
        closeRound(id, r, bytes32(0), 0);
        vm.expectRevert(abi.encodeWithSelector(IRoundLedger.RoundLedgerRoundNotOpen.selector, id, r));
        finalizeAs(id, r, bytes32(0), 0);
    }

    function test_finalizeRound_refusesPayoutsOfTerminatedAgreement() public {
        uint64 r = openRoundOn(id);
        vm.prank(coordinator);
        agreements.terminate(id, keccak256("reason"));
        vm.warp(uint256(ledger.round(id, r).deadline) + 1);
        vm.expectRevert(abi.encodeWithSelector(IRoundLedger.RoundLedgerAgreementNotActive.selector, id));
        finalizeAs(id, r, keccak256("root"), 1e18);
    }

    /// @dev Without this, a round left open by a termination would lock every party's stake for ever.
    function test_finalizeRound_closesRoundOfTerminatedAgreementWithoutPayouts() public {
        uint64 r = openRoundOn(id);
        vm.prank(coordinator);
        agreements.terminate(id, keccak256("reason"));
        vm.warp(uint256(ledger.round(id, r).deadline) + 1);
        vm.expectEmit(true, true, true, true, address(ledger));
        emit IRoundLedger.RoundFinalized(id, r, AGGREGATE_DIGEST, REPORT_DIGEST, bytes32(0), 0);
        finalizeAs(id, r, bytes32(0), 0);
        assertEq(ledger.openRoundOf(id), 0, "closed");
        vm.warp(block.timestamp + DISPUTE_WINDOW);
        assertFalse(ledger.isStakeLocked(id, alice), "stakes free after the dispute window");
    }

    function test_finalizeRound_refusesZeroAggregateDigest() public {
        uint64 r = openRoundOn(id);
        vm.warp(uint256(ledger.round(id, r).deadline) + 1);
        vm.expectRevert(abi.encodeWithSelector(IRoundLedger.RoundLedgerZeroDigest.selector));
        vm.prank(coordinator);
        ledger.finalizeRound(id, r, bytes32(0), REPORT_DIGEST, bytes32(0), 0);
    }

    function test_finalizeRound_refusesZeroReportDigest() public {
        uint64 r = openRoundOn(id);
        vm.warp(uint256(ledger.round(id, r).deadline) + 1);
        vm.expectRevert(abi.encodeWithSelector(IRoundLedger.RoundLedgerZeroDigest.selector));
        vm.prank(coordinator);
        ledger.finalizeRound(id, r, AGGREGATE_DIGEST, bytes32(0), bytes32(0), 0);
    }

    function test_finalizeRound_refusesPayoutOverRewardPerRound() public {
        uint64 r = openRoundOn(id);
        vm.warp(uint256(ledger.round(id, r).deadline) + 1);
        vm.expectRevert(
            abi.encodeWithSelector(
                IRoundLedger.RoundLedgerPayoutExceedsReward.selector, REWARD_PER_ROUND + 1, REWARD_PER_ROUND
            )
        );
        finalizeAs(id, r, keccak256("root"), REWARD_PER_ROUND + 1);
    }

    function test_finalizeRound_acceptsPayoutOfExactlyRewardPerRound() public {
        uint64 r = openRoundOn(id);
        closeRound(id, r, keccak256("root"), REWARD_PER_ROUND);
        assertEq(vault.allocation(id, r).total, REWARD_PER_ROUND, "allocated");
    }

    function test_finalizeRound_refusesPayoutWithoutRoot() public {
        uint64 r = openRoundOn(id);
        vm.warp(uint256(ledger.round(id, r).deadline) + 1);
        vm.expectRevert(abi.encodeWithSelector(IRoundLedger.RoundLedgerZeroPayoutRoot.selector));
        finalizeAs(id, r, bytes32(0), 1);
    }

    function test_finalizeRound_refusesPayoutOverUnallocatedFunds() public {
        uint256 poor = agreementWith(defaultTerms(parties));
        fundAs(coordinator, poor, 50e18);
        uint64 r = openRoundOn(poor);
        vm.warp(uint256(ledger.round(poor, r).deadline) + 1);
        vm.expectRevert(
            abi.encodeWithSelector(IRewardVault.RewardVaultInsufficientUnallocated.selector, poor, 50e18, 60e18)
        );
        finalizeAs(poor, r, keccak256("root"), 60e18);
    }

    /*//////////////////////////////////////////////////////////////
                                 VIEWS
    //////////////////////////////////////////////////////////////*/

    function test_round_refusesUnknownRound() public {
        vm.expectRevert(abi.encodeWithSelector(IRoundLedger.RoundLedgerUnknownRound.selector, id, 7));
        ledger.round(id, 7);
    }

    function test_vault_isTheRewardVault() public view {
        assertEq(ledger.vault(), address(vault), "vault");
        assertEq(ledger.disputeWindow(), DISPUTE_WINDOW, "dispute window");
    }

    function test_cumulativeEpsilon_isZeroForNonParty() public {
        uint64 r = openRoundOn(id);
        submitAs(alice, id, r, EPSILON_ONE);
        assertEq(ledger.cumulativeEpsilon(id, rando), 0, "non-party epsilon");
    }

    function test_hasSubmitted_isFalseForNonParty() public {
        uint64 r = openRoundOn(id);
        submitAs(alice, id, r, EPSILON_ONE);
        assertFalse(ledger.hasSubmitted(id, r, rando), "non-party");
    }

    function test_commitmentDigest_isTheEIP712DigestOfTheTypedCommitment() public view {
        IRoundLedger.UpdateCommitment memory c = commitmentFor(id, 4, bob, 3 * EPSILON_ONE);
        assertEq(ledger.commitmentDigest(c), commitmentDigestOf(c), "digest");
    }

    function test_commitmentLeaf_hashesDigestAndSignatureTwice() public view {
        IRoundLedger.UpdateCommitment memory c = commitmentFor(id, 4, bob, 3 * EPSILON_ONE);
        bytes memory signature = hex"0102030405";
        assertEq(ledger.commitmentLeaf(c, signature), commitmentLeafOf(c, signature), "leaf");
    }

    /*//////////////////////////////////////////////////////////////
                                HELPERS
    //////////////////////////////////////////////////////////////*/

    function closeRoundAfter(address party, uint32 epsilon) internal {
        uint64 r = openRoundOn(id);
        submitAs(party, id, r, epsilon);
        closeRound(id, r, bytes32(0), 0);
    }
}

/// @dev Single submissions of many parties: their packed epsilons never disturb one another.
contract RoundLedgerPackingTest is LedgerFixture {
    uint256 internal id;
    address[] internal many;
    uint64 internal r;

    function setUp() public override {
        super.setUp();
        many = approvedParties(10, 17); // three words of eight epsilons, the last one part-filled
        IAgreementRegistry.Terms memory t = defaultTerms(many);
        t.requiredStake = 0;
        id = proposeSignStake(t, 0);
        r = openRoundOn(id);
    }

    /// @dev Eight epsilons share a storage word: writing one party's must leave every other party's intact.
    function testFuzz_submitUpdate_keepsEachPartysEpsilonApart(uint256 seed) public {
        uint32[] memory expected = new uint32[](many.length);
        for (uint256 i; i < many.length; ++i) {
            uint256 pick = uint256(keccak256(abi.encode(seed, i)));
            if (pick % 3 == 0) continue; // some parties stay at zero
            expected[i] = uint32(bound(pick >> 8, 1, 8 * EPSILON_ONE));
            submitAs(many[i], id, r, expected[i]);
        }
        for (uint256 i; i < many.length; ++i) {
            assertEq(ledger.cumulativeEpsilon(id, many[i]), expected[i], "epsilon of party");
            assertEq(ledger.hasSubmitted(id, r, many[i]) ? 1 : 0, expected[i] != 0 ? 1 : 0, "submitted bit");
        }
    }
}
