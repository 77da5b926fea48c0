// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.28;

/// @title IRewardVault
/// @notice ERC-20 escrow per agreement: the reward pool, the parties' stakes, round allocations claimed by
/// Merkle proof, and the slashing of upheld challenges.
/// @dev Money conservation, per agreement, at every block:
/// `funded == paid + claimable + slashed + unallocated + reclaimed`, where `claimable = allocated - paid -
/// slashed` and `unallocated = funded - allocated - reclaimed` (`slashed` counts rewards forfeited by upheld
/// challenges; `reclaimed` is what the funders took back after the agreement ended, each in proportion to what
/// it funded). Stakes are kept apart:
/// `staked == unstaked + stakeSlashed + stakeHeld`. Amounts are what the vault actually received, so a token
/// that charges a fee on transfer cannot make the books overstate the balance.
interface IRewardVault {
    struct Pool {
        uint256 funded;
        uint256 allocated;
        uint256 paid;
        uint256 slashed;
        uint256 reclaimed;
        uint256 staked;
        uint256 unstaked;
        uint256 stakeSlashed;
    }

    struct Allocation {
        bytes32 root;
        uint256 total;
        uint256 claimed;
        uint64 claimableAt;
        bool revoked;
        bool expired;
    }

    error RewardVaultNotLedger(address account);
    error RewardVaultNotAdmin(address account);
    error RewardVaultLedgerAlreadySet(address ledger);
    error RewardVaultCourtAlreadySet(address court);
    /// @dev No results court is bound yet: rounds cannot open and claims cannot be checked without it.
    error RewardVaultNoCourt();
    error RewardVaultZeroAddress();
    error RewardVaultZeroAmount();
    error RewardVaultUnknownAgreement(uint256 agreementId);
    error RewardVaultAgreementTerminated(uint256 agreementId);
    /// @dev The end of the terms in force has passed: funding now would shift money between funders' shares.
    error RewardVaultAgreementEnded(uint256 agreementId, uint64 end);
    error RewardVaultNotParty(uint256 agreementId, address account);
    error RewardVaultPartnerNotApproved(address partner);
    error RewardVaultInsufficientStake(uint256 agreementId, address party, uint256 staked, uint256 requested);
    error RewardVaultStakeLocked(uint256 agreementId, address party);
    /// @dev Stake can be withdrawn only after the agreement is terminated or the party has exited.
    error RewardVaultAgreementInForce(uint256 agreementId);
    error RewardVaultInsufficientUnallocated(uint256 agreementId, uint256 unallocated, uint256 requested);
    error RewardVaultAlreadyAllocated(uint256 agreementId, uint64 round);
    error RewardVaultNoAllocation(uint256 agreementId, uint64 round);
    error RewardVaultAllocationRevoked(uint256 agreementId, uint64 round);
    /// @dev The round's claim period ended: what was not claimed went back to the pool.
    error RewardVaultAllocationExpired(uint256 agreementId, uint64 round);
    /// @dev Unclaimed rewards return to the pool only after `expiresAt` (claimableAt + CLAIM_PERIOD).
    error RewardVaultClaimPeriodRunning(uint256 agreementId, uint64 round, uint256 expiresAt);
    error RewardVaultClaimNotOpen(uint256 agreementId, uint64 round, uint64 claimableAt);
    error RewardVaultAlreadyClaimed(uint256 agreementId, uint64 round, address partner);
    error RewardVaultInvalidProof(uint256 agreementId, uint64 round, address partner, uint256 amount);
    error RewardVaultClaimBlocked(uint256 agreementId, uint64 round, address partner);
    /// @dev The proven leaves of this round already add up to its total; the payout root is inconsistent.
    error RewardVaultAllocationExceeded(uint256 agreementId, uint64 round, uint256 claimed, uint256 total);
    error RewardVaultNothingToReclaim(uint256 agreementId);
    error RewardVaultAgreementRunning(uint256 agreementId);
    /// @dev The challenge has not been executed by {slash}, so nothing may be forfeited yet.
    error RewardVaultChallengeNotExecuted(uint256 challengeId);

