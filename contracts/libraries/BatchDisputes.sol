// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.28;

import {ECDSA} from "@openzeppelin/contracts/utils/cryptography/ECDSA.sol";
import {SignatureChecker} from "@openzeppelin/contracts/utils/cryptography/SignatureChecker.sol";
import {IRoundLedger} from "../../interfaces/IRoundLedger.sol";
import {IAgreementRegistry} from "../../interfaces/IAgreementRegistry.sol";
import {LedgerState} from "./LedgerState.sol";
import {EpsilonLanes} from "./EpsilonLanes.sol";
import {PartyBitmap} from "./PartyBitmap.sol";
import {PositionalMerkle} from "./PositionalMerkle.sol";

/// @title BatchDisputes
/// @notice What keeps batched anchoring honest after the fact: a party's dispute of its own batch entry and its
/// answer or void, auditors' proofs of forged commitments, and the restoration of a voided round's epsilon. An
/// external library: RoundLedger delegates these functions here, on its own storage; behaviour, events and
/// errors are documented in {IRoundLedger} ("Batch-entry disputes", "Epsilon charged").
library BatchDisputes {
    using LedgerState for LedgerState.Layout;

    /// @notice {IRoundLedger-proveForgedCommitment}, run on the ledger's storage.
    function proveForgedCommitment(
        LedgerState.Layout storage s,
        LedgerState.Env calldata env,
        IRoundLedger.BatchEvidence calldata evidence,
        IRoundLedger.UpdateCommitment calldata commitment,
        bytes calldata signature
    ) external {
        LedgerState.onlyAuditor(env.partners);
        uint256 agreementId = evidence.agreementId;
        uint64 roundId = evidence.round;
        IRoundLedger.Round storage r = s.disputableRound(env.disputeWindow, agreementId, roundId);
        // An entry whose commitment was revealed and checked ({answerDispute}) stays judged as it was then.
        if (_isHonestCommitment(s, env, evidence, commitment, signature, false) || _wasAnswered(s, env, evidence)) {
            revert IRoundLedger.RoundLedgerCommitmentValid();
        }
        // Whose entry it is; its epsilon is given back from the round's snapshots at the restore.
        // slither-disable-next-line unused-return
        (uint256 index,) = LedgerState.entryAt(evidence.entries, evidence.position);
        if (_stillCharges(s, env, evidence, index)) s.forgedEntry[agreementId][roundId] = index + 1;
        _voidRound(s, env, r, evidence);
    }

    /// @notice {IRoundLedger-disputeBatchEntry}, run on the ledger's storage.
    function disputeBatchEntry(
        LedgerState.Layout storage s,
        LedgerState.Env calldata env,
        IRoundLedger.BatchEvidence calldata evidence
    ) external {
        uint256 agreementId = evidence.agreementId;
        uint64 roundId = evidence.round;
        _requireEntryDisputable(s, env.disputeWindow, agreementId, roundId);
        _checkAnchored(s, evidence);
        if (evidence.position >= evidence.entries.length / LedgerState.ENTRY_SIZE) {
            revert IRoundLedger.RoundLedgerInvalidMerkleProof();
        }
        (uint256 index, uint256 epsilon) = LedgerState.entryAt(evidence.entries, evidence.position);
        address party = env.agreements.partyAt(agreementId, index);
        if (msg.sender != party) revert IRoundLedger.RoundLedgerNotEntryParty(msg.sender, party);
        // Only an entry that charged the party can be disputed: not one skipped (the party submitted directly,
        // and a void would take back that spend) nor one voided already.
        if (
            s.batches[agreementId][roundId][evidence.batchIndex].skipped >> evidence.position & 1 != 0
                || !s.hasEntry(agreementId, roundId, index)
        ) revert IRoundLedger.RoundLedgerNoSubmission(agreementId, roundId, party);
        IRoundLedger.EntryDispute storage d = s.entryDisputes[agreementId][roundId][party];
        // A voided entry's party may have entered again since (the round was still open): that entry is disputable.
        if (d.status == IRoundLedger.DisputeStatus.Open || d.status == IRoundLedger.DisputeStatus.Answered) {
            revert IRoundLedger.RoundLedgerEntryAlreadyDisputed(agreementId, roundId, party);
        }
        uint64 answerBy = uint64(block.timestamp) + env.disputeWindow;
        d.status = IRoundLedger.DisputeStatus.Open;
        // position < entries / 6 <= 256 parties, so it fits 16 bits.
        d.position = uint16(evidence.position);
        d.epsilon = uint32(epsilon);
        d.answerBy = answerBy;
        d.batchIndex = evidence.batchIndex;
        ++s.openDisputes[agreementId];
        ++s.openRoundDisputes[agreementId][roundId];
        emit IRoundLedger.BatchEntryDisputed(
            agreementId, roundId, party, evidence.batchIndex, evidence.position, answerBy
        );
    }

    /// @notice {IRoundLedger-answerDispute}, run on the ledger's storage.
    function answerDispute(
        LedgerState.Layout storage s,
        LedgerState.Env calldata env,
        IRoundLedger.BatchEvidence calldata evidence,
        IRoundLedger.UpdateCommitment calldata commitment,
        bytes calldata signature
    ) external {
        uint256 agreementId = evidence.agreementId;
        uint64 roundId = evidence.round;
        IRoundLedger.EntryDispute storage d = s.entryDisputes[agreementId][roundId][commitment.partner];
        IRoundLedger.DisputeStatus status = d.status;
        if (status == IRoundLedger.DisputeStatus.Open) {
            if (block.timestamp > d.answerBy) revert IRoundLedger.RoundLedgerAnswerWindowClosed(d.answerBy);
            if (evidence.batchIndex != d.batchIndex || evidence.position != d.position) {
                revert IRoundLedger.RoundLedgerInvalidAnswer();
            }
        } else if (status == IRoundLedger.DisputeStatus.None) {
            // A reveal before any dispute: a smart wallet's ERC-1271 signature is judged now, while the wallet
            // accepts it, and that judgement is final; the entry can no longer be disputed or proven forged.
            // slither-disable-next-line unused-return
            s.disputableRound(env.disputeWindow, agreementId, roundId);
            d.batchIndex = evidence.batchIndex;
            // position < entries / 6 <= 256 parties once the proof below checks, so it fits 16 bits.
            d.position = uint16(evidence.position);
        } else {
            revert IRoundLedger.RoundLedgerNoOpenDispute(agreementId, roundId, commitment.partner);
        }
        if (!_isHonestCommitment(s, env, evidence, commitment, signature, true)) {
            revert IRoundLedger.RoundLedgerInvalidAnswer();
        }
        d.status = IRoundLedger.DisputeStatus.Answered;
        if (status == IRoundLedger.DisputeStatus.Open) _closeDispute(s, agreementId, roundId);
        emit IRoundLedger.DisputeAnswered(agreementId, roundId, commitment.partner);
    }

    /// @notice {IRoundLedger-voidDisputedEntry}, run on the ledger's storage.
    function voidDisputedEntry(
        LedgerState.Layout storage s,
        LedgerState.Env calldata env,
        uint256 agreementId,
        uint64 roundId,
        address party,
        uint256[] calldata wordsAtOpen
    ) external {
        IRoundLedger.EntryDispute storage d = s.entryDisputes[agreementId][roundId][party];
        if (d.status != IRoundLedger.DisputeStatus.Open) {
            revert IRoundLedger.RoundLedgerNoOpenDispute(agreementId, roundId, party);
        }
        if (block.timestamp <= d.answerBy) revert IRoundLedger.RoundLedgerAnswerWindowOpen(d.answerBy);
        _requireNoLaterRoundOpen(s, agreementId, roundId);
        _checkWords(s.snapshots[agreementId][roundId].atOpen, wordsAtOpen);
        d.status = IRoundLedger.DisputeStatus.Voided;
        _closeDispute(s, agreementId, roundId);
        // The dispute exists, so `party` is a party.
        // slither-disable-next-line unused-return
        (, uint256 index) = env.agreements.partyIndex(agreementId, party);
        uint256 bits = env.agreements.roundConfig(agreementId).epsilonLaneBits;
        uint256 atOpen = EpsilonLanes.lane(wordsAtOpen[EpsilonLanes.wordOf(index, bits)], index, bits);
        uint32 restored = _removeEntry(s, agreementId, roundId, party, index, d.epsilon - atOpen, bits);
        emit IRoundLedger.DisputedEntryVoided(agreementId, roundId, party, restored);
    }

    /// @notice {IRoundLedger-restoreVoidedRound}, run on the ledger's storage.
    function restoreVoidedRound(
        LedgerState.Layout storage s,
        LedgerState.Env calldata env,
        uint256 agreementId,
        uint64 roundId,
        uint256[] calldata wordsAtOpen,
        uint256[] calldata wordsAtClose
    ) external {
        LedgerState.Snapshots storage snapshots = s.snapshots[agreementId][roundId];
        if (!snapshots.restorePending) revert IRoundLedger.RoundLedgerNothingToRestore(agreementId, roundId);
        _requireNoLaterRoundOpen(s, agreementId, roundId);
        _checkWords(snapshots.atOpen, wordsAtOpen);
        _checkWords(snapshots.atClose, wordsAtClose);
        snapshots.restorePending = false;
        --s.openDisputes[agreementId];
        // Only the entry proven forged is given back. Every other entry's update was revealed to the coordinator
        // whether or not the round pays: a direct submission its party signed, or an anchored entry that keeps
        // its party's epsilon unless the party disputes it (voided rounds stay disputable for their window).
        uint256 forged = s.forgedEntry[agreementId][roundId];
        if (forged != 0) {
            uint256 index = forged - 1;
            // A dispute of the entry may have voided it since the proof: then it gave its spend back already.
            if (s.hasEntry(agreementId, roundId, index)) {
                PartyBitmap.unset(s.submitted[agreementId][roundId], index);
                uint256 bits = env.agreements.roundConfig(agreementId).epsilonLaneBits;
                uint256 w = EpsilonLanes.wordOf(index, bits);
                uint256 inWord = index % EpsilonLanes.perWord(bits);
                mapping(uint256 => uint256) storage epsilons = s.epsilonWords[agreementId];
                epsilons[w] =
                    EpsilonLanes.subtractSpent(epsilons[w], wordsAtOpen[w], wordsAtClose[w], 1 << inWord, bits);
            }
        }
        emit IRoundLedger.VoidedRoundRestored(agreementId, roundId);
    }

    /// @dev Checks that the evidence is an anchored batch holding `commitment` at its position, and returns
    /// whether that commitment is what the entry's party signed, for what was anchored.
    function _isHonestCommitment(
        LedgerState.Layout storage s,
        LedgerState.Env calldata env,
        IRoundLedger.BatchEvidence calldata evidence,
        IRoundLedger.UpdateCommitment calldata commitment,
        bytes calldata signature,
        bool walletsToo
    ) private view returns (bool) {
        _checkAnchored(s, evidence);
        bytes32 leaf = LedgerState.commitmentLeaf(env.domainSeparator, commitment, signature);
        uint256 count = evidence.entries.length / LedgerState.ENTRY_SIZE;
        if (!PositionalMerkle.verify(evidence.proof, evidence.root, leaf, evidence.position, count)) {
            revert IRoundLedger.RoundLedgerInvalidMerkleProof();
        }
        (uint256 index, uint256 epsilon) = LedgerState.entryAt(evidence.entries, evidence.position);
        address party = env.agreements.partyAt(evidence.agreementId, index);
        if (
            commitment.agreementId != evidence.agreementId || commitment.round != evidence.round
                || commitment.partner != party || commitment.cumulativeEpsilon != epsilon
                || !_withinSampleBound(s, env.agreements, evidence.agreementId, evidence.round, commitment.sampleCount)
        ) return false;
        bytes32 digest = LedgerState.commitmentDigest(env.domainSeparator, commitment);
        return walletsToo
            ? SignatureChecker.isValidSignatureNow(party, digest, signature)
            : _signedBy(party, digest, signature);
    }

    /// @dev Reverts unless the evidence's root, document digest and entries are a batch as anchored.
    function _checkAnchored(LedgerState.Layout storage s, IRoundLedger.BatchEvidence calldata evidence) private view {
        bytes32 stored = s.batches[evidence.agreementId][evidence.round][evidence.batchIndex].digest;
        if (stored == bytes32(0)) {
            revert IRoundLedger.RoundLedgerUnknownBatch(evidence.agreementId, evidence.round, evidence.batchIndex);
        }
        bytes32 anchored = keccak256(abi.encode(evidence.root, evidence.documentDigest, keccak256(evidence.entries)));
        if (anchored != stored) revert IRoundLedger.RoundLedgerBatchMismatch();
    }

    /// @dev Voids the round (a forged entry) and revokes its allocation when it had one; what the round spent
    /// stays charged until {restoreVoidedRound}, and no round opens before that.
    function _voidRound(
        LedgerState.Layout storage s,
        LedgerState.Env calldata env,
        IRoundLedger.Round storage r,
        IRoundLedger.BatchEvidence calldata evidence
    ) private {
        uint256 agreementId = evidence.agreementId;
        uint64 roundId = evidence.round;
        IRoundLedger.RoundStatus previous = r.status;
        if (previous == IRoundLedger.RoundStatus.Open) {
            s.closeVoided(env.agreements, agreementId, roundId, r);
        } else {
            r.status = IRoundLedger.RoundStatus.Voided;
            s.markRestorePending(agreementId, roundId);
        }
        emit IRoundLedger.RoundVoided(agreementId, roundId, evidence.batchIndex, evidence.position);
        // The results court may have revoked the payouts already (an upheld results challenge): a forgery must
        // still be provable, or the epsilons its round spent could never be restored.
        if (
            previous == IRoundLedger.RoundStatus.Finalized && r.payoutTotal != 0
                && !env.vault.allocation(agreementId, roundId).revoked
        ) env.vault.revokeAllocation(agreementId, roundId);
    }

    /// @dev A batch entry can be disputed while its round is open, and for `disputeWindow` after the round ended,
    /// finalized or voided (`finalizedAt` is when it ended): a voided round gives back only the entry proven
    /// forged, so its party must still be able to dispute any other entry it never signed.
    function _requireEntryDisputable(
        LedgerState.Layout storage s,
        uint64 disputeWindow,
        uint256 agreementId,
        uint64 roundId
    ) private view {
        IRoundLedger.Round storage r = s.existingRound(agreementId, roundId);
        if (r.status != IRoundLedger.RoundStatus.Open && block.timestamp >= uint256(r.finalizedAt) + disputeWindow) {
            revert IRoundLedger.RoundLedgerDisputeWindowClosed(agreementId, roundId);
        }
    }

    /// @dev Whether the entry proven forged still charges its party: it was applied (not skipped: its party had
    /// submitted directly, and that spend is the party's) and not voided by its party's dispute (after which the
    /// party may have entered again, while the round was open).
    function _stillCharges(
        LedgerState.Layout storage s,
        LedgerState.Env calldata env,
        IRoundLedger.BatchEvidence calldata evidence,
        uint256 index
    ) private view returns (bool) {
        uint256 skipped = s.batches[evidence.agreementId][evidence.round][evidence.batchIndex].skipped;
        if (skipped >> evidence.position & 1 != 0) return false;
        address party = env.agreements.partyAt(evidence.agreementId, index);
        IRoundLedger.EntryDispute storage d = s.entryDisputes[evidence.agreementId][evidence.round][party];
        return !(
            d.status == IRoundLedger.DisputeStatus.Voided && d.batchIndex == evidence.batchIndex
                && d.position == evidence.position
        );
    }

    /// @dev A void of round `roundId` subtracts what its entries spent (close - open, or entry - open). That is
    /// exact only while no later round is open: a later round's entries are charged on top of the current words,
    /// and its own close - open must stay what they spent. A later open round ends by its deadline plus grace.
    function _requireNoLaterRoundOpen(LedgerState.Layout storage s, uint256 agreementId, uint64 roundId)
        private
        view
    {
        uint64 open = s.openRoundOf[agreementId];
        if (open != 0 && open != roundId) revert IRoundLedger.RoundLedgerRoundAlreadyOpen(agreementId, open);
    }

    function _checkWords(bytes32 recorded, uint256[] calldata words) private pure {
        if (keccak256(abi.encodePacked(words)) != recorded) revert IRoundLedger.RoundLedgerEpsilonWordsMismatch();
    }

    /// @dev Whether the entry at the evidence's position had its commitment revealed and checked.
    function _wasAnswered(
        LedgerState.Layout storage s,
        LedgerState.Env calldata env,
        IRoundLedger.BatchEvidence calldata evidence
    ) private view returns (bool) {
        // The entry's epsilon is not needed to know whose entry it is.
        // slither-disable-next-line unused-return
        (uint256 index,) = LedgerState.entryAt(evidence.entries, evidence.position);
        address party = env.agreements.partyAt(evidence.agreementId, index);
        IRoundLedger.EntryDispute storage d = s.entryDisputes[evidence.agreementId][evidence.round][party];
        return d.status == IRoundLedger.DisputeStatus.Answered && d.batchIndex == evidence.batchIndex
            && d.position == evidence.position;
    }

    /// @dev Removes `party`'s entry of the round: gives back what it `spent` (its anchored cumulative epsilon
    /// minus the party's value when the round opened, which the anchored value exceeds), clears its bit (it can no longer be challenged, and while
    /// the round is open the party may enter again) and dismisses a challenge of it. When the round was voided
    /// and given back already, the bit is clear and nothing changes. Returns the party's epsilon afterwards.
    function _removeEntry(
        LedgerState.Layout storage s,
        uint256 agreementId,
        uint64 roundId,
        address party,
        uint256 index,
        uint256 spent,
        uint256 bits
    ) private returns (uint32) {
        mapping(uint256 => uint256) storage epsilons = s.epsilonWords[agreementId];
        uint256 key = EpsilonLanes.wordOf(index, bits);
        uint256 word = epsilons[key];
        // Lanes are at most 32 bits wide.
        if (!s.hasEntry(agreementId, roundId, index)) return uint32(EpsilonLanes.lane(word, index, bits));
        PartyBitmap.unset(s.submitted[agreementId][roundId], index);
        // The entry raised the party from its value at open to `anchored` (only the round's own entries move the
        // words while it is open), and every later spend was charged on top: this subtraction cannot underflow.
        uint32 restored = uint32(EpsilonLanes.lane(word, index, bits) - spent);
        epsilons[key] = EpsilonLanes.withLane(word, index, bits, restored);
        _dismissChallengeOf(s, s.challengeOf[agreementId][roundId][party]);
        return restored;
    }

    /// @dev Dismisses the live challenge of a removed entry: the entry it names is not the party's, so the party
    /// cannot be slashed for it. `challengeId` 0 (none) has status None and is left alone.
    function _dismissChallengeOf(LedgerState.Layout storage s, uint256 challengeId) private {
        IRoundLedger.Challenge storage c = s.challenges[challengeId];
        if (c.status == IRoundLedger.ChallengeStatus.Open || c.status == IRoundLedger.ChallengeStatus.Upheld) {
            s.endChallenge(c, IRoundLedger.ChallengeStatus.Dismissed);
            emit IRoundLedger.ChallengeResolved(challengeId, false, bytes32(0));
        }
    }

    function _closeDispute(LedgerState.Layout storage s, uint256 agreementId, uint64 roundId) private {
        --s.openDisputes[agreementId];
        --s.openRoundDisputes[agreementId][roundId];
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
    function _withinSampleBound(
        LedgerState.Layout storage s,
        IAgreementRegistry agreements,
        uint256 agreementId,
        uint64 roundId,
        uint64 sampleCount
    ) private view returns (bool) {
        uint32 version = s.rounds[agreementId][roundId].agreementVersion;
        return sampleCount != 0 && sampleCount <= agreements.roundConfigAt(agreementId, version).maxSampleCount;
    }
}
