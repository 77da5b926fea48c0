// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.28;

/// @title IResultsCourt
/// @notice The coordinator's stake in an agreement and the challenges of its results. The coordinator posts the
/// bond its signed terms name (`coordinatorBond`, in the agreement's reward token) before it may open a round.
/// An auditor may challenge a finalized round's results (its aggregate, its payouts, its rejections, or the round
/// rules it was closed by) within the round's dispute window, before any claim is possible; while the challenge
/// is open the round's claims are blocked. The arbiter named in the terms rules within the ruling window (the
/// round ledger's dispute window from the challenge); after it, anyone may lapse the challenge (dismissed). An
/// upheld challenge, of any kind, revokes the round's allocation (nothing of it was claimed: claims had not
/// opened) and slashes the whole bond of the coordinator who ran the round, shared equally among the parties (the
/// remainder of the division to the first party), each of whom pulls its share. A slashed coordinator opens no
/// further round until it posts the bond again.
/// @dev Money conservation, per agreement, at every block: `posted == withdrawn + slashed + held` where `held`
/// is the sum of the bonds still posted, and `slashed == sharesPaid + sharesOwed`. The court's token balance is
/// the sum over agreements of `held + sharesOwed`.
interface IResultsCourt {
    /// @dev What a results challenge disputes; each matches one round-level check of the audit.
    enum ResultsKind {
        Aggregate, // aggregate_recomputed: the published aggregate is not FedAvg of the accepted updates
        Payouts, // scores_and_payouts: the scores, payouts or payout root do not follow the rule signed
        Rejections, // rejections_recheck: an honest update was rejected
        // rules_as_signed: the round was closed by rules (aggregation, scoring, norm bound) other than those of the
        // terms document the parties signed, or by rules nobody can show (the signed document is not produced)
        Rules
    }

    enum ChallengeStatus {
        None,
        Open,
        Upheld,
        Dismissed
    }

    struct ResultsChallenge {
        ChallengeStatus status;
        ResultsKind kind;
        uint64 round;
        uint64 raisedAt;
        uint256 agreementId;
        address challenger;
        bytes32 evidenceDigest;
        bytes32 rulingDigest;
    }

    /// @dev The books of one agreement's bonds (see the interface's NatSpec).
    struct Bonds {
        uint256 posted;
        uint256 withdrawn;
        uint256 slashed;
        uint256 sharesPaid;
    }

    error ResultsCourtUnknownAgreement(uint256 agreementId);
    error ResultsCourtAgreementTerminated(uint256 agreementId);
    error ResultsCourtZeroAmount();
    error ResultsCourtZeroDigest();
    error ResultsCourtNotAuditor(address account);
    /// @dev Only the arbiter named in the terms in force rules on the agreement's challenges.
    error ResultsCourtNotArbiter(uint256 agreementId, address account);
    error ResultsCourtNotParty(uint256 agreementId, address account);
    /// @dev The coordinator of the terms in force holds less bond than those terms require.
    error ResultsCourtBondShort(uint256 agreementId, address coordinator, uint256 held, uint256 required);
    /// @dev A bond stays until the agreement is terminated or past the end of its terms in force.
    error ResultsCourtAgreementRunning(uint256 agreementId);
    /// @dev A bond stays while a round is open or challengeable, or a results challenge is open.
    error ResultsCourtBondLocked(uint256 agreementId);
    error ResultsCourtNoBond(uint256 agreementId, address coordinator);
    error ResultsCourtNothingToClaim(uint256 agreementId, address party);
    error ResultsCourtRoundNotFinalized(uint256 agreementId, uint64 round);
    /// @dev Results can be challenged only before `claimableAt`, when claims open.
    error ResultsCourtDisputeWindowClosed(uint256 agreementId, uint64 round, uint256 claimableAt);
    /// @dev The round's results are already under an open or upheld challenge.
    error ResultsCourtAlreadyChallenged(uint256 agreementId, uint64 round, uint256 challengeId);
    error ResultsCourtUnknownChallenge(uint256 challengeId);
    error ResultsCourtChallengeNotOpen(uint256 challengeId, ChallengeStatus status);
    error ResultsCourtRulingWindowClosed(uint256 challengeId, uint256 endsAt);
    error ResultsCourtRulingWindowOpen(uint256 challengeId, uint256 endsAt);

