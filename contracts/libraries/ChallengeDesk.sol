// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.28;

import {IRoundLedger} from "../../interfaces/IRoundLedger.sol";
import {LedgerState} from "./LedgerState.sol";

/// @title ChallengeDesk
/// @notice Auditors' challenges of a partner's update: raised by an auditor, ruled on by the agreement's arbiter
/// (or lapsed), executed by the vault's slash. An external library: RoundLedger delegates its challenge
/// functions here, on its own storage; behaviour, events and errors are documented in {IRoundLedger}.
library ChallengeDesk {
    using LedgerState for LedgerState.Layout;

    /// @notice {IRoundLedger-challenge}, run on the ledger's storage.
    function challenge(
        LedgerState.Layout storage s,
        LedgerState.Env calldata env,
        uint256 agreementId,
        uint64 roundId,
        address partner,
        bytes32 evidenceDigest
    ) external returns (uint256 challengeId) {
        LedgerState.onlyAuditor(env.partners);
        // Called for its check: the round itself is not needed here.
        // slither-disable-next-line unused-return
        s.disputableRound(env.disputeWindow, agreementId, roundId);
        (bool isParty, uint256 index) = env.agreements.partyIndex(agreementId, partner);
        if (!isParty) revert IRoundLedger.RoundLedgerNotParty(agreementId, partner);
        if (!s.hasEntry(agreementId, roundId, index)) {
            revert IRoundLedger.RoundLedgerNoSubmission(agreementId, roundId, partner);
        }
        if (evidenceDigest == bytes32(0)) revert IRoundLedger.RoundLedgerZeroDigest();
        uint256 previous = s.challengeOf[agreementId][roundId][partner];
        if (previous != 0 && s.challenges[previous].status != IRoundLedger.ChallengeStatus.Dismissed) {
            revert IRoundLedger.RoundLedgerAlreadyChallenged(agreementId, roundId, partner);
        }
        challengeId = ++s.challengeCount;
        s.challenges[challengeId] = IRoundLedger.Challenge({
            status: IRoundLedger.ChallengeStatus.Open,
            round: roundId,
            raisedAt: uint64(block.timestamp),
            agreementId: agreementId,
            partner: partner,
            challenger: msg.sender,
            evidenceDigest: evidenceDigest,
            rulingDigest: bytes32(0)
        });
        s.challengeOf[agreementId][roundId][partner] = challengeId;
        ++s.liveChallenges[agreementId][partner];
        emit IRoundLedger.ChallengeRaised(challengeId, agreementId, roundId, partner, msg.sender, evidenceDigest);
    }

    /// @notice {IRoundLedger-resolveChallenge}, run on the ledger's storage.
    function resolveChallenge(
        LedgerState.Layout storage s,
        LedgerState.Env calldata env,
        uint256 challengeId,
        bool upheld,
        bytes32 rulingDigest
    ) external {
        IRoundLedger.Challenge storage c = s.existingChallenge(challengeId);
        if (env.agreements.roundConfig(c.agreementId).arbiter != msg.sender) {
            revert IRoundLedger.RoundLedgerNotArbiter(c.agreementId, msg.sender);
        }
        _requireStatus(c, challengeId, IRoundLedger.ChallengeStatus.Open);
        uint256 endsAt = uint256(c.raisedAt) + env.disputeWindow;
        if (block.timestamp >= endsAt) revert IRoundLedger.RoundLedgerRulingWindowClosed(challengeId, endsAt);
        c.rulingDigest = rulingDigest;
        if (upheld) {
            c.status = IRoundLedger.ChallengeStatus.Upheld;
        } else {
            s.endChallenge(c, IRoundLedger.ChallengeStatus.Dismissed);
        }
        emit IRoundLedger.ChallengeResolved(challengeId, upheld, rulingDigest);
    }

    /// @notice {IRoundLedger-lapseChallenge}, run on the ledger's storage.
    function lapseChallenge(LedgerState.Layout storage s, LedgerState.Env calldata env, uint256 challengeId) external {
        IRoundLedger.Challenge storage c = s.existingChallenge(challengeId);
        _requireStatus(c, challengeId, IRoundLedger.ChallengeStatus.Open);
        uint256 endsAt = uint256(c.raisedAt) + env.disputeWindow;
        if (block.timestamp < endsAt) revert IRoundLedger.RoundLedgerRulingWindowOpen(challengeId, endsAt);
        s.endChallenge(c, IRoundLedger.ChallengeStatus.Dismissed);
        emit IRoundLedger.ChallengeLapsed(challengeId);
    }

    /// @notice {IRoundLedger-markChallengeExecuted}, run on the ledger's storage.
    function markChallengeExecuted(LedgerState.Layout storage s, LedgerState.Env calldata env, uint256 challengeId)
        external
        returns (IRoundLedger.Challenge memory)
    {
        if (msg.sender != address(env.vault)) revert IRoundLedger.RoundLedgerNotVault(msg.sender);
        IRoundLedger.Challenge storage c = s.existingChallenge(challengeId);
        _requireStatus(c, challengeId, IRoundLedger.ChallengeStatus.Upheld);
        IRoundLedger.Round storage r = s.rounds[c.agreementId][c.round];
        uint256 endsAt = r.status == IRoundLedger.RoundStatus.Open
            ? type(uint256).max
            : uint256(r.finalizedAt) + env.disputeWindow;
        if (block.timestamp < endsAt) revert IRoundLedger.RoundLedgerDisputeWindowOpen(challengeId, endsAt);
        s.endChallenge(c, IRoundLedger.ChallengeStatus.Executed);
        emit IRoundLedger.ChallengeExecuted(challengeId);
        return c;
    }

    function _requireStatus(IRoundLedger.Challenge storage c, uint256 challengeId, IRoundLedger.ChallengeStatus want)
        private
        view
    {
        if (c.status != want) revert IRoundLedger.RoundLedgerInvalidChallengeStatus(challengeId, c.status);
    }
}
