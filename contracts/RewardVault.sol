// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.28;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {MerkleProof} from "@openzeppelin/contracts/utils/cryptography/MerkleProof.sol";
import {ReentrancyGuard} from "@openzeppelin/contracts/utils/ReentrancyGuard.sol";
import {IRewardVault} from "../interfaces/IRewardVault.sol";
import {IAgreementRegistry} from "../interfaces/IAgreementRegistry.sol";
import {IPartnerRegistry} from "../interfaces/IPartnerRegistry.sol";
import {IRoundLedger} from "../interfaces/IRoundLedger.sol";
import {IResultsCourt} from "../interfaces/IResultsCourt.sol";
import {LeptonRoles} from "./libraries/LeptonRoles.sol";
import {PartyBitmap} from "./libraries/PartyBitmap.sol";

/// @title RewardVault
/// @notice Escrow of each agreement's reward pool and stakes; payouts are pulled with Merkle proofs.
contract RewardVault is IRewardVault, ReentrancyGuard {
    using SafeERC20 for IERC20;

    /*//////////////////////////////////////////////////////////////
                                STORAGE
    //////////////////////////////////////////////////////////////*/

    /// @notice The partner registry: who is an approved partner, and the roles of the deployment.
    IPartnerRegistry public immutable partners;
    /// @notice The agreement registry: each agreement's reward token, status and parties.
    IAgreementRegistry public immutable agreements;
    /// @inheritdoc IRewardVault
    address public immutable slashRecipient;
    /// @notice How long a round's rewards can be claimed once claimable; then the rest returns to the pool.
    uint64 public constant CLAIM_PERIOD = 180 days;

    /// @inheritdoc IRewardVault
    address public roundLedger;
    /// @inheritdoc IRewardVault
    address public resultsCourt;

    /// @inheritdoc IRewardVault
    mapping(uint256 agreementId => mapping(address party => uint256)) public stakeOf;

    /// @inheritdoc IRewardVault
    mapping(uint256 agreementId => mapping(address funder => uint256)) public fundedBy;
    /// @dev What each funder has reclaimed, so that a later reclaim pays only what was returned since.
    mapping(uint256 agreementId => mapping(address funder => uint256)) private _reclaimedBy;

    mapping(uint256 agreementId => Pool) private _pools;
    mapping(uint256 agreementId => mapping(uint64 round => Allocation)) private _allocations;
    /// @dev One bit per party index: reward of the round claimed (or forfeited).
    mapping(uint256 agreementId => mapping(uint64 round => mapping(uint256 word => uint256))) private _claimed;

    /*//////////////////////////////////////////////////////////////
                              CONSTRUCTOR
    //////////////////////////////////////////////////////////////*/

    constructor(IPartnerRegistry partnerRegistry, IAgreementRegistry agreementRegistry, address slashRecipient_) {
        if (slashRecipient_ == address(0)) revert RewardVaultZeroAddress();
        partners = partnerRegistry;
        agreements = agreementRegistry;
        slashRecipient = slashRecipient_;
    }

    /*//////////////////////////////////////////////////////////////
                                EXTERNAL
    //////////////////////////////////////////////////////////////*/

    /// @inheritdoc IRewardVault
    function setRoundLedger(address ledger) external {
        if (!LeptonRoles.has(address(partners), LeptonRoles.ADMIN, msg.sender)) revert RewardVaultNotAdmin(msg.sender);
        if (roundLedger != address(0)) revert RewardVaultLedgerAlreadySet(roundLedger);
        if (ledger == address(0)) revert RewardVaultZeroAddress();
        roundLedger = ledger;
        emit LedgerSet(ledger);
    }

    /// @inheritdoc IRewardVault
    function setResultsCourt(address court) external {
        if (!LeptonRoles.has(address(partners), LeptonRoles.ADMIN, msg.sender)) revert RewardVaultNotAdmin(msg.sender);
        if (resultsCourt != address(0)) revert RewardVaultCourtAlreadySet(resultsCourt);
        if (court == address(0)) revert RewardVaultZeroAddress();
        resultsCourt = court;
        emit CourtSet(court);
    }

    /// @inheritdoc IRewardVault
    function fund(uint256 agreementId, uint256 amount) external nonReentrant {
        IAgreementRegistry.RoundConfig memory config = _liveConfig(agreementId);
        if (block.timestamp > config.end) revert RewardVaultAgreementEnded(agreementId, config.end);
        if (amount == 0) revert RewardVaultZeroAmount();
        uint256 received = _pull(config.rewardToken, amount);
        _pools[agreementId].funded += received;
        fundedBy[agreementId][msg.sender] += received;
        emit Funded(agreementId, msg.sender, received);
    }

    /// @inheritdoc IRewardVault
    function stake(uint256 agreementId, uint256 amount) external nonReentrant {
        IAgreementRegistry.RoundConfig memory config = _liveConfig(agreementId);
        if (amount == 0) revert RewardVaultZeroAmount();
        // Only membership matters here; the party's index is not needed.
        // slither-disable-next-line unused-return
        (bool isParty,) = agreements.partyIndex(agreementId, msg.sender);
        if (!isParty) revert RewardVaultNotParty(agreementId, msg.sender);
        if (!partners.isApproved(msg.sender)) revert RewardVaultPartnerNotApproved(msg.sender);
        uint256 received = _pull(config.rewardToken, amount);
        uint256 total = stakeOf[agreementId][msg.sender] + received;
        stakeOf[agreementId][msg.sender] = total;
        _pools[agreementId].staked += received;
        emit Staked(agreementId, msg.sender, received, total);
        // Activation is opportunistic: the stake stands whether or not it was the last thing missing, and the
        // registry emits AgreementActivated when it was.
        // slither-disable-next-line unused-return
        agreements.tryActivate(agreementId);
    }

    /// @inheritdoc IRewardVault
    function unstake(uint256 agreementId, uint256 amount) external nonReentrant {
        IAgreementRegistry.RoundConfig memory config = _config(agreementId);
        if (amount == 0) revert RewardVaultZeroAmount();
        uint256 held = stakeOf[agreementId][msg.sender];
        if (held < amount) revert RewardVaultInsufficientStake(agreementId, msg.sender, held, amount);
        // Before any version is in force the stake backs nothing yet, so it may leave (activation re-checks).
        if (
            config.status == IAgreementRegistry.AgreementStatus.Active
                && !agreements.hasExited(agreementId, msg.sender)
        ) revert RewardVaultAgreementInForce(agreementId);
        if (IRoundLedger(roundLedger).isStakeLocked(agreementId, msg.sender)) {
            revert RewardVaultStakeLocked(agreementId, msg.sender);
        }
        // unchecked: held >= amount was checked above.
        unchecked {
            stakeOf[agreementId][msg.sender] = held - amount;
        }
        _pools[agreementId].unstaked += amount;
        emit Unstaked(agreementId, msg.sender, amount, held - amount);
        IERC20(config.rewardToken).safeTransfer(msg.sender, amount);
    }

    /// @inheritdoc IRewardVault
    function allocate(uint256 agreementId, uint64 round, bytes32 root, uint256 total, uint64 claimableAt)
        external
    {
        _onlyLedger();
        Allocation storage a = _allocations[agreementId][round];
        if (a.root != bytes32(0)) revert RewardVaultAlreadyAllocated(agreementId, round);
        uint256 free = unallocated(agreementId);
        if (free < total) revert RewardVaultInsufficientUnallocated(agreementId, free, total);
        a.root = root;
        a.total = total;
        a.claimableAt = claimableAt;
        _pools[agreementId].allocated += total;
        emit Allocated(agreementId, round, root, total, claimableAt);
    }

    /// @inheritdoc IRewardVault
    function revokeAllocation(uint256 agreementId, uint64 round) external {
        // The ledger voids rounds; the court revokes the payouts of results it upheld a challenge against.
        if (msg.sender != roundLedger && msg.sender != resultsCourt) revert RewardVaultNotLedger(msg.sender);
        Allocation storage a = _allocations[agreementId][round];
        if (a.root == bytes32(0)) revert RewardVaultNoAllocation(agreementId, round);
        if (a.revoked) revert RewardVaultAllocationRevoked(agreementId, round);
        // Unreachable by timing (a round is voided within its dispute window, long before expiry), but an
        // expired allocation's unclaimed part has left `allocated` already and must not leave it twice.
        if (a.expired) revert RewardVaultAllocationExpired(agreementId, round);
        uint256 returned = a.total - a.claimed;
        a.revoked = true;
        _pools[agreementId].allocated -= returned;
        emit AllocationRevoked(agreementId, round, returned);
    }

    /// @inheritdoc IRewardVault
    function expireAllocation(uint256 agreementId, uint64 round) external {
        Allocation storage a = _claimableAllocation(agreementId, round);
        uint256 expiresAt = uint256(a.claimableAt) + CLAIM_PERIOD;
        if (block.timestamp <= expiresAt) revert RewardVaultClaimPeriodRunning(agreementId, round, expiresAt);
        uint256 returned = a.total - a.claimed;
        a.expired = true;
        _pools[agreementId].allocated -= returned;
        emit AllocationExpired(agreementId, round, returned);
    }

    /// @inheritdoc IRewardVault
    function claim(uint256 agreementId, uint64 round, uint256 amount, bytes32[] calldata proof)
        external
        nonReentrant
    {
        Allocation storage a = _claimableAllocation(agreementId, round);
        if (block.timestamp < a.claimableAt) revert RewardVaultClaimNotOpen(agreementId, round, a.claimableAt);
        if (
            IRoundLedger(roundLedger).isClaimBlocked(agreementId, round, msg.sender)
                || _court().isClaimBlocked(agreementId, round)
        ) {
            revert RewardVaultClaimBlocked(agreementId, round, msg.sender);
        }
        _settle(a, agreementId, round, msg.sender, amount, proof);
        _pools[agreementId].paid += amount;
        emit Claimed(agreementId, round, msg.sender, amount);
        IERC20(_config(agreementId).rewardToken).safeTransfer(msg.sender, amount);
    }

    /// @inheritdoc IRewardVault
    function slash(uint256 challengeId) external nonReentrant {
        IRoundLedger.Challenge memory c = IRoundLedger(roundLedger).markChallengeExecuted(challengeId);
        uint256 amount = stakeOf[c.agreementId][c.partner];
        stakeOf[c.agreementId][c.partner] = 0;
        _pools[c.agreementId].stakeSlashed += amount;
        emit Slashed(challengeId, c.agreementId, c.partner, amount, slashRecipient);
        if (amount != 0) IERC20(_config(c.agreementId).rewardToken).safeTransfer(slashRecipient, amount);
    }

    /// @inheritdoc IRewardVault
    function forfeitReward(uint256 challengeId, uint256 amount, bytes32[] calldata proof) external nonReentrant {
        IRoundLedger.Challenge memory c = IRoundLedger(roundLedger).challengeOf(challengeId);
        if (c.status != IRoundLedger.ChallengeStatus.Executed) revert RewardVaultChallengeNotExecuted(challengeId);
        // While the round's results are challenged its payouts may all go back to the pool: wait, as claims do.
        if (_court().isClaimBlocked(c.agreementId, c.round)) {
            revert RewardVaultClaimBlocked(c.agreementId, c.round, c.partner);
        }
        Allocation storage a = _claimableAllocation(c.agreementId, c.round);
        _settle(a, c.agreementId, c.round, c.partner, amount, proof);
        _pools[c.agreementId].slashed += amount;
        emit RewardForfeited(challengeId, c.agreementId, c.round, c.partner, amount, slashRecipient);
        IERC20(_config(c.agreementId).rewardToken).safeTransfer(slashRecipient, amount);
    }

    /// @inheritdoc IRewardVault
    function reclaim(uint256 agreementId) external nonReentrant {
        IAgreementRegistry.RoundConfig memory config = _config(agreementId);
        bool over = config.status == IAgreementRegistry.AgreementStatus.Terminated
            || (block.timestamp > config.end && IRoundLedger(roundLedger).openRoundOf(agreementId) == 0);
        if (!over) revert RewardVaultAgreementRunning(agreementId);
        uint256 amount = reclaimable(agreementId, msg.sender);
        if (amount == 0) revert RewardVaultNothingToReclaim(agreementId);
        _reclaimedBy[agreementId][msg.sender] += amount;
        _pools[agreementId].reclaimed += amount;
        emit Reclaimed(agreementId, msg.sender, amount);
        IERC20(config.rewardToken).safeTransfer(msg.sender, amount);
    }

    /*//////////////////////////////////////////////////////////////
                                 VIEWS
    //////////////////////////////////////////////////////////////*/

    /// @inheritdoc IRewardVault
    function checkBond(uint256 agreementId) external view {
        _court().checkBond(agreementId);
    }

    /// @inheritdoc IRewardVault
    function pool(uint256 agreementId) external view returns (Pool memory) {
        return _pools[agreementId];
    }

    /// @inheritdoc IRewardVault
    function allocation(uint256 agreementId, uint64 round) external view returns (Allocation memory) {
        return _allocations[agreementId][round];
    }

    /// @inheritdoc IRewardVault
    function claimable(uint256 agreementId) external view returns (uint256) {
        Pool storage p = _pools[agreementId];
        return p.allocated - p.paid - p.slashed;
    }

    /// @inheritdoc IRewardVault
    function unallocated(uint256 agreementId) public view returns (uint256) {
        Pool storage p = _pools[agreementId];
        return p.funded - p.allocated - p.reclaimed;
    }

    /// @inheritdoc IRewardVault
    function reclaimable(uint256 agreementId, address funder) public view returns (uint256) {
        Pool storage p = _pools[agreementId];
        if (p.funded == 0) return 0;
        // Once the agreement is over allocations only shrink, so a funder's share of `funded - allocated` only
        // grows, and rounding down keeps the shares' sum within it. An amendment that moves the end past a
        // reclaim lets funding and allocation resume after money already left, so the share is also capped by
        // what is actually unallocated: the vault never pays out more than the pool holds.
        uint256 share = (p.funded - p.allocated) * fundedBy[agreementId][funder] / p.funded;
        uint256 taken = _reclaimedBy[agreementId][funder];
        uint256 owed = share > taken ? share - taken : 0;
        uint256 free = p.funded - p.allocated - p.reclaimed;
        return owed < free ? owed : free;
    }

    /// @inheritdoc IRewardVault
    function hasClaimed(uint256 agreementId, uint64 round, address partner) external view returns (bool) {
        (bool isParty, uint256 index) = agreements.partyIndex(agreementId, partner);
        return isParty && PartyBitmap.isSet(_claimed[agreementId][round], index);
    }

    /// @inheritdoc IRewardVault
    function payoutLeaf(uint256 agreementId, uint64 round, address partner, uint256 amount)
        public
        pure
        returns (bytes32)
    {
        return keccak256(bytes.concat(keccak256(abi.encode(agreementId, round, partner, amount))));
    }

    /*//////////////////////////////////////////////////////////////
                                INTERNAL
    //////////////////////////////////////////////////////////////*/

    /// @dev Proves `partner`'s payout leaf and marks it settled; the caller books where the money goes.
    function _settle(
        Allocation storage a,
        uint256 agreementId,
        uint64 round,
        address partner,
        uint256 amount,
        bytes32[] calldata proof
    ) private {
        (bool isParty, uint256 index) = agreements.partyIndex(agreementId, partner);
        if (!isParty) revert RewardVaultNotParty(agreementId, partner);
        // Marked first: a failed proof or overdraft below reverts the whole claim, mark included.
        if (!PartyBitmap.trySet(_claimed[agreementId][round], index)) {
            revert RewardVaultAlreadyClaimed(agreementId, round, partner);
        }
        if (!MerkleProof.verifyCalldata(proof, a.root, payoutLeaf(agreementId, round, partner, amount))) {
            revert RewardVaultInvalidProof(agreementId, round, partner, amount);
        }
        uint256 settled = a.claimed;
        // Compared with the room left rather than summed first: a leaf near 2^256 must get this error, not an
        // overflow panic. `a.total - settled` cannot underflow: claimed never exceeds total.
        if (amount > a.total - settled) revert RewardVaultAllocationExceeded(agreementId, round, settled, a.total);
        a.claimed = settled + amount;
    }

    function _claimableAllocation(uint256 agreementId, uint64 round) private view returns (Allocation storage a) {
        a = _allocations[agreementId][round];
        if (a.root == bytes32(0)) revert RewardVaultNoAllocation(agreementId, round);
        if (a.revoked) revert RewardVaultAllocationRevoked(agreementId, round);
        if (a.expired) revert RewardVaultAllocationExpired(agreementId, round);
    }

    /// @dev Transfers `amount` in from the caller and returns what actually arrived (fee-on-transfer tokens).
    function _pull(address token, uint256 amount) private returns (uint256 received) {
        uint256 before = IERC20(token).balanceOf(address(this));
        IERC20(token).safeTransferFrom(msg.sender, address(this), amount);
        received = IERC20(token).balanceOf(address(this)) - before;
    }

    function _config(uint256 agreementId) private view returns (IAgreementRegistry.RoundConfig memory config) {
        config = agreements.roundConfig(agreementId);
        if (config.status == IAgreementRegistry.AgreementStatus.None) revert RewardVaultUnknownAgreement(agreementId);
    }

    function _liveConfig(uint256 agreementId) private view returns (IAgreementRegistry.RoundConfig memory config) {
        config = _config(agreementId);
        if (config.status == IAgreementRegistry.AgreementStatus.Terminated) {
            revert RewardVaultAgreementTerminated(agreementId);
        }
    }

    function _onlyLedger() private view {
        if (msg.sender != roundLedger) revert RewardVaultNotLedger(msg.sender);
    }

    function _court() private view returns (IResultsCourt court) {
        court = IResultsCourt(resultsCourt);
        if (address(court) == address(0)) revert RewardVaultNoCourt();
    }

}