    /// @notice Emitted once, when the admin binds the round ledger.
    event LedgerSet(address indexed ledger);
    /// @notice Emitted once, when the admin binds the results court.
    event CourtSet(address indexed court);
    /// @notice Emitted when `funder` adds to the reward pool; `amount` is what actually arrived.
    event Funded(uint256 indexed agreementId, address indexed funder, uint256 amount);
    /// @notice Emitted when `party` adds stake: `amount` is what actually arrived, `totalStake` its stake after.
    event Staked(uint256 indexed agreementId, address indexed party, uint256 amount, uint256 totalStake);
    /// @notice Emitted when `party` withdraws `amount` of stake, leaving `totalStake`.
    event Unstaked(uint256 indexed agreementId, address indexed party, uint256 amount, uint256 totalStake);
    /// @notice Emitted when a finalized round's payouts, `total` under `root`, are reserved until `claimableAt`.
    event Allocated(uint256 indexed agreementId, uint64 indexed round, bytes32 root, uint256 total, uint64 claimableAt);
    /// @notice Emitted when a voided round's allocation is revoked; `total` is the unclaimed part returned.
    event AllocationRevoked(uint256 indexed agreementId, uint64 indexed round, uint256 total);
    /// @notice Emitted when the unclaimed part of `round`'s allocation, `total`, returns to the pool after the
    /// claim period.
    event AllocationExpired(uint256 indexed agreementId, uint64 indexed round, uint256 total);
    /// @notice Emitted when `partner` claims its reward for `round`.
    event Claimed(uint256 indexed agreementId, uint64 indexed round, address indexed partner, uint256 amount);
    /// @notice Emitted when an upheld challenge is executed: `partner`'s whole stake goes to `recipient`.
    event Slashed(
        uint256 indexed challengeId, uint256 indexed agreementId, address indexed partner, uint256 amount, address recipient
    );
    /// @notice Emitted when an executed challenge's partner's reward for `round` goes to `recipient`.
    event RewardForfeited(
        uint256 indexed challengeId,
        uint256 indexed agreementId,
        uint64 round,
        address indexed partner,
        uint256 amount,
        address recipient
    );
    /// @notice Emitted when `funder` takes back its share of the unallocated pool of an agreement that is over.
    event Reclaimed(uint256 indexed agreementId, address indexed funder, uint256 amount);

    /// @notice Binds the round ledger, the only caller of {allocate} and {revokeAllocation}. Once only.
    /// Requirements: admin; no ledger set yet; non-zero address.
    /// Emits {LedgerSet}.
    function setRoundLedger(address ledger) external;

    /// @notice Binds the results court, which may also call {revokeAllocation} and whose open challenges block
    /// claims. Once only.
    /// Requirements: admin; no court set yet; non-zero address.
    /// Emits {CourtSet}.
    function setResultsCourt(address court) external;

    /// @notice Adds `amount` of the agreement's reward token to its pool; the pool is credited with what
    /// actually arrived.
    /// Requirements: the agreement exists, is not Terminated and its terms in force have not ended;
    /// `amount > 0`; the caller approved the vault.
    /// Emits {Funded}.
    function fund(uint256 agreementId, uint256 amount) external;

    /// @notice The caller, a party and approved partner, adds stake; activates the agreement when this was
    /// the last thing missing.
    /// Requirements: the agreement is Proposed or Active; `amount > 0`.
    /// Emits {Staked}, maybe {IAgreementRegistry-AgreementActivated}.
    function stake(uint256 agreementId, uint256 amount) external;

    /// @notice The caller withdraws stake while no version of the agreement was ever in force, or after the
    /// agreement is terminated or it has exited, once no round is open, no dispute window runs and no challenge
    /// against it is pending.
    /// Emits {Unstaked}.
    function unstake(uint256 agreementId, uint256 amount) external;

    /// @notice Reserves a finalized round's payouts. Called by the round ledger only.
    /// Emits {Allocated}.
    function allocate(uint256 agreementId, uint64 round, bytes32 root, uint256 total, uint64 claimableAt)
        external;

    /// @notice Returns a voided round's unclaimed allocation to the pool. Called by the round ledger, or by the
    /// results court when it upholds a challenge of the round's results.
    /// Emits {AllocationRevoked}.
    function revokeAllocation(uint256 agreementId, uint64 round) external;

