// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.28;

import {LedgerFixture} from "./utils/Fixture.sol";
import {RoundLedger} from "../../contracts/RoundLedger.sol";
import {AgreementRegistry} from "../../contracts/AgreementRegistry.sol";
import {RewardVault} from "../../contracts/RewardVault.sol";
import {IRoundLedger} from "../../interfaces/IRoundLedger.sol";
import {IAgreementRegistry} from "../../interfaces/IAgreementRegistry.sol";

/// @dev The cheatcodes this suite adds to the fixture's Vm.
interface VmState {
    function snapshotState() external returns (uint256);
    function revertToState(uint256 snapshotId) external returns (bool);
}

/// @dev Drives one agreement through rounds of direct submissions (signed by their party), forged batch entries
/// (a root with no preimage, or a commitment signed by the wrong key), disputes, voids of entries, proofs of
/// forgery, abandoned rounds, restores of voided rounds and time, in any order. Its model: a party's epsilon
/// charged is the sum of what its surviving entries spent. An entry its party signed always survives, voided
/// round or not (its update was revealed); a forged one counts for nothing once voided by its party's dispute
/// (voided rounds stay disputable for their window) or, when an auditor proved it forged, once its round is
/// restored. After every action the ledger must agree with the model.
contract EpsilonVoidsHandler is LedgerFixture {
    uint256 internal constant N = 6;
    uint256 internal constant WRONG_KEY = 0xBADC0DE;

    enum Kind {
        None,
        Signed,
        Forged,
        Voided
    }

    struct Entry {
        Kind kind;
        uint32 spent;
        bool provable; // a commitment signed by the wrong key, publishable as a fraud proof
        bool disputed;
        IRoundLedger.BatchEvidence evidence;
        IRoundLedger.UpdateCommitment commitment;
        bytes signature;
    }

    uint256 public id;
    address[] internal _parties;
    uint256 public clock;

    mapping(uint64 round => mapping(uint256 party => Entry)) internal _entries;
    mapping(uint64 round => uint256[]) internal _wordsAtOpen;
    mapping(uint64 round => uint256[]) internal _wordsAtClose;
    mapping(uint64 round => bool) public restored;
    /// @dev 1 + the party whose entry an auditor proved forged in the round (0: none).
    mapping(uint64 round => uint256) public proven;

    uint256 public mismatches;
    string public firstMismatch;
    mapping(bytes4 action => uint256) public done;

    constructor() {
        setUp();
        (id, _parties) = activeAgreement(N, 1_000e18);
        clock = block.timestamp;
    }

    modifier step() {
        vm.warp(clock);
        _;
        _compare();
    }

    /*//////////////////////////////////////////////////////////////
                                ACTIONS
    //////////////////////////////////////////////////////////////*/

    function openRound() external step {
        uint256[] memory words = wordsNow();
        vm.prank(coordinator);
        try ledger.openRound(id, MODEL_DIGEST, uint64(clock) + ROUND_LENGTH, EVAL_COMMITMENT) returns (uint64 r) {
            _wordsAtOpen[r] = words;
            ++done[this.openRound.selector];
        } catch {}
    }

    function submit(uint256 partySeed, uint256 stepSeed) external step {
        uint64 r = ledger.openRoundOf(id);
        uint256 p = partySeed % N;
        uint32 before = ledger.cumulativeEpsilon(id, _parties[p]);
        uint32 epsilon = before + 1 + uint32(stepSeed % EPSILON_ONE);
        vm.prank(_parties[p]);
        try ledger.submitUpdate(id, r, envelopeOf(_parties[p], r), manifestOf(_parties[p], r), epsilon, SAMPLES) {
            _entries[r][p].kind = Kind.Signed;
            _entries[r][p].spent = epsilon - before;
            ++done[this.submit.selector];
        } catch {}
    }

    /// @dev The coordinator anchors a one-entry batch for a party that signed nothing.
    function forge(uint256 partySeed, uint256 stepSeed, bool provable) external step {
        uint64 r = ledger.openRoundOf(id);
        uint256 p = partySeed % N;
        if (r == 0 || _entries[r][p].kind != Kind.None) return;
        uint32 before = ledger.cumulativeEpsilon(id, _parties[p]);
        uint32 epsilon = before + 1 + uint32(stepSeed % EPSILON_ONE);
        Entry storage e = _entries[r][p];
        bytes32 root = keccak256(abi.encode("no preimage", r, p));
        if (provable) {
            e.commitment = commitmentFor(id, r, _parties[p], epsilon);
            e.signature = signCommitment(WRONG_KEY, e.commitment);
            root = commitmentLeafOf(e.commitment, e.signature); // a one-leaf tree
        }
        uint256 batchIndex = ledger.round(id, r).submissions;
        vm.prank(coordinator);
        try ledger.commitBatch(id, r, root, keccak256("document"), entryOf(p, epsilon)) {
            e.kind = Kind.Forged;
            e.spent = epsilon - before;
            e.provable = provable;
            e.evidence = IRoundLedger.BatchEvidence(
                id, r, batchIndex, root, keccak256("document"), entryOf(p, epsilon), 0, new bytes32[](0)
            );
            ++done[this.forge.selector];
        } catch {}
    }

    function dispute(uint256 partySeed, uint256 roundSeed) external step {
        (uint64 r, uint256 p) = _pick(partySeed, roundSeed);
        Entry storage e = _entries[r][p];
        if (e.kind != Kind.Forged || e.disputed) return;
        vm.prank(_parties[p]);
        try ledger.disputeBatchEntry(e.evidence) {
            e.disputed = true;
            ++done[this.dispute.selector];
        } catch {}
    }

    function voidEntry(uint256 partySeed, uint256 roundSeed) external step {
        (uint64 r, uint256 p) = _pick(partySeed, roundSeed);
        Entry storage e = _entries[r][p];
        if (!e.disputed || e.kind != Kind.Forged) return;
        try ledger.voidDisputedEntry(id, r, _parties[p], _wordsAtOpen[r]) {
            // An entry of a voided round that was restored already gave its spend back with the round.
            e.kind = Kind.Voided;
            ++done[this.voidEntry.selector];
        } catch {}
    }

    function proveForgery(uint256 partySeed, uint256 roundSeed) external step {
        (uint64 r, uint256 p) = _pick(partySeed, roundSeed);
        Entry storage e = _entries[r][p];
        if (e.kind != Kind.Forged || !e.provable) return;
        bool wasOpen = ledger.openRoundOf(id) == r;
        uint256[] memory words = wordsNow();
        vm.prank(auditor);
        try ledger.proveForgedCommitment(e.evidence, e.commitment, e.signature) {
            if (wasOpen) _wordsAtClose[r] = words;
            proven[r] = p + 1;
            ++done[this.proveForgery.selector];
        } catch {}
    }

    function finalize() external step {
        uint64 r = ledger.openRoundOf(id);
        if (r == 0) return;
        uint64 deadline = ledger.round(id, r).deadline;
        if (clock <= deadline) clock = uint256(deadline) + 1;
        vm.warp(clock);
        uint256[] memory words = wordsNow();
        vm.prank(coordinator);
        try ledger.finalizeRound(id, r, AGGREGATE_DIGEST, REPORT_DIGEST, bytes32(0), 0) {
            _wordsAtClose[r] = words;
            ++done[this.finalize.selector];
        } catch {}
    }

    function abandon() external step {
        uint64 r = ledger.openRoundOf(id);
        if (r == 0) return;
        uint256[] memory words = wordsNow();
        try ledger.abandonRound(id, r) {
            _wordsAtClose[r] = words;
            ++done[this.abandon.selector];
        } catch {}
    }

    function restore(uint256 roundSeed) external step {
        uint64 count = ledger.roundCount(id);
        if (count == 0) return;
        uint64 r = uint64(roundSeed % count) + 1;
        try ledger.restoreVoidedRound(id, r, _wordsAtOpen[r], _wordsAtClose[r]) {
            restored[r] = true;
            ++done[this.restore.selector];
        } catch {}
    }

    function warp(uint256 secondsSeed) external step {
        clock += secondsSeed % (2 * ROUND_LENGTH);
    }

    /*//////////////////////////////////////////////////////////////
                                 MODEL
    //////////////////////////////////////////////////////////////*/

    /// @dev What the model says `party` has charged: the spend of its surviving entries.
    function modelEpsilon(uint256 p) public view returns (uint256 charged) {
        uint64 count = ledger.roundCount(id);
        for (uint64 r = 1; r <= count; ++r) {
            Kind kind = _entries[r][p].kind;
            bool givenBack = kind == Kind.Forged && restored[r] && proven[r] == p + 1;
            if ((kind == Kind.Signed || kind == Kind.Forged) && !givenBack) charged += _entries[r][p].spent;
        }
    }

    /// @dev What `party` spent through entries it signed: never given back, whatever happens to their rounds.
    function signedSpend(uint256 p) public view returns (uint256 spent) {
        uint64 count = ledger.roundCount(id);
        for (uint64 r = 1; r <= count; ++r) {
            if (_entries[r][p].kind == Kind.Signed) spent += _entries[r][p].spent;
        }
    }

    function partyCount() external pure returns (uint256) {
        return N;
    }

    function partyAt(uint256 p) external view returns (address) {
        return _parties[p];
    }

    /// @dev The words of each round's snapshots, for the liveness check.
    function wordsAt(uint64 r) external view returns (uint256[] memory atOpen, uint256[] memory atClose) {
        return (_wordsAtOpen[r], _wordsAtClose[r]);
    }

    function wordsNow() public view returns (uint256[] memory) {
        return epsilonWordsNow(id, _parties);
    }

    function _compare() internal {
        for (uint256 p; p < N; ++p) {
            if (ledger.cumulativeEpsilon(id, _parties[p]) != modelEpsilon(p)) {
                if (mismatches++ == 0) firstMismatch = string(abi.encodePacked("party ", bytes1(uint8(48 + p))));
            }
        }
    }

    /// @dev The open round or the one before it (disputes and proofs reach back one or two rounds), and a party.
    function _pick(uint256 partySeed, uint256 roundSeed) internal view returns (uint64 r, uint256 p) {
        uint64 count = ledger.roundCount(id);
        r = count > 1 && roundSeed % 2 == 1 ? count - 1 : count;
        p = partySeed % N;
    }

    /// @dev The contracts, for the invariant's own checks.
    function contracts() external view returns (RoundLedger, AgreementRegistry, RewardVault) {
        return (ledger, agreements, vault);
    }
}

