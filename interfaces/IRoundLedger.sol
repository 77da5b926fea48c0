// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.28;

/// @title IRoundLedger
/// @notice Training rounds of an agreement: the model each round starts from, every partner's commitment to
/// its update and to the privacy budget it has spent, the round's results, and auditors' challenges.
/// @dev Privacy budget. Each commitment carries the partner's *cumulative* epsilon under the agreement after
/// this update, as its accountant composed it (RDP composition is sub-additive, so a sum of per-round
/// epsilons would overstate the spend). The ledger refuses any commitment that does not increase it or that
/// exceeds the agreement's cap, in both submission modes, so on-chain cumulative epsilon <= cap always holds.
///
/// Batched mode. The coordinator anchors a whole round's commitments in one transaction: a Merkle root over
/// the partners' EIP-712 signed commitments, the digest of the published batch document (commitments plus
/// signatures, on IPFS), and for each partner only its index and cumulative epsilon (6 bytes), so the budget
/// and "once per round" checks stay on-chain. The signatures are published, not verified on-chain: verifying
/// costs an ecrecover (3,000 gas) plus about 150 bytes of calldata per update (2,400 gas at 16 gas a byte,
/// 6,000 under the calldata floor price of EIP-7623), which alone breaks our target of 5,000 gas per update;
/// anchoring costs about 3,700 gas per update in an agreement's first round (which allocates its budget
/// words) and 1,950 in later rounds, at 100 partners with a cap that fits 24-bit lanes (ten to a word), as
/// measured by bench/gas.py. A forged or altered
/// commitment stays provable: any auditor can submit it with its Merkle proof to
/// {proveForgedCommitment}, which checks the signature and the anchored entry on-chain and voids the round.
/// Signatures there are judged by ECDSA alone, so that a judgement never changes after anchoring (an ERC-1271
/// wallet could revoke); a smart-wallet party submits directly with {submitUpdate}.
///
/// Batch-entry disputes. A coordinator could anchor a root with no preimage (or withhold the batch document):
/// then nothing is provable, yet the listed parties' budgets are spent. So a party listed in a batch may
/// dispute its own entry ({disputeBatchEntry}); the agreement's coordinator (or anyone holding the document)
/// must answer within `disputeWindow` by revealing the signed commitment, its signature and its Merkle proof
/// ({answerDispute}: checked then, with ERC-1271 for smart wallets, and final; the coordinator may also reveal a
/// wallet's commitment before any dispute, while the wallet accepts it). Unanswered, anyone may void the entry
/// ({voidDisputedEntry}): that entry alone is removed, the rest of the round stands. No round opens while a
/// dispute of the agreement is pending, and a round's claims wait for its disputes.
///
/// Epsilon charged is the sum of what the surviving entries spent. Hashes of the agreement's epsilon words are
/// taken when a round opens and when it closes (finalized, voided or abandoned); only the round's own entries
/// move the words while it is open, so an entry spent its anchored cumulative epsilon minus the party's value at
/// open, and a round's entries spent close - open. A void subtracts exactly that from the current words, so the
/// order of voids and later rounds never leaves a voided entry charged nor refunds a surviving one. Voids of a
/// round wait while a later round is open (that round ends by its deadline plus grace at the latest).
/// A voided round (a forged entry proven, or abandoned) gives back, through {restoreVoidedRound}, the spend of
/// the entry proven forged and nothing else: every other entry's update was revealed to the coordinator whether
/// or not the round pays, so an entry its party signed (a direct submission, an answered or undisputed batch
/// entry) stays charged. A voided round's batch entries stay disputable for `disputeWindow` after it ended (its
/// `finalizedAt`), so a party can still have an entry it never signed voided. Anyone may call the restore with
/// the words of the round's two snapshots; the agreement's next round waits for it.
///
/// Payouts of a finalized round whose entry is voided: the round and its allocation stand. The other partners'
/// updates and rewards were honest; the voided party's payout, if the root gave it one, is what the coordinator
/// chose to pay it. A round whose aggregate used a forged update is the results challenge's matter.
interface IRoundLedger {
    enum RoundStatus {
        None,
        Open,
        Finalized,
        Voided
    }

    enum ChallengeStatus {
        None,
        Open,
        Upheld,
        Dismissed,
        Executed
    }

    struct Round {
        RoundStatus status;
        uint32 agreementVersion;
        uint32 submissions;
        uint64 openedAt;
        uint64 deadline;
        uint64 finalizedAt;
        bytes32 modelDigest;
        bytes32 evalCommitment;
        bytes32 aggregateDigest;
        bytes32 reportDigest;
        bytes32 payoutRoot;
        uint256 payoutTotal;
    }