    /// @notice The caller claims its reward for `round`, proven by the leaf
    /// `keccak256(bytes.concat(keccak256(abi.encode(agreementId, round, caller, amount))))` of the payout root.
    /// Requirements: the dispute window has ended; not claimed before; no pending or upheld challenge holds it,
    /// nor an open results challenge of the round.
    /// Emits {Claimed}.
    function claim(uint256 agreementId, uint64 round, uint256 amount, bytes32[] calldata proof) external;

    /// @notice Returns what was not claimed of `round`'s allocation to the pool once its claim period is over,
    /// so that no reward is stranded: it funds later rounds or goes back to the funders ({reclaim}). Anyone may
    /// call it.
    /// Requirements: the allocation exists, is neither revoked nor expired, and `CLAIM_PERIOD` has passed
    /// since it became claimable.
    /// Emits {AllocationExpired}.
    function expireAllocation(uint256 agreementId, uint64 round) external;

    /// @notice Executes an upheld challenge after its dispute window: the partner's whole stake in the
    /// agreement goes to the slash recipient. Anyone may call it.
    /// Emits {Slashed}.
    function slash(uint256 challengeId) external;

    /// @notice Sends the reward of an executed challenge's partner for the challenged round, proven by `proof`
    /// like a claim, to the slash recipient; without this it would stay claimable by nobody. Anyone may call it.
    /// Requirements: the challenge was executed ({slash}); no open results challenge holds the round (the results
    /// court's `isClaimBlocked`: an upheld one returns the whole allocation to the pool); the proof holds.
    /// Emits {RewardForfeited}.
    function forfeitReward(uint256 challengeId, uint256 amount, bytes32[] calldata proof) external;

    /// @notice Returns to the caller its share of the unallocated pool, in proportion to what it funded, once
    /// the agreement is terminated, or past the end of its terms in force with no round open. Money a round
    /// gives back later (a revoked allocation) can be reclaimed by a later call.
    /// Requirements: the caller funded the agreement; something is left to reclaim for it.
    /// Emits {Reclaimed}.
    function reclaim(uint256 agreementId) external;

    /// @notice The round ledger, the only caller of {allocate} and {revokeAllocation}; zero until {setRoundLedger}.
    function roundLedger() external view returns (address);
    /// @notice The results court: coordinator bonds and challenges of round results; zero until {setResultsCourt}.
    function resultsCourt() external view returns (address);
    /// @notice Reverts unless the coordinator of `agreementId`'s terms in force holds the bond they require
    /// ({IResultsCourt-checkBond}); the round ledger asks before a round opens.
    /// Requirements: the results court is set.
    function checkBond(uint256 agreementId) external view;
    /// @notice Where slashed stakes and forfeited rewards go. Fixed at deployment.
    function slashRecipient() external view returns (address);
    /// @notice The books of `agreementId`'s reward pool and stakes (see the interface's NatSpec).
    function pool(uint256 agreementId) external view returns (Pool memory);
    /// @notice The payout allocation of `round`; its root is zero when there is none.
    function allocation(uint256 agreementId, uint64 round) external view returns (Allocation memory);
    /// @notice The stake `party` holds in `agreementId`.
    function stakeOf(uint256 agreementId, address party) external view returns (uint256);
    /// @notice Allocated rewards of `agreementId` not yet claimed or forfeited.
    function claimable(uint256 agreementId) external view returns (uint256);
    /// @notice What `funder` put into `agreementId`'s pool (what actually arrived).
    function fundedBy(uint256 agreementId, address funder) external view returns (uint256);
    /// @notice What `funder` could reclaim now if the agreement were over: its share of what was never allocated,
    /// less what it reclaimed already.
    function reclaimable(uint256 agreementId, address funder) external view returns (uint256);
    /// @notice Funds in `agreementId`'s pool that are neither allocated to a round nor reclaimed.
    function unallocated(uint256 agreementId) external view returns (uint256);
    /// @notice Whether `partner`'s reward for `round` was claimed or forfeited.
    function hasClaimed(uint256 agreementId, uint64 round, address partner) external view returns (bool);
    /// @notice The Merkle leaf of a payout.
    function payoutLeaf(uint256 agreementId, uint64 round, address partner, uint256 amount)
        external
        pure
        returns (bytes32);
}
