// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.28;

import {LedgerFixture} from "./utils/Fixture.sol";
import {Merkle} from "./utils/Merkle.sol";
import {PartnerRegistry} from "../../contracts/PartnerRegistry.sol";
import {AgreementRegistry} from "../../contracts/AgreementRegistry.sol";
import {RewardVault} from "../../contracts/RewardVault.sol";
import {RoundLedger} from "../../contracts/RoundLedger.sol";
import {ResultsCourt} from "../../contracts/ResultsCourt.sol";
import {FeeOnTransferToken} from "../../contracts/testing/FeeOnTransferToken.sol";
import {IRewardVault} from "../../interfaces/IRewardVault.sol";
import {IRoundLedger} from "../../interfaces/IRoundLedger.sol";
import {IAgreementRegistry} from "../../interfaces/IAgreementRegistry.sol";
import {IResultsCourt} from "../../interfaces/IResultsCourt.sol";

/// @dev Drives the whole system through random sequences of what its users can do, and keeps, next to the
/// vault's own books, ghost books of the tokens that actually moved in and out of the vault.
/// Each action checks its preconditions and returns early when they do not hold, so that most calls do something.
contract MoneyHandler is LedgerFixture {
    uint256 internal constant WRONG_KEY = 0xBADC0DE;
    uint32 internal constant EPSILON_STEP = 50_000;
    address internal constant FUNDER = address(0xF00D);

    uint256[] public ids;
    mapping(uint256 id => address[]) internal _partiesOf;

    /// @dev Ghost books, from token balances of the vault measured around each call.
    struct Ghost {
        uint256 funded;
        uint256 allocated;
        uint256 paid;
        uint256 forfeited;
        uint256 reclaimed;
        uint256 staked;
        uint256 unstaked;
        uint256 stakeSlashed;
    }

    mapping(uint256 id => Ghost) internal _ghost;

    /// @dev Ghost books of the coordinator bonds, from token balances of the results court around each call.
    struct BondGhost {
        uint256 posted;
        uint256 withdrawn;
        uint256 sharesPaid;
    }

    mapping(uint256 id => BondGhost) internal _bondGhost;
    uint256[] internal _resultsChallenges;

    /// @dev The payout split of each finalized round, to claim and forfeit with.
    struct Payout {
        uint256 total;
        uint256 settled;
        uint256[] amounts;
        bytes32[] leaves;
    }

    mapping(uint256 id => mapping(uint64 round => Payout)) internal _payouts;

    /// @dev A forged single-entry batch anchored in a round, to void it with.
    struct Forgery {
        bool anchored;
        uint256 batchIndex;
        bytes entries;
        IRoundLedger.UpdateCommitment commitment;
        bytes signature;
    }

    mapping(uint256 id => mapping(uint64 round => Forgery)) internal _forgeries;

    uint256[] internal _challenges;
    mapping(bytes4 action => uint256) public done;

    constructor(
        PartnerRegistry partners_,
        AgreementRegistry agreements_,
        RewardVault vault_,
        RoundLedger ledger_,
        ResultsCourt court_,
        uint256[] memory ids_
    ) {
        (partners, agreements, vault, ledger, court) = (partners_, agreements_, vault_, ledger_, court_);
        ids = ids_;
        for (uint256 k; k < ids_.length; ++k) {
            uint256 id = ids_[k];
            _partiesOf[id] = agreements.terms(id).parties;
            IRewardVault.Pool memory p = vault.pool(id);
            _ghost[id] =
                Ghost(p.funded, p.allocated, p.paid, p.slashed, p.reclaimed, p.staked, p.unstaked, p.stakeSlashed);
            IResultsCourt.Bonds memory b = court.bonds(id);
            _bondGhost[id] = BondGhost(b.posted, b.withdrawn, b.sharesPaid);
        }
    }

    /// @dev The handler deploys nothing of its own.
    function setUp() public pure override {}

    /*//////////////////////////////////////////////////////////////
                                 VIEWS
    //////////////////////////////////////////////////////////////*/

    function ghostOf(uint256 id) external view returns (Ghost memory) {
        return _ghost[id];
    }

    function bondGhostOf(uint256 id) external view returns (BondGhost memory) {
        return _bondGhost[id];
    }

    function partiesOf(uint256 id) external view returns (address[] memory) {
        return _partiesOf[id];
    }

    function idCount() external view returns (uint256) {
        return ids.length;
    }

    /*//////////////////////////////////////////////////////////////
                                HELPERS
    //////////////////////////////////////////////////////////////*/

    function pickId(uint256 seed) internal view returns (uint256) {
        return ids[seed % ids.length];
    }

    function pickParty(uint256 id, uint256 seed) internal view returns (address) {
        address[] storage ps = _partiesOf[id];
        return ps[seed % ps.length];
    }

    function configOf(uint256 id) internal view returns (IAgreementRegistry.RoundConfig memory) {
        return agreements.roundConfig(id);
    }

    function terminated(uint256 id) internal view returns (bool) {
        return configOf(id).status == IAgreementRegistry.AgreementStatus.Terminated;
    }

    function vaultBalance(uint256 id) internal view returns (uint256) {
        return balanceOf(configOf(id).rewardToken, address(vault));
    }

    /// @dev A round of `id` that exists, picked by `seed`; 0 when there is none.
    function pickRound(uint256 id, uint256 seed) internal view returns (uint64) {
        uint64 count = ledger.roundCount(id);
        return count == 0 ? 0 : uint64(seed % count) + 1;
    }

    function disputable(uint256 id, uint64 r) internal view returns (bool) {
        IRoundLedger.Round memory round_ = ledger.round(id, r);
        return round_.status == IRoundLedger.RoundStatus.Open
            || (round_.status == IRoundLedger.RoundStatus.Finalized
                && block.timestamp < uint256(round_.finalizedAt) + ledger.disputeWindow());
    }

    function indexOf(uint256 id, address party) internal view returns (uint256 index) {
        (, index) = agreements.partyIndex(id, party);
    }

    /*//////////////////////////////////////////////////////////////
                                 MONEY
    //////////////////////////////////////////////////////////////*/

    function fund(uint256 idSeed, uint256 amount) external {
        uint256 id = pickId(idSeed);
        if (terminated(id) || block.timestamp > configOf(id).end) return;
        amount = bound(amount, 1, 1e24);
        uint256 before = vaultBalance(id);
        fundAs(FUNDER, id, amount);
        _ghost[id].funded += vaultBalance(id) - before;
        ++done[this.fund.selector];
    }

    function stake(uint256 idSeed, uint256 partySeed, uint256 amount) external {
        uint256 id = pickId(idSeed);
        address party = pickParty(id, partySeed);
        if (terminated(id) || !partners.isApproved(party)) return;
        amount = bound(amount, 1, 1e21);
        uint256 before = vaultBalance(id);
        stakeAs(party, id, amount);
        _ghost[id].staked += vaultBalance(id) - before;
        ++done[this.stake.selector];
    }

    /// @dev Withdraws stake of a party that may (agreement terminated or party exited, nothing locked).
    function unstake(uint256 idSeed, uint256 partySeed, uint256 amount) external {
        uint256 id = pickId(idSeed);
        address[] storage ps = _partiesOf[id];
        for (uint256 k; k < ps.length; ++k) {
            address party = ps[(partySeed % ps.length + k) % ps.length];
            uint256 held = vault.stakeOf(id, party);
            if (held == 0 || !(terminated(id) || agreements.hasExited(id, party))) continue;
            if (ledger.isStakeLocked(id, party)) continue;
            amount = bound(amount, 1, held);
            uint256 before = vaultBalance(id);
            vm.prank(party);
            vault.unstake(id, amount);
            _ghost[id].unstaked += before - vaultBalance(id);
            ++done[this.unstake.selector];
            return;
        }
    }

    function exitAgreement(uint256 idSeed, uint256 partySeed) external {
        uint256 id = pickId(idSeed);
        address party = pickParty(id, partySeed);
        if (block.timestamp <= configOf(id).end || agreements.hasExited(id, party)) return;
        vm.prank(party);
        agreements.exit(id);
        ++done[this.exitAgreement.selector];
    }

    function terminate(uint256 idSeed, uint256 chance) external {
        uint256 id = pickId(idSeed);
        if (chance % 16 != 0 || terminated(id)) return; // rare, or most runs would end early
        vm.prank(coordinator);
        agreements.terminate(id, keccak256("reason"));
        ++done[this.terminate.selector];
    }

    function reclaim(uint256 idSeed) external {
        uint256 id = pickId(idSeed);
        IAgreementRegistry.RoundConfig memory config = configOf(id);
        bool over = config.status == IAgreementRegistry.AgreementStatus.Terminated
            || (block.timestamp > config.end && ledger.openRoundOf(id) == 0);
        // Both funders of the run (the coordinator at setup, FUNDER later) take back their own shares.
        address funder = (idSeed >> 128) % 2 == 0 ? coordinator : FUNDER;
        if (!over || vault.reclaimable(id, funder) == 0) return;
        uint256 before = vaultBalance(id);
        vm.prank(funder);
        vault.reclaim(id);
        _ghost[id].reclaimed += before - vaultBalance(id);
        ++done[this.reclaim.selector];
    }

    /// @dev Rarely (it jumps the clock past a whole claim period): expires a round's unclaimed allocation.
    function expire(uint256 idSeed, uint256 roundSeed) external {
        uint256 id = pickId(idSeed);
        uint64 r = pickRound(id, roundSeed);
        if (r == 0 || (roundSeed >> 128) % 8 != 0) return;
        IRewardVault.Allocation memory a = vault.allocation(id, r);
        if (a.root == bytes32(0) || a.revoked || a.expired) return;
        uint256 expiresAt = uint256(a.claimableAt) + vault.CLAIM_PERIOD();
        if (block.timestamp <= expiresAt) vm.warp(expiresAt + 1);
        vault.expireAllocation(id, r);
        Payout storage p = _payouts[id][r];
        _ghost[id].allocated -= p.total - p.settled;
        ++done[this.expire.selector];
    }

    function warp(uint256 seconds_) external {
        vm.warp(block.timestamp + bound(seconds_, 1, 6 hours));
        ++done[this.warp.selector];
    }

    /*//////////////////////////////////////////////////////////////
                                 ROUNDS
    //////////////////////////////////////////////////////////////*/

    function openRound(uint256 idSeed) external {
        if (_openRound(pickId(idSeed)) != 0) ++done[this.openRound.selector];
    }

    /// @dev Opens a round of `id` when one can be opened; returns the open round, or 0.
    function _openRound(uint256 id) internal returns (uint64) {
        uint64 open = ledger.openRoundOf(id);
        if (open != 0) return open;
        IAgreementRegistry.RoundConfig memory config = configOf(id);
        if (config.status != IAgreementRegistry.AgreementStatus.Active) return 0;
        if (block.timestamp < config.start || block.timestamp >= config.end) return 0;
        if (ledger.roundCount(id) >= config.maxRounds) return 0;
        (, uint256 bond) = agreements.coordinatorBondOf(id);
        if (court.bondOf(id, coordinator) < bond) return 0; // slashed, not posted again yet
        uint256 deadline = block.timestamp + 2 hours;
        if (deadline > config.end) deadline = config.end;
        vm.prank(coordinator);
        return ledger.openRound(id, MODEL_DIGEST, uint64(deadline), EVAL_COMMITMENT);
    }

    /// @dev A party of `id` that can still commit in round `r`, searched from `seed`; address(0) if none.
    function nextSubmitter(uint256 id, uint64 r, uint256 seed) internal view returns (address) {
        address[] storage ps = _partiesOf[id];
        for (uint256 k; k < ps.length; ++k) {
            address party = ps[(seed % ps.length + k) % ps.length];
            if (!ledger.hasSubmitted(id, r, party) && partners.isApproved(party) && nextEpsilon(id, party) != 0) {
                return party;
            }
        }
        return address(0);
    }

    /// @dev The open round of `id` while it accepts commitments (opening one if need be), or 0.
    function acceptingRound(uint256 id) internal returns (uint64 r) {
        if (configOf(id).status != IAgreementRegistry.AgreementStatus.Active) return 0;
        r = _openRound(id);
        if (r != 0 && block.timestamp > ledger.round(id, r).deadline) return 0;
    }

    /// @dev The party's next cumulative epsilon, or 0 when the step would cross the cap.
    function nextEpsilon(uint256 id, address party) internal view returns (uint32) {
        uint256 next = uint256(ledger.cumulativeEpsilon(id, party)) + EPSILON_STEP;
        return next > configOf(id).epsilonCap ? 0 : uint32(next);
    }

    function submit(uint256 idSeed, uint256 partySeed) external {
        uint256 id = pickId(idSeed);
        uint64 r = acceptingRound(id);
        if (r == 0) return;
        address party = nextSubmitter(id, r, partySeed);
        if (party == address(0)) return;
        submitAs(party, id, r, nextEpsilon(id, party));
        ++done[this.submit.selector];
    }

    /// @dev The coordinator anchors a one-entry batch whose commitment the party never signed.
    function commitForgedBatch(uint256 idSeed, uint256 partySeed) external {
        uint256 id = pickId(idSeed);
        uint64 r = acceptingRound(id);
        if (r == 0 || _forgeries[id][r].anchored) return;
        address party = nextSubmitter(id, r, partySeed);
        if (party == address(0)) return;
        uint32 epsilon = nextEpsilon(id, party);
        Forgery storage f = _forgeries[id][r];
        f.entries = entryOf(indexOf(id, party), epsilon);
        f.commitment = commitmentFor(id, r, party, epsilon);
        f.signature = signCommitment(WRONG_KEY, f.commitment);
        bytes32 leaf = commitmentLeafOf(f.commitment, f.signature); // a one-leaf tree: the root is the leaf
        vm.prank(coordinator);
        f.batchIndex = ledger.commitBatch(id, r, leaf, keccak256("batch document"), f.entries);
        f.anchored = true;
        ++done[this.commitForgedBatch.selector];
    }

    function proveForgery(uint256 idSeed, uint256 roundSeed) external {
        uint256 id = pickId(idSeed);
        uint64 r = pickRound(id, roundSeed);
        if (r == 0 || !_forgeries[id][r].anchored || !disputable(id, r)) return;
        Forgery storage f = _forgeries[id][r];
        IRoundLedger.BatchEvidence memory evidence = IRoundLedger.BatchEvidence({
            agreementId: id,
            round: r,
            batchIndex: f.batchIndex,
            root: commitmentLeafOf(f.commitment, f.signature),
            documentDigest: keccak256("batch document"),
            entries: f.entries,
            position: 0,
            proof: new bytes32[](0)
        });
        bool finalized = ledger.round(id, r).status == IRoundLedger.RoundStatus.Finalized;
        vm.prank(auditor);
        ledger.proveForgedCommitment(evidence, f.commitment, f.signature);
        Payout storage p = _payouts[id][r];
        if (finalized) _ghost[id].allocated -= p.total - p.settled;
        ++done[this.proveForgery.selector];
    }

    /// @dev Finalizes the open round with a random split of a random total. One time in five the split is
    /// inconsistent (its leaves add up to more than the total), as a careless coordinator's would be.
    function finalize(uint256 idSeed, uint256 totalSeed, uint256 splitSeed) external {
        uint256 id = pickId(idSeed);
        uint64 r = ledger.openRoundOf(id);
        if (r == 0) return;
        IAgreementRegistry.RoundConfig memory config = configOf(id);
        IRoundLedger.Round memory round_ = ledger.round(id, r);
        if (block.timestamp <= round_.deadline && round_.submissions < config.partyCount) {
            vm.warp(uint256(round_.deadline) + 1);
        }
        uint256 cap = config.rewardPerRound < vault.unallocated(id) ? config.rewardPerRound : vault.unallocated(id);
        if (config.status == IAgreementRegistry.AgreementStatus.Terminated) cap = 0;
        uint256 total = bound(totalSeed, 0, cap);
        Payout storage p = _payouts[id][r];
        p.total = total;
        p.amounts = splitAmong(_partiesOf[id].length, total, splitSeed);
        address[] storage ps = _partiesOf[id];
        p.leaves = new bytes32[](ps.length);
        for (uint256 i; i < ps.length; ++i) {
            p.leaves[i] = payoutLeafOf(id, r, ps[i], p.amounts[i]);
        }
        bytes32 root = total == 0 ? bytes32(0) : Merkle.sortedRoot(p.leaves);
        finalizeAs(id, r, root, total);
        _ghost[id].allocated += total;
        ++done[this.finalize.selector];
    }

    function splitAmong(uint256 n, uint256 total, uint256 seed) internal pure returns (uint256[] memory amounts) {
        amounts = new uint256[](n);
        uint256 remaining = total;
        for (uint256 i; i + 1 < n; ++i) {
            amounts[i] = bound(uint256(keccak256(abi.encode(seed, i))), 0, remaining);
            remaining -= amounts[i];
        }
        amounts[n - 1] = remaining;
        if (seed % 5 == 0) amounts[seed % n] += 1 + (seed >> 128) % 1e20;
    }

    /// @dev Claims for an unsettled, unblocked party of a paid round, waiting out the dispute window if need be.
    function claim(uint256 idSeed, uint256 roundSeed, uint256 partySeed) external {
        uint256 id = pickId(idSeed);
        uint64 r = pickRound(id, roundSeed);
        if (r == 0) return;
        IRewardVault.Allocation memory a = vault.allocation(id, r);
        if (a.root == bytes32(0) || a.revoked) return;
        address[] storage ps = _partiesOf[id];
        for (uint256 k; k < ps.length; ++k) {
            uint256 i = (partySeed % ps.length + k) % ps.length;
            address party = ps[i];
            if (vault.hasClaimed(id, r, party) || ledger.isClaimBlocked(id, r, party)) continue;
            if (court.isClaimBlocked(id, r)) return;
            if (block.timestamp < a.claimableAt) vm.warp(a.claimableAt);
            Payout storage p = _payouts[id][r];
            // The leaf may no longer fit under an inconsistent split's total: the vault must refuse it then.
            uint256 amount = p.amounts[i];
            uint256 before = vaultBalance(id);
            vm.prank(party);
            vault.claim(id, r, amount, Merkle.sortedProof(p.leaves, i));
            _ghost[id].paid += before - vaultBalance(id);
            p.settled += amount;
            ++done[this.claim.selector];
            return;
        }
    }

    /*//////////////////////////////////////////////////////////////
                               CHALLENGES
    //////////////////////////////////////////////////////////////*/

    /// @dev Challenges the update of a party of a disputable round (the open one, else one picked by the seed).
    function challenge(uint256 idSeed, uint256 roundSeed, uint256 partySeed) external {
        uint256 id = pickId(idSeed);
        uint64 r = ledger.openRoundOf(id);
        if (r == 0) r = pickRound(id, roundSeed);
        if (r == 0 || !disputable(id, r)) return;
        address[] storage ps = _partiesOf[id];
        for (uint256 k; k < ps.length; ++k) {
            address party = ps[(partySeed % ps.length + k) % ps.length];
            // Not a party that did not submit, nor one already under a challenge that was not dismissed.
            if (!ledger.hasSubmitted(id, r, party) || ledger.isClaimBlocked(id, r, party)) continue;
            vm.prank(auditor);
            _challenges.push(ledger.challenge(id, r, party, keccak256(abi.encode("evidence", r, party))));
            ++done[this.challenge.selector];
            return;
        }
    }

    /// @dev The first challenge in `status`, searched from `seed`; 0 if none.
    function challengeIn(IRoundLedger.ChallengeStatus status, uint256 seed) internal view returns (uint256) {
        uint256 n = _challenges.length;
        for (uint256 k; k < n; ++k) {
            uint256 cid = _challenges[(seed % n + k) % n];
            if (ledger.challengeOf(cid).status == status) return cid;
        }
        return 0;
    }

    function resolve(uint256 challengeSeed, bool upheld) external {
        uint256 cid = challengeIn(IRoundLedger.ChallengeStatus.Open, challengeSeed);
        if (cid == 0) return;
        vm.prank(arbiter);
        ledger.resolveChallenge(cid, upheld, keccak256("ruling"));
        ++done[this.resolve.selector];
    }

    /// @dev Executes an upheld challenge of a closed round, waiting out its dispute window if need be.
    function slash(uint256 challengeSeed) external {
        uint256 cid = challengeIn(IRoundLedger.ChallengeStatus.Upheld, challengeSeed);
        if (cid == 0) return;
        IRoundLedger.Challenge memory c = ledger.challengeOf(cid);
        IRoundLedger.Round memory round_ = ledger.round(c.agreementId, c.round);
        if (round_.status == IRoundLedger.RoundStatus.Open) return;
        uint256 endsAt = uint256(round_.finalizedAt) + ledger.disputeWindow();
        if (block.timestamp < endsAt) vm.warp(endsAt);
        uint256 before = vaultBalance(c.agreementId);
        vault.slash(cid);
        _ghost[c.agreementId].stakeSlashed += before - vaultBalance(c.agreementId);
        ++done[this.slash.selector];
    }

    function forfeit(uint256 challengeSeed) external {
        uint256 cid = challengeIn(IRoundLedger.ChallengeStatus.Executed, challengeSeed);
        if (cid == 0) return;
        IRoundLedger.Challenge memory c = ledger.challengeOf(cid);
        IRewardVault.Allocation memory a = vault.allocation(c.agreementId, c.round);
        if (a.root == bytes32(0) || a.revoked || vault.hasClaimed(c.agreementId, c.round, c.partner)) return;
        uint256 i = indexOf(c.agreementId, c.partner);
        Payout storage p = _payouts[c.agreementId][c.round];
        uint256 before = vaultBalance(c.agreementId);
        vault.forfeitReward(cid, p.amounts[i], Merkle.sortedProof(p.leaves, i));
        _ghost[c.agreementId].forfeited += before - vaultBalance(c.agreementId);
        p.settled += p.amounts[i];
        ++done[this.forfeit.selector];
    }

    /*//////////////////////////////////////////////////////////////
                         COORDINATOR BONDS
    //////////////////////////////////////////////////////////////*/

    function courtBalance(uint256 id) internal view returns (uint256) {
        return balanceOf(configOf(id).rewardToken, address(court));
    }

    function postBond(uint256 idSeed, uint256 amount) external {
        uint256 id = pickId(idSeed);
        if (terminated(id)) return;
        amount = bound(amount, 1, 100e18);
        address tokenAddr = configOf(id).rewardToken;
        mintTo(tokenAddr, coordinator, amount);
        approveFrom(tokenAddr, coordinator, address(court), amount);
        uint256 before = courtBalance(id);
        vm.prank(coordinator);
        court.postBond(id, amount);
        _bondGhost[id].posted += courtBalance(id) - before;
        ++done[this.postBond.selector];
    }

    /// @dev Challenges the results of a finalized round whose claims have not opened, when none holds it.
    function challengeResults(uint256 idSeed, uint256 roundSeed) external {
        uint256 id = pickId(idSeed);
        uint64 r = pickRound(id, roundSeed);
        if (r == 0 || ledger.round(id, r).status != IRoundLedger.RoundStatus.Finalized || !disputable(id, r)) return;
        uint256 previous = court.challengeOfRound(id, r);
        if (previous != 0 && court.challengeOf(previous).status != IResultsCourt.ChallengeStatus.Dismissed) return;
        vm.prank(auditor);
        _resultsChallenges.push(
            court.challengeResults(id, r, IResultsCourt.ResultsKind(roundSeed % 3), keccak256(abi.encode(id, r)))
        );
        ++done[this.challengeResults.selector];
    }

    /// @dev Rules on an open results challenge within its window, or lapses it after; upheld revokes the round's
    /// unclaimed allocation (claims had not opened) and slashes the bond.
    function ruleResults(uint256 challengeSeed, bool upheld) external {
        uint256 n = _resultsChallenges.length;
        for (uint256 k; k < n; ++k) {
            uint256 cid = _resultsChallenges[(challengeSeed % n + k) % n];
            IResultsCourt.ResultsChallenge memory c = court.challengeOf(cid);
            if (c.status != IResultsCourt.ChallengeStatus.Open) continue;
            if (block.timestamp >= uint256(c.raisedAt) + ledger.disputeWindow()) {
                court.lapseResults(cid);
                ++done[this.ruleResults.selector];
                return;
            }
            IRewardVault.Allocation memory a = vault.allocation(c.agreementId, c.round);
            vm.prank(arbiter);
            court.ruleResults(cid, upheld, keccak256("ruling"));
            if (upheld && a.root != bytes32(0) && !a.revoked) {
                Payout storage p = _payouts[c.agreementId][c.round];
                _ghost[c.agreementId].allocated -= p.total - p.settled;
            }
            ++done[this.ruleResults.selector];
            return;
        }
    }

    /// @dev A party owed a share of a slashed bond, searched from the seeds, takes it.
    function claimBondShare(uint256 idSeed, uint256 partySeed) external {
        for (uint256 j; j < ids.length; ++j) {
            uint256 id = ids[(idSeed + j) % ids.length];
            address[] storage ps = _partiesOf[id];
            for (uint256 k; k < ps.length; ++k) {
                address party = ps[(partySeed % ps.length + k) % ps.length];
                if (court.bondShareOf(id, party) == 0) continue;
                uint256 before = courtBalance(id);
                vm.prank(party);
                court.claimBondShare(id);
                _bondGhost[id].sharesPaid += before - courtBalance(id);
                ++done[this.claimBondShare.selector];
                return;
            }
        }
    }

    function withdrawBond(uint256 idSeed) external {
        uint256 id = pickId(idSeed);
        IAgreementRegistry.RoundConfig memory config = configOf(id);
        bool over = config.status == IAgreementRegistry.AgreementStatus.Terminated || block.timestamp > config.end;
        if (!over || court.openChallenges(id) != 0 || ledger.isStakeLocked(id, address(0))) return;
        if (court.bondOf(id, coordinator) == 0) return;
        uint256 before = courtBalance(id);
        vm.prank(coordinator);
        court.withdrawBond(id);
        _bondGhost[id].withdrawn += before - courtBalance(id);
        ++done[this.withdrawBond.selector];
    }
}

