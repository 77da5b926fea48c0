// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.28;

import {LedgerFixture, TestBase} from "./utils/Fixture.sol";
import {Vm} from "./utils/Vm.sol";
import {Merkle} from "./utils/Merkle.sol";
import {IRoundLedger} from "../../interfaces/IRoundLedger.sol";
import {IRewardVault} from "../../interfaces/IRewardVault.sol";
import {IResultsCourt} from "../../interfaces/IResultsCourt.sol";
import {IPartnerRegistry} from "../../interfaces/IPartnerRegistry.sol";
import {PositionalMerkle} from "../../contracts/libraries/PositionalMerkle.sol";
import {SmartWallet} from "../../contracts/testing/SmartWallet.sol";

/// @dev Batched commitments: commitBatch keeps every guarantee of submitUpdate, and proveForgedCommitment voids a
/// round whose anchored batch holds a commitment its partner did not sign.
contract BatchCommitTest is LedgerFixture {
    bytes32 internal constant DOCUMENT = keccak256("batch document");
    uint256 internal constant WRONG_KEY = 0xBADC0DE;
    uint256 internal constant PARTIES = 10;

    struct Batch {
        bytes entries;
        IRoundLedger.UpdateCommitment[] commitments;
        bytes[] signatures;
        bytes32[] leaves;
        bytes32 root;
    }

    uint256 internal id;
    address[] internal parties;
    uint64 internal r;
    /// @dev How many packed epsilon words the agreement has.
    uint256 internal wordCount;

    function setUp() public override {
        super.setUp();
        // Ten parties: their epsilons span two storage words, so the batch walk has to move between words.
        (id, parties) = activeAgreement(PARTIES, 1_000e18);
        wordCount = epsilonWordsNow(id, parties).length;
        r = openRoundOn(id);
    }

    /*//////////////////////////////////////////////////////////////
                                HELPERS
    //////////////////////////////////////////////////////////////*/

    /// @dev The batch of `indices` (party indexes) at `epsilons`, each commitment signed by its party's key.
    function buildBatch(uint256[] memory indices, uint32[] memory epsilons) internal view returns (Batch memory b) {
        uint256 n = indices.length;
        b.commitments = new IRoundLedger.UpdateCommitment[](n);
        b.signatures = new bytes[](n);
        for (uint256 i; i < n; ++i) {
            b.entries = bytes.concat(b.entries, entryOf(indices[i], epsilons[i]));
            b.commitments[i] = commitmentFor(id, r, parties[indices[i]], epsilons[i]);
            b.signatures[i] = signCommitment(partnerKey(indices[i]), b.commitments[i]);
        }
        reseal(b);
    }

    /// @dev Recomputes leaves and root from the (possibly altered) commitments and signatures.
    function reseal(Batch memory b) internal view {
        b.leaves = new bytes32[](b.commitments.length);
        for (uint256 i; i < b.leaves.length; ++i) {
            b.leaves[i] = commitmentLeafOf(b.commitments[i], b.signatures[i]);
        }
        b.root = Merkle.positionalRoot(b.leaves);
    }

    function range(uint256 from, uint256 to) internal pure returns (uint256[] memory indices) {
        indices = new uint256[](to - from);
        for (uint256 i; i < indices.length; ++i) {
            indices[i] = from + i;
        }
    }

    function epsilonsOf(uint256 n, uint32 epsilon) internal pure returns (uint32[] memory epsilons) {
        epsilons = new uint32[](n);
        for (uint256 i; i < n; ++i) {
            epsilons[i] = epsilon + uint32(i);
        }
    }

    function batchOf(uint256 from, uint256 to) internal view returns (Batch memory) {
        return buildBatch(range(from, to), epsilonsOf(to - from, EPSILON_ONE));
    }

    function anchor(Batch memory b) internal returns (uint256 batchIndex) {
        vm.prank(coordinator);
        return ledger.commitBatch(id, r, b.root, DOCUMENT, b.entries);
    }

    function evidenceOf(Batch memory b, uint256 batchIndex, uint256 position)
        internal
        view
        returns (IRoundLedger.BatchEvidence memory)
    {
        return IRoundLedger.BatchEvidence({
            agreementId: id,
            round: r,
            batchIndex: batchIndex,
            root: b.root,
            documentDigest: DOCUMENT,
            entries: b.entries,
            position: position,
            proof: Merkle.positionalProof(b.leaves, position)
        });
    }

    function prove(Batch memory b, uint256 batchIndex, uint256 position) internal {
        prove(evidenceOf(b, batchIndex, position), b, position);
    }

    function prove(IRoundLedger.BatchEvidence memory evidence, Batch memory b, uint256 position) internal {
        vm.prank(auditor);
        ledger.proveForgedCommitment(evidence, b.commitments[position], b.signatures[position]);
    }

    /// @dev A batch of parties 0..4 whose entry `position` is signed by a key that is not its party's, anchored.
    function anchoredForgery(uint256 position) internal returns (Batch memory b) {
        b = batchOf(0, 5);
        b.signatures[position] = signCommitment(WRONG_KEY, b.commitments[position]);
        reseal(b);
        anchor(b);
    }

    function commitRaw(bytes memory entries) internal {
        vm.prank(coordinator);
        ledger.commitBatch(id, r, keccak256("root"), DOCUMENT, entries);
    }

    /*//////////////////////////////////////////////////////////////
                              commitBatch
    //////////////////////////////////////////////////////////////*/

    function test_commitBatch_recordsEveryEntry() public {
        Batch memory b = batchOf(0, PARTIES);
        vm.expectEmit(true, true, true, true, address(ledger));
        emit IRoundLedger.BatchCommitted(id, r, 0, b.root, DOCUMENT, b.entries, 0);
        assertEq(anchor(b), 0, "batch index");

        for (uint256 i; i < PARTIES; ++i) {
            assertEq(ledger.cumulativeEpsilon(id, parties[i]), EPSILON_ONE + i, "epsilon");
            assertTrue(ledger.hasSubmitted(id, r, parties[i]), "submitted");
        }
        assertEq(ledger.round(id, r).submissions, PARTIES, "submissions");
    }

    /// @dev A batch's index is the number of updates its round had before it: unique within the round.
    function test_commitBatch_indexesEachBatchByTheUpdatesBeforeIt() public {
        assertEq(anchor(batchOf(0, 4)), 0, "first");
        submitAs(parties[8], id, r, EPSILON_ONE);
        assertEq(anchor(batchOf(4, 7)), 5, "second");
        assertEq(anchor(batchOf(9, 10)), 8, "third");
        assertEq(ledger.round(id, r).submissions, 9, "submissions");
    }

    function test_proveForgedCommitment_findsABatchByItsIndex() public {
        anchor(batchOf(0, 3));
        Batch memory b = batchOf(3, 8);
        b.signatures[2] = signCommitment(WRONG_KEY, b.commitments[2]);
        reseal(b);
        uint256 batchIndex = anchor(b);
        vm.expectEmit(true, true, true, true, address(ledger));
        emit IRoundLedger.RoundVoided(id, r, 3, 2);
        prove(b, batchIndex, 2);
    }

    function test_commitBatch_completesARoundStartedBySingleSubmissions() public {
        submitAs(parties[0], id, r, EPSILON_ONE);
        anchor(batchOf(1, PARTIES));
        finalizeAs(id, r, bytes32(0), 0); // before the deadline: everyone has submitted
        assertTrue(ledger.round(id, r).status == IRoundLedger.RoundStatus.Finalized, "finalized");
    }

    function test_commitBatch_raisesEpsilonsCommittedInEarlierRounds() public {
        anchor(batchOf(0, PARTIES));
        closeRound(id, r, bytes32(0), 0);
        r = openRoundOn(id);
        anchor(buildBatch(range(0, PARTIES), epsilonsOf(PARTIES, 3 * EPSILON_ONE)));
        for (uint256 i; i < PARTIES; ++i) {
            assertEq(ledger.cumulativeEpsilon(id, parties[i]), 3 * EPSILON_ONE + i, "raised");
        }
    }

    /// @dev Any subset of parties at any epsilons within the cap is recorded exactly; the others are untouched.
    function testFuzz_commitBatch_recordsExactlyTheAnchoredEntries(uint256 mask, uint256 seed) public {
        mask = bound(mask, 1, (1 << PARTIES) - 1);
        bytes memory entries;
        uint32[] memory expected = new uint32[](PARTIES);
        uint256 count;
        for (uint256 i; i < PARTIES; ++i) {
            if (mask & (1 << i) == 0) continue;
            expected[i] = uint32(bound(uint256(keccak256(abi.encode(seed, i))), 1, 8 * EPSILON_ONE));
            entries = bytes.concat(entries, entryOf(i, expected[i]));
            ++count;
        }
        commitRaw(entries);
        for (uint256 i; i < PARTIES; ++i) {
            assertEq(ledger.cumulativeEpsilon(id, parties[i]), expected[i], "epsilon");
            assertEq(ledger.hasSubmitted(id, r, parties[i]) ? 1 : 0, expected[i] != 0 ? 1 : 0, "bit");
        }
        assertEq(ledger.round(id, r).submissions, count, "submissions");
    }

    function test_commitBatch_refusesNonCoordinator() public {
        Batch memory b = batchOf(0, 3);
        vm.expectRevert(abi.encodeWithSelector(IRoundLedger.RoundLedgerNotCoordinator.selector, auditor));
        vm.prank(auditor);
        ledger.commitBatch(id, r, b.root, DOCUMENT, b.entries);
    }

    function test_commitBatch_refusesInactiveAgreement() public {
        vm.prank(coordinator);
        agreements.terminate(id, keccak256("reason"));
        vm.expectRevert(abi.encodeWithSelector(IRoundLedger.RoundLedgerAgreementNotActive.selector, id));
        anchor(batchOf(0, 3));
    }

    function test_commitBatch_refusesUnknownRound() public {
        Batch memory b = batchOf(0, 3);
        vm.expectRevert(abi.encodeWithSelector(IRoundLedger.RoundLedgerUnknownRound.selector, id, r + 1));
        vm.prank(coordinator);
        ledger.commitBatch(id, r + 1, b.root, DOCUMENT, b.entries);
    }

    function test_commitBatch_refusesFinalizedRound() public {
        Batch memory b = batchOf(0, 3);
        closeRound(id, r, bytes32(0), 0);
        vm.expectRevert(abi.encodeWithSelector(IRoundLedger.RoundLedgerRoundNotOpen.selector, id, r));
        anchor(b);
    }

    function test_commitBatch_refusesAfterTheDeadline() public {
        Batch memory b = batchOf(0, 3);
        uint64 deadline = ledger.round(id, r).deadline;
        vm.warp(uint256(deadline) + 1);
        vm.expectRevert(abi.encodeWithSelector(IRoundLedger.RoundLedgerDeadlinePassed.selector, id, r, deadline));
        anchor(b);
    }

    function test_commitBatch_refusesZeroRoot() public {
        vm.expectRevert(abi.encodeWithSelector(IRoundLedger.RoundLedgerZeroDigest.selector));
        vm.prank(coordinator);
        ledger.commitBatch(id, r, bytes32(0), DOCUMENT, entryOf(0, EPSILON_ONE));
    }

    function test_commitBatch_refusesZeroDocumentDigest() public {
        vm.expectRevert(abi.encodeWithSelector(IRoundLedger.RoundLedgerZeroDigest.selector));
        vm.prank(coordinator);
        ledger.commitBatch(id, r, keccak256("root"), bytes32(0), entryOf(0, EPSILON_ONE));
    }

    function test_commitBatch_refusesEmptyBatch() public {
        vm.expectRevert(abi.encodeWithSelector(IRoundLedger.RoundLedgerEmptyBatch.selector));
        commitRaw("");
    }

    function test_commitBatch_refusesEntriesThatAreNotWholeEntries() public {
        bytes memory entries = bytes.concat(entryOf(0, EPSILON_ONE), hex"01");
        vm.expectRevert(abi.encodeWithSelector(IRoundLedger.RoundLedgerMalformedEntries.selector, 7));
        commitRaw(entries);
    }

    function test_commitBatch_refusesRepeatedPartyIndex() public {
        bytes memory entries =
            bytes.concat(entryOf(0, EPSILON_ONE), entryOf(1, EPSILON_ONE), entryOf(1, 2 * EPSILON_ONE));
        vm.expectRevert(abi.encodeWithSelector(IRoundLedger.RoundLedgerUnsortedEntries.selector, 2));
        commitRaw(entries);
    }

    function test_commitBatch_refusesDecreasingPartyIndex() public {
        bytes memory entries = bytes.concat(entryOf(3, EPSILON_ONE), entryOf(2, EPSILON_ONE));
        vm.expectRevert(abi.encodeWithSelector(IRoundLedger.RoundLedgerUnsortedEntries.selector, 1));
        commitRaw(entries);
    }

    function test_commitBatch_refusesPartyIndexOutOfRange() public {
        bytes memory entries = bytes.concat(entryOf(0, EPSILON_ONE), entryOf(PARTIES, EPSILON_ONE));
        vm.expectRevert(abi.encodeWithSelector(IRoundLedger.RoundLedgerPartyIndexOutOfRange.selector, PARTIES, PARTIES));
        commitRaw(entries);
    }

    /// @dev Only the last (largest) index is range-checked up front; an out-of-range index before it leaves the
    /// entries unsorted, and that must be the error whether or not some partner is suspended somewhere.
    function test_commitBatch_refusesUnsortedOutOfRangeIndexWithoutPanic() public {
        bytes memory entries =
            bytes.concat(entryOf(0, EPSILON_ONE), entryOf(PARTIES + 2, EPSILON_ONE), entryOf(5, EPSILON_ONE));
        vm.expectRevert(abi.encodeWithSelector(IRoundLedger.RoundLedgerUnsortedEntries.selector, 2));
        commitRaw(entries);
    }

    function test_commitBatch_refusesUnsortedOutOfRangeIndexWithoutPanicWhileSomeoneIsSuspended() public {
        address outsider = partnerAddr(50);
        registerAndApprove(outsider);
        vm.prank(coordinator);
        partners.suspend(outsider, keccak256("elsewhere"));
        bytes memory entries =
            bytes.concat(entryOf(0, EPSILON_ONE), entryOf(PARTIES + 2, EPSILON_ONE), entryOf(5, EPSILON_ONE));
        vm.expectRevert(abi.encodeWithSelector(IRoundLedger.RoundLedgerUnsortedEntries.selector, 2));
        commitRaw(entries);
    }

    function test_commitBatch_namesAnOutOfRangeIndexWhoseEpsilonIsRefused() public {
        bytes memory entries = bytes.concat(entryOf(0, EPSILON_ONE), entryOf(PARTIES + 2, 0), entryOf(5, EPSILON_ONE));
        vm.expectRevert(
            abi.encodeWithSelector(IRoundLedger.RoundLedgerPartyIndexOutOfRange.selector, PARTIES + 2, PARTIES)
        );
        commitRaw(entries);
    }

    function test_commitBatch_refusesSuspendedParty() public {
        vm.prank(coordinator);
        partners.suspend(parties[2], keccak256("suspicious"));
        vm.expectRevert(abi.encodeWithSelector(IRoundLedger.RoundLedgerPartnerNotApproved.selector, parties[2]));
        anchor(batchOf(0, 4));
    }

    function test_commitBatch_acceptsPartiesWhileSomeOutsiderIsSuspended() public {
        address outsider = partnerAddr(50);
        registerAndApprove(outsider);
        vm.prank(coordinator);
        partners.suspend(outsider, keccak256("elsewhere"));
        anchor(batchOf(0, 4));
        assertEq(ledger.round(id, r).submissions, 4, "accepted");
    }

    /// @dev Issue 10, item 8 (`suspendedCount` is global), as the attack: a partner of another agreement is
    /// suspended, and this agreement's batch pays a per-party approval pass for it (two registry calls per
    /// entry). Suspensions are followed per agreement: the batch asks about none of its parties.
    function test_commitBatch_asksNoApprovalOfItsPartiesForASuspensionInAnotherAgreement() public {
        address outsider = partnerAddr(50);
        registerAndApprove(outsider);
        address[] memory others = new address[](1);
        others[0] = outsider;
        vm.prank(coordinator);
        agreements.propose(defaultTerms(others));
        vm.prank(coordinator);
        partners.suspend(outsider, keccak256("misbehaved in the other agreement"));
        for (uint256 i; i < 4; ++i) {
            vm.expectCall(address(partners), abi.encodeCall(IPartnerRegistry.isApproved, (parties[i])), 0);
        }
        anchor(batchOf(0, 4));
        assertEq(ledger.round(id, r).submissions, 4, "accepted");
    }

    /// @dev The ledger has read the suspension log once (a suspension elsewhere); a suspension of one of this
    /// agreement's parties after that is still refused.
    function test_commitBatch_refusesAPartySuspendedAfterTheLedgerReadTheLog() public {
        address outsider = partnerAddr(50);
        registerAndApprove(outsider);
        vm.startPrank(coordinator);
        partners.suspend(outsider, keccak256("elsewhere"));
        vm.stopPrank();
        anchor(batchOf(0, 4));
        vm.prank(coordinator);
        partners.suspend(parties[6], keccak256("suspicious"));
        Batch memory b = batchOf(5, 8);
        vm.expectRevert(abi.encodeWithSelector(IRoundLedger.RoundLedgerPartnerNotApproved.selector, parties[6]));
        anchor(b);
    }

    /// @dev Suspends party 6, has a batch refused for it, reinstates it, and anchors that batch: the ledger
    /// found party 6 approved and stopped watching it. Then closes the round and opens the next.
    function reinstateAfterARefusedBatch() internal {
        vm.prank(coordinator);
        partners.suspend(parties[6], keccak256("suspicious"));
        Batch memory b = batchOf(5, 8);
        vm.expectRevert(abi.encodeWithSelector(IRoundLedger.RoundLedgerPartnerNotApproved.selector, parties[6]));
        anchor(b);
        vm.prank(coordinator);
        partners.approve(parties[6]);
        anchor(b);
        closeRound(id, r, bytes32(0), 0);
        r = openRoundOn(id);
    }

    function test_commitBatch_stopsAskingAboutAPartyFoundReinstated() public {
        reinstateAfterARefusedBatch();
        vm.expectCall(address(partners), abi.encodeCall(IPartnerRegistry.isApproved, (parties[6])), 0);
        anchor(buildBatch(range(5, 8), epsilonsOf(3, 2 * EPSILON_ONE)));
    }

    /// @dev A second suspension is logged again, so the party is watched, and refused, again.
    function test_commitBatch_refusesAReinstatedPartySuspendedAgain() public {
        reinstateAfterARefusedBatch();
        vm.prank(coordinator);
        partners.suspend(parties[6], keccak256("again"));
        Batch memory b = buildBatch(range(5, 8), epsilonsOf(3, 2 * EPSILON_ONE));
        vm.expectRevert(abi.encodeWithSelector(IRoundLedger.RoundLedgerPartnerNotApproved.selector, parties[6]));
        anchor(b);
    }

    /// @dev A batch reads at most 32 log entries; while it is behind the log, it checks every one of its parties,
    /// so a party suspended past what it read is refused all the same.
    function test_commitBatch_checksEveryPartyWhileBehindTheSuspensionLog() public {
        vm.startPrank(coordinator);
        partners.suspend(parties[2], keccak256("suspicious"));
        vm.stopPrank();
        for (uint256 i; i < 40; ++i) {
            address outsider = partnerAddr(100 + i);
            registerAndApprove(outsider);
            vm.prank(coordinator);
            partners.suspend(outsider, keccak256("elsewhere"));
        }
        vm.prank(coordinator);
        partners.approve(parties[2]);
        vm.prank(coordinator);
        partners.suspend(parties[3], keccak256("late"));
        Batch memory b = batchOf(0, 5);
        vm.expectRevert(abi.encodeWithSelector(IRoundLedger.RoundLedgerPartnerNotApproved.selector, parties[3]));
        anchor(b);
        // Caught up after two more reads: party 2 (reinstated) passes, party 3 is still refused.
        anchor(batchOf(0, 2));
        anchor(batchOf(2, 3));
        vm.expectRevert(abi.encodeWithSelector(IRoundLedger.RoundLedgerPartnerNotApproved.selector, parties[3]));
        anchor(batchOf(3, 5));
    }

    /// @dev Issue 10, item 8, as the attack: a party submits directly and so sinks the coordinator's whole
    /// batch. Its entry is skipped (and named in the event); the others are anchored.
    function test_commitBatch_skipsAPartyThatSubmittedAlone() public {
        submitAs(parties[3], id, r, 3 * EPSILON_ONE);
        Batch memory b = batchOf(0, 5);
        vm.expectEmit(true, true, true, true, address(ledger));
        emit IRoundLedger.BatchCommitted(id, r, 1, b.root, DOCUMENT, b.entries, 1 << 3);
        anchor(b);
        assertEq(ledger.round(id, r).submissions, 5, "one single + four anchored");
        assertEq(ledger.cumulativeEpsilon(id, parties[3]), 3 * EPSILON_ONE, "the direct submission stands");
        assertEq(ledger.cumulativeEpsilon(id, parties[4]), EPSILON_ONE + 4, "the others anchored");
    }

    function test_commitBatch_skipsAPartyOfAnEarlierBatch() public {
        anchor(batchOf(0, 5));
        anchor(batchOf(4, 6));
        assertEq(ledger.round(id, r).submissions, 6, "party 4 counted once");
        assertEq(ledger.cumulativeEpsilon(id, parties[4]), EPSILON_ONE + 4, "first entry stands");
    }

    function test_commitBatch_refusesABatchWhoseEveryPartySubmitted() public {
        anchor(batchOf(0, 5));
        vm.expectRevert(abi.encodeWithSelector(IRoundLedger.RoundLedgerAlreadySubmitted.selector, id, r, parties[4]));
        anchor(batchOf(3, 5));
    }

    function test_commitBatch_refusesEpsilonThatDoesNotIncrease() public {
        bytes memory entries = bytes.concat(entryOf(0, EPSILON_ONE), entryOf(8, 0));
        vm.expectRevert(abi.encodeWithSelector(IRoundLedger.RoundLedgerEpsilonNotIncreasing.selector, parties[8], 0, 0));
        commitRaw(entries);
    }

    function test_commitBatch_refusesEpsilonOverTheCap() public {
        bytes memory entries = bytes.concat(entryOf(0, EPSILON_ONE), entryOf(9, 8 * EPSILON_ONE + 1));
        vm.expectRevert(
            abi.encodeWithSelector(
                IRoundLedger.RoundLedgerBudgetExceeded.selector, parties[9], 8 * EPSILON_ONE + 1, 8 * EPSILON_ONE
            )
        );
        commitRaw(entries);
    }

    /*//////////////////////////////////////////////////////////////
                         proveForgedCommitment
    //////////////////////////////////////////////////////////////*/

    function test_proveForgedCommitment_refusesHonestCommitment() public {
        Batch memory b = batchOf(0, 5);
        anchor(b);
        vm.expectRevert(abi.encodeWithSelector(IRoundLedger.RoundLedgerCommitmentValid.selector));
        prove(b, 0, 3);
    }

    function test_proveForgedCommitment_refusesHonestCommitmentOfASingleEntryBatch() public {
        Batch memory b = batchOf(6, 7);
        anchor(b);
        vm.expectRevert(abi.encodeWithSelector(IRoundLedger.RoundLedgerCommitmentValid.selector));
        prove(b, 0, 0);
    }

    function test_proveForgedCommitment_voidsOpenRoundOnSignatureByAnotherKey() public {
        Batch memory b = anchoredForgery(2);
        vm.expectEmit(true, true, true, true, address(ledger));
        emit IRoundLedger.RoundVoided(id, r, 0, 2);
        prove(b, 0, 2);

        IRoundLedger.Round memory round_ = ledger.round(id, r);
        assertTrue(round_.status == IRoundLedger.RoundStatus.Voided, "voided");
        assertEq(round_.finalizedAt, block.timestamp, "closed now");
        assertEq(ledger.openRoundOf(id), 0, "no open round");
    }

    function test_proveForgedCommitment_voidsOnEpsilonOtherThanTheSignedOne() public {
        Batch memory b = batchOf(0, 5);
        b.commitments[1].cumulativeEpsilon = 2 * EPSILON_ONE; // signed 2.0, anchored 1.000001
        b.signatures[1] = signCommitment(partnerKey(1), b.commitments[1]);
        reseal(b);
        anchor(b);
        prove(b, 0, 1);
        assertTrue(ledger.round(id, r).status == IRoundLedger.RoundStatus.Voided, "voided");
    }

    /// @dev A batch of parties 0..4 whose entry `position` is signed, by its party, with `sampleCount`, anchored.
    function anchoredWithSampleCount(uint256 position, uint64 sampleCount) internal returns (Batch memory b) {
        b = batchOf(0, 5);
        b.commitments[position].sampleCount = sampleCount;
        b.signatures[position] = signCommitment(partnerKey(position), b.commitments[position]);
        reseal(b);
        anchor(b);
    }

    /// @dev Issue 10, item 5: a signed sample count above the terms' bound is provable like any forgery.
    function test_proveForgedCommitment_voidsOnSampleCountAboveTheSignedBound() public {
        prove(anchoredWithSampleCount(2, MAX_SAMPLES + 1), 0, 2);
        assertTrue(ledger.round(id, r).status == IRoundLedger.RoundStatus.Voided, "voided");
    }

    function test_proveForgedCommitment_voidsOnZeroSampleCount() public {
        prove(anchoredWithSampleCount(3, 0), 0, 3);
        assertTrue(ledger.round(id, r).status == IRoundLedger.RoundStatus.Voided, "voided");
    }

    function test_proveForgedCommitment_refusesASampleCountAtTheBound() public {
        Batch memory b = anchoredWithSampleCount(2, MAX_SAMPLES);
        vm.expectRevert(IRoundLedger.RoundLedgerCommitmentValid.selector);
        prove(b, 0, 2);
    }

    /// @dev Issue 10, item 2: another holder of the coordinator role cannot anchor into this agreement.
    function test_commitBatch_refusesAnotherAgreementsCoordinator() public {
        address other = address(0xC1);
        vm.startPrank(admin);
        partners.grantRole(partners.COORDINATOR_ROLE(), other);
        vm.stopPrank();
        Batch memory b = batchOf(0, 3);
        vm.expectRevert(abi.encodeWithSelector(IRoundLedger.RoundLedgerNotCoordinator.selector, other));
        vm.prank(other);
        ledger.commitBatch(id, r, b.root, DOCUMENT, b.entries);
    }

    function test_proveForgedCommitment_voidsOnCommitmentSignedForAnotherRound() public {
        Batch memory b = batchOf(0, 5);
        b.commitments[4].round = r + 1;
        b.signatures[4] = signCommitment(partnerKey(4), b.commitments[4]);
        reseal(b);
        anchor(b);
        prove(b, 0, 4);
        assertTrue(ledger.round(id, r).status == IRoundLedger.RoundStatus.Voided, "voided");
    }

    function test_proveForgedCommitment_voidsOnCommitmentSignedForAnotherAgreement() public {
        Batch memory b = batchOf(0, 5);
        b.commitments[0].agreementId = id + 1;
        b.signatures[0] = signCommitment(partnerKey(0), b.commitments[0]);
        reseal(b);
        anchor(b);
        prove(b, 0, 0);
        assertTrue(ledger.round(id, r).status == IRoundLedger.RoundStatus.Voided, "voided");
    }

    function test_proveForgedCommitment_voidsOnAnotherPartnersCommitmentAtThisEntry() public {
        Batch memory b = batchOf(0, 5);
        // Entry 3 is party 3's, but its leaf is party 7's own, validly signed, commitment.
        b.commitments[3] = commitmentFor(id, r, parties[7], EPSILON_ONE + 3);
        b.signatures[3] = signCommitment(partnerKey(7), b.commitments[3]);
        reseal(b);
        anchor(b);
        prove(b, 0, 3);
        assertTrue(ledger.round(id, r).status == IRoundLedger.RoundStatus.Voided, "voided");
    }

    function test_proveForgedCommitment_voidsFinalizedRoundAndRevokesItsPayouts() public {
        Batch memory b = anchoredForgery(1);
        closeRound(id, r, keccak256("payout root"), 120e18);
        assertEq(vault.unallocated(id), 880e18, "allocated");

        vm.expectEmit(true, true, true, true, address(ledger));
        emit IRoundLedger.RoundVoided(id, r, 0, 1);
        vm.expectEmit(true, true, true, true, address(vault));
        emit IRewardVault.AllocationRevoked(id, r, 120e18);
        prove(b, 0, 1);

        assertTrue(ledger.round(id, r).status == IRoundLedger.RoundStatus.Voided, "voided");
        assertTrue(vault.allocation(id, r).revoked, "revoked");
        assertEq(vault.unallocated(id), 1_000e18, "returned to the pool");
        assertEq(vault.claimable(id), 0, "nothing claimable");
    }

    function test_proveForgedCommitment_voidsFinalizedRoundWithoutPayoutsTouchingNothingElse() public {
        Batch memory b = anchoredForgery(1);
        closeRound(id, r, bytes32(0), 0);
        uint64 finalizedAt = ledger.round(id, r).finalizedAt;
        vm.warp(block.timestamp + 10);
        vm.recordLogs();
        prove(b, 0, 1);
        Vm.Log[] memory logs = vm.getRecordedLogs();
        assertEq(logs.length, 1, "only RoundVoided");
        assertEq(logs[0].topics[0], IRoundLedger.RoundVoided.selector, "event");
        assertEq(ledger.round(id, r).finalizedAt, finalizedAt, "finalization time kept");
    }

    function test_proveForgedCommitment_letsTheNextRoundOpenOnceRestored() public {
        Batch memory b = anchoredForgery(0);
        uint256[] memory atClose = wordsNow();
        prove(b, 0, 0);
        vm.expectRevert(abi.encodeWithSelector(IRoundLedger.RoundLedgerDisputePending.selector, id));
        vm.prank(coordinator);
        ledger.openRound(id, MODEL_DIGEST, uint64(block.timestamp) + ROUND_LENGTH, EVAL_COMMITMENT);
        ledger.restoreVoidedRound(id, r, wordsAtOpen(), atClose);
        assertEq(openRoundOn(id), r + 1, "next round");
    }

    function test_proveForgedCommitment_refusesNonAuditor() public {
        Batch memory b = anchoredForgery(0);
        IRoundLedger.BatchEvidence memory e = evidenceOf(b, 0, 0);
        vm.expectRevert(abi.encodeWithSelector(IRoundLedger.RoundLedgerNotAuditor.selector, coordinator));
        vm.prank(coordinator);
        ledger.proveForgedCommitment(e, b.commitments[0], b.signatures[0]);
    }

    function test_proveForgedCommitment_refusesUnknownRound() public {
        Batch memory b = anchoredForgery(0);
        IRoundLedger.BatchEvidence memory e = evidenceOf(b, 0, 0);
        e.round = r + 1;
        vm.expectRevert(abi.encodeWithSelector(IRoundLedger.RoundLedgerUnknownRound.selector, id, r + 1));
        prove(e, b, 0);
    }

    function test_proveForgedCommitment_refusesAfterTheDisputeWindow() public {
        Batch memory b = anchoredForgery(0);
        closeRound(id, r, bytes32(0), 0);
        vm.warp(block.timestamp + DISPUTE_WINDOW + 1);
        vm.expectRevert(abi.encodeWithSelector(IRoundLedger.RoundLedgerDisputeWindowClosed.selector, id, r));
        prove(b, 0, 0);
    }

    /// @dev Claims open at finalizedAt + disputeWindow; from that second on, payouts can no longer be voided.
    function test_proveForgedCommitment_refusesAtTheSecondClaimsOpen() public {
        Batch memory b = anchoredForgery(0);
        closeRound(id, r, keccak256("payout root"), 120e18);
        vm.warp(vault.allocation(id, r).claimableAt);
        vm.expectRevert(abi.encodeWithSelector(IRoundLedger.RoundLedgerDisputeWindowClosed.selector, id, r));
        prove(b, 0, 0);
    }

    function test_proveForgedCommitment_acceptsTheLastSecondOfTheDisputeWindow() public {
        Batch memory b = anchoredForgery(0);
        closeRound(id, r, keccak256("payout root"), 120e18);
        vm.warp(vault.allocation(id, r).claimableAt - 1);
        prove(b, 0, 0);
        assertTrue(vault.allocation(id, r).revoked, "revoked");
    }

    function test_proveForgedCommitment_refusesRoundAlreadyVoided() public {
        Batch memory b = anchoredForgery(0);
        prove(b, 0, 0);
        vm.expectRevert(abi.encodeWithSelector(IRoundLedger.RoundLedgerDisputeWindowClosed.selector, id, r));
        prove(b, 0, 0);
    }

    function test_proveForgedCommitment_refusesUnknownBatch() public {
        Batch memory b = anchoredForgery(0);
        vm.expectRevert(abi.encodeWithSelector(IRoundLedger.RoundLedgerUnknownBatch.selector, id, r, 1));
        prove(b, 1, 0);
    }

    function test_proveForgedCommitment_refusesEvidenceWithOtherEntries() public {
        Batch memory b = anchoredForgery(0);
        IRoundLedger.BatchEvidence memory e = evidenceOf(b, 0, 0);
        e.entries[5] = bytes1(uint8(e.entries[5]) ^ 1);
        vm.expectRevert(abi.encodeWithSelector(IRoundLedger.RoundLedgerBatchMismatch.selector));
        prove(e, b, 0);
    }

    function test_proveForgedCommitment_refusesEvidenceWithOtherRoot() public {
        Batch memory b = anchoredForgery(0);
        IRoundLedger.BatchEvidence memory e = evidenceOf(b, 0, 0);
        e.root = keccak256("another root");
        vm.expectRevert(abi.encodeWithSelector(IRoundLedger.RoundLedgerBatchMismatch.selector));
        prove(e, b, 0);
    }

    function test_proveForgedCommitment_refusesEvidenceWithOtherDocumentDigest() public {
        Batch memory b = anchoredForgery(0);
        IRoundLedger.BatchEvidence memory e = evidenceOf(b, 0, 0);
        e.documentDigest = keccak256("another document");
        vm.expectRevert(abi.encodeWithSelector(IRoundLedger.RoundLedgerBatchMismatch.selector));
        prove(e, b, 0);
    }

    function test_proveForgedCommitment_refusesProofWithAWrongSibling() public {
        Batch memory b = anchoredForgery(2);
        IRoundLedger.BatchEvidence memory e = evidenceOf(b, 0, 2);
        e.proof[1] = keccak256("not the sibling");
        vm.expectRevert(abi.encodeWithSelector(IRoundLedger.RoundLedgerInvalidMerkleProof.selector));
        prove(e, b, 2);
    }

    function test_proveForgedCommitment_refusesProofOfAnotherPosition() public {
        Batch memory b = anchoredForgery(2);
        IRoundLedger.BatchEvidence memory e = evidenceOf(b, 0, 2);
        e.position = 3; // the forged leaf proven at 2 does not sit at 3
        vm.expectRevert(abi.encodeWithSelector(IRoundLedger.RoundLedgerInvalidMerkleProof.selector));
        prove(e, b, 2);
    }

    function test_proveForgedCommitment_refusesProofOfTheWrongLength() public {
        Batch memory b = anchoredForgery(2);
        IRoundLedger.BatchEvidence memory e = evidenceOf(b, 0, 2);
        bytes32[] memory longer = new bytes32[](e.proof.length + 1);
        for (uint256 i; i < e.proof.length; ++i) {
            longer[i] = e.proof[i];
        }
        e.proof = longer;
        vm.expectRevert(abi.encodeWithSelector(IRoundLedger.RoundLedgerInvalidMerkleProof.selector));
        prove(e, b, 2);
    }

    function test_proveForgedCommitment_refusesPositionBeyondTheEntries() public {
        // Five entries pad to eight leaves: a padding position must not pass for an entry.
        Batch memory b = anchoredForgery(4);
        IRoundLedger.BatchEvidence memory e = evidenceOf(b, 0, 4);
        e.position = 5;
        vm.expectRevert(abi.encodeWithSelector(IRoundLedger.RoundLedgerInvalidMerkleProof.selector));
        prove(e, b, 4);
    }

    /*//////////////////////////////////////////////////////////////
                        batch-entry disputes
    //////////////////////////////////////////////////////////////*/

    /// @dev The agreement's epsilon words when round `r` opened (setUp opens it on a fresh agreement: zeros).
    function wordsAtOpen() internal view returns (uint256[] memory) {
        // No call here: tests pass it right after vm.expectRevert.
        return new uint256[](wordCount);
    }

    function disputeAs(address party, Batch memory b, uint256 batchIndex, uint256 position) internal {
        IRoundLedger.BatchEvidence memory e = evidenceOf(b, batchIndex, position);
        e.proof = new bytes32[](0); // a dispute needs no proof: the party may not have the document
        vm.prank(party);
        ledger.disputeBatchEntry(e);
    }

    /// @dev Anchors `entries` as the round's first batch under a root nobody can open; the evidence of one entry.
    function anchorWithoutPreimage(bytes memory entries, uint256 position)
        internal
        returns (IRoundLedger.BatchEvidence memory)
    {
        vm.prank(coordinator);
        ledger.commitBatch(id, r, keccak256("random root"), DOCUMENT, entries);
        return IRoundLedger.BatchEvidence({
            agreementId: id,
            round: r,
            batchIndex: 0,
            root: keccak256("random root"),
            documentDigest: DOCUMENT,
            entries: entries,
            position: position,
            proof: new bytes32[](0)
        });
    }

    function answer(Batch memory b, uint256 batchIndex, uint256 position) internal {
        vm.prank(coordinator);
        ledger.answerDispute(evidenceOf(b, batchIndex, position), b.commitments[position], b.signatures[position]);
    }

    /// @dev Issue 10, item 3, as the attack: the coordinator anchors a root with no preimage, listing parties at
    /// the cap. The listed party disputes, the coordinator cannot answer, and anyone voids the entry: that entry
    /// alone goes (the party's budget is what it was when the round opened), the round stands.
    function test_attack_rootWithoutPreimageBurnsNoBudget() public {
        uint32 cap = 8 * EPSILON_ONE;
        bytes memory entries = bytes.concat(entryOf(0, cap), entryOf(1, cap), entryOf(2, cap));
        IRoundLedger.BatchEvidence memory e = anchorWithoutPreimage(entries, 1);
        assertEq(ledger.cumulativeEpsilon(id, parties[1]), cap, "burnt");

        vm.prank(parties[1]);
        ledger.disputeBatchEntry(e);
        assertTrue(ledger.isClaimBlocked(id, r, parties[0]), "the round's claims wait");
        vm.warp(ledger.entryDispute(id, r, parties[1]).answerBy + 1);
        vm.prank(rando);
        ledger.voidDisputedEntry(id, r, parties[1], wordsAtOpen());

        assertEq(ledger.cumulativeEpsilon(id, parties[1]), 0, "budget as at the round's opening");
        assertTrue(ledger.round(id, r).status == IRoundLedger.RoundStatus.Open, "the round stands");
        assertFalse(ledger.hasSubmitted(id, r, parties[1]), "the entry is gone");
        assertEq(ledger.cumulativeEpsilon(id, parties[0]), cap, "the other entries stand");
        assertTrue(
            ledger.entryDispute(id, r, parties[1]).status == IRoundLedger.DisputeStatus.Voided, "dispute closed"
        );
        closeRound(id, r, bytes32(0), 0);
        uint64 next = openRoundOn(id);
        submitAs(parties[1], id, next, EPSILON_ONE);
        assertEq(ledger.cumulativeEpsilon(id, parties[1]), EPSILON_ONE, "the party trains again");
    }

    function test_answerDispute_keepsAnHonestEntryForGood() public {
        Batch memory b = batchOf(0, 5);
        anchor(b);
        disputeAs(parties[2], b, 0, 2);
        vm.expectEmit(true, true, true, true, address(ledger));
        emit IRoundLedger.DisputeAnswered(id, r, parties[2]);
        answer(b, 0, 2);
        vm.warp(ledger.entryDispute(id, r, parties[2]).answerBy + 1);
        vm.expectRevert(
            abi.encodeWithSelector(IRoundLedger.RoundLedgerNoOpenDispute.selector, id, r, parties[2])
        );
        ledger.voidDisputedEntry(id, r, parties[2], wordsAtOpen());
        assertEq(ledger.cumulativeEpsilon(id, parties[2]), EPSILON_ONE + 2, "entry stands");
        assertFalse(ledger.isClaimBlocked(id, r, parties[0]), "claims free again");
        vm.expectRevert(
            abi.encodeWithSelector(IRoundLedger.RoundLedgerEntryAlreadyDisputed.selector, id, r, parties[2])
        );
        disputeAs(parties[2], b, 0, 2);
    }

    function test_answerDispute_refusesACommitmentTheEntryDoesNotHold() public {
        Batch memory b = anchoredForgery(3);
        disputeAs(parties[3], b, 0, 3);
        vm.expectRevert(IRoundLedger.RoundLedgerInvalidAnswer.selector);
        answer(b, 0, 3);
        // The disputed party's commitment revealed under another entry's evidence does not answer either.
        vm.expectRevert(IRoundLedger.RoundLedgerInvalidAnswer.selector);
        vm.prank(coordinator);
        ledger.answerDispute(evidenceOf(b, 0, 2), b.commitments[3], b.signatures[3]);
    }

    function test_answerDispute_refusesAfterTheAnswerWindow() public {
        Batch memory b = batchOf(0, 5);
        anchor(b);
        disputeAs(parties[2], b, 0, 2);
        uint64 answerBy = ledger.entryDispute(id, r, parties[2]).answerBy;
        vm.warp(uint256(answerBy) + 1);
        vm.expectRevert(abi.encodeWithSelector(IRoundLedger.RoundLedgerAnswerWindowClosed.selector, answerBy));
        answer(b, 0, 2);
    }

    function test_voidDisputedEntry_refusesWithinTheAnswerWindow() public {
        Batch memory b = batchOf(0, 5);
        anchor(b);
        disputeAs(parties[2], b, 0, 2);
        uint64 answerBy = ledger.entryDispute(id, r, parties[2]).answerBy;
        vm.warp(answerBy);
        vm.expectRevert(abi.encodeWithSelector(IRoundLedger.RoundLedgerAnswerWindowOpen.selector, answerBy));
        ledger.voidDisputedEntry(id, r, parties[2], wordsAtOpen());
    }

    function test_voidDisputedEntry_refusesOtherEpsilonWords() public {
        Batch memory b = batchOf(0, 5);
        anchor(b);
        disputeAs(parties[2], b, 0, 2);
        vm.warp(ledger.entryDispute(id, r, parties[2]).answerBy + 1);
        uint256[] memory lower = wordsAtOpen();
        lower[0] = 1; // a budget below what it was
        vm.expectRevert(IRoundLedger.RoundLedgerEpsilonWordsMismatch.selector);
        ledger.voidDisputedEntry(id, r, parties[2], lower);
    }

    function test_disputeBatchEntry_refusesAnyoneButTheEntrysParty() public {
        Batch memory b = batchOf(0, 5);
        anchor(b);
        IRoundLedger.BatchEvidence memory e = evidenceOf(b, 0, 2);
        vm.expectRevert(
            abi.encodeWithSelector(IRoundLedger.RoundLedgerNotEntryParty.selector, parties[1], parties[2])
        );
        vm.prank(parties[1]);
        ledger.disputeBatchEntry(e);
    }

    function test_disputeBatchEntry_refusesAPositionPastTheEntries() public {
        Batch memory b = batchOf(0, 5);
        anchor(b);
        IRoundLedger.BatchEvidence memory e = evidenceOf(b, 0, 4);
        e.position = 5;
        vm.expectRevert(IRoundLedger.RoundLedgerInvalidMerkleProof.selector);
        vm.prank(parties[4]);
        ledger.disputeBatchEntry(e);
    }

    function test_openRound_waitsForPendingDisputes() public {
        Batch memory b = batchOf(0, 5);
        anchor(b);
        closeRound(id, r, bytes32(0), 0);
        disputeAs(parties[2], b, 0, 2); // within the round's dispute window
        vm.expectRevert(abi.encodeWithSelector(IRoundLedger.RoundLedgerDisputePending.selector, id));
        vm.prank(coordinator);
        ledger.openRound(id, MODEL_DIGEST, uint64(block.timestamp) + ROUND_LENGTH, EVAL_COMMITMENT);
        answer(b, 0, 2);
        openRoundOn(id);
    }

    /// @dev The agreement's packed epsilon words now, as the ledger's snapshots take them.
    function wordsNow() internal view returns (uint256[] memory) {
        return epsilonWordsNow(id, parties);
    }

    /// @dev Issue 10 (b), as the attack: a forged entry in round N is disputed while round N+1 runs, and the
    /// party commits a higher epsilon in N+1 before the void. The old void restored only when the current
    /// epsilon still equalled the forged one, so the forged 2.0 stayed charged on top of the honest 1.0 spent in
    /// N+1. Now the void waits for N+1 to close and takes back exactly what the forged entry spent.
    function test_attack_aVoidAfterALaterRoundLeavesNoForgedEpsilonCharged() public {
        IRoundLedger.BatchEvidence memory e = anchorWithoutPreimage(entryOf(1, 2 * EPSILON_ONE), 0);
        closeRound(id, r, bytes32(0), 0);
        uint64 next = openRoundOn(id); // opened before the dispute
        submitAs(parties[1], id, next, 3 * EPSILON_ONE); // spends 1.0 on top of the charged 2.0
        submitAs(parties[0], id, next, EPSILON_ONE);
        vm.prank(parties[1]);
        ledger.disputeBatchEntry(e);
        vm.warp(ledger.entryDispute(id, r, parties[1]).answerBy + 1);
        vm.expectRevert(abi.encodeWithSelector(IRoundLedger.RoundLedgerRoundAlreadyOpen.selector, id, next));
        ledger.voidDisputedEntry(id, r, parties[1], wordsAtOpen());
        closeRound(id, next, bytes32(0), 0);
        ledger.voidDisputedEntry(id, r, parties[1], wordsAtOpen());
        assertEq(ledger.cumulativeEpsilon(id, parties[1]), EPSILON_ONE, "only the honest 1.0 stays charged");
        assertEq(ledger.cumulativeEpsilon(id, parties[0]), EPSILON_ONE, "another party's honest entry stands");
        assertTrue(ledger.round(id, next).status == IRoundLedger.RoundStatus.Finalized, "later round stands");
    }

    /// @dev Party 1 listed without a preimage at 2.0 in round N and at 5.0 in round N+1 (now `r`), both
    /// disputed, unanswered and closed. Returns N and the words when N+1 opened.
    function twoUnansweredForgeries() internal returns (uint64 firstRound, uint256[] memory atOpenOfNext) {
        IRoundLedger.BatchEvidence memory first = anchorWithoutPreimage(entryOf(1, 2 * EPSILON_ONE), 0);
        closeRound(id, r, bytes32(0), 0);
        atOpenOfNext = wordsNow();
        firstRound = r;
        r = openRoundOn(id);
        IRoundLedger.BatchEvidence memory second = anchorWithoutPreimage(entryOf(1, 5 * EPSILON_ONE), 0);
        vm.prank(parties[1]);
        ledger.disputeBatchEntry(first);
        vm.prank(parties[1]);
        ledger.disputeBatchEntry(second);
        closeRound(id, r, bytes32(0), 0);
        vm.warp(block.timestamp + DISPUTE_WINDOW + 1);
    }

    /// @dev Issue 10 (b): disputes of rounds N and N+1 voided in round order. The old code restored nothing at
    /// the first void (the current epsilon was N+1's) and N+1's opening value at the second, leaving N's forged
    /// 2.0 charged; in either order, nothing forged stays charged now.
    function test_attack_voidsOfTwoRoundsInRoundOrderLeaveNothingCharged() public {
        (uint64 firstRound, uint256[] memory atOpenOfNext) = twoUnansweredForgeries();
        ledger.voidDisputedEntry(id, firstRound, parties[1], wordsAtOpen());
        assertEq(ledger.cumulativeEpsilon(id, parties[1]), 3 * EPSILON_ONE, "the second forgery's 3.0 left");
        ledger.voidDisputedEntry(id, r, parties[1], atOpenOfNext);
        assertEq(ledger.cumulativeEpsilon(id, parties[1]), 0, "nothing forged stays charged");
    }

    /// @dev Issue 10 (b), the other order: the later round's forgery first.
    function test_voidDisputedEntry_inReverseRoundOrderLeavesNothingCharged() public {
        (uint64 firstRound, uint256[] memory atOpenOfNext) = twoUnansweredForgeries();
        ledger.voidDisputedEntry(id, r, parties[1], atOpenOfNext);
        assertEq(ledger.cumulativeEpsilon(id, parties[1]), 2 * EPSILON_ONE, "the first forgery's 2.0 left");
        ledger.voidDisputedEntry(id, firstRound, parties[1], wordsAtOpen());
        assertEq(ledger.cumulativeEpsilon(id, parties[1]), 0, "nothing forged stays charged");
    }

    /// @dev Issue 10 (a) and its epsilon question, as the attack: a forgery proven in a batch voided the round,
    /// and the restore gave back every entry's spend, honest ones included, though each honest partner's update
    /// had been revealed to the coordinator: its budget then understated what it had spent. Now the round's
    /// restore gives back the entry proven forged alone; every entry its party signed (in the batch, or submitted
    /// directly) stays charged; no round opens before the restore.
    function test_attack_aVoidedRoundKeepsEverySignedEntryAndGivesBackTheForgedOne() public {
        Batch memory b = anchoredForgery(1); // parties 0..4 at 1.0 + i, entry 1 signed by another key
        submitAs(parties[7], id, r, 4 * EPSILON_ONE);
        closeRound(id, r, keccak256("payout root"), 120e18);
        uint256[] memory atClose = wordsNow();
        prove(b, 0, 1);
        vm.expectRevert(abi.encodeWithSelector(IRoundLedger.RoundLedgerDisputePending.selector, id));
        vm.prank(coordinator);
        ledger.openRound(id, MODEL_DIGEST, uint64(block.timestamp) + ROUND_LENGTH, EVAL_COMMITMENT);

        vm.expectEmit(true, true, true, true, address(ledger));
        emit IRoundLedger.VoidedRoundRestored(id, r);
        vm.prank(rando);
        ledger.restoreVoidedRound(id, r, wordsAtOpen(), atClose);
        assertEq(ledger.cumulativeEpsilon(id, parties[1]), 0, "the forged entry given back");
        assertFalse(ledger.hasSubmitted(id, r, parties[1]), "no forged entry left");
        for (uint256 i; i < 5; ++i) {
            if (i == 1) continue;
            assertEq(ledger.cumulativeEpsilon(id, parties[i]), EPSILON_ONE + i, "a signed batch entry stays");
            assertTrue(ledger.hasSubmitted(id, r, parties[i]), "its entry stands");
        }
        assertEq(ledger.cumulativeEpsilon(id, parties[7]), 4 * EPSILON_ONE, "a direct submission stays");
        vm.expectRevert(abi.encodeWithSelector(IRoundLedger.RoundLedgerNothingToRestore.selector, id, r));
        ledger.restoreVoidedRound(id, r, wordsAtOpen(), atClose);
        openRoundOn(id);
    }

    /// @dev A round voided while the next one runs gives back its forged entry once the next round has closed;
    /// the next round's entries and the voided round's signed ones stay charged.
    function test_restoreVoidedRound_keepsALaterRoundsSpend() public {
        Batch memory b = anchoredForgery(1); // parties 0..4 at 1.0 + i
        closeRound(id, r, bytes32(0), 0);
        uint256[] memory atClose = wordsNow();
        uint64 forged = r;
        uint64 next = openRoundOn(id);
        submitAs(parties[2], id, next, 5 * EPSILON_ONE); // spends 5.0 - 1.000002
        submitAs(parties[1], id, next, 3 * EPSILON_ONE); // spends 3.0 - 1.000001, on top of the forged entry
        submitAs(parties[8], id, next, EPSILON_ONE);
        prove(b, 0, 1);
        vm.expectRevert(abi.encodeWithSelector(IRoundLedger.RoundLedgerRoundAlreadyOpen.selector, id, next));
        ledger.restoreVoidedRound(id, forged, wordsAtOpen(), atClose);
        closeRound(id, next, bytes32(0), 0);
        ledger.restoreVoidedRound(id, forged, wordsAtOpen(), atClose);
        assertEq(ledger.cumulativeEpsilon(id, parties[2]), 5 * EPSILON_ONE, "signed entries of both rounds kept");
        assertEq(ledger.cumulativeEpsilon(id, parties[1]), 2 * EPSILON_ONE - 1, "the forged 1.000001 given back");
        assertEq(ledger.cumulativeEpsilon(id, parties[8]), EPSILON_ONE, "later entry untouched");
        assertEq(ledger.cumulativeEpsilon(id, parties[0]), EPSILON_ONE, "voided round's signed spend kept");
    }

    function test_restoreVoidedRound_refusesOtherClosingWords() public {
        Batch memory b = anchoredForgery(1);
        uint256[] memory atClose = wordsNow();
        prove(b, 0, 1);
        atClose[0] += 1;
        vm.expectRevert(IRoundLedger.RoundLedgerEpsilonWordsMismatch.selector);
        ledger.restoreVoidedRound(id, r, wordsAtOpen(), atClose);
    }

    /// @dev An abandoned round keeps the entries its parties signed. An entry anchored for a party that never
    /// signed it is still disputable for the dispute window after the abandonment, and unanswered it is voided:
    /// the party gets back that spend alone. After the window the voided round is closed to disputes.
    function test_abandonedRound_keepsSignedEntries_anUnsignedOneIsDisputedAfterTheVoid() public {
        IRoundLedger.BatchEvidence memory e = anchorWithoutPreimage(entryOf(5, 2 * EPSILON_ONE), 0);
        anchor(batchOf(0, 3)); // signed, at 1.0 + i
        uint256[] memory atClose = wordsNow();
        vm.warp(uint256(ledger.round(id, r).deadline) + DISPUTE_WINDOW + 1);
        ledger.abandonRound(id, r);
        ledger.restoreVoidedRound(id, r, wordsAtOpen(), atClose);
        assertEq(ledger.cumulativeEpsilon(id, parties[2]), EPSILON_ONE + 2, "a signed entry stays charged");
        assertEq(ledger.cumulativeEpsilon(id, parties[5]), 2 * EPSILON_ONE, "undisputed yet");

        vm.prank(parties[5]);
        ledger.disputeBatchEntry(e);
        vm.warp(ledger.entryDispute(id, r, parties[5]).answerBy + 1);
        ledger.voidDisputedEntry(id, r, parties[5], wordsAtOpen());
        assertEq(ledger.cumulativeEpsilon(id, parties[5]), 0, "the unsigned entry given back");
        assertEq(ledger.cumulativeEpsilon(id, parties[2]), EPSILON_ONE + 2, "the signed ones stay");

        e = evidenceOf(batchOf(0, 3), 1, 0);
        vm.warp(uint256(ledger.round(id, r).finalizedAt) + DISPUTE_WINDOW);
        vm.expectRevert(abi.encodeWithSelector(IRoundLedger.RoundLedgerDisputeWindowClosed.selector, id, r));
        vm.prank(parties[0]);
        ledger.disputeBatchEntry(e);
    }

    /// @dev A forgery proven of an entry its party had already had voided by dispute (the party then entered
    /// again, directly) gives back nothing more: the party's direct submission is its own.
    function test_restoreVoidedRound_afterTheForgedEntryWasVoided_keepsThePartysNewEntry() public {
        Batch memory b = anchoredForgery(1);
        vm.prank(parties[1]);
        ledger.disputeBatchEntry(evidenceOf(b, 0, 1));
        vm.warp(ledger.entryDispute(id, r, parties[1]).answerBy + 1);
        ledger.voidDisputedEntry(id, r, parties[1], wordsAtOpen());
        submitAs(parties[1], id, r, 3 * EPSILON_ONE);
        uint256[] memory atClose = wordsNow();
        prove(b, 0, 1);
        ledger.restoreVoidedRound(id, r, wordsAtOpen(), atClose);
        assertEq(ledger.cumulativeEpsilon(id, parties[1]), 3 * EPSILON_ONE, "the direct submission stays");
    }

    /// @dev The entry proven forged, disputed by its party too and voided by that dispute after the proof: the
    /// restore finds it gone and gives nothing back twice.
    function test_restoreVoidedRound_afterTheProvenEntryWasVoidedByItsDispute_givesNothingTwice() public {
        Batch memory b = anchoredForgery(1);
        vm.prank(parties[1]);
        ledger.disputeBatchEntry(evidenceOf(b, 0, 1));
        uint256[] memory atClose = wordsNow();
        prove(b, 0, 1);
        vm.warp(ledger.entryDispute(id, r, parties[1]).answerBy + 1);
        ledger.voidDisputedEntry(id, r, parties[1], wordsAtOpen());
        assertEq(ledger.cumulativeEpsilon(id, parties[1]), 0, "given back by the void");
        ledger.restoreVoidedRound(id, r, wordsAtOpen(), atClose);
        assertEq(ledger.cumulativeEpsilon(id, parties[1]), 0, "not twice");
        assertEq(ledger.cumulativeEpsilon(id, parties[0]), EPSILON_ONE, "a signed entry stays");
    }

    /// @dev A forgery proven of a skipped entry (its party had submitted directly before the batch) voids the
    /// round but gives back nothing: the charge is the party's own submission.
    function test_restoreVoidedRound_ofASkippedForgedEntry_keepsTheDirectSubmission() public {
        submitAs(parties[1], id, r, 3 * EPSILON_ONE);
        Batch memory b = batchOf(0, 5);
        b.signatures[1] = signCommitment(WRONG_KEY, b.commitments[1]);
        reseal(b);
        uint256 batchIndex = anchor(b);
        uint256[] memory atClose = wordsNow();
        prove(b, batchIndex, 1);
        assertTrue(ledger.round(id, r).status == IRoundLedger.RoundStatus.Voided, "voided");
        ledger.restoreVoidedRound(id, r, wordsAtOpen(), atClose);
        assertEq(ledger.cumulativeEpsilon(id, parties[1]), 3 * EPSILON_ONE, "the direct submission stays");
        assertEq(ledger.cumulativeEpsilon(id, parties[0]), EPSILON_ONE, "a signed entry stays");
    }

    /// @dev Issue 10 (d), as the attack: a voided entry kept its submitted bit, so its party could still be
    /// challenged and slashed for an update it never signed. Now a void removes the entry and dismisses the
    /// challenge of it, and the party's stake is free once the round's window ends.
    function test_attack_aVoidedEntryCannotBeChallengedNorSlashed() public {
        IRoundLedger.BatchEvidence memory e = anchorWithoutPreimage(entryOf(1, EPSILON_ONE), 0);
        vm.prank(auditor);
        uint256 challengeId = ledger.challenge(id, r, parties[1], keccak256("evidence"));
        vm.prank(parties[1]);
        ledger.disputeBatchEntry(e);
        vm.warp(ledger.entryDispute(id, r, parties[1]).answerBy + 1);
        ledger.voidDisputedEntry(id, r, parties[1], wordsAtOpen());
        assertTrue(
            ledger.challengeOf(challengeId).status == IRoundLedger.ChallengeStatus.Dismissed, "challenge dismissed"
        );
        vm.expectRevert(
            abi.encodeWithSelector(IRoundLedger.RoundLedgerNoSubmission.selector, id, r, parties[1])
        );
        vm.prank(auditor);
        ledger.challenge(id, r, parties[1], keccak256("evidence"));
        closeRound(id, r, bytes32(0), 0);
        vm.warp(block.timestamp + DISPUTE_WINDOW);
        assertFalse(ledger.isStakeLocked(id, parties[1]), "stake free");
    }

    /// @dev Issue 10 (d), as the attack: an entry skipped because its party had submitted directly could be
    /// disputed, and its void reset the party's direct spend. Now only an applied entry is disputable.
    function test_attack_aSkippedEntryCannotBeDisputed() public {
        submitAs(parties[1], id, r, 2 * EPSILON_ONE);
        IRoundLedger.BatchEvidence memory e =
            anchorWithoutPreimage(bytes.concat(entryOf(0, EPSILON_ONE), entryOf(1, 3 * EPSILON_ONE)), 1);
        e.batchIndex = 1; // after the direct submission
        vm.expectRevert(
            abi.encodeWithSelector(IRoundLedger.RoundLedgerNoSubmission.selector, id, r, parties[1])
        );
        vm.prank(parties[1]);
        ledger.disputeBatchEntry(e);
        e.position = 0;
        vm.prank(parties[0]);
        ledger.disputeBatchEntry(e); // the applied entry of the same batch is
    }

    /// @dev Issue 10 (d), as the attack: one unanswered entry voided the whole finalized round and revoked every
    /// honest partner's payout. Now it removes that entry alone; the round and its allocation stand.
    function test_attack_anUnansweredEntryLeavesTheFinalizedRoundStanding() public {
        IRoundLedger.BatchEvidence memory e =
            anchorWithoutPreimage(bytes.concat(entryOf(0, EPSILON_ONE), entryOf(1, EPSILON_ONE)), 1);
        closeRound(id, r, keccak256("payout root"), 120e18);
        vm.prank(parties[1]);
        ledger.disputeBatchEntry(e);
        vm.warp(ledger.entryDispute(id, r, parties[1]).answerBy + 1);
        ledger.voidDisputedEntry(id, r, parties[1], wordsAtOpen());
        assertTrue(ledger.round(id, r).status == IRoundLedger.RoundStatus.Finalized, "round stands");
        assertFalse(vault.allocation(id, r).revoked, "allocation stands");
        assertFalse(ledger.isClaimBlocked(id, r, parties[0]), "honest claims free");
        assertEq(ledger.cumulativeEpsilon(id, parties[0]), EPSILON_ONE, "honest spend stands");
        assertEq(ledger.cumulativeEpsilon(id, parties[1]), 0, "voided spend given back");
    }

    /// @dev A party whose entry was voided while the round is still open may enter again, and that new entry
    /// can be disputed in its turn.
    function test_disputeBatchEntry_acceptsANewEntryAfterAVoidInTheSameRound() public {
        IRoundLedger.BatchEvidence memory e = anchorWithoutPreimage(entryOf(1, EPSILON_ONE), 0);
        vm.prank(parties[1]);
        ledger.disputeBatchEntry(e);
        vm.warp(ledger.entryDispute(id, r, parties[1]).answerBy + 1);
        ledger.voidDisputedEntry(id, r, parties[1], wordsAtOpen());
        vm.expectRevert(
            abi.encodeWithSelector(IRoundLedger.RoundLedgerNoSubmission.selector, id, r, parties[1])
        );
        vm.prank(parties[1]);
        ledger.disputeBatchEntry(e);
        vm.prank(coordinator);
        ledger.commitBatch(id, r, keccak256("another root"), DOCUMENT, entryOf(1, 2 * EPSILON_ONE));
        e.batchIndex = 1; // a batch index counts every update before it, voided ones too
        e.root = keccak256("another root");
        e.entries = entryOf(1, 2 * EPSILON_ONE);
        vm.prank(parties[1]);
        ledger.disputeBatchEntry(e);
        assertTrue(ledger.entryDispute(id, r, parties[1]).status == IRoundLedger.DisputeStatus.Open, "open");
    }

    /// @dev The round's results are challenged in the court and upheld (its allocation revoked) before the auditor
    /// proves a forged commitment of the same round. The proof must still void the round, so that its epsilons can
    /// be restored; before the fix the ledger revoked the allocation a second time and the vault refused.
    function test_attack_upheldResultsChallengeDoesNotBlockAForgeryProof() public {
        Batch memory b = anchoredForgery(1);
        closeRound(id, r, keccak256("payout root"), 120e18);
        vm.prank(auditor);
        uint256 cid = court.challengeResults(id, r, IResultsCourt.ResultsKind.Payouts, keccak256("evidence"));
        vm.prank(arbiter);
        court.ruleResults(cid, true, keccak256("ruling"));

        prove(b, 0, 1);
        assertTrue(ledger.round(id, r).status == IRoundLedger.RoundStatus.Voided, "round voided");
        assertEq(vault.unallocated(id), 1_000e18, "the payouts went back to the pool once");
    }

    /*//////////////////////////////////////////////////////////////
                      ERC-1271 smart-wallet partners
    //////////////////////////////////////////////////////////////*/

    uint256 internal constant WALLET_OWNER_KEY = 0x0A7E;

    /// @dev A round of an agreement between a smart wallet (index 0) and partner 0 (index 1), with one anchored
    /// entry for the wallet signed by `signerKey`.
    function walletBatch(uint256 signerKey) internal returns (Batch memory b) {
        SmartWallet wallet = new SmartWallet(vm.addr(WALLET_OWNER_KEY));
        registerAndApprove(address(wallet));
        address[] memory two = new address[](2);
        (two[0], two[1]) = (address(wallet), parties[0]);
        id = proposeSignStake(defaultTerms(two), STAKE);
        r = openRoundOn(id);
        b.entries = entryOf(0, EPSILON_ONE);
        b.commitments = new IRoundLedger.UpdateCommitment[](1);
        b.signatures = new bytes[](1);
        b.commitments[0] = commitmentFor(id, r, address(wallet), EPSILON_ONE);
        b.signatures[0] = signCommitment(signerKey, b.commitments[0]);
        reseal(b);
        anchor(b);
    }

    /// @dev Issue 10, item 4: batch signatures are judged by ECDSA alone, so the judgement of an anchored entry
    /// is fixed when it is anchored: a wallet that later revokes (or starts accepting) changes nothing. A wallet's
    /// entry in a batch is provable at once (a smart-wallet party submits directly), so the old attack (anchor
    /// an accepted wallet signature, revoke it, void the finalized round of every honest partner) has no
    /// "accepted" state to start from. On the old code the owner's signature passed as the wallet's.
    function test_proveForgedCommitment_judgesAWalletsEntryByECDSAAlone() public {
        Batch memory b = walletBatch(WALLET_OWNER_KEY);
        prove(b, 0, 0);
        assertTrue(ledger.round(id, r).status == IRoundLedger.RoundStatus.Voided, "voided");
    }

    /// @dev Issue 10, item 4: a smart wallet's entry is kept through the dispute route, where its ERC-1271
    /// signature is checked once, when revealed, and that is final.
    function test_answerDispute_acceptsAWalletsSignatureCheckedAtReveal() public {
        Batch memory b = walletBatch(WALLET_OWNER_KEY);
        address wallet = b.commitments[0].partner;
        vm.prank(wallet);
        ledger.disputeBatchEntry(evidenceOf(b, 0, 0));
        answer(b, 0, 0);
        assertTrue(ledger.entryDispute(id, r, wallet).status == IRoundLedger.DisputeStatus.Answered, "answered");
    }

    /// @dev Issue 10 (d), as the attack: a smart wallet's honest entry could be made unanswerable (the wallet
    /// refuses its own signature once disputed) and was provable as "forged" by ECDSA. The coordinator now
    /// reveals the wallet's commitment before any dispute, while the wallet accepts it, and that judgement is
    /// final: the entry can be neither disputed nor proven forged afterwards.
    function test_attack_aWalletsEntryRevealedBeforeAnyDisputeStays() public {
        Batch memory b = walletBatch(WALLET_OWNER_KEY);
        address wallet = b.commitments[0].partner;
        answer(b, 0, 0); // no dispute yet
        assertTrue(ledger.entryDispute(id, r, wallet).status == IRoundLedger.DisputeStatus.Answered, "revealed");
        vm.expectRevert(abi.encodeWithSelector(IRoundLedger.RoundLedgerEntryAlreadyDisputed.selector, id, r, wallet));
        vm.prank(wallet);
        ledger.disputeBatchEntry(evidenceOf(b, 0, 0));
        vm.expectRevert(IRoundLedger.RoundLedgerCommitmentValid.selector);
        prove(b, 0, 0);
        vm.expectRevert(abi.encodeWithSelector(IRoundLedger.RoundLedgerNoOpenDispute.selector, id, r, wallet));
        answer(b, 0, 0);
    }

    function test_proveForgedCommitment_voidsCommitmentTheWalletDoesNotAccept() public {
        Batch memory b = walletBatch(WRONG_KEY);
        prove(b, 0, 0);
        assertTrue(ledger.round(id, r).status == IRoundLedger.RoundStatus.Voided, "voided");
    }
}