/// @dev Issue 10 (h): a partner's on-chain epsilon only rises through a commitment it signed or a batch entry
/// that survived its dispute, and never falls for an entry its partner signed (a voided round gives back only
/// its entry proven forged); every stake is withdrawable in bounded time after the terms end; no round allocates
/// more than the signed rewardPerRound.
contract EpsilonVoidsInvariantTest is LedgerFixture {
    EpsilonVoidsHandler internal handler;

    struct FuzzSelector {
        address addr;
        bytes4[] selectors;
    }

    function setUp() public override {
        handler = new EpsilonVoidsHandler();
    }

    function targetContracts() public view returns (address[] memory targets) {
        targets = new address[](1);
        targets[0] = address(handler);
    }

    function targetSelectors() public view returns (FuzzSelector[] memory targets) {
        bytes4[] memory selectors = new bytes4[](11);
        selectors[0] = EpsilonVoidsHandler.openRound.selector;
        selectors[1] = EpsilonVoidsHandler.submit.selector;
        selectors[2] = EpsilonVoidsHandler.forge.selector;
        selectors[3] = EpsilonVoidsHandler.forge.selector;
        selectors[4] = EpsilonVoidsHandler.dispute.selector;
        selectors[5] = EpsilonVoidsHandler.voidEntry.selector;
        selectors[6] = EpsilonVoidsHandler.proveForgery.selector;
        selectors[7] = EpsilonVoidsHandler.finalize.selector;
        selectors[8] = EpsilonVoidsHandler.abandon.selector;
        selectors[9] = EpsilonVoidsHandler.restore.selector;
        selectors[10] = EpsilonVoidsHandler.warp.selector;
        targets = new FuzzSelector[](1);
        targets[0] = FuzzSelector({addr: address(handler), selectors: selectors});
    }

    function invariant_epsilonIsTheSumOfSurvivingEntries() public view {
        if (handler.mismatches() != 0) revert AssertionFailed(handler.firstMismatch(), handler.mismatches(), 0);
        (RoundLedger l,,) = handler.contracts();
        uint256 id = handler.id();
        for (uint256 p; p < handler.partyCount(); ++p) {
            assertEq(l.cumulativeEpsilon(id, handler.partyAt(p)), handler.modelEpsilon(p), "charged == surviving");
        }
    }

    function invariant_signedSpendIsNeverGivenBack() public view {
        (RoundLedger l,,) = handler.contracts();
        uint256 id = handler.id();
        for (uint256 p; p < handler.partyCount(); ++p) {
            assertLe(handler.signedSpend(p), l.cumulativeEpsilon(id, handler.partyAt(p)), "signed spend kept");
        }
    }

    /// @dev Past the end of the terms, the round abandoned after its deadline plus grace, every voided round
    /// restored: every party exits and takes its whole stake. Tried on a copy of the state, then undone.
    function invariant_everyStakeIsWithdrawableAfterTheEnd() public {
        (RoundLedger l, AgreementRegistry a, RewardVault v) = handler.contracts();
        uint256 id = handler.id();
        uint256 snapshot = VmState(address(vm)).snapshotState();
        uint256 end = a.roundConfig(id).end;
        uint256 later = (block.timestamp > end ? block.timestamp : end) + ROUND_LENGTH + 2 * l.disputeWindow() + 1;
        vm.warp(later);
        uint64 open = l.openRoundOf(id);
        if (open != 0) l.abandonRound(id, open);
        for (uint256 p; p < handler.partyCount(); ++p) {
            address party = handler.partyAt(p);
            vm.startPrank(party);
            a.exit(id);
            v.unstake(id, v.stakeOf(id, party));
            vm.stopPrank();
            assertEq(v.stakeOf(id, party), 0, "stake withdrawn");
        }
        VmState(address(vm)).revertToState(snapshot);
    }

    function invariant_noRoundAllocatesMoreThanTheSignedReward() public view {
        (RoundLedger l, AgreementRegistry a, RewardVault v) = handler.contracts();
        uint256 id = handler.id();
        uint64 count = l.roundCount(id);
        for (uint64 r = 1; r <= count; ++r) {
            IAgreementRegistry.RoundConfig memory config = a.roundConfigAt(id, l.round(id, r).agreementVersion);
            assertLe(v.allocation(id, r).total, config.rewardPerRound, "allocation <= signed rewardPerRound");
        }
    }

    /// @dev The handler reaches the states the invariants are about.
    function test_handlerReachesVoidsAndRestores() public {
        handler.openRound();
        handler.submit(0, 5);
        handler.forge(1, 7, false); // a root with no preimage
        handler.forge(2, 9, true); // a commitment signed by the wrong key
        handler.finalize();
        handler.openRound();
        handler.dispute(1, 1); // round 1's entry, while round 2 runs
        handler.proveForgery(2, 1); // voids round 1
        handler.submit(1, 3); // on top of the still-charged forged entry
        handler.warp(2 * ROUND_LENGTH - 1);
        handler.voidEntry(1, 1); // waits: a later round is open
        handler.finalize();
        handler.voidEntry(1, 1);
        handler.restore(0); // round 1
        handler.openRound();
        handler.forge(3, 1, false);
        handler.warp(2 * ROUND_LENGTH - 1);
        handler.abandon();
        handler.restore(2); // round 3
        assertEq(handler.done(EpsilonVoidsHandler.voidEntry.selector), 1, "entry voided");
        assertEq(handler.done(EpsilonVoidsHandler.proveForgery.selector), 1, "forgery proven");
        assertEq(handler.done(EpsilonVoidsHandler.abandon.selector), 1, "round abandoned");
        assertEq(handler.done(EpsilonVoidsHandler.restore.selector), 2, "rounds restored");
        assertTrue(handler.restored(1) && handler.restored(3), "restored");
        invariant_epsilonIsTheSumOfSurvivingEntries();
        invariant_everyStakeIsWithdrawableAfterTheEnd();
    }
}