    /// @notice Emitted when `coordinator` adds `amount` (what arrived) to its bond in `agreementId`.
    event BondPosted(uint256 indexed agreementId, address indexed coordinator, uint256 amount, uint256 bond);
    /// @notice Emitted when `coordinator` takes its bond back after the agreement.
    event BondWithdrawn(uint256 indexed agreementId, address indexed coordinator, uint256 amount);
    /// @notice Emitted when an auditor challenges the results of a finalized round.
    event ResultsChallengeRaised(
        uint256 indexed challengeId,
        uint256 indexed agreementId,
        uint64 round,
        ResultsKind kind,
        address indexed challenger,
        bytes32 evidenceDigest
    );
    /// @notice Emitted when the arbiter rules; `rulingDigest` commits to the published reasons.
    event ResultsChallengeResolved(uint256 indexed challengeId, bool upheld, bytes32 rulingDigest);
    /// @notice Emitted when a challenge was not ruled on in time and is dismissed.
    event ResultsChallengeLapsed(uint256 indexed challengeId);
    /// @notice Emitted when an upheld challenge slashes `coordinator`'s bond: `amount` in all, `share` to each
    /// party (the remainder to the first).
    event BondSlashed(
        uint256 indexed challengeId, uint256 indexed agreementId, address indexed coordinator, uint256 amount, uint256 share
    );
    /// @notice Emitted when `party` takes its share of slashed bonds.
    event BondShareClaimed(uint256 indexed agreementId, address indexed party, uint256 amount);

    /// @notice The caller adds `amount` of the agreement's reward token to its bond in `agreementId`; only the
    /// bond of the coordinator of the terms in force lets rounds open, so a coordinator named by a pending
    /// amendment may post ahead.
    /// Requirements: the agreement exists and is not Terminated; `amount > 0`; the caller approved the court.
    /// Emits {BondPosted}.
    function postBond(uint256 agreementId, uint256 amount) external;

    /// @notice The caller takes back its whole bond in `agreementId`.
    /// Requirements: the agreement is Terminated or past the end of its terms in force; no round is open or
    /// within its dispute window; no results challenge of the agreement is open; the caller holds a bond.
    /// Emits {BondWithdrawn}.
    function withdrawBond(uint256 agreementId) external;

    /// @notice Challenges the results of finalized round `round`; returns the challenge's id (from 1).
    /// Requirements: the caller has the auditor role; the round is Finalized and its claims have not opened
    /// (`block.timestamp < finalizedAt + disputeWindow`); `evidenceDigest` is non-zero; no open or upheld
    /// results challenge holds the round.
    /// Emits {ResultsChallengeRaised}.
    function challengeResults(uint256 agreementId, uint64 round, ResultsKind kind, bytes32 evidenceDigest)
        external
        returns (uint256 challengeId);

    /// @notice Rules on an open results challenge. Upheld: the round's allocation is revoked and the bond of the
    /// coordinator of the round's terms is slashed to the parties.
    /// Requirements: the caller is the arbiter of the terms in force; the challenge is Open; its ruling window
    /// (`raisedAt + disputeWindow`) has not ended.
    /// Emits {ResultsChallengeResolved}; when upheld also {BondSlashed} and
    /// {IRewardVault-AllocationRevoked} (when the round allocated payouts).
    function ruleResults(uint256 challengeId, bool upheld, bytes32 rulingDigest) external;

    /// @notice Dismisses an open challenge whose ruling window ended without a ruling. Anyone may call it.
    /// Requirements: the challenge is Open and `block.timestamp >= raisedAt + disputeWindow`.
    /// Emits {ResultsChallengeLapsed}.
    function lapseResults(uint256 challengeId) external;

    /// @notice The caller, a party, takes its share of the bonds slashed in `agreementId`.
    /// Requirements: the caller is a party with something owed.
    /// Emits {BondShareClaimed}.
    function claimBondShare(uint256 agreementId) external;

    /// @notice Reverts with {ResultsCourtBondShort} unless the coordinator of `agreementId`'s terms in force holds
    /// the bond they require. The vault asks it for the round ledger before a round opens.
    function checkBond(uint256 agreementId) external view;

    /// @notice Whether an open results challenge holds the claims of `round`.
    function isClaimBlocked(uint256 agreementId, uint64 round) external view returns (bool);
    /// @notice The bond `coordinator` holds posted in `agreementId`.
    function bondOf(uint256 agreementId, address coordinator) external view returns (uint256);
    /// @notice What `party` can take now of the bonds slashed in `agreementId`.
    function bondShareOf(uint256 agreementId, address party) external view returns (uint256);
    /// @notice The books of `agreementId`'s bonds.
    function bonds(uint256 agreementId) external view returns (Bonds memory);
    /// @notice How many results challenges of `agreementId` are open (not yet ruled on or lapsed).
    function openChallenges(uint256 agreementId) external view returns (uint256);
    /// @notice How many results challenges were raised; ids run from 1 to this.
    function challengeCount() external view returns (uint256);
    /// @notice Results challenge `challengeId`; reverts for an unknown id.
    function challengeOf(uint256 challengeId) external view returns (ResultsChallenge memory);
    /// @notice The latest results challenge of `round`, 0 when none.
    function challengeOfRound(uint256 agreementId, uint64 round) external view returns (uint256);
}
