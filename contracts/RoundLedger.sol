// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.28;

import {IAccessControl} from "@openzeppelin/contracts/access/IAccessControl.sol";
import {EIP712} from "@openzeppelin/contracts/utils/cryptography/EIP712.sol";
import {ECDSA} from "@openzeppelin/contracts/utils/cryptography/ECDSA.sol";
import {SignatureChecker} from "@openzeppelin/contracts/utils/cryptography/SignatureChecker.sol";
import {IRoundLedger} from "../interfaces/IRoundLedger.sol";
import {IAgreementRegistry} from "../interfaces/IAgreementRegistry.sol";
import {IPartnerRegistry} from "../interfaces/IPartnerRegistry.sol";
import {IRewardVault} from "../interfaces/IRewardVault.sol";
import {LeptonRoles} from "./libraries/LeptonRoles.sol";
import {PositionalMerkle} from "./libraries/PositionalMerkle.sol";
import {EpsilonLanes} from "./libraries/EpsilonLanes.sol";

/// @title RoundLedger
/// @notice Rounds, update commitments, the on-chain privacy budget, and challenges.
/// @dev Cumulative epsilons are stored as uint32 (1e6 = 1.0), eight to a storage word, and "submitted in this
/// round" as a bitmap, so that a batch of 100 commitments writes 13 + 1 words instead of 200. That packing is
/// what keeps the batched mode under 5,000 gas per update with the budget check on-chain (see {IRoundLedger}).
contract RoundLedger is IRoundLedger, EIP712 {
    /*//////////////////////////////////////////////////////////////
                               CONSTANTS
    //////////////////////////////////////////////////////////////*/

    /// @notice The EIP-712 type hash of a partner's signed commitment to one update, as anchored in batches.
    bytes32 public constant UPDATE_COMMITMENT_TYPEHASH = keccak256(
        "UpdateCommitment(uint256 agreementId,uint64 round,address partner,bytes32 envelopeDigest,bytes32 manifestDigest,uint32 cumulativeEpsilon,uint64 sampleCount)"
    );

    /// @dev Bytes per batch entry: uint16 party index + uint32 cumulative epsilon.
    uint256 private constant _ENTRY_SIZE = 6;
    uint256 private constant _NO_WORD = type(uint256).max;

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

    /// @dev An anchored batch: keccak256(abi.encode(root, documentDigest, keccak256(entries))), and bit i of
    /// `skipped` set when entry i was skipped (its party had submitted directly); written only when some entry
    /// was, so the common batch pays nothing for it.
    struct BatchRecord {
        bytes32 digest;
        uint256 skipped;
    }

    /// @dev keccak256 of the agreement's packed epsilon words when the round opened and when it closed. Only the
    /// round's own entries (and voids of them) change the words while it is open, so for a party whose entry
    /// survives, close - open is what that entry spent: what a void of the round gives back. `restorePending`:
    /// the round was voided and what it spent is still charged, until {restoreVoidedRound}.
    struct Snapshots {
        bytes32 atOpen;
        bytes32 atClose;
        bool restorePending;
    }

    /// @inheritdoc IRoundLedger
    mapping(uint256 agreementId => uint64) public roundCount;
    /// @inheritdoc IRoundLedger
    mapping(uint256 agreementId => uint64) public openRoundOf;
    /// @inheritdoc IRoundLedger
    uint256 public challengeCount;

    mapping(uint256 agreementId => mapping(uint64 round => Round)) private _rounds;
    /// @dev Eight uint32 cumulative epsilons per word, by party index.
    mapping(uint256 agreementId => mapping(uint256 word => uint256)) private _epsilonWords;
    /// @dev One bit per party index: submitted in this round.
    mapping(uint256 agreementId => mapping(uint64 round => mapping(uint256 word => uint256))) private _submitted;
    /// @dev keccak256(abi.encode(root, documentDigest, keccak256(entries))) of each anchored batch, keyed by its
    /// batch index: the number of updates the round had before it. That index is unique within a round (the
    /// count only grows) and needs no counter of its own, which saves a storage write per batch.
    mapping(uint256 agreementId => mapping(uint64 round => mapping(uint256 batchIndex => BatchRecord))) private
        _batches;
    /// @dev When the latest dispute window of the agreement ends; stakes stay locked until then.
    mapping(uint256 agreementId => uint64) private _disputeEndsAt;
    mapping(uint256 challengeId => Challenge) private _challenges;
    /// @dev The latest challenge against each update, so that an update is not challenged twice at once.
    mapping(uint256 agreementId => mapping(uint64 round => mapping(address partner => uint256))) private _challengeOf;
    /// @dev Each party's dispute of its batch entry, per round (a party has at most one entry per round).
    mapping(uint256 agreementId => mapping(uint64 round => mapping(address party => EntryDispute))) private
        _entryDisputes;
    /// @dev Per agreement, open disputes plus voided rounds whose epsilon is not given back yet: no round opens
    /// while any is pending. Per round, open disputes only (its claims wait).
    mapping(uint256 agreementId => uint256) private _openDisputes;
    mapping(uint256 agreementId => mapping(uint64 round => uint256)) private _openRoundDisputes;
    mapping(uint256 agreementId => mapping(uint64 round => Snapshots)) private _snapshots;
    /// @dev Challenges against a partner that are open, or upheld and not yet executed.
    mapping(uint256 agreementId => mapping(address partner => uint256)) private _liveChallenges;

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
        uint64 open = openRoundOf[agreementId];
        if (open != 0) revert RoundLedgerRoundAlreadyOpen(agreementId, open);
        if (_openDisputes[agreementId] != 0) revert RoundLedgerDisputePending(agreementId);
        uint64 count = roundCount[agreementId];
        if (count >= config.maxRounds) revert RoundLedgerMaxRoundsReached(agreementId, config.maxRounds);
        if (deadline <= block.timestamp || deadline > config.end) revert RoundLedgerInvalidDeadline(deadline);
        if (modelDigest == bytes32(0) || evalCommitment == bytes32(0)) revert RoundLedgerZeroDigest();
        _vault.checkBond(agreementId); // the coordinator's bond, held by the results court

        roundId = count + 1;
        roundCount[agreementId] = roundId;
        openRoundOf[agreementId] = roundId;
        Round storage r = _rounds[agreementId][roundId];
        r.status = RoundStatus.Open;
        r.agreementVersion = config.version;
        r.openedAt = uint64(block.timestamp);
        r.deadline = deadline;
        r.modelDigest = modelDigest;
        r.evalCommitment = evalCommitment;
        uint256[] memory words = _epsilonWordsOf(agreementId, config.partyCount);
        _snapshots[agreementId][roundId].atOpen = keccak256(abi.encodePacked(words));
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
        (IAgreementRegistry.AgreementStatus status, bool isParty, uint256 index, uint32 cap, uint64 maxSamples) =
            agreements.submissionTerms(agreementId, msg.sender);
        if (status != IAgreementRegistry.AgreementStatus.Active) revert RoundLedgerAgreementNotActive(agreementId);
        Round storage r = _acceptingRound(agreementId, roundId);
        if (!isParty) revert RoundLedgerNotParty(agreementId, msg.sender);
        if (!partners.isApproved(msg.sender)) revert RoundLedgerPartnerNotApproved(msg.sender);
        if (envelopeDigest == bytes32(0) || manifestDigest == bytes32(0)) revert RoundLedgerZeroDigest();
        if (sampleCount == 0) revert RoundLedgerZeroSampleCount();
        if (sampleCount > maxSamples) revert RoundLedgerSampleCountExceeded(sampleCount, maxSamples);

        _recordSubmission(agreementId, roundId, index, cumulativeEpsilon_, cap);
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
        IAgreementRegistry.RoundConfig memory config = _activeConfig(agreementId);
        _onlyCoordinatorOf(config);
        Round storage r = _acceptingRound(agreementId, roundId);
        if (commitmentsRoot == bytes32(0) || batchDocumentDigest == bytes32(0)) revert RoundLedgerZeroDigest();
        uint256 count = _entryCount(entries);
        // Entries must be sorted, so the last index is the largest: one range check covers them all.
        (uint256 lastIndex,) = _entryAt(entries, count - 1);
        if (lastIndex >= config.partyCount) revert RoundLedgerPartyIndexOutOfRange(lastIndex, config.partyCount);

        BatchContext memory ctx = BatchContext(agreementId, roundId, config.epsilonCap, config.partyCount, 0, 0);
        _applyEntries(ctx, entries);
        // A party that submitted directly is skipped, not fatal; a batch that applies nothing anchors nothing.
        if (ctx.skippedCount == count) _revertAlreadySubmitted(ctx, lastIndex);
        batchIndex = r.submissions;
        // unchecked: skippedCount <= count <= 256, since indexes are distinct and below partyCount <= 256.
        unchecked {
            r.submissions += uint32(count - ctx.skippedCount);
        }
        BatchRecord storage record = _batches[agreementId][roundId][batchIndex];
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
        Round storage r = _existingRound(agreementId, roundId);
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
        openRoundOf[agreementId] = 0;
        _disputeEndsAt[agreementId] = claimableAt;
        emit RoundFinalized(agreementId, roundId, aggregateDigest, reportDigest, payoutRoot, payoutTotal);
        _recordClose(agreementId, roundId, config.partyCount);
        if (payoutTotal != 0) _vault.allocate(agreementId, roundId, payoutRoot, payoutTotal, claimableAt);
    }

    /// @inheritdoc IRoundLedger
    function challenge(uint256 agreementId, uint64 roundId, address partner, bytes32 evidenceDigest)
        external
        returns (uint256 challengeId)
    {
        _onlyAuditor();
        _disputableRound(agreementId, roundId);
        (bool isParty, uint256 index) = agreements.partyIndex(agreementId, partner);
        if (!isParty) revert RoundLedgerNotParty(agreementId, partner);
        if (!_hasEntry(agreementId, roundId, index)) revert RoundLedgerNoSubmission(agreementId, roundId, partner);
        if (evidenceDigest == bytes32(0)) revert RoundLedgerZeroDigest();
        uint256 previous = _challengeOf[agreementId][roundId][partner];
        if (previous != 0 && _challenges[previous].status != ChallengeStatus.Dismissed) {
            revert RoundLedgerAlreadyChallenged(agreementId, roundId, partner);
        }
        challengeId = ++challengeCount;
        _challenges[challengeId] = Challenge({
            status: ChallengeStatus.Open,
            round: roundId,
            raisedAt: uint64(block.timestamp),
            agreementId: agreementId,
            partner: partner,
            challenger: msg.sender,
            evidenceDigest: evidenceDigest,
            rulingDigest: bytes32(0)
        });
        _challengeOf[agreementId][roundId][partner] = challengeId;
        ++_liveChallenges[agreementId][partner];
        emit ChallengeRaised(challengeId, agreementId, roundId, partner, msg.sender, evidenceDigest);
    }

    /// @inheritdoc IRoundLedger
    function resolveChallenge(uint256 challengeId, bool upheld, bytes32 rulingDigest) external {
        Challenge storage c = _existingChallenge(challengeId);
        if (agreements.roundConfig(c.agreementId).arbiter != msg.sender) {
            revert RoundLedgerNotArbiter(c.agreementId, msg.sender);
        }
        if (c.status != ChallengeStatus.Open) revert RoundLedgerInvalidChallengeStatus(challengeId, c.status);
        uint256 endsAt = uint256(c.raisedAt) + disputeWindow;
        if (block.timestamp >= endsAt) revert RoundLedgerRulingWindowClosed(challengeId, endsAt);
        c.rulingDigest = rulingDigest;
        if (upheld) {
            c.status = ChallengeStatus.Upheld;
        } else {
            c.status = ChallengeStatus.Dismissed;
            --_liveChallenges[c.agreementId][c.partner];
        }
        emit ChallengeResolved(challengeId, upheld, rulingDigest);
    }

    /// @inheritdoc IRoundLedger
    function proveForgedCommitment(
        BatchEvidence calldata evidence,
        UpdateCommitment calldata commitment,
        bytes calldata signature
    ) external {
        _onlyAuditor();
        uint256 agreementId = evidence.agreementId;
        uint64 roundId = evidence.round;
        Round storage r = _disputableRound(agreementId, roundId);
        // An entry whose commitment was revealed and checked ({answerDispute}) stays judged as it was then.
        if (_isHonestCommitment(evidence, commitment, signature, false) || _wasAnswered(evidence)) {
            revert RoundLedgerCommitmentValid();
        }
        _voidRound(agreementId, roundId, r, evidence.batchIndex, evidence.position);
    }

    /// @inheritdoc IRoundLedger
    function lapseChallenge(uint256 challengeId) external {
        Challenge storage c = _existingChallenge(challengeId);
        if (c.status != ChallengeStatus.Open) revert RoundLedgerInvalidChallengeStatus(challengeId, c.status);
        uint256 endsAt = uint256(c.raisedAt) + disputeWindow;
        if (block.timestamp < endsAt) revert RoundLedgerRulingWindowOpen(challengeId, endsAt);
        c.status = ChallengeStatus.Dismissed;
        --_liveChallenges[c.agreementId][c.partner];
        emit ChallengeLapsed(challengeId);
    }

    /// @inheritdoc IRoundLedger
    function abandonRound(uint256 agreementId, uint64 roundId) external {
        Round storage r = _existingRound(agreementId, roundId);
        if (r.status != RoundStatus.Open) revert RoundLedgerRoundNotOpen(agreementId, roundId);
        uint256 abandonableAt = uint256(r.deadline) + disputeWindow;
        if (block.timestamp <= abandonableAt) revert RoundLedgerNotAbandonable(agreementId, roundId, abandonableAt);
        _closeVoided(agreementId, roundId, r);
        emit RoundAbandoned(agreementId, roundId);
    }

    /// @inheritdoc IRoundLedger
    function disputeBatchEntry(BatchEvidence calldata evidence) external {
        uint256 agreementId = evidence.agreementId;
        uint64 roundId = evidence.round;
        _disputableRound(agreementId, roundId);
        _checkAnchored(evidence);
        if (evidence.position >= evidence.entries.length / _ENTRY_SIZE) revert RoundLedgerInvalidMerkleProof();
        (uint256 index, uint256 epsilon) = _entryAt(evidence.entries, evidence.position);
        address party = agreements.partyAt(agreementId, index);
        if (msg.sender != party) revert RoundLedgerNotEntryParty(msg.sender, party);
        // Only an entry that charged the party can be disputed: not one skipped (the party submitted directly,
        // and a void would take back that spend) nor one voided already.
        if (
            _batches[agreementId][roundId][evidence.batchIndex].skipped >> evidence.position & 1 != 0
                || !_hasEntry(agreementId, roundId, index)
        ) revert RoundLedgerNoSubmission(agreementId, roundId, party);
        EntryDispute storage d = _entryDisputes[agreementId][roundId][party];
        // A voided entry's party may have entered again since (the round was still open): that entry is disputable.
        if (d.status == DisputeStatus.Open || d.status == DisputeStatus.Answered) {
            revert RoundLedgerEntryAlreadyDisputed(agreementId, roundId, party);
        }
        uint64 answerBy = uint64(block.timestamp) + disputeWindow;
        d.status = DisputeStatus.Open;
        // position < entries / 6 <= 256 parties, so it fits 16 bits.
        d.position = uint16(evidence.position);
        d.epsilon = uint32(epsilon);
        d.answerBy = answerBy;
        d.batchIndex = evidence.batchIndex;
        ++_openDisputes[agreementId];
        ++_openRoundDisputes[agreementId][roundId];
        emit BatchEntryDisputed(agreementId, roundId, party, evidence.batchIndex, evidence.position, answerBy);
    }

    /// @inheritdoc IRoundLedger
    function answerDispute(
        BatchEvidence calldata evidence,
        UpdateCommitment calldata commitment,
        bytes calldata signature
    ) external {
        uint256 agreementId = evidence.agreementId;
        uint64 roundId = evidence.round;
        EntryDispute storage d = _entryDisputes[agreementId][roundId][commitment.partner];
        DisputeStatus status = d.status;
        if (status == DisputeStatus.Open) {
            if (block.timestamp > d.answerBy) revert RoundLedgerAnswerWindowClosed(d.answerBy);
            if (evidence.batchIndex != d.batchIndex || evidence.position != d.position) {
                revert RoundLedgerInvalidAnswer();
            }
        } else if (status == DisputeStatus.None) {
            // A reveal before any dispute: a smart wallet's ERC-1271 signature is judged now, while the wallet
            // accepts it, and that judgement is final; the entry can no longer be disputed or proven forged.
            _disputableRound(agreementId, roundId);
            d.batchIndex = evidence.batchIndex;
            // position < entries / 6 <= 256 parties once the proof below checks, so it fits 16 bits.
            d.position = uint16(evidence.position);
        } else {
            revert RoundLedgerNoOpenDispute(agreementId, roundId, commitment.partner);
        }
        if (!_isHonestCommitment(evidence, commitment, signature, true)) revert RoundLedgerInvalidAnswer();
        d.status = DisputeStatus.Answered;
        if (status == DisputeStatus.Open) _closeDispute(agreementId, roundId);
        emit DisputeAnswered(agreementId, roundId, commitment.partner);
    }

    /// @inheritdoc IRoundLedger
    function voidDisputedEntry(uint256 agreementId, uint64 roundId, address party, uint256[] calldata wordsAtOpen)
        external
    {
        EntryDispute storage d = _entryDisputes[agreementId][roundId][party];
        if (d.status != DisputeStatus.Open) revert RoundLedgerNoOpenDispute(agreementId, roundId, party);
        if (block.timestamp <= d.answerBy) revert RoundLedgerAnswerWindowOpen(d.answerBy);
        _requireNoLaterRoundOpen(agreementId, roundId);
        _checkWords(_snapshots[agreementId][roundId].atOpen, wordsAtOpen);
        d.status = DisputeStatus.Voided;
        _closeDispute(agreementId, roundId);
        // The dispute exists, so `party` is a party.
        // slither-disable-next-line unused-return
        (, uint256 index) = agreements.partyIndex(agreementId, party);
        uint32 restored = _removeEntry(agreementId, roundId, party, index, d.epsilon, wordsAtOpen);
        emit DisputedEntryVoided(agreementId, roundId, party, restored);
    }

    /// @inheritdoc IRoundLedger
    function restoreVoidedRound(
        uint256 agreementId,
        uint64 roundId,
        uint256[] calldata wordsAtOpen,
        uint256[] calldata wordsAtClose
    ) external {
        Snapshots storage snapshots = _snapshots[agreementId][roundId];
        if (!snapshots.restorePending) revert RoundLedgerNothingToRestore(agreementId, roundId);
        _requireNoLaterRoundOpen(agreementId, roundId);
        _checkWords(snapshots.atOpen, wordsAtOpen);
        _checkWords(snapshots.atClose, wordsAtClose);
        snapshots.restorePending = false;
        --_openDisputes[agreementId];
        mapping(uint256 => uint256) storage epsilons = _epsilonWords[agreementId];
        mapping(uint256 => uint256) storage submitted = _submitted[agreementId][roundId];
        for (uint256 w; w < wordsAtOpen.length; ++w) {
            // The round's entries of the 8 parties of word w: bits 8w..8w+7 of the round's bitmap.
            uint256 entered = submitted[w >> 5] >> ((w & 31) * 8) & 0xff;
            if (entered != 0) {
                epsilons[w] = EpsilonLanes.subtractSpent(epsilons[w], wordsAtOpen[w], wordsAtClose[w], entered);
            }
        }
        // Clear the round's entries: each was given back once, and none can be voided or challenged again.
        for (uint256 b; b < (wordsAtOpen.length + 31) >> 5; ++b) {
            delete submitted[b];
        }
        emit VoidedRoundRestored(agreementId, roundId);
    }

    /// @inheritdoc IRoundLedger
    function markChallengeExecuted(uint256 challengeId) external returns (Challenge memory) {
        if (msg.sender != address(_vault)) revert RoundLedgerNotVault(msg.sender);
        Challenge storage c = _existingChallenge(challengeId);
        if (c.status != ChallengeStatus.Upheld) revert RoundLedgerInvalidChallengeStatus(challengeId, c.status);
        Round storage r = _rounds[c.agreementId][c.round];
        uint256 endsAt = r.status == RoundStatus.Open ? type(uint256).max : uint256(r.finalizedAt) + disputeWindow;
        if (block.timestamp < endsAt) revert RoundLedgerDisputeWindowOpen(challengeId, endsAt);
        c.status = ChallengeStatus.Executed;
        --_liveChallenges[c.agreementId][c.partner];
        emit ChallengeExecuted(challengeId);
        return c;
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
        return _existingRound(agreementId, roundId);
    }

    /// @inheritdoc IRoundLedger
    function cumulativeEpsilon(uint256 agreementId, address partner) external view returns (uint32) {
        (bool isParty, uint256 index) = agreements.partyIndex(agreementId, partner);
        if (!isParty) return 0;
        return EpsilonLanes.lane(_epsilonWords[agreementId][index >> 3], index);
    }

    /// @inheritdoc IRoundLedger
    function hasSubmitted(uint256 agreementId, uint64 roundId, address partner) external view returns (bool) {
        (bool isParty, uint256 index) = agreements.partyIndex(agreementId, partner);
        return isParty && _hasEntry(agreementId, roundId, index);
    }

    /// @inheritdoc IRoundLedger
    function challengeOf(uint256 challengeId) external view returns (Challenge memory) {
        return _existingChallenge(challengeId);
    }

    /// @inheritdoc IRoundLedger
    function isStakeLocked(uint256 agreementId, address partner) external view returns (bool) {
        return openRoundOf[agreementId] != 0 || block.timestamp < _disputeEndsAt[agreementId]
            || _liveChallenges[agreementId][partner] != 0;
    }

    /// @inheritdoc IRoundLedger
    function entryDispute(uint256 agreementId, uint64 roundId, address party)
        external
        view
        returns (EntryDispute memory)
    {
        return _entryDisputes[agreementId][roundId][party];
    }

    /// @inheritdoc IRoundLedger
    function isClaimBlocked(uint256 agreementId, uint64 roundId, address partner) external view returns (bool) {
        if (_openRoundDisputes[agreementId][roundId] != 0) return true;
        uint256 id = _challengeOf[agreementId][roundId][partner];
        return id != 0 && _challenges[id].status != ChallengeStatus.Dismissed;
    }

    /// @inheritdoc IRoundLedger
    function commitmentDigest(UpdateCommitment calldata c) public view returns (bytes32) {
        return _hashTypedDataV4(
            keccak256(
                abi.encode(
                    UPDATE_COMMITMENT_TYPEHASH,
                    c.agreementId,
                    c.round,
                    c.partner,
                    c.envelopeDigest,
                    c.manifestDigest,
                    c.cumulativeEpsilon,
                    c.sampleCount
                )
            )
        );
    }

    /// @inheritdoc IRoundLedger
    function commitmentLeaf(UpdateCommitment calldata c, bytes calldata signature) public view returns (bytes32) {
        // Hashed twice so that no leaf can pass for an inner node (both would hash 64 bytes).
        return keccak256(bytes.concat(keccak256(abi.encode(commitmentDigest(c), keccak256(signature)))));
    }

    /*//////////////////////////////////////////////////////////////
                                INTERNAL
    //////////////////////////////////////////////////////////////*/

    /// @dev Marks `index` as submitted in the round and raises its cumulative epsilon, after the checks.
    function _recordSubmission(uint256 agreementId, uint64 roundId, uint256 index, uint256 epsilon, uint256 cap)
        private
    {
        mapping(uint256 => uint256) storage submitted = _submitted[agreementId][roundId];
        uint256 bit = 1 << (index & 255);
        uint256 word = submitted[index >> 8];
        if (word & bit != 0) revert RoundLedgerAlreadySubmitted(agreementId, roundId, msg.sender);
        submitted[index >> 8] = word | bit;
        mapping(uint256 => uint256) storage epsilons = _epsilonWords[agreementId];
        epsilons[index >> 3] = _spend(epsilons[index >> 3], (index << 32) | epsilon, cap, agreementId);
    }

    /// @dev What the batch loop needs besides its entries; in memory, because the loop's hot variables
    /// already fill the stack.
    struct BatchContext {
        uint256 agreementId;
        uint64 roundId;
        uint256 epsilonCap;
        uint256 partyCount;
        uint256 skipped; // bit i: entry i was skipped, its party had already submitted in the round
        uint256 skippedCount;
    }

    /// @dev Checks and records every entry of a batch. Entries are sorted, so the parties of one epsilon word
    /// (8 lanes) come together: each word is read and written once, and so is each bitmap word (256 bits,
    /// i.e. 32 epsilon words). This loop is the per-update cost of a batch: keep it lean.
    /// The caller has checked that the last (largest) index is in range.
    function _applyEntries(BatchContext memory ctx, bytes calldata entries) private {
        if (partners.suspendedCount() != 0) _requireApprovedParties(ctx, entries);
        uint256 wordKey = _NO_WORD;
        uint256 epsilonWord;
        uint256 submittedWord;
        uint256 nextMinIndex;
        // unchecked: offsets stay below entries.length, indexes below 2^16 and lanes within 32 bits.
        unchecked {
            for (uint256 offset; offset < entries.length; offset += _ENTRY_SIZE) {
                uint256 entry;
                // The 6 bytes at `offset` lie inside `entries`: its length is a multiple of 6 (checked by the caller).
                // solhint-disable-next-line no-inline-assembly
                assembly ("memory-safe") {
                    entry := shr(208, calldataload(add(entries.offset, offset)))
                }
                uint256 index = entry >> 32;
                if (index < nextMinIndex) revert RoundLedgerUnsortedEntries(offset / _ENTRY_SIZE);
                nextMinIndex = index + 1;
                if (index >> 3 != wordKey) {
                    (epsilonWord, submittedWord) = _switchWords(ctx, wordKey, index >> 3, epsilonWord, submittedWord);
                    wordKey = index >> 3;
                }
                uint256 bit = 1 << (index & 255);
                if (submittedWord & bit != 0) {
                    // Submitted directly (a batch never repeats an index): skip it, do not sink the batch.
                    ctx.skipped |= 1 << (offset / _ENTRY_SIZE);
                    ++ctx.skippedCount;
                    continue;
                }
                submittedWord |= bit;
                // The budget checks of _spend, inline: this is the per-update cost of a batch.
                uint256 shift = (index & 7) << 5;
                if (uint32(entry) <= uint32(epsilonWord >> shift) || uint32(entry) > ctx.epsilonCap) {
                    _spend(epsilonWord, entry, ctx.epsilonCap, ctx.agreementId); // reverts with the error that applies
                }
                epsilonWord = (epsilonWord & ~(uint256(type(uint32).max) << shift)) | (uint256(uint32(entry)) << shift);
            }
        }
        _epsilonWords[ctx.agreementId][wordKey] = epsilonWord;
        _submitted[ctx.agreementId][ctx.roundId][wordKey >> 5] = submittedWord;
    }

    /// @dev Writes back the cached words of epsilon word `oldKey` and loads those of `newKey`. The bitmap word
    /// changes only when the walk crosses a multiple of 256 parties.
    function _switchWords(
        BatchContext memory ctx,
        uint256 oldKey,
        uint256 newKey,
        uint256 epsilonWord,
        uint256 submittedWord
    ) private returns (uint256, uint256) {
        mapping(uint256 => uint256) storage epsilons = _epsilonWords[ctx.agreementId];
        mapping(uint256 => uint256) storage submitted = _submitted[ctx.agreementId][ctx.roundId];
        if (oldKey == _NO_WORD) {
            submittedWord = submitted[newKey >> 5];
        } else {
            epsilons[oldKey] = epsilonWord;
            if (oldKey >> 5 != newKey >> 5) {
                submitted[oldKey >> 5] = submittedWord;
                submittedWord = submitted[newKey >> 5];
            }
        }
        return (epsilons[newKey], submittedWord);
    }

    function _revertAlreadySubmitted(BatchContext memory ctx, uint256 index) private view {
        revert RoundLedgerAlreadySubmitted(ctx.agreementId, ctx.roundId, agreements.partyAt(ctx.agreementId, index));
    }

    /// @dev Only needed while some partner is suspended; a separate pass keeps the common case cheap.
    /// An index past the parties can only come before the (range-checked) last entry, so the batch is unsorted:
    /// it is skipped here, and the walk reports the batch as it does when nobody is suspended.
    function _requireApprovedParties(BatchContext memory ctx, bytes calldata entries) private view {
        for (uint256 offset; offset < entries.length; offset += _ENTRY_SIZE) {
            uint256 index = uint48(bytes6(entries[offset:offset + _ENTRY_SIZE])) >> 32;
            if (index < ctx.partyCount) _requireApprovedParty(ctx.agreementId, index);
        }
    }

    function _requireApprovedParty(uint256 agreementId, uint256 index) private view {
        address party = agreements.partyAt(agreementId, index);
        if (!partners.isApproved(party)) revert RoundLedgerPartnerNotApproved(party);
    }

    /// @dev Checks that the evidence is an anchored batch holding `commitment` at its position, and returns
    /// whether that commitment is what the entry's party signed, for what was anchored.
    function _isHonestCommitment(
        BatchEvidence calldata evidence,
        UpdateCommitment calldata commitment,
        bytes calldata signature,
        bool walletsToo
    ) private view returns (bool) {
        uint256 agreementId = evidence.agreementId;
        _checkAnchored(evidence);
        uint256 count = evidence.entries.length / _ENTRY_SIZE;
        bytes32 leaf = commitmentLeaf(commitment, signature);
        if (!PositionalMerkle.verify(evidence.proof, evidence.root, leaf, evidence.position, count)) {
            revert RoundLedgerInvalidMerkleProof();
        }
        (uint256 index, uint256 epsilon) = _entryAt(evidence.entries, evidence.position);
        address party = agreements.partyAt(agreementId, index);
        return commitment.agreementId == agreementId && commitment.round == evidence.round
            && commitment.partner == party && commitment.cumulativeEpsilon == epsilon
            && _withinSampleBound(agreementId, evidence.round, commitment.sampleCount)
            && (walletsToo
                ? SignatureChecker.isValidSignatureNow(party, commitmentDigest(commitment), signature)
                : _signedBy(party, commitmentDigest(commitment), signature));
    }

    /// @dev Reverts unless the evidence's root, document digest and entries are a batch as anchored.
    function _checkAnchored(BatchEvidence calldata evidence) private view {
        bytes32 stored = _batches[evidence.agreementId][evidence.round][evidence.batchIndex].digest;
        if (stored == bytes32(0)) {
            revert RoundLedgerUnknownBatch(evidence.agreementId, evidence.round, evidence.batchIndex);
        }
        bytes32 anchored = keccak256(abi.encode(evidence.root, evidence.documentDigest, keccak256(evidence.entries)));
        if (anchored != stored) revert RoundLedgerBatchMismatch();
    }

    /// @dev Voids the round (a forged entry) and revokes its allocation when it had one; what the round spent
    /// stays charged until {restoreVoidedRound}, and no round opens before that.
    function _voidRound(uint256 agreementId, uint64 roundId, Round storage r, uint256 batchIndex, uint256 position)
        private
    {
        RoundStatus previous = r.status;
        if (previous == RoundStatus.Open) {
            _closeVoided(agreementId, roundId, r);
        } else {
            r.status = RoundStatus.Voided;
            _markRestorePending(agreementId, roundId);
        }
        emit RoundVoided(agreementId, roundId, batchIndex, position);
        // The results court may have revoked the payouts already (an upheld results challenge): a forgery must
        // still be provable, or the epsilons its round spent could never be restored.
        if (
            previous == RoundStatus.Finalized && r.payoutTotal != 0
                && !_vault.allocation(agreementId, roundId).revoked
        ) _vault.revokeAllocation(agreementId, roundId);
    }

    /// @dev Closes an open round as voided (forged entry, or abandoned), taking its closing epsilon snapshot.
    function _closeVoided(uint256 agreementId, uint64 roundId, Round storage r) private {
        r.status = RoundStatus.Voided;
        r.finalizedAt = uint64(block.timestamp);
        openRoundOf[agreementId] = 0;
        _recordClose(agreementId, roundId, agreements.roundConfigAt(agreementId, r.agreementVersion).partyCount);
        _markRestorePending(agreementId, roundId);
    }

    function _markRestorePending(uint256 agreementId, uint64 roundId) private {
        _snapshots[agreementId][roundId].restorePending = true;
        ++_openDisputes[agreementId];
    }

    /// @dev Takes the closing snapshot of a round: the hash is kept, the words go in an event for the callers
    /// of {restoreVoidedRound}.
    function _recordClose(uint256 agreementId, uint64 roundId, uint256 partyCount) private {
        uint256[] memory words = _epsilonWordsOf(agreementId, partyCount);
        _snapshots[agreementId][roundId].atClose = keccak256(abi.encodePacked(words));
        emit EpsilonsAtClose(agreementId, roundId, words);
    }

    /// @dev A void of round `roundId` subtracts what its entries spent (close - open, or entry - open). That is
    /// exact only while no later round is open: a later round's entries are charged on top of the current words,
    /// and its own close - open must stay what they spent. A later open round ends by its deadline plus grace.
    function _requireNoLaterRoundOpen(uint256 agreementId, uint64 roundId) private view {
        uint64 open = openRoundOf[agreementId];
        if (open != 0 && open != roundId) revert RoundLedgerRoundAlreadyOpen(agreementId, open);
    }

    function _checkWords(bytes32 recorded, uint256[] calldata words) private pure {
        if (keccak256(abi.encodePacked(words)) != recorded) revert RoundLedgerEpsilonWordsMismatch();
    }

    /// @dev Whether party `index` has a live entry (charged, not voided) in the round.
    function _hasEntry(uint256 agreementId, uint64 roundId, uint256 index) private view returns (bool) {
        return _submitted[agreementId][roundId][index >> 8] & (1 << (index & 255)) != 0;
    }

    /// @dev Whether the entry at the evidence's position had its commitment revealed and checked.
    function _wasAnswered(BatchEvidence calldata evidence) private view returns (bool) {
        (uint256 index,) = _entryAt(evidence.entries, evidence.position);
        address party = agreements.partyAt(evidence.agreementId, index);
        EntryDispute storage d = _entryDisputes[evidence.agreementId][evidence.round][party];
        return d.status == DisputeStatus.Answered && d.batchIndex == evidence.batchIndex
            && d.position == evidence.position;
    }

    /// @dev Removes `party`'s entry of the round: gives back what it spent (its anchored cumulative `anchored`
    /// minus the party's value when the round opened), clears its bit (it can no longer be challenged, and while
    /// the round is open the party may enter again) and dismisses a challenge of it. When the round was voided
    /// and given back already, the bit is clear and nothing changes. Returns the party's epsilon afterwards.
    function _removeEntry(
        uint256 agreementId,
        uint64 roundId,
        address party,
        uint256 index,
        uint32 anchored,
        uint256[] calldata wordsAtOpen
    ) private returns (uint32) {
        mapping(uint256 => uint256) storage epsilons = _epsilonWords[agreementId];
        uint256 word = epsilons[index >> 3];
        if (!_hasEntry(agreementId, roundId, index)) return EpsilonLanes.lane(word, index);
        _submitted[agreementId][roundId][index >> 8] &= ~(1 << (index & 255));
        // The entry raised the party from its value at open to `anchored` (only the round's own entries move the
        // words while it is open), and every later spend was charged on top: this subtraction cannot underflow.
        uint32 restored =
            EpsilonLanes.lane(word, index) - (anchored - EpsilonLanes.lane(wordsAtOpen[index >> 3], index));
        epsilons[index >> 3] = EpsilonLanes.withLane(word, index, restored);
        uint256 challengeId = _challengeOf[agreementId][roundId][party];
        ChallengeStatus status = _challenges[challengeId].status;
        if (status == ChallengeStatus.Open || status == ChallengeStatus.Upheld) {
            // The entry it names is not the party's: it cannot be slashed for it.
            _challenges[challengeId].status = ChallengeStatus.Dismissed;
            --_liveChallenges[agreementId][party];
            emit ChallengeResolved(challengeId, false, bytes32(0));
        }
        return restored;
    }

    function _closeDispute(uint256 agreementId, uint64 roundId) private {
        --_openDisputes[agreementId];
        --_openRoundDisputes[agreementId][roundId];
    }

    /// @dev The agreement's packed epsilon words (at most 32: 256 parties, 8 to a word).
    function _epsilonWordsOf(uint256 agreementId, uint256 partyCount) private view returns (uint256[] memory words) {
        words = new uint256[]((partyCount + 7) / 8);
        mapping(uint256 => uint256) storage epsilons = _epsilonWords[agreementId];
        for (uint256 w; w < words.length; ++w) {
            words[w] = epsilons[w];
        }
    }

    /// @dev Whether `signature` is `party`'s ECDSA signature of `digest`. ECDSA alone: an ERC-1271 wallet could
    /// revoke a signature after it was anchored and so turn an honest entry into a "forgery" that voids every
    /// honest partner's round. A batched commitment is judged the same on the day it is anchored and forever
    /// after; a smart-wallet party submits directly (submitUpdate) instead.
    function _signedBy(address party, bytes32 digest, bytes calldata signature) private pure returns (bool) {
        // The error kind does not matter: any failure to recover `party` makes the entry unproven.
        // slither-disable-next-line unused-return
        (address signer,,) = ECDSA.tryRecover(digest, signature);
        return signer == party && signer != address(0);
    }

    /// @dev Whether `sampleCount` is within the bound of the terms the round ran under (amendments wait for no
    /// open round, so a round runs under the one version it opened on).
    function _withinSampleBound(uint256 agreementId, uint64 roundId, uint64 sampleCount) private view returns (bool) {
        uint32 version = _rounds[agreementId][roundId].agreementVersion;
        return sampleCount != 0 && sampleCount <= agreements.roundConfigAt(agreementId, version).maxSampleCount;
    }

    /// @dev Returns `word` with the cumulative epsilon of `entry`'s party raised to `entry`'s epsilon, after
    /// the budget checks. `entry` is `index << 32 | epsilon`, as in a batch.
    function _spend(uint256 word, uint256 entry, uint256 cap, uint256 agreementId) private view returns (uint256) {
        uint256 index = entry >> 32;
        uint256 committed = uint32(entry);
        // Inline lane arithmetic (not EpsilonLanes): this runs once per update of a batch, and is kept lean.
        uint256 shift = (index & 7) * 32;
        uint256 previous = uint32(word >> shift);
        if (committed <= previous) {
            revert RoundLedgerEpsilonNotIncreasing(_partyForError(agreementId, index), previous, committed);
        }
        if (committed > cap) revert RoundLedgerBudgetExceeded(_partyForError(agreementId, index), committed, cap);
        return (word & ~(uint256(type(uint32).max) << shift)) | (committed << shift);
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

    function _entryAt(bytes calldata entries, uint256 position)
        private
        pure
        returns (uint256 index, uint256 epsilon)
    {
        uint256 start = position * _ENTRY_SIZE;
        uint48 entry = uint48(bytes6(entries[start:start + _ENTRY_SIZE]));
        return (entry >> 32, uint32(entry));
    }

    function _activeConfig(uint256 agreementId) private view returns (IAgreementRegistry.RoundConfig memory config) {
        config = agreements.roundConfig(agreementId);
        if (config.status != IAgreementRegistry.AgreementStatus.Active) revert RoundLedgerAgreementNotActive(agreementId);
    }

    function _existingRound(uint256 agreementId, uint64 roundId) private view returns (Round storage r) {
        r = _rounds[agreementId][roundId];
        if (r.status == RoundStatus.None) revert RoundLedgerUnknownRound(agreementId, roundId);
    }

    function _acceptingRound(uint256 agreementId, uint64 roundId) private view returns (Round storage r) {
        r = _existingRound(agreementId, roundId);
        if (r.status != RoundStatus.Open) revert RoundLedgerRoundNotOpen(agreementId, roundId);
        if (block.timestamp > r.deadline) revert RoundLedgerDeadlinePassed(agreementId, roundId, r.deadline);
    }

    /// @dev A round can be disputed while open and until its dispute window after finalization ends. The window
    /// is [finalizedAt, finalizedAt + disputeWindow): at its end claims, unstaking and slashing open, so a
    /// dispute raised at that same second could come after the stake or reward it should hold has left.
    function _disputableRound(uint256 agreementId, uint64 roundId) private view returns (Round storage r) {
        r = _existingRound(agreementId, roundId);
        bool open = r.status == RoundStatus.Open
            || (r.status == RoundStatus.Finalized && block.timestamp < uint256(r.finalizedAt) + disputeWindow);
        if (!open) revert RoundLedgerDisputeWindowClosed(agreementId, roundId);
    }

    function _existingChallenge(uint256 challengeId) private view returns (Challenge storage c) {
        c = _challenges[challengeId];
        if (c.status == ChallengeStatus.None) revert RoundLedgerUnknownChallenge(challengeId);
    }

    function _onlyAuditor() private view {
        if (!IAccessControl(address(partners)).hasRole(LeptonRoles.AUDITOR, msg.sender)) {
            revert RoundLedgerNotAuditor(msg.sender);
        }
    }

    /// @dev Only the coordinator named in the terms in force acts on an agreement's rounds.
    function _onlyCoordinatorOf(IAgreementRegistry.RoundConfig memory config) private view {
        if (msg.sender != config.coordinator) revert RoundLedgerNotCoordinator(msg.sender);
    }
}
