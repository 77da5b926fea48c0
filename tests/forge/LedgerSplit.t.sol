// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.28;

import {LedgerFixture} from "./utils/Fixture.sol";
import {IRoundLedger} from "../../interfaces/IRoundLedger.sol";
import {IAgreementRegistry} from "../../interfaces/IAgreementRegistry.sol";
import {LedgerState} from "../../contracts/libraries/LedgerState.sol";
import {ChallengeDesk} from "../../contracts/libraries/ChallengeDesk.sol";
import {BatchDisputes} from "../../contracts/libraries/BatchDisputes.sol";

/// @dev The RoundLedger split (external libraries on the ledger's storage) and the per-agreement suspension log,
/// attacked: the libraries cannot be driven directly, a batch reads the terms in force, and no sequence of
/// suspensions, reinstatements and log floods lets a suspended party into a batch.
contract LedgerSplitTest is LedgerFixture {
    uint256 internal constant PARTIES = 10;
    uint256 internal constant OUTSIDERS = 40;

    uint256 internal id;
    address[] internal parties;
    uint64 internal r;

    function setUp() public override {
        super.setUp();
        (id, parties) = activeAgreement(PARTIES, 1_000e18);
        r = openRoundOn(id);
    }

    function commitAs(address sender, bytes memory entries) internal {
        vm.prank(sender);
        ledger.commitBatch(id, r, keccak256("root"), keccak256("document"), entries);
    }

    /// @dev `who` (the parties of proposal `agreement`) sign and stake it, and its first round opens.
    function signStakeAndOpen(uint256 agreement, address[] memory who) internal returns (uint64) {
        for (uint256 i; i < who.length; ++i) {
            vm.prank(who[i]);
            agreements.sign(agreement);
            stakeAs(who[i], agreement, STAKE);
        }
        return openRoundOn(agreement);
    }

    /*//////////////////////////////////////////////////////////////
                      THE LIBRARIES, CALLED DIRECTLY
    //////////////////////////////////////////////////////////////*/

    /// @dev An auditor calls the libraries at their own addresses, with the ledger's storage slot and an Env
    /// of its choosing: the compiler's call guard refuses before any check or event (no error data, no log).
    function test_attack_theLedgersLibrariesRefuseADirectCall() public {
        commitAs(coordinator, entryOf(0, EPSILON_ONE));
        LedgerState.Env memory env = LedgerState.Env(partners, agreements, vault, DISPUTE_WINDOW, bytes32(0));
        bytes[2] memory calls = [
            abi.encodeWithSelector(ChallengeDesk.challenge.selector, uint256(2), env, id, r, parties[0], bytes32("e")),
            abi.encodeWithSelector(
                BatchDisputes.restoreVoidedRound.selector, uint256(2), id, r, new uint256[](2), new uint256[](2)
            )
        ];
        address[2] memory libraries = [address(ChallengeDesk), address(BatchDisputes)];
        vm.recordLogs();
        for (uint256 i; i < 2; ++i) {
            vm.prank(auditor);
            (bool ok, bytes memory err) = libraries[i].call(calls[i]);
            assertFalse(ok, "direct call refused");
            assertEq(err.length, 0, "refused by the call guard, before any check");
        }
        assertEq(vm.getRecordedLogs().length, 0, "no event from a library address");
        assertEq(ledger.challengeCount(), 0, "the ledger is unchanged");
    }

    /*//////////////////////////////////////////////////////////////
                              batchTerms
    //////////////////////////////////////////////////////////////*/

    /// @dev A coordinator proposes an amendment that names another coordinator and a lower cap: while it is
    /// pending, batches run under the terms in force (its coordinator, its cap), not the amendment's.
    function test_attack_aPendingAmendmentDoesNotGovernBatches() public {
        address other = address(0xC1);
        bytes32 role = partners.COORDINATOR_ROLE();
        vm.prank(admin);
        partners.grantRole(role, other);
        IAgreementRegistry.Terms memory t = defaultTerms(parties);
        t.coordinator = other;
        t.epsilonCap = 2 * EPSILON_ONE;
        vm.prank(coordinator);
        agreements.amend(id, t);

        (IAgreementRegistry.AgreementStatus status, address inForce, uint32 count, uint32 cap, uint8 laneBits) =
            agreements.batchTerms(id);
        assertEq(laneBits, 24, "lanes fixed at the proposal");
        assertTrue(status == IAgreementRegistry.AgreementStatus.Active, "active");
        assertEq(inForce, coordinator, "coordinator in force");
        assertEq(count, PARTIES, "parties");
        assertEq(cap, 8 * EPSILON_ONE, "cap in force");

        vm.expectRevert(abi.encodeWithSelector(IRoundLedger.RoundLedgerNotCoordinator.selector, other));
        commitAs(other, entryOf(0, EPSILON_ONE));
        commitAs(coordinator, entryOf(0, 5 * EPSILON_ONE));
        assertEq(ledger.cumulativeEpsilon(id, parties[0]), 5 * EPSILON_ONE, "charged under the cap in force");
    }

    /*//////////////////////////////////////////////////////////////
                            SUSPENSION LOG
    //////////////////////////////////////////////////////////////*/

    /// @dev A party of two agreements is suspended: each agreement follows the log on its own, and both refuse
    /// it, whichever reads the log first.
    function test_attack_aPartyOfTwoAgreementsIsRefusedInBoth() public {
        address[] memory some = new address[](3);
        (some[0], some[1], some[2]) = (parties[1], parties[2], parties[3]);
        vm.prank(coordinator);
        uint256 second = agreements.propose(defaultTerms(some));
        uint64 r2 = signStakeAndOpen(second, some);
        vm.prank(coordinator);
        partners.suspend(parties[2], keccak256("suspicious"));

        vm.expectRevert(abi.encodeWithSelector(IRoundLedger.RoundLedgerPartnerNotApproved.selector, parties[2]));
        commitAs(coordinator, bytes.concat(entryOf(1, EPSILON_ONE), entryOf(2, EPSILON_ONE)));
        // The first agreement reads the log past the suspension with a batch that leaves party 2 out.
        commitAs(coordinator, entryOf(1, EPSILON_ONE));
        vm.expectRevert(abi.encodeWithSelector(IRoundLedger.RoundLedgerPartnerNotApproved.selector, parties[2]));
        vm.prank(coordinator);
        ledger.commitBatch(second, r2, keccak256("root"), keccak256("document"), entryOf(1, EPSILON_ONE));
        vm.expectRevert(abi.encodeWithSelector(IRoundLedger.RoundLedgerPartnerNotApproved.selector, parties[2]));
        commitAs(coordinator, entryOf(2, EPSILON_ONE));
    }

    /// @dev What the log's start (the count at the proposal) relies on: a partner suspended before an agreement's
    /// proposal, with the log already past a batch's read, cannot sign it while suspended;
    /// reinstated, it signs, and its next suspension lies past the start, so the agreement's batches refuse it.
    function test_attack_aPartySuspendedBeforeTheProposalIsRefusedOnceInTheAgreement() public {
        address late = partnerAddr(60);
        registerAndApprove(late);
        address[] memory outsiders = approvedParties(100, 40);
        vm.startPrank(coordinator);
        partners.suspend(late, keccak256("before the proposal"));
        for (uint256 i; i < outsiders.length; ++i) {
            partners.suspend(outsiders[i], keccak256("elsewhere"));
        }
        address[] memory two = new address[](2);
        (two[0], two[1]) = (parties[0], late);
        uint256 second = agreements.propose(defaultTerms(two));
        vm.stopPrank();
        assertEq(agreements.suspensionLogStart(second), 41, "the log's start is the count at the proposal");
        vm.expectRevert(abi.encodeWithSelector(IAgreementRegistry.AgreementRegistryPartnerNotApproved.selector, late));
        vm.prank(late);
        agreements.sign(second);

        vm.prank(coordinator);
        partners.approve(late);
        uint64 r2 = signStakeAndOpen(second, two);
        vm.prank(coordinator);
        partners.suspend(late, keccak256("after the proposal"));
        vm.expectRevert(abi.encodeWithSelector(IRoundLedger.RoundLedgerPartnerNotApproved.selector, late));
        vm.prank(coordinator);
        ledger.commitBatch(second, r2, keccak256("root"), keccak256("document"), entryOf(1, EPSILON_ONE));
    }

    /// @dev Every party's approval as the registry says it; a batch must pass exactly when all its parties are
    /// approved, and otherwise name the first that is not.
    function firstUnapproved(uint256 mask) internal view returns (address) {
        for (uint256 i; i < PARTIES; ++i) {
            if (mask >> i & 1 != 0 && !partners.isApproved(parties[i])) return parties[i];
        }
        return address(0);
    }

    /// @dev As a registrar and coordinator acting at random: suspensions and reinstatements of parties, floods of
    /// outsiders' suspensions (more than a batch reads, between two batches), and batches of random parties.
    /// Whatever the ledger has read of the log, a batch is refused exactly when a party of it is suspended.
    /// forge-config: default.fuzz.runs = 64
    function testFuzz_attack_noSuspendedPartyEverEntersABatch(uint256 seed) public {
        address[] memory outsiders = approvedParties(100, OUTSIDERS);
        uint32 epsilon = EPSILON_ONE;
        uint256 used; // parties with an entry in the open round
        for (uint256 step; step < 24; ++step) {
            uint256 roll = uint256(keccak256(abi.encode(seed, step)));
            uint256 action = roll % 4;
            address party = parties[(roll >> 8) % PARTIES];
            vm.startPrank(coordinator);
            if (action == 0 && partners.isApproved(party)) {
                partners.suspend(party, keccak256("suspicious"));
            } else if (action == 1 && !partners.isApproved(party)) {
                partners.approve(party);
            } else if (action == 2) {
                // A flood: each outsider suspended and reinstated, one log entry each.
                uint256 n = (roll >> 16) % OUTSIDERS;
                for (uint256 i; i < n; ++i) {
                    partners.suspend(outsiders[i], keccak256("flood"));
                    partners.approve(outsiders[i]);
                }
            }
            vm.stopPrank();
            if (action != 3) continue;
            uint256 mask = (roll >> 24) & ((1 << PARTIES) - 1) & ~used;
            if (mask == 0) {
                if (ledger.roundCount(id) == 10) return;
                closeRound(id, r, bytes32(0), 0);
                r = openRoundOn(id);
                used = 0;
                continue;
            }
            ++epsilon;
            bytes memory entries;
            for (uint256 i; i < PARTIES; ++i) {
                if (mask >> i & 1 != 0) entries = bytes.concat(entries, entryOf(i, epsilon));
            }
            address refused = firstUnapproved(mask);
            vm.prank(coordinator);
            try ledger.commitBatch(id, r, keccak256("root"), keccak256("document"), entries) {
                assertEq(refused, address(0), "a suspended party entered a batch");
                used |= mask;
            } catch (bytes memory err) {
                assertEq(
                    keccak256(err),
                    keccak256(abi.encodeWithSelector(IRoundLedger.RoundLedgerPartnerNotApproved.selector, refused)),
                    "refused for its suspended party only"
                );
            }
        }
    }
}
