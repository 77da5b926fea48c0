// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.28;

import {EIP712} from "@openzeppelin/contracts/utils/cryptography/EIP712.sol";
import {IRoundLedger} from "../interfaces/IRoundLedger.sol";
import {IAgreementRegistry} from "../interfaces/IAgreementRegistry.sol";
import {IPartnerRegistry} from "../interfaces/IPartnerRegistry.sol";
import {IRewardVault} from "../interfaces/IRewardVault.sol";
import {EpsilonLanes} from "./libraries/EpsilonLanes.sol";
import {LedgerState} from "./libraries/LedgerState.sol";
import {PartyBitmap} from "./libraries/PartyBitmap.sol";
import {BatchDisputes} from "./libraries/BatchDisputes.sol";
import {ChallengeDesk} from "./libraries/ChallengeDesk.sol";

/// @title RoundLedger
/// @notice Rounds, update commitments and the on-chain privacy budget. Batch-entry disputes and forgery proofs
/// run in the external library {BatchDisputes}, challenges in {ChallengeDesk}, both on this contract's storage
/// ({LedgerState}) by delegatecall: one address and one ABI, code split along its concerns.
/// @dev Cumulative epsilons (1e6 = 1.0) are packed in lanes of the agreement's width, ten 24-bit or eight 32-bit
/// lanes to a storage word ({EpsilonLanes}), and "submitted in this round" as a bitmap, so that a batch of 100
/// commitments writes 10 + 1 words instead of 200. That packing is what keeps the batched mode cheap with the
/// budget check on-chain (see {IRoundLedger}).
contract RoundLedger is IRoundLedger, EIP712 {
    /*//////////////////////////////////////////////////////////////
                               CONSTANTS
    //////////////////////////////////////////////////////////////*/

    /// @notice The EIP-712 type hash of a partner's signed commitment to one update, as anchored in batches.
    bytes32 public constant UPDATE_COMMITMENT_TYPEHASH = LedgerState.UPDATE_COMMITMENT_TYPEHASH;

    uint256 private constant _ENTRY_SIZE = LedgerState.ENTRY_SIZE;
    /// @dev A lane shift at or past this lies past a word's last lane, for either width: ten 24-bit lanes end at
    /// bit 240, eight 32-bit lanes (whose shifts are multiples of 32) at 256.
    uint256 private constant _WORD_LANES_END = 240;
    /// @dev Suspension-log entries a batch reads at most; while more are unread it checks all its parties.
    uint256 private constant _LOG_READ_LIMIT = 32;

    /*//////////////////////////////////////////////////////////////
                                STORAGE
    //////////////////////////////////////////////////////////////*/

    /// @notice The partner registry: who is an approved partner, and the roles of the deployment.
    IPartnerRegistry public immutable partners;
    /// @notice The agreement registry whose active agreements the rounds run under.
    IAgreementRegistry public immutable agreements;
    IRewardVault private immutable _vault;
    /// @inheritdoc IRoundLedger
    uint64 public immutable disputeWindow;

    LedgerState.Layout private _s;

    /*//////////////////////////////////////////////////////////////
                              CONSTRUCTOR
    //////////////////////////////////////////////////////////////*/

    constructor(
        IPartnerRegistry partnerRegistry,
        IAgreementRegistry agreementRegistry,
        IRewardVault rewardVault,
        uint64 disputeWindowSeconds
    ) EIP712("LeptonRoundLedger", "1") {
        partners = partnerRegistry;
        agreements = agreementRegistry;
        _vault = rewardVault;
        disputeWindow = disputeWindowSeconds;
    }

    /*//////////////////////////////////////////////////////////////
                                EXTERNAL
    //////////////////////////////////////////////////////////////*/

    /// @inheritdoc IRoundLedger
    function openRound(uint256 agreementId, bytes32 modelDigest, uint64 deadline, bytes32 evalCommitment)
        external
        returns (uint64 roundId)
    {
        IAgreementRegistry.RoundConfig memory config = _activeConfig(agreementId);
        _onlyCoordinatorOf(config);
        if (block.timestamp < config.start || block.timestamp > config.end) {
            revert RoundLedgerOutsideAgreementPeriod(agreementId, config.start, config.end);
        }
        uint64 open = _s.openRoundOf[agreementId];
        if (open != 0) revert RoundLedgerRoundAlreadyOpen(agreementId, open);
        if (_s.openDisputes[agreementId] != 0) revert RoundLedgerDisputePending(agreementId);
        uint64 count = _s.roundCount[agreementId];
        if (count >= config.maxRounds) revert RoundLedgerMaxRoundsReached(agreementId, config.maxRounds);
        if (deadline <= block.timestamp || deadline > config.end) revert RoundLedgerInvalidDeadline(deadline);
        if (modelDigest == bytes32(0) || evalCommitment == bytes32(0)) revert RoundLedgerZeroDigest();
        _vault.checkBond(agreementId); // the coordinator's bond, held by the results court

        roundId = count + 1;
        _s.roundCount[agreementId] = roundId;
        _s.openRoundOf[agreementId] = roundId;
        Round storage r = _s.rounds[agreementId][roundId];
        r.status = RoundStatus.Open;
        r.agreementVersion = config.version;
        r.openedAt = uint64(block.timestamp);
        r.deadline = deadline;
        r.modelDigest = modelDigest;
        r.evalCommitment = evalCommitment;
        uint256[] memory words =
            LedgerState.epsilonWordsOf(_s, agreementId, config.partyCount, config.epsilonLaneBits);
        _s.snapshots[agreementId][roundId].atOpen = keccak256(abi.encodePacked(words));
        emit RoundOpened(agreementId, roundId, config.version, modelDigest, evalCommitment, deadline);
        emit EpsilonsAtOpen(agreementId, roundId, words);
    }

    /// @inheritdoc IRoundLedger
    function submitUpdate(
        uint256 agreementId,
        uint64 roundId,
        bytes32 envelopeDigest,
        bytes32 manifestDigest,
        uint32 cumulativeEpsilon_,
        uint64 sampleCount
    ) external {
        // One call for what a submission needs, rather than the whole round config plus the party index.
        (
            IAgreementRegistry.AgreementStatus status,
            bool isParty,
            uint256 index,
            uint32 cap,
            uint64 maxSamples,
            uint8 laneBits
        ) = agreements.submissionTerms(agreementId, msg.sender);
        if (status != IAgreementRegistry.AgreementStatus.Active) revert RoundLedgerAgreementNotActive(agreementId);
        Round storage r = _acceptingRound(agreementId, roundId);
        if (!isParty) revert RoundLedgerNotParty(agreementId, msg.sender);
        if (!partners.isApproved(msg.sender)) revert RoundLedgerPartnerNotApproved(msg.sender);
        if (envelopeDigest == bytes32(0) || manifestDigest == bytes32(0)) revert RoundLedgerZeroDigest();
        if (sampleCount == 0) revert RoundLedgerZeroSampleCount();
        if (sampleCount > maxSamples) revert RoundLedgerSampleCountExceeded(sampleCount, maxSamples);

        _recordSubmission(agreementId, roundId, index, cumulativeEpsilon_, cap, laneBits);
        ++r.submissions;
        emit UpdateSubmitted(
            agreementId, roundId, msg.sender, envelopeDigest, manifestDigest, cumulativeEpsilon_, sampleCount
        );
    }

    /// @inheritdoc IRoundLedger
    function commitBatch(
        uint256 agreementId,
        uint64 roundId,
        bytes32 commitmentsRoot,
        bytes32 batchDocumentDigest,
        bytes calldata entries
    ) external returns (uint256 batchIndex) {
        BatchContext memory ctx = _batchContext(agreementId, roundId);
        Round storage r = _acceptingRound(agreementId, roundId);
        if (commitmentsRoot == bytes32(0) || batchDocumentDigest == bytes32(0)) revert RoundLedgerZeroDigest();
        uint256 count = _entryCount(entries);
        // Entries must be sorted, so the last index is the largest: one range check covers them all. Its epsilon
        // is checked with the others.
        // slither-disable-next-line unused-return
        (uint256 lastIndex,) = LedgerState.entryAt(entries, count - 1);
        if (lastIndex >= ctx.partyCount) revert RoundLedgerPartyIndexOutOfRange(lastIndex, ctx.partyCount);

        _applyEntries(ctx, entries);
        // A party that submitted directly is skipped, not fatal; a batch that applies nothing anchors nothing.
        if (ctx.skippedCount == count) _revertAlreadySubmitted(ctx, lastIndex);
        batchIndex = r.submissions;
        // unchecked: skippedCount <= count <= 256, since indexes are distinct and below partyCount <= 256.
        unchecked {
            r.submissions += uint32(count - ctx.skippedCount);
        }
        LedgerState.BatchRecord storage record = _s.batches[agreementId][roundId][batchIndex];
        record.digest = keccak256(abi.encode(commitmentsRoot, batchDocumentDigest, keccak256(entries)));
        if (ctx.skipped != 0) record.skipped = ctx.skipped;
        emit BatchCommitted(
            agreementId, roundId, batchIndex, commitmentsRoot, batchDocumentDigest, entries, ctx.skipped
        );
    }

    /// @inheritdoc IRoundLedger
    function finalizeRound(
        uint256 agreementId,
        uint64 roundId,
        bytes32 aggregateDigest,
        bytes32 reportDigest,
        bytes32 payoutRoot,
        uint256 payoutTotal
    ) external {
        Round storage r = LedgerState.existingRound(_s, agreementId, roundId);
        if (r.status != RoundStatus.Open) revert RoundLedgerRoundNotOpen(agreementId, roundId);
        IAgreementRegistry.RoundConfig memory config = agreements.roundConfig(agreementId);
        _onlyCoordinatorOf(config);
        // A terminated agreement pays nothing more, but its open round must still close: while it is open every
        // party's stake stays locked (isStakeLocked) and upheld challenges of it can never be executed.
        if (config.status == IAgreementRegistry.AgreementStatus.Terminated && payoutTotal != 0) {
            revert RoundLedgerAgreementNotActive(agreementId);
        }
        if (block.timestamp <= r.deadline && r.submissions < config.partyCount) {
            revert RoundLedgerRoundStillRunning(agreementId, roundId, r.deadline);
        }
        if (aggregateDigest == bytes32(0) || reportDigest == bytes32(0)) revert RoundLedgerZeroDigest();
        if (payoutTotal > config.rewardPerRound) {
            revert RoundLedgerPayoutExceedsReward(payoutTotal, config.rewardPerRound);
        }
        if (payoutTotal != 0 && payoutRoot == bytes32(0)) revert RoundLedgerZeroPayoutRoot();

        uint64 claimableAt = uint64(block.timestamp) + disputeWindow;
        r.status = RoundStatus.Finalized;
        r.finalizedAt = uint64(block.timestamp);
        r.aggregateDigest = aggregateDigest;
        r.reportDigest = reportDigest;
        r.payoutRoot = payoutRoot;
        r.payoutTotal = payoutTotal;
        _s.openRoundOf[agreementId] = 0;
        _s.disputeEndsAt[agreementId] = claimableAt;
        emit RoundFinalized(agreementId, roundId, aggregateDigest, reportDigest, payoutRoot, payoutTotal);
        LedgerState.recordClose(_s, agreementId, roundId, config);
        if (payoutTotal != 0) _vault.allocate(agreementId, roundId, payoutRoot, payoutTotal, claimableAt);
    }

    /// @inheritdoc IRoundLedger
    function abandonRound(uint256 agreementId, uint64 roundId) external {
        Round storage r = LedgerState.existingRound(_s, agreementId, roundId);
        if (r.status != RoundStatus.Open) revert RoundLedgerRoundNotOpen(agreementId, roundId);
        uint256 abandonableAt = uint256(r.deadline) + disputeWindow;
        if (block.timestamp <= abandonableAt) revert RoundLedgerNotAbandonable(agreementId, roundId, abandonableAt);
        LedgerState.closeVoided(_s, agreements, agreementId, roundId, r);
        emit RoundAbandoned(agreementId, roundId);
    }

    /// @inheritdoc IRoundLedger
    function challenge(uint256 agreementId, uint64 roundId, address partner, bytes32 evidenceDigest)
        external
        returns (uint256)
    {
        return ChallengeDesk.challenge(_s, _env(), agreementId, roundId, partner, evidenceDigest);
    }

    /// @inheritdoc IRoundLedger
    function resolveChallenge(uint256 challengeId, bool upheld, bytes32 rulingDigest) external {
        ChallengeDesk.resolveChallenge(_s, _env(), challengeId, upheld, rulingDigest);
    }

    /// @inheritdoc IRoundLedger
    function lapseChallenge(uint256 challengeId) external {
        ChallengeDesk.lapseChallenge(_s, _env(), challengeId);
    }

    /// @inheritdoc IRoundLedger
    function markChallengeExecuted(uint256 challengeId) external returns (Challenge memory) {
        return ChallengeDesk.markChallengeExecuted(_s, _env(), challengeId);
    }

    /// @inheritdoc IRoundLedger
    function proveForgedCommitment(
        BatchEvidence calldata evidence,
        UpdateCommitment calldata commitment,
        bytes calldata signature
    ) external {
        BatchDisputes.proveForgedCommitment(_s, _env(), evidence, commitment, signature);
    }

    /// @inheritdoc IRoundLedger
    function disputeBatchEntry(BatchEvidence calldata evidence) external {
        BatchDisputes.disputeBatchEntry(_s, _env(), evidence);
    }

    /// @inheritdoc IRoundLedger
    function answerDispute(
        BatchEvidence calldata evidence,
        UpdateCommitment calldata commitment,
        bytes calldata signature
    ) external {
        BatchDisputes.answerDispute(_s, _env(), evidence, commitment, signature);
    }

    /// @inheritdoc IRoundLedger
    function voidDisputedEntry(uint256 agreementId, uint64 roundId, address party, uint256[] calldata wordsAtOpen)
        external
    {
        BatchDisputes.voidDisputedEntry(_s, _env(), agreementId, roundId, party, wordsAtOpen);
    }

    /// @inheritdoc IRoundLedger
    function restoreVoidedRound(
        uint256 agreementId,
        uint64 roundId,
        uint256[] calldata wordsAtOpen,
        uint256[] calldata wordsAtClose
    ) external {
        BatchDisputes.restoreVoidedRound(_s, _env(), agreementId, roundId, wordsAtOpen, wordsAtClose);
    }

    /*//////////////////////////////////////////////////////////////
                                 VIEWS
    //////////////////////////////////////////////////////////////*/

    /// @inheritdoc IRoundLedger
    function vault() external view returns (address) {
        return address(_vault);
    }

    /// @inheritdoc IRoundLedger
    function round(uint256 agreementId, uint64 roundId) external view returns (Round memory) {
        return LedgerState.existingRound(_s, agreementId, roundId);
    }

    /// @inheritdoc IRoundLedger
    function cumulativeEpsilon(uint256 agreementId, address partner) external view returns (uint32) {
        // slither-disable-next-line unused-return
        (, bool isParty, uint256 index,,, uint8 bits) = agreements.submissionTerms(agreementId, partner);
        if (!isParty) return 0;
        // A lane is at most 32 bits wide.
        return uint32(EpsilonLanes.lane(_s.epsilonWords[agreementId][EpsilonLanes.wordOf(index, bits)], index, bits));
    }

    /// @inheritdoc IRoundLedger
    function hasSubmitted(uint256 agreementId, uint64 roundId, address partner) external view returns (bool) {
        (bool isParty, uint256 index) = agreements.partyIndex(agreementId, partner);
        return isParty && LedgerState.hasEntry(_s, agreementId, roundId, index);
    }

    /// @inheritdoc IRoundLedger
    function challengeOf(uint256 challengeId) external view returns (Challenge memory) {
        return LedgerState.existingChallenge(_s, challengeId);
    }

    /// @inheritdoc IRoundLedger
    function isStakeLocked(uint256 agreementId, address partner) external view returns (bool) {
        return _s.openRoundOf[agreementId] != 0 || block.timestamp < _s.disputeEndsAt[agreementId]
            || _s.liveChallenges[agreementId][partner] != 0;
    }

    /// @inheritdoc IRoundLedger
    function entryDispute(uint256 agreementId, uint64 roundId, address party)
        external
        view
        returns (EntryDispute memory)
    {
        return _s.entryDisputes[agreementId][roundId][party];
    }

    /// @inheritdoc IRoundLedger
    function isClaimBlocked(uint256 agreementId, uint64 roundId, address partner) external view returns (bool) {
        if (_s.openRoundDisputes[agreementId][roundId] != 0) return true;
        uint256 id = _s.challengeOf[agreementId][roundId][partner];
        return id != 0 && _s.challenges[id].status != ChallengeStatus.Dismissed;
    }

    /// @inheritdoc IRoundLedger
    function roundCount(uint256 agreementId) external view returns (uint64) {
        return _s.roundCount[agreementId];
    }

    /// @inheritdoc IRoundLedger
    function openRoundOf(uint256 agreementId) external view returns (uint64) {
        return _s.openRoundOf[agreementId];
    }

    /// @inheritdoc IRoundLedger
    function challengeCount() external view returns (uint256) {
        return _s.challengeCount;
    }

    /// @inheritdoc IRoundLedger
    function commitmentDigest(UpdateCommitment calldata c) external view returns (bytes32) {
        return LedgerState.commitmentDigest(_domainSeparatorV4(), c);
    }

    /// @inheritdoc IRoundLedger
    function commitmentLeaf(UpdateCommitment calldata c, bytes calldata signature) external view returns (bytes32) {
        return LedgerState.commitmentLeaf(_domainSeparatorV4(), c, signature);
    }

    /*//////////////////////////////////////////////////////////////
                                INTERNAL
    //////////////////////////////////////////////////////////////*/

    /// @dev Marks `index` as submitted in the round and raises its cumulative epsilon, after the checks.
    function _recordSubmission(
        uint256 agreementId,
        uint64 roundId,
        uint256 index,
        uint256 epsilon,
        uint256 cap,
        uint256 laneBits
    ) private {
        if (!PartyBitmap.trySet(_s.submitted[agreementId][roundId], index)) {
            revert RoundLedgerAlreadySubmitted(agreementId, roundId, msg.sender);
        }
        mapping(uint256 => uint256) storage epsilons = _s.epsilonWords[agreementId];
        uint256 key = EpsilonLanes.wordOf(index, laneBits);
        epsilons[key] = _spend(epsilons[key], index, epsilon, cap, laneBits, agreementId);
    }

    /// @dev What the batch loop needs besides its entries; in memory, because the loop's hot variables
    /// already fill the stack.
    struct BatchContext {
        uint256 agreementId;
        uint64 roundId;
        uint256 epsilonCap;
        uint256 partyCount;
        uint256 laneBits;
        uint256 skipped; // bit i: entry i was skipped, its party had already submitted in the round
        uint256 skippedCount;
    }

    /// @dev The batch's context, once the agreement is active and the caller its coordinator. Reads only the
    /// terms a batch needs ({IAgreementRegistry-batchTerms}): every storage word read here is paid per batch.
    function _batchContext(uint256 agreementId, uint64 roundId) private view returns (BatchContext memory) {
        (
            IAgreementRegistry.AgreementStatus status,
            address coordinator,
            uint32 partyCount,
            uint32 epsilonCap,
            uint8 laneBits
        ) = agreements.batchTerms(agreementId);
        if (status != IAgreementRegistry.AgreementStatus.Active) revert RoundLedgerAgreementNotActive(agreementId);
        if (msg.sender != coordinator) revert RoundLedgerNotCoordinator(msg.sender);
        return BatchContext(agreementId, roundId, epsilonCap, partyCount, laneBits, 0, 0);
    }

    /// @dev Checks and records every entry of a batch. Entries are sorted, so the parties of one epsilon word
    /// come together: each word is read and written once, and so is the round's bitmap (one word: at most 256
    /// parties). This loop is the per-update cost of a batch: keep it lean.
    /// The walk holds one epsilon word at a time, starting with the first entry's. `base` is the bit offset of
    /// that word's first lane in the agreement's lanes laid end to end (word key * EpsilonLanes.span), so that
    /// index * bits - base is an index's shift in the word, and a shift of 240 or more lies past the word.
    /// The caller has checked that the last (largest) index is in range and that the length of `entries` is a
    /// multiple of 6, so each 6-byte entry the assembly reads lies inside it. Unchecked arithmetic: offsets stay
    /// below entries.length, indexes below 2^16, lanes within their width, and indexes only grow (checked
    /// first), so no shift goes below the base.
    function _applyEntries(BatchContext memory ctx, bytes calldata entries) private {
        _refuseSuspendedParties(ctx, entries);
        mapping(uint256 => uint256) storage epsilons = _s.epsilonWords[ctx.agreementId];
        uint256 submittedWord = _s.submitted[ctx.agreementId][ctx.roundId][0];
        uint256 cap = ctx.epsilonCap;
        uint256 bits = ctx.laneBits;
        uint256 laneMask = (1 << bits) - 1;
        uint256 base = EpsilonLanes.wordOf(uint48(bytes6(entries[:_ENTRY_SIZE])) >> 32, bits) * EpsilonLanes.span(bits);
        uint256 epsilonWord = epsilons[base / EpsilonLanes.span(bits)];
        uint256 nextMinIndex;
        unchecked {
            for (uint256 offset; offset < entries.length; offset += _ENTRY_SIZE) {
                uint256 index;
                uint256 committed;
                // solhint-disable-next-line no-inline-assembly
                assembly ("memory-safe") {
                    let entry := shr(208, calldataload(add(entries.offset, offset)))
                    index := shr(32, entry)
                    committed := and(entry, 0xffffffff)
                }
                if (index < nextMinIndex) revert RoundLedgerUnsortedEntries(offset / _ENTRY_SIZE);
                nextMinIndex = index + 1;
                {
                    // An index past 255 gives no bit; it comes before the range-checked last entry, so the walk
                    // reverts as unsorted before the batch ends.
                    uint256 bit = 1 << index;
                    if (submittedWord & bit != 0) {
                        // Submitted directly (a batch never repeats an index): skip it, do not sink the batch.
                        ctx.skipped |= 1 << (offset / _ENTRY_SIZE);
                        ++ctx.skippedCount;
                        continue;
                    }
                    submittedWord |= bit;
                }
                uint256 shift = index * bits - base;
                if (shift >= _WORD_LANES_END) {
                    uint256 span = EpsilonLanes.span(bits);
                    epsilons[base / span] = epsilonWord;
                    base = index * bits - (index * bits) % span;
                    epsilonWord = epsilons[base / span];
                    shift = index * bits - base;
                }
                // The budget checks of _spend, inline; committed <= cap fits the lane, so it is written whole.
                if ((committed <= (epsilonWord >> shift) & laneMask) || (committed > cap)) {
                    _refuseEntry(ctx, epsilonWord, index, committed);
                }
                epsilonWord = (epsilonWord & ~(laneMask << shift)) | (committed << shift);
            }
        }
        epsilons[base / EpsilonLanes.span(bits)] = epsilonWord;
        _s.submitted[ctx.agreementId][ctx.roundId][0] = submittedWord;
    }

    /// @dev Reverts with the budget error that applies to a batch entry the loop found out of bounds.
    function _refuseEntry(BatchContext memory ctx, uint256 word, uint256 index, uint256 committed) private view {
        // Called for its revert: the word it would return is never used.
        // slither-disable-next-line unused-return
        _spend(word, index, committed, ctx.epsilonCap, ctx.laneBits, ctx.agreementId);
    }

    function _revertAlreadySubmitted(BatchContext memory ctx, uint256 index) private view {
        revert RoundLedgerAlreadySubmitted(ctx.agreementId, ctx.roundId, agreements.partyAt(ctx.agreementId, index));
    }

    /// @dev Refuses the batch when one of its parties is suspended. The partner registry logs every suspension;
    /// per agreement, the ledger reads the log from where it left off and keeps the agreement's parties it saw
    /// suspended (`watched`), so a batch asks about approval only for those of its parties: a suspension in
    /// another agreement costs this agreement one look-up, once, and a batch nothing after that.
    function _refuseSuspendedParties(BatchContext memory ctx, bytes calldata entries) private {
        uint256 logged = partners.suspensionCount();
        if (logged == 0) return;
        LedgerState.SuspensionWatch storage watch = _s.suspensionWatch[ctx.agreementId];
        uint256 read = watch.read;
        uint256 watched = watch.watched;
        bool behind = false;
        if (read < logged) {
            // Parties sign after the proposal, and signing needs approval: earlier entries cannot name them.
            if (read == 0) read = agreements.suspensionLogStart(ctx.agreementId);
            address[] memory suspended = partners.suspensionsSince(read, _LOG_READ_LIMIT);
            for (uint256 i; i < suspended.length; ++i) {
                (bool isParty, uint256 index) = agreements.partyIndex(ctx.agreementId, suspended[i]);
                if (isParty) watched |= 1 << index;
            }
            read += suspended.length;
            watch.read = read;
            behind = read < logged;
        }
        // Still behind the log: some suspended party may be unseen, so every party of the batch is checked.
        uint256 left = _requireApprovedParties(ctx, entries, behind ? type(uint256).max : watched);
        if (!behind) watched = left;
        if (watched != watch.watched) watch.watched = watched;
    }

    /// @dev Refuses the batch when a party of its entries whose bit is set in `parties` is not approved; returns
    /// `parties` less those found approved (reinstated: a new suspension would be logged again). An index past
    /// the parties can only come before the (range-checked) last entry, so the batch is unsorted: it is skipped
    /// here, and the walk reports the batch as it does when nobody is suspended.
    function _requireApprovedParties(BatchContext memory ctx, bytes calldata entries, uint256 parties)
        private
        view
        returns (uint256)
    {
        if (parties == 0) return 0;
        for (uint256 offset; offset < entries.length; offset += _ENTRY_SIZE) {
            uint256 index = uint48(bytes6(entries[offset:offset + _ENTRY_SIZE])) >> 32;
            if (index < ctx.partyCount && parties >> index & 1 != 0) {
                _requireApprovedParty(ctx.agreementId, index);
                parties &= ~(1 << index);
            }
        }
        return parties;
    }

    function _requireApprovedParty(uint256 agreementId, uint256 index) private view {
        address party = agreements.partyAt(agreementId, index);
        if (!partners.isApproved(party)) revert RoundLedgerPartnerNotApproved(party);
    }

    /// @dev Returns `word` with the cumulative epsilon of party `index` raised to `committed`, after the budget
    /// checks. The cap fits the agreement's lanes ({IAgreementRegistry-epsilonLaneBitsFor}).
    function _spend(uint256 word, uint256 index, uint256 committed, uint256 cap, uint256 laneBits, uint256 agreementId)
        private
        view
        returns (uint256)
    {
        uint256 previous = EpsilonLanes.lane(word, index, laneBits);
        if (committed <= previous) {
            revert RoundLedgerEpsilonNotIncreasing(_partyForError(agreementId, index), previous, committed);
        }
        if (committed > cap) revert RoundLedgerBudgetExceeded(_partyForError(agreementId, index), committed, cap);
        return EpsilonLanes.withLane(word, index, laneBits, committed);
    }

    /// @dev The party at `index`, for an error. A batch range-checks only its last index up front, so an earlier
    /// index may still be out of range here (the batch is then unsorted too): name that, rather than panic.
    function _partyForError(uint256 agreementId, uint256 index) private view returns (address) {
        uint256 count = agreements.roundConfig(agreementId).partyCount;
        if (index >= count) revert RoundLedgerPartyIndexOutOfRange(index, count);
        return agreements.partyAt(agreementId, index);
    }

    function _entryCount(bytes calldata entries) private pure returns (uint256) {
        if (entries.length == 0) revert RoundLedgerEmptyBatch();
        if (entries.length % _ENTRY_SIZE != 0) revert RoundLedgerMalformedEntries(entries.length);
        return entries.length / _ENTRY_SIZE;
    }

    function _activeConfig(uint256 agreementId) private view returns (IAgreementRegistry.RoundConfig memory config) {
        config = agreements.roundConfig(agreementId);
        if (config.status != IAgreementRegistry.AgreementStatus.Active) revert RoundLedgerAgreementNotActive(agreementId);
    }

    function _acceptingRound(uint256 agreementId, uint64 roundId) private view returns (Round storage r) {
        r = LedgerState.existingRound(_s, agreementId, roundId);
        if (r.status != RoundStatus.Open) revert RoundLedgerRoundNotOpen(agreementId, roundId);
        if (block.timestamp > r.deadline) revert RoundLedgerDeadlinePassed(agreementId, roundId, r.deadline);
    }

    /// @dev Only the coordinator named in the terms in force acts on an agreement's rounds.
    function _onlyCoordinatorOf(IAgreementRegistry.RoundConfig memory config) private view {
        if (msg.sender != config.coordinator) revert RoundLedgerNotCoordinator(msg.sender);
    }

    /// @dev What the external libraries need of this contract's immutables.
    function _env() private view returns (LedgerState.Env memory) {
        return LedgerState.Env(partners, agreements, _vault, disputeWindow, _domainSeparatorV4());
    }
}