    /// @dev A partner's signed commitment to one update, as typed for EIP-712.
    struct UpdateCommitment {
        uint256 agreementId;
        uint64 round;
        address partner;
        bytes32 envelopeDigest;
        bytes32 manifestDigest;
        uint32 cumulativeEpsilon;
        uint64 sampleCount;
    }

    /// @dev One anchored batch as published, and where in it the disputed commitment sits. `proof` holds the
    /// siblings from leaf to root of a tree padded with zero leaves to a power of two.
    struct BatchEvidence {
        uint256 agreementId;
        uint64 round;
        uint256 batchIndex;
        bytes32 root;
        bytes32 documentDigest;
        bytes entries;
        uint256 position;
        bytes32[] proof;
    }

    enum DisputeStatus {
        None,
        Open,
        Answered,
        Voided
    }

    /// @dev A party's dispute of its entry in a batch: where the entry sits, the epsilon it anchored, and until
    /// when it may be answered.
    struct EntryDispute {
        DisputeStatus status;
        uint16 position;
        uint32 epsilon;
        uint64 answerBy;
        uint256 batchIndex;
    }

    struct Challenge {
        ChallengeStatus status;
        uint64 round;
        uint64 raisedAt;
        uint256 agreementId;
        address partner;
        address challenger;
        bytes32 evidenceDigest;
        bytes32 rulingDigest;
    }

    error RoundLedgerNotCoordinator(address account);
    error RoundLedgerNotAuditor(address account);
    /// @dev Only the arbiter named in the agreement's terms rules on its challenges.
    error RoundLedgerNotArbiter(uint256 agreementId, address account);
    error RoundLedgerNotVault(address account);
    error RoundLedgerAgreementNotActive(uint256 agreementId);
    error RoundLedgerOutsideAgreementPeriod(uint256 agreementId, uint64 start, uint64 end);
    /// @dev `round` of the agreement is open: no other opens, and voids of an earlier round wait for it to close.
    error RoundLedgerRoundAlreadyOpen(uint256 agreementId, uint64 round);
    error RoundLedgerMaxRoundsReached(uint256 agreementId, uint32 maxRounds);
    error RoundLedgerInvalidDeadline(uint64 deadline);
    error RoundLedgerZeroDigest();
    error RoundLedgerUnknownRound(uint256 agreementId, uint64 round);
    error RoundLedgerRoundNotOpen(uint256 agreementId, uint64 round);
    error RoundLedgerDeadlinePassed(uint256 agreementId, uint64 round, uint64 deadline);
    error RoundLedgerRoundStillRunning(uint256 agreementId, uint64 round, uint64 deadline);
    error RoundLedgerNotParty(uint256 agreementId, address account);
    error RoundLedgerPartnerNotApproved(address partner);
    error RoundLedgerAlreadySubmitted(uint256 agreementId, uint64 round, address partner);
    /// @dev The commitment would take `partner`'s cumulative epsilon to `spent`, over `cap` (1e6 = 1.0).
    error RoundLedgerBudgetExceeded(address partner, uint256 spent, uint256 cap);
    /// @dev Cumulative epsilon must grow with every update: `committed` is not above `previous`.
    error RoundLedgerEpsilonNotIncreasing(address partner, uint256 previous, uint256 committed);
    error RoundLedgerZeroSampleCount();
    /// @dev The sample count is above the bound every party signed in the terms.
    error RoundLedgerSampleCountExceeded(uint64 sampleCount, uint64 maxSampleCount);
    error RoundLedgerEmptyBatch();
    /// @dev The packed entries are not a whole number of 6-byte entries.
    error RoundLedgerMalformedEntries(uint256 length);
    /// @dev Batch entries must be sorted by strictly increasing party index.
    error RoundLedgerUnsortedEntries(uint256 position);
    error RoundLedgerPartyIndexOutOfRange(uint256 index, uint256 partyCount);
    error RoundLedgerPayoutExceedsReward(uint256 total, uint256 rewardPerRound);
    error RoundLedgerZeroPayoutRoot();
    error RoundLedgerDisputeWindowClosed(uint256 agreementId, uint64 round);
    error RoundLedgerNoSubmission(uint256 agreementId, uint64 round, address partner);
    error RoundLedgerAlreadyChallenged(uint256 agreementId, uint64 round, address partner);
    error RoundLedgerUnknownChallenge(uint256 challengeId);
    error RoundLedgerInvalidChallengeStatus(uint256 challengeId, ChallengeStatus status);
    error RoundLedgerDisputeWindowOpen(uint256 challengeId, uint256 endsAt);
    error RoundLedgerUnknownBatch(uint256 agreementId, uint64 round, uint256 batchIndex);
    error RoundLedgerBatchMismatch();
    error RoundLedgerInvalidMerkleProof();
    /// @dev The commitment submitted as fraud proof is correctly signed and matches the anchored entry.
    error RoundLedgerCommitmentValid();
    /// @dev Only the party an anchored entry names may dispute it.
    error RoundLedgerNotEntryParty(address account, address party);
    error RoundLedgerEntryAlreadyDisputed(uint256 agreementId, uint64 round, address party);
    error RoundLedgerNoOpenDispute(uint256 agreementId, uint64 round, address party);
    /// @dev The revealed commitment is not what the disputed entry must hold (signature, entry or bound).
    error RoundLedgerInvalidAnswer();
    error RoundLedgerAnswerWindowClosed(uint64 answerBy);
    error RoundLedgerAnswerWindowOpen(uint64 answerBy);
    /// @dev No round opens while a dispute of the agreement's batch entries, or a voided round's give-back, is
    /// pending.
    error RoundLedgerDisputePending(uint256 agreementId);
    /// @dev The epsilon words given are not those of the agreement when the round opened.
    error RoundLedgerEpsilonWordsMismatch();
    /// @dev `round` is not a voided round whose spent epsilon is still to give back.
    error RoundLedgerNothingToRestore(uint256 agreementId, uint64 round);
    /// @dev The arbiter rules within `disputeWindow` of the challenge; after `endsAt` it can only lapse.
    error RoundLedgerRulingWindowClosed(uint256 challengeId, uint256 endsAt);
    error RoundLedgerRulingWindowOpen(uint256 challengeId, uint256 endsAt);
    /// @dev A round can be abandoned only once `disputeWindow` has passed after its deadline.
    error RoundLedgerNotAbandonable(uint256 agreementId, uint64 round, uint256 abandonableAt);

