// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.28;

import {AgreementFixture} from "./utils/AgreementFixture.sol";
import {Vm} from "./utils/Vm.sol";
import {IAgreementRegistry} from "../../interfaces/IAgreementRegistry.sol";
import {IRoundLedger} from "../../interfaces/IRoundLedger.sol";

/// @dev The ledger packs cumulative epsilons into storage words in lanes of the agreement's width: eight 32-bit
/// lanes, or ten 24-bit ones when the cap fits 24 bits. These tests write one party's value, through
/// {submitUpdate} or {commitBatch}, next to neighbours holding extreme values (zero, one, the top bit, all ones),
/// in both widths, and check that no neighbour moves; and they pin the budget check to the exact fixed-point
/// boundary.
contract EpsilonPackingFuzzTest is AgreementFixture {
    /// @dev 25 parties: in 32-bit lanes words 0-7, 8-15, 16-23 and a partial fourth; in 24-bit lanes words 0-9,
    /// 10-19 and a partial third.
    uint256 internal constant N = 25;
    uint32 internal constant MAX = type(uint32).max;
    uint32 internal constant MAX24 = type(uint24).max;

    address[] internal parties;
    /// @dev Agreement whose cap is the largest representable (32-bit lanes), so any uint32 value is a balance.
    uint256 internal wide;
    /// @dev Agreement whose cap is the largest that 24-bit lanes hold.
    uint256 internal narrow;

    function setUp() public override {
        super.setUp();
        parties = approvedPartners(N);
        IAgreementRegistry.Terms memory t = defaultTerms(parties);
        t.epsilonCap = MAX;
        t.requiredStake = 0;
        t.maxRounds = 100;
        wide = activate(t);
        t.epsilonCap = MAX24;
        narrow = activate(t);
    }

    /*//////////////////////////////////////////////////////////////
                                HELPERS
    //////////////////////////////////////////////////////////////*/

    function epsilons(uint256 id) internal view returns (uint32[N] memory values) {
        for (uint256 i; i < N; ++i) {
            values[i] = ledger.cumulativeEpsilon(id, parties[i]);
        }
    }

    /// @dev The largest balance of agreement `id`: its cap, which fills its lanes.
    function maxOf(uint256 id) internal view returns (uint32) {
        return agreements.roundConfig(id).epsilonCap;
    }

    /// @dev A neighbour's starting balance up to `max`: zero (never submitted), one, the top bit, all ones, or
    /// anything.
    function neighbourValue(uint256 seed, uint256 i, uint32 max) internal pure returns (uint32) {
        uint256 h = uint256(keccak256(abi.encode(seed, i)));
        uint256 mode = h % 5;
        if (mode == 0) return 0;
        if (mode == 1) return 1;
        if (mode == 2) return uint32((uint256(max) + 1) / 2);
        if (mode == 3) return max;
        return uint32(bound(h >> 8, 0, max));
    }

    /// @dev Round 1 of `id`: every party with a non-zero value in `values` gets it through one batch.
    function prefill(uint256 id, uint32[N] memory values) internal {
        bytes memory entries;
        for (uint256 i; i < N; ++i) {
            if (values[i] != 0) entries = bytes.concat(entries, entry(i, values[i]));
        }
        uint64 roundId = openRound(id);
        if (entries.length != 0) commitBatchAs(id, roundId, entries);
        finalizeAfterDeadline(id, roundId);
    }

    function assertEpsilons(uint256 id, uint32[N] memory expected) internal view {
        uint32[N] memory actual = epsilons(id);
        for (uint256 i; i < N; ++i) {
            assertEq(actual[i], expected[i], "party epsilon");
        }
    }

    function expectBudgetExceeded(address partner, uint256 spent, uint256 cap) internal {
        vm.expectRevert(abi.encodeWithSelector(IRoundLedger.RoundLedgerBudgetExceeded.selector, partner, spent, cap));
    }

    function expectNotIncreasing(address partner, uint256 previous, uint256 committed) internal {
        vm.expectRevert(
            abi.encodeWithSelector(IRoundLedger.RoundLedgerEpsilonNotIncreasing.selector, partner, previous, committed)
        );
    }

    /// @dev An Active agreement over the first three parties with `cap`, its first round open.
    function agreementWithCap(uint32 cap) internal returns (uint256 id, uint64 roundId) {
        address[] memory three = new address[](3);
        for (uint256 i; i < 3; ++i) {
            three[i] = parties[i];
        }
        IAgreementRegistry.Terms memory t = defaultTerms(three);
        t.epsilonCap = cap;
        t.requiredStake = 0;
        id = activate(t);
        roundId = openRound(id);
    }

    /*//////////////////////////////////////////////////////////////
                             PACKING (FUZZ)
    //////////////////////////////////////////////////////////////*/

    function testFuzz_submitUpdateChangesOnlyTheSubmittersSlot(uint256 seed, uint256 target, uint256 epsilon) public {
        submitChangesOnlyTheSubmittersLane(wide, seed, target, epsilon);
    }

    function testFuzz_submitUpdateChangesOnlyTheSubmittersLaneOf24Bits(uint256 seed, uint256 target, uint256 epsilon)
        public
    {
        submitChangesOnlyTheSubmittersLane(narrow, seed, target, epsilon);
    }

    function submitChangesOnlyTheSubmittersLane(uint256 id, uint256 seed, uint256 target, uint256 epsilon) internal {
        uint32 max = maxOf(id);
        target = bound(target, 0, N - 1);
        uint32[N] memory values;
        for (uint256 i; i < N; ++i) {
            values[i] = neighbourValue(seed, i, max);
        }
        // The submitter needs room to grow: its previous value is below the max and the new one above it.
        values[target] = uint32(bound(values[target], 0, max - 1));
        uint32 committed = uint32(bound(epsilon, uint256(values[target]) + 1, max));
        prefill(id, values);
        assertEpsilons(id, values);

        uint64 roundId = openRound(id);
        submitAs(parties[target], id, roundId, committed);

        values[target] = committed;
        assertEpsilons(id, values);
    }

    function testFuzz_commitBatchChangesOnlyTheListedSlots(uint256 seed, uint256 mask, uint256 raise) public {
        batchChangesOnlyTheListedLanes(wide, seed, mask, raise);
    }

    function testFuzz_commitBatchChangesOnlyTheListedLanesOf24Bits(uint256 seed, uint256 mask, uint256 raise) public {
        batchChangesOnlyTheListedLanes(narrow, seed, mask, raise);
    }

    function batchChangesOnlyTheListedLanes(uint256 id, uint256 seed, uint256 mask, uint256 raise) internal {
        uint32 max = maxOf(id);
        mask = bound(mask, 1, (1 << N) - 1);
        uint32[N] memory values;
        for (uint256 i; i < N; ++i) {
            values[i] = neighbourValue(seed, i, max);
            if ((mask >> i) & 1 == 1) values[i] = uint32(bound(values[i], 0, max - 1));
        }
        prefill(id, values);

        bytes memory entries;
        for (uint256 i; i < N; ++i) {
            if ((mask >> i) & 1 == 0) continue;
            uint256 r = uint256(keccak256(abi.encode(raise, i)));
            // Half the writers jump straight to the max, the rest to anything above their previous value.
            uint32 committed = r & 1 == 0 ? max : uint32(bound(r >> 1, uint256(values[i]) + 1, max));
            entries = bytes.concat(entries, entry(i, committed));
            values[i] = committed;
        }
        uint64 roundId = openRound(id);
        commitBatchAs(id, roundId, entries);
        assertEpsilons(id, values);
    }

    /// @dev Both write paths over the same word in one round: a batch for some parties, then submitUpdate for
    /// a party it left out, must compose without either clobbering the other.
    function testFuzz_submitUpdateAfterBatchInSameWordKeepsBatchValues(uint256 seed, uint256 target) public {
        submitAfterBatchKeepsBatchValues(wide, seed, target);
    }

    function testFuzz_submitUpdateAfterBatchKeepsBatchValuesIn24BitLanes(uint256 seed, uint256 target) public {
        submitAfterBatchKeepsBatchValues(narrow, seed, target);
    }

    function submitAfterBatchKeepsBatchValues(uint256 id, uint256 seed, uint256 target) internal {
        uint32 max = maxOf(id);
        target = bound(target, 0, N - 1);
        uint32[N] memory values;
        bytes memory entries;
        for (uint256 i; i < N; ++i) {
            if (i == target) continue;
            values[i] = uint32(bound(neighbourValue(seed, i, max), 1, max));
            entries = bytes.concat(entries, entry(i, values[i]));
        }
        uint64 roundId = openRound(id);
        commitBatchAs(id, roundId, entries);
        uint32 committed = uint32(bound(uint256(keccak256(abi.encode(seed))), 1, max));
        submitAs(parties[target], id, roundId, committed);
        values[target] = committed;
        assertEpsilons(id, values);
    }

    /*//////////////////////////////////////////////////////////////
                         PACKING (EXAMPLES)
    //////////////////////////////////////////////////////////////*/

    function test_maxEpsilonInTopSlotDoesNotSpillIntoNextWord() public {
        maxInTopLaneDoesNotSpill(wide, 8);
    }

    function test_maxEpsilonInTopLaneOf24BitsDoesNotSpillIntoNextWord() public {
        maxInTopLaneDoesNotSpill(narrow, 10);
    }

    /// @dev The last lane of word 0 (`lanes` to a word) filled to the max leaves its neighbours at zero.
    function maxInTopLaneDoesNotSpill(uint256 id, uint256 lanes) internal {
        uint32 max = maxOf(id);
        uint64 roundId = openRound(id);
        submitAs(parties[lanes - 1], id, roundId, max);
        assertEq(ledger.cumulativeEpsilon(id, parties[lanes - 1]), max, "top lane of word 0");
        assertEq(ledger.cumulativeEpsilon(id, parties[lanes - 2]), 0, "lane below");
        assertEq(ledger.cumulativeEpsilon(id, parties[lanes]), 0, "first lane of word 1");
    }

    function test_batchAcrossWordBoundaryWritesBothWords() public {
        batchAcrossWordBoundaryWritesBothWords(wide, 8);
    }

    function test_batchAcrossA24BitWordBoundaryWritesBothWords() public {
        batchAcrossWordBoundaryWritesBothWords(narrow, 10);
    }

    /// @dev One batch over the last lane of word 0, the first of word 1 and the first of word 2.
    function batchAcrossWordBoundaryWritesBothWords(uint256 id, uint256 lanes) internal {
        uint32 max = maxOf(id);
        uint32 topBit = uint32((uint256(max) + 1) / 2);
        uint64 roundId = openRound(id);
        commitBatchAs(id, roundId, bytes.concat(entry(lanes - 1, max), entry(lanes, 1), entry(2 * lanes, topBit)));
        assertEq(ledger.cumulativeEpsilon(id, parties[lanes - 1]), max, "last lane of word 0");
        assertEq(ledger.cumulativeEpsilon(id, parties[lanes]), 1, "first lane of word 1");
        assertEq(ledger.cumulativeEpsilon(id, parties[2 * lanes]), topBit, "first lane of word 2");
        assertEq(ledger.cumulativeEpsilon(id, parties[2 * lanes - 1]), 0, "last lane of word 1 untouched");
    }

    /// @dev A cap that fits 24 bits packs ten parties to a word: 25 parties take three words, not four. The
    /// round's opening snapshot holds every word (what a batch reads and writes is one per word).
    function test_aCapThatFits24BitsPacksTenPartiesToAWord() public {
        vm.recordLogs();
        openRound(narrow);
        uint256[] memory words = abi.decode(lastLogData(), (uint256[]));
        assertEq(words.length, 3, "25 parties in 24-bit lanes");
        vm.recordLogs();
        openRound(wide);
        assertEq(abi.decode(lastLogData(), (uint256[])).length, 4, "25 parties in 32-bit lanes");
    }

    /// @dev The data of the last log recorded (openRound emits EpsilonsAtOpen last).
    function lastLogData() internal returns (bytes memory) {
        Vm.Log[] memory logs = vm.getRecordedLogs();
        return logs[logs.length - 1].data;
    }

    /*//////////////////////////////////////////////////////////////
                     FIXED-POINT BUDGET BOUNDARIES
    //////////////////////////////////////////////////////////////*/

    function test_submitUpdateAcceptsEpsilonExactlyAtCap() public {
        (uint256 id, uint64 roundId) = agreementWithCap(8 * EPSILON_ONE);
        submitAs(parties[0], id, roundId, 8 * EPSILON_ONE);
        assertEq(ledger.cumulativeEpsilon(id, parties[0]), 8 * EPSILON_ONE, "spent to the cap");
    }

    function test_submitUpdateRefusesEpsilonOneUnitAboveCap() public {
        (uint256 id, uint64 roundId) = agreementWithCap(8 * EPSILON_ONE);
        expectBudgetExceeded(parties[0], 8 * EPSILON_ONE + 1, 8 * EPSILON_ONE);
        submitAs(parties[0], id, roundId, 8 * EPSILON_ONE + 1);
    }

    function test_commitBatchAcceptsEntryExactlyAtCap() public {
        (uint256 id, uint64 roundId) = agreementWithCap(8 * EPSILON_ONE);
        commitBatchAs(id, roundId, bytes.concat(entry(0, 1), entry(2, 8 * EPSILON_ONE)));
        assertEq(ledger.cumulativeEpsilon(id, parties[2]), 8 * EPSILON_ONE, "spent to the cap");
    }

    function test_commitBatchRefusesEntryOneUnitAboveCap() public {
        (uint256 id, uint64 roundId) = agreementWithCap(8 * EPSILON_ONE);
        expectBudgetExceeded(parties[2], 8 * EPSILON_ONE + 1, 8 * EPSILON_ONE);
        commitBatchAs(id, roundId, bytes.concat(entry(0, 1), entry(2, 8 * EPSILON_ONE + 1)));
    }

    function test_submitUpdateAcceptsMaxEpsilonUnderMaxCap() public {
        uint64 roundId = openRound(wide);
        submitAs(parties[3], wide, roundId, MAX);
        assertEq(ledger.cumulativeEpsilon(wide, parties[3]), MAX, "4294.967295 spent");
    }

    function test_submitUpdateRefusesEpsilonEqualToPrevious() public {
        (uint256 id, uint64 roundId) = agreementWithCap(8 * EPSILON_ONE);
        submitAs(parties[1], id, roundId, EPSILON_ONE);
        finalizeAfterDeadline(id, roundId);
        roundId = openRound(id);
        expectNotIncreasing(parties[1], EPSILON_ONE, EPSILON_ONE);
        submitAs(parties[1], id, roundId, EPSILON_ONE);
    }

    function test_submitUpdateAcceptsOneUnitAbovePrevious() public {
        (uint256 id, uint64 roundId) = agreementWithCap(8 * EPSILON_ONE);
        submitAs(parties[1], id, roundId, EPSILON_ONE);
        finalizeAfterDeadline(id, roundId);
        roundId = openRound(id);
        submitAs(parties[1], id, roundId, EPSILON_ONE + 1);
        assertEq(ledger.cumulativeEpsilon(id, parties[1]), EPSILON_ONE + 1, "raised by one unit");
    }

    function test_submitUpdateRefusesZeroEpsilon() public {
        (uint256 id, uint64 roundId) = agreementWithCap(8 * EPSILON_ONE);
        expectNotIncreasing(parties[0], 0, 0);
        submitAs(parties[0], id, roundId, 0);
    }

    function test_commitBatchRefusesEntryEqualToPrevious() public {
        (uint256 id, uint64 roundId) = agreementWithCap(8 * EPSILON_ONE);
        commitBatchAs(id, roundId, entry(1, 3 * EPSILON_ONE));
        finalizeAfterDeadline(id, roundId);
        roundId = openRound(id);
        expectNotIncreasing(parties[1], 3 * EPSILON_ONE, 3 * EPSILON_ONE);
        commitBatchAs(id, roundId, bytes.concat(entry(0, 1), entry(1, 3 * EPSILON_ONE)));
    }

    /// @dev A cap lowered by an amendment binds from the next commitment on, even below what was spent.
    function test_capLoweredByAmendmentRefusesFurtherSpending() public {
        (uint256 id, uint64 roundId) = agreementWithCap(8 * EPSILON_ONE);
        submitAs(parties[0], id, roundId, 5 * EPSILON_ONE);
        finalizeAfterDeadline(id, roundId);
        IAgreementRegistry.Terms memory t = agreements.terms(id);
        t.epsilonCap = 3 * EPSILON_ONE;
        vm.prank(coordinator);
        agreements.amend(id, t);
        resignAll(id);
        roundId = openRound(id);
        expectBudgetExceeded(parties[0], 6 * EPSILON_ONE, 3 * EPSILON_ONE);
        submitAs(parties[0], id, roundId, 6 * EPSILON_ONE);
    }

    function testFuzz_epsilonAtCapIsAccepted(uint32 cap, bool batched) public {
        cap = uint32(bound(cap, 1, MAX));
        (uint256 id, uint64 roundId) = agreementWithCap(cap);
        if (batched) commitBatchAs(id, roundId, entry(1, cap));
        else submitAs(parties[1], id, roundId, cap);
        assertEq(ledger.cumulativeEpsilon(id, parties[1]), cap, "spent to the cap");
    }

    function testFuzz_epsilonAboveCapIsRefused(uint32 cap, uint256 spent, bool batched) public {
        cap = uint32(bound(cap, 1, MAX - 1));
        spent = bound(spent, uint256(cap) + 1, MAX);
        (uint256 id, uint64 roundId) = agreementWithCap(cap);
        expectBudgetExceeded(parties[1], spent, cap);
        if (batched) commitBatchAs(id, roundId, entry(1, uint32(spent)));
        else submitAs(parties[1], id, roundId, uint32(spent));
    }
}
