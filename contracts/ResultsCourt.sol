// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.28;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {ReentrancyGuard} from "@openzeppelin/contracts/utils/ReentrancyGuard.sol";
import {IResultsCourt} from "../interfaces/IResultsCourt.sol";
import {IAgreementRegistry} from "../interfaces/IAgreementRegistry.sol";
import {IPartnerRegistry} from "../interfaces/IPartnerRegistry.sol";
import {IRewardVault} from "../interfaces/IRewardVault.sol";
import {IRoundLedger} from "../interfaces/IRoundLedger.sol";
import {LeptonRoles} from "./libraries/LeptonRoles.sol";

/// @title ResultsCourt
/// @notice Coordinator bonds and the challenges of a coordinator's round results (see {IResultsCourt}).
/// @dev Kept apart from the round ledger, which judges partners: this contract judges the coordinator, holds
/// its bonds and pays the parties what an upheld challenge slashes.
contract ResultsCourt is IResultsCourt, ReentrancyGuard {
    using SafeERC20 for IERC20;

    /*//////////////////////////////////////////////////////////////
                                STORAGE
    //////////////////////////////////////////////////////////////*/

    /// @notice The partner registry, which holds the deployment's roles.
    IPartnerRegistry public immutable partners;
    /// @notice The agreement registry: terms, parties, coordinator and arbiter.
    IAgreementRegistry public immutable agreements;
    /// @notice The reward vault: the round allocations an upheld challenge revokes, and the round ledger.
    IRewardVault public immutable vault;

    /// @inheritdoc IResultsCourt
    uint256 public challengeCount;
    /// @inheritdoc IResultsCourt
    mapping(uint256 agreementId => mapping(address coordinator => uint256)) public bondOf;
    /// @inheritdoc IResultsCourt
    mapping(uint256 agreementId => uint256) public openChallenges;
    /// @inheritdoc IResultsCourt
    mapping(uint256 agreementId => mapping(uint64 round => uint256)) public challengeOfRound;

    mapping(uint256 challengeId => ResultsChallenge) private _challenges;
    mapping(uint256 agreementId => Bonds) private _bonds;
    /// @dev Slashed bonds are shared lazily, so a ruling costs the same for 2 or 256 parties: every party is owed
    /// `_sharePerParty - _shareTaken[party]`, and the first party also the remainders of the divisions.
    mapping(uint256 agreementId => uint256) private _sharePerParty;
    mapping(uint256 agreementId => uint256) private _remainder;
    mapping(uint256 agreementId => mapping(address party => uint256)) private _shareTaken;

    /*//////////////////////////////////////////////////////////////
                              CONSTRUCTOR
    //////////////////////////////////////////////////////////////*/

    constructor(IPartnerRegistry partnerRegistry, IAgreementRegistry agreementRegistry, IRewardVault rewardVault) {
        partners = partnerRegistry;
        agreements = agreementRegistry;
        vault = rewardVault;
    }

    /*//////////////////////////////////////////////////////////////
                                EXTERNAL
    //////////////////////////////////////////////////////////////*/

    /// @inheritdoc IResultsCourt
    function postBond(uint256 agreementId, uint256 amount) external nonReentrant {
        IAgreementRegistry.RoundConfig memory config = _config(agreementId);
        if (config.status == IAgreementRegistry.AgreementStatus.Terminated) {
            revert ResultsCourtAgreementTerminated(agreementId);
        }
        if (amount == 0) revert ResultsCourtZeroAmount();
        IERC20 token = IERC20(config.rewardToken);
        uint256 before = token.balanceOf(address(this));
        token.safeTransferFrom(msg.sender, address(this), amount);
        // What arrived, not what was asked: a fee-on-transfer token must not make the books overstate the balance.
        uint256 received = token.balanceOf(address(this)) - before;
        uint256 bond = bondOf[agreementId][msg.sender] + received;
        bondOf[agreementId][msg.sender] = bond;
        _bonds[agreementId].posted += received;
        emit BondPosted(agreementId, msg.sender, received, bond);
    }

    /// @inheritdoc IResultsCourt
    function withdrawBond(uint256 agreementId) external nonReentrant {
        IAgreementRegistry.RoundConfig memory config = _config(agreementId);
        if (config.status != IAgreementRegistry.AgreementStatus.Terminated && block.timestamp <= config.end) {
            revert ResultsCourtAgreementRunning(agreementId);
        }
        // address(0) is never challenged, so the ledger's stake lock reduces to: a round is open or a round's
        // dispute window is still running, i.e. results that could still be challenged here.
        if (openChallenges[agreementId] != 0 || _ledger().isStakeLocked(agreementId, address(0))) {
            revert ResultsCourtBondLocked(agreementId);
        }
        uint256 amount = bondOf[agreementId][msg.sender];
        if (amount == 0) revert ResultsCourtNoBond(agreementId, msg.sender);
        bondOf[agreementId][msg.sender] = 0;
        _bonds[agreementId].withdrawn += amount;
        emit BondWithdrawn(agreementId, msg.sender, amount);
        IERC20(config.rewardToken).safeTransfer(msg.sender, amount);
    }

    /// @inheritdoc IResultsCourt
    function challengeResults(uint256 agreementId, uint64 round, ResultsKind kind, bytes32 evidenceDigest)
        external
        returns (uint256 challengeId)
    {
        if (!LeptonRoles.has(address(partners), LeptonRoles.AUDITOR, msg.sender)) {
            revert ResultsCourtNotAuditor(msg.sender);
        }
        IRoundLedger ledger = _ledger();
        IRoundLedger.Round memory r = ledger.round(agreementId, round);
        if (r.status != IRoundLedger.RoundStatus.Finalized) revert ResultsCourtRoundNotFinalized(agreementId, round);
        // Claims open at finalizedAt + disputeWindow: a challenge from then on could come after the money left.
        uint256 claimableAt = uint256(r.finalizedAt) + ledger.disputeWindow();
        if (block.timestamp >= claimableAt) revert ResultsCourtDisputeWindowClosed(agreementId, round, claimableAt);
        if (evidenceDigest == bytes32(0)) revert ResultsCourtZeroDigest();
        uint256 previous = challengeOfRound[agreementId][round];
        if (previous != 0 && _challenges[previous].status != ChallengeStatus.Dismissed) {
            revert ResultsCourtAlreadyChallenged(agreementId, round, previous);
        }
        challengeId = ++challengeCount;
        _challenges[challengeId] = ResultsChallenge({
            status: ChallengeStatus.Open,
            kind: kind,
            round: round,
            raisedAt: uint64(block.timestamp),
            agreementId: agreementId,
            challenger: msg.sender,
            evidenceDigest: evidenceDigest,
            rulingDigest: bytes32(0)
        });
        challengeOfRound[agreementId][round] = challengeId;
        ++openChallenges[agreementId];
        emit ResultsChallengeRaised(challengeId, agreementId, round, kind, msg.sender, evidenceDigest);
    }

    /// @inheritdoc IResultsCourt
    function ruleResults(uint256 challengeId, bool upheld, bytes32 rulingDigest) external nonReentrant {
        ResultsChallenge storage c = _openChallenge(challengeId);
        uint256 agreementId = c.agreementId;
        if (agreements.roundConfig(agreementId).arbiter != msg.sender) {
            revert ResultsCourtNotArbiter(agreementId, msg.sender);
        }
        uint256 endsAt = _rulingEnd(c);
        if (block.timestamp >= endsAt) revert ResultsCourtRulingWindowClosed(challengeId, endsAt);
        c.rulingDigest = rulingDigest;
        c.status = upheld ? ChallengeStatus.Upheld : ChallengeStatus.Dismissed;
        --openChallenges[agreementId];
        emit ResultsChallengeResolved(challengeId, upheld, rulingDigest);
        if (upheld) _uphold(challengeId, agreementId, c.round);
    }

    /// @inheritdoc IResultsCourt
    function lapseResults(uint256 challengeId) external {
        ResultsChallenge storage c = _openChallenge(challengeId);
        uint256 endsAt = _rulingEnd(c);
        if (block.timestamp < endsAt) revert ResultsCourtRulingWindowOpen(challengeId, endsAt);
        c.status = ChallengeStatus.Dismissed;
        --openChallenges[c.agreementId];
        emit ResultsChallengeLapsed(challengeId);
    }

    /// @inheritdoc IResultsCourt
    function claimBondShare(uint256 agreementId) external nonReentrant {
        (bool isParty, uint256 index) = agreements.partyIndex(agreementId, msg.sender);
        if (!isParty) revert ResultsCourtNotParty(agreementId, msg.sender);
        uint256 amount = _owed(agreementId, msg.sender, index);
        if (amount == 0) revert ResultsCourtNothingToClaim(agreementId, msg.sender);
        _shareTaken[agreementId][msg.sender] = _sharePerParty[agreementId];
        if (index == 0) _remainder[agreementId] = 0;
        _bonds[agreementId].sharesPaid += amount;
        emit BondShareClaimed(agreementId, msg.sender, amount);
        IERC20(agreements.roundConfig(agreementId).rewardToken).safeTransfer(msg.sender, amount);
    }

    /*//////////////////////////////////////////////////////////////
                                 VIEWS
    //////////////////////////////////////////////////////////////*/

    /// @inheritdoc IResultsCourt
    function checkBond(uint256 agreementId) external view {
        (address coordinator, uint256 required) = agreements.coordinatorBondOf(agreementId);
        uint256 held = bondOf[agreementId][coordinator];
        if (held < required) revert ResultsCourtBondShort(agreementId, coordinator, held, required);
    }

    /// @inheritdoc IResultsCourt
    function isClaimBlocked(uint256 agreementId, uint64 round) external view returns (bool) {
        // An enum compared with one of its values: no balance or timestamp an attacker could nudge.
        // slither-disable-next-line incorrect-equality
        return _challenges[challengeOfRound[agreementId][round]].status == ChallengeStatus.Open;
    }

    /// @inheritdoc IResultsCourt
    function bondShareOf(uint256 agreementId, address party) external view returns (uint256) {
        (bool isParty, uint256 index) = agreements.partyIndex(agreementId, party);
        return isParty ? _owed(agreementId, party, index) : 0;
    }

    /// @inheritdoc IResultsCourt
    function bonds(uint256 agreementId) external view returns (Bonds memory) {
        return _bonds[agreementId];
    }

    /// @inheritdoc IResultsCourt
    function challengeOf(uint256 challengeId) external view returns (ResultsChallenge memory) {
        ResultsChallenge storage c = _challenges[challengeId];
        if (c.status == ChallengeStatus.None) revert ResultsCourtUnknownChallenge(challengeId);
        return c;
    }

    /*//////////////////////////////////////////////////////////////
                                INTERNAL
    //////////////////////////////////////////////////////////////*/

    /// @dev The round's payouts go back to the pool (no claim was possible before the challenge) and the whole
    /// bond of the coordinator that ran the round is shared among the parties.
    function _uphold(uint256 challengeId, uint256 agreementId, uint64 round) private {
        IRoundLedger.Round memory r = _ledger().round(agreementId, round);
        IAgreementRegistry.RoundConfig memory config = agreements.roundConfigAt(agreementId, r.agreementVersion);
        address coordinator = config.coordinator;
        uint256 amount = bondOf[agreementId][coordinator];
        uint256 parties = config.partyCount;
        uint256 share = amount / parties;
        bondOf[agreementId][coordinator] = 0;
        _bonds[agreementId].slashed += amount;
        _sharePerParty[agreementId] += share;
        _remainder[agreementId] += amount % parties;
        emit BondSlashed(challengeId, agreementId, coordinator, amount, share);
        // A round voided since the challenge was raised (a forged commitment proven) has no allocation left.
        if (r.payoutTotal != 0 && !vault.allocation(agreementId, round).revoked) {
            vault.revokeAllocation(agreementId, round);
        }
    }

    function _owed(uint256 agreementId, address party, uint256 index) private view returns (uint256 amount) {
        amount = _sharePerParty[agreementId] - _shareTaken[agreementId][party];
        if (index == 0) amount += _remainder[agreementId];
    }

    function _openChallenge(uint256 challengeId) private view returns (ResultsChallenge storage c) {
        c = _challenges[challengeId];
        if (c.status == ChallengeStatus.None) revert ResultsCourtUnknownChallenge(challengeId);
        if (c.status != ChallengeStatus.Open) revert ResultsCourtChallengeNotOpen(challengeId, c.status);
    }

    /// @dev The arbiter has the ledger's dispute window from the challenge, as for partner challenges.
    function _rulingEnd(ResultsChallenge storage c) private view returns (uint256) {
        return uint256(c.raisedAt) + _ledger().disputeWindow();
    }

    function _ledger() private view returns (IRoundLedger) {
        return IRoundLedger(vault.roundLedger());
    }

    function _config(uint256 agreementId) private view returns (IAgreementRegistry.RoundConfig memory config) {
        config = agreements.roundConfig(agreementId);
        if (config.status == IAgreementRegistry.AgreementStatus.None) revert ResultsCourtUnknownAgreement(agreementId);
    }
}