    /// @notice Emitted when a coordinator opens `round` on version `agreementVersion` of the agreement.
    event RoundOpened(
        uint256 indexed agreementId,
        uint64 indexed round,
        uint32 agreementVersion,
        bytes32 modelDigest,
        bytes32 evalCommitment,
        uint64 deadline
    );
    /// @notice Emitted when `partner` commits to its update for `round` and to its cumulative epsilon after it.
    event UpdateSubmitted(
        uint256 indexed agreementId,
        uint64 indexed round,
        address indexed partner,
        bytes32 envelopeDigest,
        bytes32 manifestDigest,
        uint32 cumulativeEpsilon,
        uint64 sampleCount
    );
    /// @notice Emitted when a coordinator anchors a batch of partners' signed commitments for `round`.
    /// @dev `entries` is the packed (uint16 party index, uint32 cumulative epsilon) list as anchored; bit i of
    /// `skipped` is set when entry i was skipped because its party had already submitted in the round (it
    /// spent nothing and counts for nothing).
    event BatchCommitted(
        uint256 indexed agreementId,
        uint64 indexed round,
        uint256 batchIndex,
        bytes32 commitmentsRoot,
        bytes32 batchDocumentDigest,
        bytes entries,
        uint256 skipped
    );
    /// @notice Emitted when a coordinator closes `round` with its results and its payout root.
    event RoundFinalized(
        uint256 indexed agreementId,
        uint64 indexed round,
        bytes32 aggregateDigest,
        bytes32 reportDigest,
        bytes32 payoutRoot,
        uint256 payoutTotal
    );
    /// @notice Emitted when a forged commitment, entry `position` of batch `batchIndex`, voids `round`.
    event RoundVoided(uint256 indexed agreementId, uint64 indexed round, uint256 batchIndex, uint256 position);
    /// @notice Emitted with {RoundOpened}: the agreement's packed cumulative epsilons (lanes of the agreement's
    /// width, {IAgreementRegistry-epsilonLaneBitsFor}, by party index) when `round` opened, which
    /// {voidDisputedEntry} takes back.
    event EpsilonsAtOpen(uint256 indexed agreementId, uint64 indexed round, uint256[] words);
    /// @notice Emitted when `round` closes (finalized, voided while open, or abandoned): the packed epsilon words
    /// then, which {restoreVoidedRound} takes.
    event EpsilonsAtClose(uint256 indexed agreementId, uint64 indexed round, uint256[] words);
    /// @notice Emitted when a voided round's entries have given back what they spent.
    event VoidedRoundRestored(uint256 indexed agreementId, uint64 indexed round);
    /// @notice Emitted when `party` disputes its entry `position` of batch `batchIndex` of `round`.
    event BatchEntryDisputed(
        uint256 indexed agreementId, uint64 indexed round, address indexed party, uint256 batchIndex, uint256 position,
        uint64 answerBy
    );
    /// @notice Emitted when the disputed entry's signed commitment was revealed and checked: the entry stands.
    event DisputeAnswered(uint256 indexed agreementId, uint64 indexed round, address indexed party);
    /// @notice Emitted when an unanswered dispute voids `party`'s entry (the entry alone); `restoredEpsilon` is
    /// its cumulative epsilon afterwards.
    event DisputedEntryVoided(
        uint256 indexed agreementId, uint64 indexed round, address indexed party, uint32 restoredEpsilon
    );
    /// @notice Emitted when an auditor challenges `partner`'s update in `round`.
    event ChallengeRaised(
        uint256 indexed challengeId,
        uint256 indexed agreementId,
        uint64 indexed round,
        address partner,
        address challenger,
        bytes32 evidenceDigest
    );
    /// @notice Emitted when the agreement's arbiter rules on a challenge: `upheld`, or dismissed.
    event ChallengeResolved(uint256 indexed challengeId, bool upheld, bytes32 rulingDigest);
    /// @notice Emitted when a challenge the arbiter did not rule on in time lapses (it counts as dismissed).
    event ChallengeLapsed(uint256 indexed challengeId);
    /// @notice Emitted when an open round nobody finalized is abandoned: nothing is allocated, stakes unlock.
    event RoundAbandoned(uint256 indexed agreementId, uint64 indexed round);
    /// @notice Emitted when the vault executes an upheld challenge by slashing the partner's stake.
    event ChallengeExecuted(uint256 indexed challengeId);

