// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.28;

import {MessageHashUtils} from "@openzeppelin/contracts/utils/cryptography/MessageHashUtils.sol";
import {IRoundLedger} from "../../interfaces/IRoundLedger.sol";
import {IAgreementRegistry} from "../../interfaces/IAgreementRegistry.sol";
import {IPartnerRegistry} from "../../interfaces/IPartnerRegistry.sol";
import {IRewardVault} from "../../interfaces/IRewardVault.sol";
import {LeptonRoles} from "./LeptonRoles.sol";
import {PartyBitmap} from "./PartyBitmap.sol";
import {EpsilonLanes} from "./EpsilonLanes.sol";

/// @title LedgerState
/// @notice The RoundLedger's storage and the checks its parts share. RoundLedger holds one {Layout} and runs
/// rounds and the budget; the external libraries {BatchDisputes} and {ChallengeDesk} run, by delegatecall, on
/// that same storage, so the ledger's address, events and errors stay what they were while its code is split
/// along its concerns (one contract cannot exceed 24,576 bytes).
library LedgerState {
    /// @notice The EIP-712 type hash of a partner's signed commitment to one update, as anchored in batches.
    bytes32 internal constant UPDATE_COMMITMENT_TYPEHASH = keccak256(
        "UpdateCommitment(uint256 agreementId,uint64 round,address partner,bytes32 envelopeDigest,bytes32 manifestDigest,uint32 cumulativeEpsilon,uint64 sampleCount)"
    );
    /// @dev Bytes per batch entry: uint16 party index + uint32 cumulative epsilon.
    uint256 internal constant ENTRY_SIZE = 6;

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
    /// the round was voided and what it spent is still charged, until {IRoundLedger-restoreVoidedRound}.
    struct Snapshots {
        bytes32 atOpen;
        bytes32 atClose;
        bool restorePending;
    }

    /// @dev How far the ledger has read the partner registry's suspension log for one agreement (0: not yet),
    /// and which of its parties (bit i: party index i) it saw suspended there and has not found approved since.
    struct SuspensionWatch {
        uint256 read;
        uint256 watched;
    }

    /// @dev Everything the ledger stores.
    struct Layout {
        mapping(uint256 agreementId => uint64) roundCount;
        mapping(uint256 agreementId => uint64) openRoundOf;
        uint256 challengeCount;
        mapping(uint256 agreementId => mapping(uint64 round => IRoundLedger.Round)) rounds;
        /// @dev Cumulative epsilons packed in lanes of the agreement's width, by party index (see EpsilonLanes).
        mapping(uint256 agreementId => mapping(uint256 word => uint256)) epsilonWords;
        /// @dev One bit per party index: has a live entry in this round (see PartyBitmap).
        mapping(uint256 agreementId => mapping(uint64 round => mapping(uint256 word => uint256))) submitted;
        /// @dev Each anchored batch, keyed by its batch index: the number of updates the round had before it.
        /// That index is unique within a round (the count only grows) and needs no counter of its own, which
        /// saves a storage write per batch.
        mapping(uint256 agreementId => mapping(uint64 round => mapping(uint256 batchIndex => BatchRecord))) batches;
        /// @dev When the latest dispute window of the agreement ends; stakes stay locked until then.
        mapping(uint256 agreementId => uint64) disputeEndsAt;
        mapping(uint256 challengeId => IRoundLedger.Challenge) challenges;
        /// @dev The latest challenge against each update, so that an update is not challenged twice at once.
        mapping(uint256 agreementId => mapping(uint64 round => mapping(address partner => uint256))) challengeOf;
        /// @dev Each party's dispute of its batch entry, per round (a party has at most one entry per round).
        mapping(uint256 agreementId => mapping(uint64 round => mapping(address party => IRoundLedger.EntryDispute)))
            entryDisputes;
        /// @dev Per agreement, open disputes plus voided rounds whose epsilon is not given back yet: no round
        /// opens while any is pending. Per round, open disputes only (its claims wait).
        mapping(uint256 agreementId => uint256) openDisputes;
        mapping(uint256 agreementId => mapping(uint64 round => uint256)) openRoundDisputes;
        mapping(uint256 agreementId => mapping(uint64 round => Snapshots)) snapshots;
        /// @dev Challenges against a partner that are open, or upheld and not yet executed.
        mapping(uint256 agreementId => mapping(address partner => uint256)) liveChallenges;
        mapping(uint256 agreementId => SuspensionWatch) suspensionWatch;
        /// @dev Per voided round, 1 + the party index of the entry an auditor proved forged, when that entry
        /// still charged its party then (0: none): the one entry {IRoundLedger-restoreVoidedRound} gives back.
        mapping(uint256 agreementId => mapping(uint64 round => uint256)) forgedEntry;
    }

    /// @dev The ledger's immutables, which its libraries cannot read themselves.
    struct Env {
        IPartnerRegistry partners;
        IAgreementRegistry agreements;
        IRewardVault vault;
        uint64 disputeWindow;
        bytes32 domainSeparator;
    }

    function existingRound(Layout storage s, uint256 agreementId, uint64 roundId)
        internal
        view
        returns (IRoundLedger.Round storage r)
    {
        r = s.rounds[agreementId][roundId];
        if (r.status == IRoundLedger.RoundStatus.None) {
            revert IRoundLedger.RoundLedgerUnknownRound(agreementId, roundId);
        }
    }

    /// @dev A round can be disputed while open and until its dispute window after finalization ends. The window
    /// is [finalizedAt, finalizedAt + disputeWindow): at its end claims, unstaking and slashing open, so a
    /// dispute raised at that same second could come after the stake or reward it should hold has left.
    function disputableRound(Layout storage s, uint64 disputeWindow, uint256 agreementId, uint64 roundId)
        internal
        view
        returns (IRoundLedger.Round storage r)
    {
        r = existingRound(s, agreementId, roundId);
        bool open = r.status == IRoundLedger.RoundStatus.Open
            || (
                r.status == IRoundLedger.RoundStatus.Finalized
                    && block.timestamp < uint256(r.finalizedAt) + disputeWindow
            );
        if (!open) revert IRoundLedger.RoundLedgerDisputeWindowClosed(agreementId, roundId);
    }

    function existingChallenge(Layout storage s, uint256 challengeId)
        internal
        view
        returns (IRoundLedger.Challenge storage c)
    {
        c = s.challenges[challengeId];
        if (c.status == IRoundLedger.ChallengeStatus.None) revert IRoundLedger.RoundLedgerUnknownChallenge(challengeId);
    }

    /// @dev Dismisses or executes a challenge: it no longer locks its partner's stake.
    function endChallenge(Layout storage s, IRoundLedger.Challenge storage c, IRoundLedger.ChallengeStatus status)
        internal
    {
        c.status = status;
        --s.liveChallenges[c.agreementId][c.partner];
    }

    /// @dev Whether party `index` has a live entry (charged, not voided) in the round.
    function hasEntry(Layout storage s, uint256 agreementId, uint64 roundId, uint256 index)
        internal
        view
        returns (bool)
    {
        return PartyBitmap.isSet(s.submitted[agreementId][roundId], index);
    }

    /// @dev The party index and cumulative epsilon of the batch entry at `position`.
    function entryAt(bytes calldata entries, uint256 position) internal pure returns (uint256 index, uint256 epsilon) {
        uint256 start = position * ENTRY_SIZE;
        uint48 entry = uint48(bytes6(entries[start:start + ENTRY_SIZE]));
        return (entry >> 32, uint32(entry));
    }

    /// @dev The agreement's packed epsilon words (at most 32: 256 parties, 8 or 10 to a word).
    function epsilonWordsOf(Layout storage s, uint256 agreementId, uint256 partyCount, uint256 laneBits)
        internal
        view
        returns (uint256[] memory words)
    {
        words = new uint256[](EpsilonLanes.wordCount(partyCount, laneBits));
        mapping(uint256 => uint256) storage epsilons = s.epsilonWords[agreementId];
        for (uint256 w; w < words.length; ++w) {
            words[w] = epsilons[w];
        }
    }

    /// @dev Takes the closing snapshot of a round: the hash is kept, the words go in an event for the callers
    /// of {IRoundLedger-restoreVoidedRound}.
    function recordClose(Layout storage s, uint256 agreementId, uint64 roundId, IAgreementRegistry.RoundConfig memory config)
        internal
    {
        uint256[] memory words = epsilonWordsOf(s, agreementId, config.partyCount, config.epsilonLaneBits);
        s.snapshots[agreementId][roundId].atClose = keccak256(abi.encodePacked(words));
        emit IRoundLedger.EpsilonsAtClose(agreementId, roundId, words);
    }

    /// @dev Closes an open round as voided (forged entry, or abandoned), taking its closing epsilon snapshot;
    /// what it spent stays charged until {IRoundLedger-restoreVoidedRound}, and no round opens before that.
    function closeVoided(
        Layout storage s,
        IAgreementRegistry agreements,
        uint256 agreementId,
        uint64 roundId,
        IRoundLedger.Round storage r
    ) internal {
        r.status = IRoundLedger.RoundStatus.Voided;
        r.finalizedAt = uint64(block.timestamp);
        s.openRoundOf[agreementId] = 0;
        recordClose(s, agreementId, roundId, agreements.roundConfigAt(agreementId, r.agreementVersion));
        markRestorePending(s, agreementId, roundId);
    }

    function markRestorePending(Layout storage s, uint256 agreementId, uint64 roundId) internal {
        s.snapshots[agreementId][roundId].restorePending = true;
        ++s.openDisputes[agreementId];
    }

    /// @dev The EIP-712 digest a partner signs for `c`, under the ledger's domain.
    function commitmentDigest(bytes32 domainSeparator, IRoundLedger.UpdateCommitment calldata c)
        internal
        pure
        returns (bytes32)
    {
        bytes32 structHash = keccak256(
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
        );
        return MessageHashUtils.toTypedDataHash(domainSeparator, structHash);
    }

    /// @dev The Merkle leaf of a signed commitment in a batch.
    function commitmentLeaf(bytes32 domainSeparator, IRoundLedger.UpdateCommitment calldata c, bytes calldata signature)
        internal
        pure
        returns (bytes32)
    {
        // Hashed twice so that no leaf can pass for an inner node (both would hash 64 bytes).
        bytes32 digest = commitmentDigest(domainSeparator, c);
        return keccak256(bytes.concat(keccak256(abi.encode(digest, keccak256(signature)))));
    }

    function onlyAuditor(IPartnerRegistry partners) internal view {
        if (!LeptonRoles.has(address(partners), LeptonRoles.AUDITOR, msg.sender)) {
            revert IRoundLedger.RoundLedgerNotAuditor(msg.sender);
        }
    }
}