/// @dev The vault's money conservation under random sequences of everything its users can do, across two
/// agreements: one paid in a plain token, one in a fee-on-transfer token, with overlapping parties.
contract MoneyConservationInvariantTest is LedgerFixture {
    struct FuzzSelector {
        address addr;
        bytes4[] selectors;
    }

    uint256 internal constant BOND = 40e18;

    MoneyHandler internal handler;
    FeeOnTransferToken internal feeToken;
    uint256[] internal ids;

    function setUp() public override {
        super.setUp();
        feeToken = new FeeOnTransferToken();
        address[] memory everyone = approvedParties(0, 6);
        ids.push(agreementOf(everyone, 0, address(token), STAKE));
        ids.push(agreementOf(everyone, 2, address(feeToken), 50e18)); // 1% fee: stake 100, 99 arrive
        for (uint256 k; k < ids.length; ++k) {
            fundAs(coordinator, ids[k], 2_000e18);
        }
        for (uint256 k; k < ids.length; ++k) {
            postBondAs(ids[k], 2 * BOND); // a fee-on-transfer token delivers less than is sent
        }
        handler = new MoneyHandler(partners, agreements, vault, ledger, court, ids);
    }

    /// @dev Parties everyone[first .. first + 3], each staking 100e18 (the rule asks for `requiredStake`).
    function agreementOf(address[] memory everyone, uint256 first, address tokenAddr, uint256 requiredStake)
        internal
        returns (uint256)
    {
        address[] memory four = new address[](4);
        for (uint256 i; i < 4; ++i) {
            four[i] = everyone[first + i];
        }
        IAgreementRegistry.Terms memory t = defaultTerms(four);
        t.rewardToken = tokenAddr;
        t.requiredStake = requiredStake;
        t.maxRounds = 1_000;
        t.end = uint64(block.timestamp + 12 hours); // so that many runs also see the agreement end
        t.coordinatorBond = BOND;
        return proposeSignStake(t, STAKE);
    }

    function postBondAs(uint256 id, uint256 amount) internal {
        address tokenAddr = agreements.roundConfig(id).rewardToken;
        mintTo(tokenAddr, coordinator, amount);
        approveFrom(tokenAddr, coordinator, address(court), amount);
        vm.prank(coordinator);
        court.postBond(id, amount);
    }

    function targetContracts() public view returns (address[] memory targets) {
        targets = new address[](1);
        targets[0] = address(handler);
    }

    function targetSelectors() public view returns (FuzzSelector[] memory targets) {
        bytes4[] memory actions = new bytes4[](23);
        actions[0] = MoneyHandler.fund.selector;
        actions[1] = MoneyHandler.stake.selector;
        actions[2] = MoneyHandler.unstake.selector;
        actions[3] = MoneyHandler.exitAgreement.selector;
        actions[4] = MoneyHandler.terminate.selector;
        actions[5] = MoneyHandler.reclaim.selector;
        actions[6] = MoneyHandler.warp.selector;
        actions[7] = MoneyHandler.openRound.selector;
        actions[8] = MoneyHandler.submit.selector;
        actions[9] = MoneyHandler.commitForgedBatch.selector;
        actions[10] = MoneyHandler.proveForgery.selector;
        actions[11] = MoneyHandler.finalize.selector;
        actions[12] = MoneyHandler.claim.selector;
        actions[13] = MoneyHandler.challenge.selector;
        actions[14] = MoneyHandler.resolve.selector;
        actions[15] = MoneyHandler.slash.selector;
        actions[16] = MoneyHandler.forfeit.selector;
        actions[17] = MoneyHandler.expire.selector;
        actions[18] = MoneyHandler.postBond.selector;
        actions[19] = MoneyHandler.challengeResults.selector;
        actions[20] = MoneyHandler.ruleResults.selector;
        actions[21] = MoneyHandler.claimBondShare.selector;
        actions[22] = MoneyHandler.withdrawBond.selector;
        targets = new FuzzSelector[](1);
        targets[0] = FuzzSelector(address(handler), actions);
    }

    /*//////////////////////////////////////////////////////////////
                               INVARIANTS
    //////////////////////////////////////////////////////////////*/

    /// @dev funded == paid + claimable + slashed + unallocated + reclaimed, per agreement, with every term
    /// taken from the tokens that actually moved (ghost books) where the vault keeps one.
    function invariant_rewardMoneyIsConserved() public view {
        for (uint256 k; k < ids.length; ++k) {
            uint256 id = ids[k];
            MoneyHandler.Ghost memory g = handler.ghostOf(id);
            uint256 claimable = vault.claimable(id);
            uint256 unallocated = vault.unallocated(id);
            assertEq(g.funded, g.paid + claimable + g.forfeited + unallocated + g.reclaimed, "reward money");
            assertEq(claimable, g.allocated - g.paid - g.forfeited, "claimable");
        }
    }

    /// @dev The vault's books agree with the tokens that moved, field by field.
    function invariant_booksMatchTheTokenFlows() public view {
        for (uint256 k; k < ids.length; ++k) {
            uint256 id = ids[k];
            MoneyHandler.Ghost memory g = handler.ghostOf(id);
            IRewardVault.Pool memory p = vault.pool(id);
            assertEq(p.funded, g.funded, "funded");
            assertEq(p.allocated, g.allocated, "allocated");
            assertEq(p.paid, g.paid, "paid");
            assertEq(p.slashed, g.forfeited, "forfeited");
            assertEq(p.reclaimed, g.reclaimed, "reclaimed");
            assertEq(p.staked, g.staked, "staked");
            assertEq(p.unstaked, g.unstaked, "unstaked");
            assertEq(p.stakeSlashed, g.stakeSlashed, "stake slashed");
        }
    }

    /// @dev staked == unstaked + stakeSlashed + the stakes held, per agreement.
    function invariant_stakeIsConserved() public view {
        for (uint256 k; k < ids.length; ++k) {
            uint256 id = ids[k];
            IRewardVault.Pool memory p = vault.pool(id);
            assertEq(p.staked, p.unstaked + p.stakeSlashed + stakesHeld(id), "stake");
        }
    }

    /// @dev What the vault holds of each token is exactly what it owes in that token: unallocated pool,
    /// claimable rewards and stakes, summed over the agreements paid in it.
    function invariant_vaultHoldsExactlyWhatItOwes() public view {
        assertEq(token.balanceOf(address(vault)), owedIn(address(token)), "plain token");
        assertEq(feeToken.balanceOf(address(vault)), owedIn(address(feeToken)), "fee-on-transfer token");
    }

    /// @dev Claimable is what the live (neither revoked nor expired) allocations have left to pay, round by round.
    function invariant_claimableIsWhatLiveAllocationsHaveLeft() public view {
        for (uint256 k; k < ids.length; ++k) {
            uint256 id = ids[k];
            uint256 left;
            uint64 rounds = ledger.roundCount(id);
            for (uint64 r = 1; r <= rounds; ++r) {
                IRewardVault.Allocation memory a = vault.allocation(id, r);
                assertLe(a.claimed, a.total, "allocation over-claimed");
                if (!a.revoked && !a.expired) left += a.total - a.claimed;
            }
            assertEq(vault.claimable(id), left, "claimable");
        }
    }

    /// @dev Coordinator bonds: posted == withdrawn + slashed + held and slashed == shares paid + owed, per
    /// agreement, every figure as the tokens that moved say.
    function invariant_bondMoneyIsConserved() public view {
        for (uint256 k; k < ids.length; ++k) {
            uint256 id = ids[k];
            IResultsCourt.Bonds memory b = court.bonds(id);
            MoneyHandler.BondGhost memory g = handler.bondGhostOf(id);
            assertEq(b.posted, g.posted, "bonds posted");
            assertEq(b.withdrawn, g.withdrawn, "bonds withdrawn");
            assertEq(b.sharesPaid, g.sharesPaid, "bond shares paid");
            assertEq(b.posted, b.withdrawn + b.slashed + court.bondOf(id, coordinator), "bond money");
            assertEq(b.slashed, b.sharesPaid + sharesOwed(id), "slashed bonds");
        }
    }

    /// @dev What the court holds of each token is exactly the bonds held and the shares owed in it.
    function invariant_courtHoldsExactlyWhatItOwes() public view {
        assertEq(token.balanceOf(address(court)), courtOwesIn(address(token)), "plain token");
        assertEq(feeToken.balanceOf(address(court)), courtOwesIn(address(feeToken)), "fee-on-transfer token");
    }

    function sharesOwed(uint256 id) internal view returns (uint256 owed) {
        address[] memory ps = handler.partiesOf(id);
        for (uint256 i; i < ps.length; ++i) {
            owed += court.bondShareOf(id, ps[i]);
        }
    }

    function courtOwesIn(address tokenAddr) internal view returns (uint256 owed) {
        for (uint256 k; k < ids.length; ++k) {
            uint256 id = ids[k];
            if (agreements.roundConfig(id).rewardToken != tokenAddr) continue;
            owed += court.bondOf(id, coordinator) + sharesOwed(id);
        }
    }

    function stakesHeld(uint256 id) internal view returns (uint256 held) {
        address[] memory ps = handler.partiesOf(id);
        for (uint256 i; i < ps.length; ++i) {
            held += vault.stakeOf(id, ps[i]);
        }
    }

    function owedIn(address tokenAddr) internal view returns (uint256 owed) {
        for (uint256 k; k < ids.length; ++k) {
            uint256 id = ids[k];
            if (agreements.roundConfig(id).rewardToken != tokenAddr) continue;
            owed += vault.unallocated(id) + vault.claimable(id) + stakesHeld(id);
        }
    }
}