/// @dev Exposes the internal library so that it can be checked on its own.
contract PositionalMerkleHarness {
    function depth(uint256 leafCount) external pure returns (uint256) {
        return PositionalMerkle.depth(leafCount);
    }

    function verify(bytes32[] calldata proof, bytes32 root, bytes32 leaf, uint256 position, uint256 leafCount)
        external
        pure
        returns (bool)
    {
        return PositionalMerkle.verify(proof, root, leaf, position, leafCount);
    }
}

/// @dev PositionalMerkle against trees built by the test helper, and against a tree computed by hand.
contract PositionalMerkleTest is TestBase {
    PositionalMerkleHarness internal merkle;

    function setUp() public {
        merkle = new PositionalMerkleHarness();
    }

    function leavesOf(uint256 n, uint256 seed) internal pure returns (bytes32[] memory leaves) {
        leaves = new bytes32[](n);
        for (uint256 i; i < n; ++i) {
            leaves[i] = keccak256(abi.encode(seed, i));
        }
    }

    function test_depth_isTheLevelsOfThePaddedTree() public view {
        uint256[9] memory counts = [uint256(0), 1, 2, 3, 4, 5, 8, 9, 256];
        uint256[9] memory depths = [uint256(0), 0, 1, 2, 2, 3, 3, 4, 8];
        for (uint256 i; i < counts.length; ++i) {
            assertEq(merkle.depth(counts[i]), depths[i], "depth");
        }
    }

    function test_verify_acceptsATreeComputedByHand() public view {
        bytes32[] memory leaves = leavesOf(3, 7);
        bytes32 left = keccak256(abi.encodePacked(leaves[0], leaves[1]));
        bytes32 right = keccak256(abi.encodePacked(leaves[2], bytes32(0)));
        bytes32 root = keccak256(abi.encodePacked(left, right));
        assertTrue(Merkle.positionalRoot(leaves) == root, "helper root");
        bytes32[] memory proof = new bytes32[](2);
        (proof[0], proof[1]) = (bytes32(0), left);
        assertTrue(merkle.verify(proof, root, leaves[2], 2, 3), "leaf 2");
    }

    function test_verify_acceptsTheOnlyLeafOfAOneLeafTree() public view {
        bytes32 leaf = keccak256("only");
        assertTrue(merkle.verify(new bytes32[](0), leaf, leaf, 0, 1), "single leaf is the root");
    }

    /// @dev Every leaf verifies at its own position and at no other, and an altered leaf never verifies.
    function testFuzz_verify_placesEachLeafAtItsPosition(uint256 n, uint256 seed, uint256 position, uint256 other)
        public
        view
    {
        n = bound(n, 1, 40);
        position = bound(position, 0, n - 1);
        other = bound(other, 0, n - 1);
        bytes32[] memory leaves = leavesOf(n, seed);
        bytes32 root = Merkle.positionalRoot(leaves);
        bytes32[] memory proof = Merkle.positionalProof(leaves, position);

        assertTrue(merkle.verify(proof, root, leaves[position], position, n), "own position");
        if (other != position) assertTrue(!merkle.verify(proof, root, leaves[position], other, n), "other position");
        assertTrue(!merkle.verify(proof, root, keccak256(abi.encode(leaves[position])), position, n), "altered leaf");
    }

    function test_verify_refusesAPaddingPosition() public view {
        bytes32[] memory leaves = leavesOf(3, 1);
        bytes32 root = Merkle.positionalRoot(leaves);
        bytes32[] memory padded = new bytes32[](4);
        for (uint256 i; i < 3; ++i) {
            padded[i] = leaves[i];
        }
        // The zero leaf at position 3 hashes up to the root, but position 3 is past the 3 leaves.
        bytes32[] memory proof = Merkle.positionalProof(padded, 3);
        assertTrue(!merkle.verify(proof, root, bytes32(0), 3, 3), "padding refused");
        assertTrue(merkle.verify(proof, root, bytes32(0), 3, 4), "same proof in a 4-leaf tree");
    }

    function test_verify_refusesAProofOfTheWrongLength() public view {
        bytes32[] memory leaves = leavesOf(4, 2);
        bytes32 root = Merkle.positionalRoot(leaves);
        // In a 4-leaf tree, the level-1 node (leaf 0, leaf 1) with one sibling reaches the root in one step.
        bytes32[] memory short = new bytes32[](1);
        short[0] = keccak256(abi.encodePacked(leaves[2], leaves[3]));
        bytes32 node = keccak256(abi.encodePacked(leaves[0], leaves[1]));
        assertTrue(!merkle.verify(short, root, node, 0, 4), "inner node as leaf refused");
        assertTrue(merkle.verify(short, root, node, 0, 2), "same proof with the matching depth");
    }
}