    /// @notice Opens the next round of `agreementId` on the model with digest `modelDigest`.
    /// @param evalCommitment Hash of the held-out evaluation set used for scoring, fixed before training.
    /// Requirements: the agreement's coordinator; the agreement is Active and within its period; no round of
    /// it is open; it has rounds left; no dispute of its batch entries is pending and every voided round of it
    /// has given its epsilon back; `block.timestamp < deadline <= end`; digests non-zero; the coordinator holds
    /// the bond the terms require (the vault's {IRewardVault-checkBond}, which reverts with the results court's
    /// error).
    /// Emits {RoundOpened} and {EpsilonsAtOpen}.
    function openRound(uint256 agreementId, bytes32 modelDigest, uint64 deadline, bytes32 evalCommitment)
        external
        returns (uint64 round);

    /// @notice The caller, a party, commits to its update for `round`.
    /// @param cumulativeEpsilon The caller's cumulative epsilon under the agreement including this update
    /// (1e6 = 1.0).
    /// Requirements: the agreement is Active; the round is open and before its deadline; the caller is a party
    /// and an approved partner that has not submitted in this round; the epsilon increases and stays within
    /// the cap; digests non-zero; `0 < sampleCount <= maxSampleCount` of the terms.
    /// Emits {UpdateSubmitted}.
    function submitUpdate(
        uint256 agreementId,
        uint64 round,
        bytes32 envelopeDigest,
        bytes32 manifestDigest,
        uint32 cumulativeEpsilon,
        uint64 sampleCount
    ) external;

    /// @notice Anchors many partners' signed commitments at once (see the contract's NatSpec for why). Returns
    /// the batch index: the number of updates the round had before this batch, unique within the round.
    /// @param entries Concatenated 6-byte entries: uint16 party index, uint32 cumulative epsilon, big-endian,
    /// sorted by strictly increasing party index. Entry i is leaf i of `commitmentsRoot`.
    /// Requirements: the agreement's coordinator; as {submitUpdate} for every entry, except that an entry whose
    /// party already submitted in the round is skipped (named in the event) unless every entry is.
    /// Emits {BatchCommitted}.
    function commitBatch(
        uint256 agreementId,
        uint64 round,
        bytes32 commitmentsRoot,
        bytes32 batchDocumentDigest,
        bytes calldata entries
    ) external returns (uint256 batchIndex);

