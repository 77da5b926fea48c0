// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.28;

import {AgreementFixture} from "./utils/AgreementFixture.sol";
import {IAgreementRegistry} from "../../interfaces/IAgreementRegistry.sol";
import {IRoundLedger} from "../../interfaces/IRoundLedger.sol";

/// @dev The ledger keeps eight uint32 cumulative epsilons per storage word. These tests write one party's value,
/// through {submitUpdate} or {commitBatch}, next to neighbours holding extreme values (zero, all ones, the top
/// bit), and check that no neighbour moves; and they pin the budget check to the exact fixed-point boundary.
contract EpsilonPackingFuzzTest is AgreementFixture {
    /// @dev 20 parties: two full words (indexes 0-7, 8-15) and a partial third (16-19).
    uint256 internal constant N = 20;
    uint32 internal constant MAX = type(uint32).max;

    address[] internal parties;
    /// @dev Agreement whose cap is the largest representable, so that any uint32 value is a legal balance.
    uint256 internal wide;

    function setUp() public override {
        super.setUp();
        parties = approvedPartners(N);
        IAgreementRegistry.Terms memory t = defaultTerms(parties);
        t.epsilonCap = MAX;
        t.requiredStake = 0;
        t.maxRounds = 100;
        wide = activate(t);
    }

    /*//////////////////////////////////////////////////////////////
                                HELPERS
    //////////////////////////////////////////////////////////////*/

    function epsilons(uint256 id) internal view returns (uint32[N] memory values) {
        for (uint256 i; i < N; ++i) {
            values[i] = ledger.cumulativeEpsilon(id, parties[i]);
        }
    }

    /// @dev A neighbour's starting balance: zero (never submitted), one, the top bit, all ones, or anything.
    function neighbourValue(uint256 seed, uint256 i) internal pure returns (uint32) {
        uint256 h = uint256(keccak256(abi.encode(seed, i)));
        uint256 mode = h % 5;
        if (mode == 0) return 0;
        if (mode == 1) return 1;
        if (mode == 2) return 0x80000000;
        if (mode == 3) return MAX;
        return uint32(h >> 8);
    }

    /// @dev Round 1 of `wide`: every party with a non-zero value in `values` gets it through one batch.
    function prefill(uint32[N] memory values) internal {
        bytes memory entries;
        for (uint256 i; i < N; ++i) {
            if (values[i] != 0) entries = bytes.concat(entries, entry(i, values[i]));
        }
        uint64 roundId = openRound(wide);
        if (entries.length != 0) commitBatchAs(wide, roundId, entries);
        finalizeAfterDeadline(wide, roundId);
    }

    function assertEpsilons(uint32[N] memory expected) internal view {
        uint32[N] memory actual = epsilons(wide);
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
        target = bound(target, 0, N - 1);
        uint32[N] memory values;
        for (uint256 i; i < N; ++i) {
            values[i] = neighbourValue(seed, i);
        }
        // The submitter needs room to grow: its previous value is below MAX and the new one above it.
        values[target] = uint32(bound(values[target], 0, MAX - 1));
        uint32 committed = uint32(bound(epsilon, uint256(values[target]) + 1, MAX));
        prefill(values);
        assertEpsilons(values);

        uint64 roundId = openRound(wide);
        submitAs(parties[target], wide, roundId, committed);

        values[target] = committed;
        assertEpsilons(values);
    }

    function testFuzz_commitBatchChangesOnlyTheListedSlots(uint256 seed, uint256 mask, uint256 raise) public {
        mask = bound(mask, 1, (1 << N) - 1);
        uint32[N] memory values;
        for (uint256 i; i < N; ++i) {
            values[i] = neighbourValue(seed, i);
            if ((mask >> i) & 1 == 1) values[i] = uint32(bound(values[i], 0, MAX - 1));
        }
        prefill(values);

        bytes memory entries;
        for (uint256 i; i < N; ++i) {
            if ((mask >> i) & 1 == 0) continue;
            uint256 r = uint256(keccak256(abi.encode(raise, i)));
            // Half the writers jump straight to MAX, the rest to anything above their previous value.
            uint32 committed = r & 1 == 0 ? MAX : uint32(bound(r >> 1, uint256(values[i]) + 1, MAX));
            entries = bytes.concat(entries, entry(i, committed));
            values[i] = committed;
        }
        uint64 roundId = openRound(wide);
        commitBatchAs(wide, roundId, entries);
        assertEpsilons(values);
    }

    /// @dev Both write paths over the same word in one round: a batch for some parties, then submitUpdate for
    /// a party it left out, must compose without either clobbering the other.
    function testFuzz_submitUpdateAfterBatchInSameWordKeepsBatchValues(uint256 seed, uint256 target) public {
        target = bound(target, 0, N - 1);
        uint32[N] memory values;
        bytes memory entries;
        for (uint256 i; i < N; ++i) {
            if (i == target) continue;
            values[i] = uint32(bound(neighbourValue(seed, i), 1, MAX));
            entries = bytes.concat(entries, entry(i, values[i]));
        }
        uint64 roundId = openRound(wide);
        commitBatchAs(wide, roundId, entries);
        uint32 committed = uint32(bound(uint256(keccak256(abi.encode(seed))), 1, MAX));
        submitAs(parties[target], wide, roundId, committed);
        values[target] = committed;
        assertEpsilons(values);
    }

    /*//////////////////////////////////////////////////////////////
                         PACKING (EXAMPLES)
    //////////////////////////////////////////////////////////////*/

    function test_maxEpsilonInTopSlotDoesNotSpillIntoNextWord() public {
        uint64 roundId = openRound(wide);
        submitAs(parties[7], wide, roundId, MAX);
        assertEq(ledger.cumulativeEpsilon(wide, parties[7]), MAX, "top slot of word 0");
        assertEq(ledger.cumulativeEpsilon(wide, parties[6]), 0, "slot below");
        assertEq(ledger.cumulativeEpsilon(wide, parties[8]), 0, "first slot of word 1");
    }

    function test_batchAcrossWordBoundaryWritesBothWords() public {
        uint64 roundId = openRound(wide);
        commitBatchAs(wide, roundId, bytes.concat(entry(7, MAX), entry(8, 1), entry(16, 0x80000000)));
        assertEq(ledger.cumulativeEpsilon(wide, parties[7]), MAX, "index 7");
        assertEq(ledger.cumulativeEpsilon(wide, parties[8]), 1, "index 8");
        assertEq(ledger.cumulativeEpsilon(wide, parties[16]), 0x80000000, "index 16");
        assertEq(ledger.cumulativeEpsilon(wide, parties[15]), 0, "index 15 untouched");
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