    /// @notice Closes `round` with its results and allocates its payouts in the vault, and takes its closing
    /// epsilon snapshot.
    /// Requirements: the agreement's coordinator; the round is open, and its deadline has passed or every party
    /// submitted;
    /// `payoutTotal == 0` if the agreement is Terminated (the round still closes, so that its stakes come
    /// free); `payoutTotal <= rewardPerRound`; digests non-zero; a non-zero payout root when `payoutTotal > 0`;
    /// the vault holds enough unallocated funds.
    /// Emits {RoundFinalized} and {EpsilonsAtClose}.
    function finalizeRound(
        uint256 agreementId,
        uint64 round,
        bytes32 aggregateDigest,
        bytes32 reportDigest,
        bytes32 payoutRoot,
        uint256 payoutTotal
    ) external;

    /// @notice An auditor challenges `partner`'s update in `round`, committing to its evidence.
    /// Requirements: auditor; the partner submitted in that round; the round is open or within its dispute
    /// window; no challenge against this update is pending or upheld.
    /// Emits {ChallengeRaised}.
    function challenge(uint256 agreementId, uint64 round, address partner, bytes32 evidenceDigest)
        external
        returns (uint256 challengeId);

    /// @notice The agreement's arbiter (named in the terms in force) rules on an open challenge.
    /// Requirements: the caller is the arbiter; the challenge is Open and was raised less than
    /// `disputeWindow` ago (the ruling window).
    /// Emits {ChallengeResolved}.
    function resolveChallenge(uint256 challengeId, bool upheld, bytes32 rulingDigest) external;

    /// @notice Closes a challenge the arbiter did not rule on within its ruling window, as dismissed: nobody is
    /// kept waiting on an arbiter that never rules. Anyone may call it.
    /// Requirements: the challenge is Open and its ruling window has passed.
    /// Emits {ChallengeLapsed}.
    function lapseChallenge(uint256 challengeId) external;

    /// @notice Abandons an open round its coordinator never finalized: the round is voided with nothing
    /// allocated, and the stakes it locked come free; its entries stay charged (their updates were revealed),
    /// but each party may still dispute a batch entry it never signed for `disputeWindow`.
    /// Anyone may call it.
    /// Requirements: the round is open and `disputeWindow` has passed since its deadline (the grace period).
    /// Emits {RoundAbandoned} and {EpsilonsAtClose}.
    function abandonRound(uint256 agreementId, uint64 round) external;

    /// @notice Proves that entry `position` of a batch is not what its partner signed: the signature is not the
    /// partner's ECDSA signature, the anchored entry disagrees with the signed commitment, or its sample count is 0 or above the
    /// terms' `maxSampleCount`. Voids the round (and its payouts, unless the results court revoked them already);
    /// {restoreVoidedRound} then gives back what that entry spent (unless it was skipped or voided already).
    /// Requirements: auditor; the round is open or within its dispute window; the evidence's root, document
    /// digest and entries are the batch as anchored; its proof places the commitment at its position; the
    /// entry's commitment was not revealed and checked by {answerDispute}.
    /// Emits {RoundVoided}, and {EpsilonsAtClose} when the round was open.
    function proveForgedCommitment(
        BatchEvidence calldata evidence,
        UpdateCommitment calldata commitment,
        bytes calldata signature
    ) external;

    /// @notice The caller, the party entry `evidence.position` of an anchored batch names, disputes that entry
    /// (it says it never signed it). The agreement's coordinator must answer before `disputeWindow` passes.
    /// Requirements: the round is open, or ended (finalized or voided) less than `disputeWindow` ago; the
    /// evidence's root, document digest and entries are the batch as anchored and `position` is one of its
    /// entries (no proof needed); the caller is that entry's party; the entry was applied (not skipped) and is not voided; the party's entry of this
    /// round is not disputed already (open or answered).
    /// Emits {BatchEntryDisputed}.
    function disputeBatchEntry(BatchEvidence calldata evidence) external;

    /// @notice Answers an open dispute by revealing the entry's signed commitment, its signature (ECDSA, or
    /// ERC-1271 for a smart wallet, checked now) and its Merkle proof. Anyone may answer; the answer is final.
    /// With no dispute yet, it is a reveal that fixes the judgement now (for a smart wallet, which could
    /// revoke later): the entry can then no longer be disputed nor proven forged.
    /// Requirements: the dispute is open and its answer window has not passed, and the evidence is the disputed
    /// entry; or there is no dispute of the party's entry and the round is open or within its dispute window.
    /// The evidence is a batch as anchored; the commitment is what the entry's party signed, matches the entry
    /// and is within the sample-count bound.
    /// Emits {DisputeAnswered}.
    function answerDispute(
        BatchEvidence calldata evidence,
        UpdateCommitment calldata commitment,
        bytes calldata signature
    ) external;

    /// @notice Voids the entry of an unanswered dispute, that entry alone: the party's cumulative epsilon
    /// loses what the entry spent (its anchored epsilon minus the party's value when the round opened), whatever
    /// was charged since stays; the entry can no longer be challenged, and a challenge of it is dismissed; the
    /// round and its payouts stand. Anyone may call it.
    /// @param wordsAtOpen The agreement's packed epsilon words as they were when the round opened (from
    /// {EpsilonsAtOpen}), checked against the hash taken then.
    /// Requirements: the dispute is open and its answer window has passed; no later round is open;
    /// `wordsAtOpen` hash to the round's record.
    /// Emits {DisputedEntryVoided}.
    function voidDisputedEntry(uint256 agreementId, uint64 round, address party, uint256[] calldata wordsAtOpen)
        external;

    /// @notice Gives back what a voided round's entry proven forged spent: its party loses its rise over the
    /// round (close - open), and the entry is removed. Every other entry stays charged. Lets the agreement's
    /// next round open. Anyone may call it.
    /// @param wordsAtOpen The epsilon words when the round opened ({EpsilonsAtOpen}).
    /// @param wordsAtClose The epsilon words when it closed ({EpsilonsAtClose}).
    /// Requirements: the round was voided and not restored yet; no later round is open; both word lists hash
    /// to the round's records.
    /// Emits {VoidedRoundRestored}.
    function restoreVoidedRound(
        uint256 agreementId,
        uint64 round,
        uint256[] calldata wordsAtOpen,
        uint256[] calldata wordsAtClose
    ) external;

    /// @notice Called by the vault when it executes the slashing of an upheld challenge.
    /// Requirements: the caller is the vault; the challenge is Upheld and its dispute window has ended.
    /// Emits {ChallengeExecuted}.
    function markChallengeExecuted(uint256 challengeId) external returns (Challenge memory);

    /// @notice Seconds after finalization during which a round can be disputed and its payouts wait.
    function disputeWindow() external view returns (uint64);
    /// @notice The reward vault that escrows the payouts of finalized rounds.
    function vault() external view returns (address);
    /// @notice How many rounds `agreementId` has opened; round ids run from 1 to this.
    function roundCount(uint256 agreementId) external view returns (uint64);
    /// @notice The open round of `agreementId`, or 0 when none is open.
    function openRoundOf(uint256 agreementId) external view returns (uint64);
    /// @notice The record of round `roundId` of `agreementId`. Reverts for an unknown round.
    function round(uint256 agreementId, uint64 roundId) external view returns (Round memory);
    /// @notice `partner`'s cumulative epsilon under `agreementId` as last committed (1e6 = 1.0); 0 for a non-party.
    function cumulativeEpsilon(uint256 agreementId, address partner) external view returns (uint32);
    /// @notice Whether `partner` committed to an update in `roundId`.
    function hasSubmitted(uint256 agreementId, uint64 roundId, address partner) external view returns (bool);
    /// @notice How many challenges were raised; challenge ids run from 1 to this.
    function challengeCount() external view returns (uint256);
    /// @notice The record of challenge `challengeId`. Reverts for an unknown challenge.
    function challengeOf(uint256 challengeId) external view returns (Challenge memory);
    /// @notice Whether `partner` may not withdraw stake: a round is open, a dispute window is running, or a
    /// challenge against it is pending or upheld and not yet executed.
    function isStakeLocked(uint256 agreementId, address partner) external view returns (bool);
    /// @notice `party`'s dispute of its batch entry in `roundId` (status None when there is none).
    function entryDispute(uint256 agreementId, uint64 roundId, address party)
        external
        view
        returns (EntryDispute memory);
    /// @notice Whether `partner`'s reward for `roundId` is held back by a pending or upheld challenge, or by a
    /// pending dispute of one of the round's batch entries.
    function isClaimBlocked(uint256 agreementId, uint64 roundId, address partner) external view returns (bool);
    /// @notice The EIP-712 digest a partner signs for `commitment`.
    function commitmentDigest(UpdateCommitment calldata commitment) external view returns (bytes32);
    /// @notice The Merkle leaf of a signed commitment in a batch.
    function commitmentLeaf(UpdateCommitment calldata commitment, bytes calldata signature)
        external
        view
        returns (bytes32);
}
