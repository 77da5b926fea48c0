// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.28;

import {EIP712} from "@openzeppelin/contracts/utils/cryptography/EIP712.sol";
import {SignatureChecker} from "@openzeppelin/contracts/utils/cryptography/SignatureChecker.sol";
import {Nonces} from "@openzeppelin/contracts/utils/Nonces.sol";
import {IAgreementRegistry} from "../interfaces/IAgreementRegistry.sol";
import {IPartnerRegistry} from "../interfaces/IPartnerRegistry.sol";
import {IRewardVault} from "../interfaces/IRewardVault.sol";
import {IRoundLedger} from "../interfaces/IRoundLedger.sol";
import {LeptonRoles} from "./libraries/LeptonRoles.sol";

/// @title AgreementRegistry
/// @notice Terms, signatures and lifecycle of partner agreements.
contract AgreementRegistry is IAgreementRegistry, EIP712, Nonces {
    /*//////////////////////////////////////////////////////////////
                               CONSTANTS
    //////////////////////////////////////////////////////////////*/

    /// @notice Upper bound on parties, so that activation's loop over them stays far below a block's gas.
    uint256 public constant MAX_PARTIES = 256;

    /// @notice The EIP-712 type hash of a party's signature on one version of an agreement, for {signBySig}.
    bytes32 public constant SIGN_AGREEMENT_TYPEHASH = keccak256(
        "SignAgreement(uint256 agreementId,uint32 version,bytes32 termsHash,address party,uint256 nonce,uint256 deadline)"
    );

    uint64 private constant _ONE_DELTA = 1e18;

    /*//////////////////////////////////////////////////////////////
                                STORAGE
    //////////////////////////////////////////////////////////////*/

    /// @notice The partner registry: who is an approved partner, and the roles of the deployment.
    IPartnerRegistry public immutable partners;

    /// @inheritdoc IAgreementRegistry
    address public vault;

    /// @inheritdoc IAgreementRegistry
    uint256 public agreementCount;

    /// @dev Every version of the terms: the one in force, a pending one, and those they superseded.
    mapping(uint256 agreementId => mapping(uint32 version => Terms)) private _versions;
    mapping(uint256 agreementId => AgreementState) private _states;
    /// @dev The partner registry's suspension count when the agreement was proposed (see {suspensionLogStart}).
    mapping(uint256 agreementId => uint256) private _suspensionLogStart;
    /// @dev Position + 1, so that zero means "not a party".
    mapping(uint256 agreementId => mapping(address party => uint256)) private _partyPosition;
    mapping(uint256 agreementId => mapping(uint32 version => mapping(address party => bool))) private _signed;
    mapping(uint256 agreementId => mapping(address party => bool)) private _exited;
    /// @dev How many parties exited: once one has, no new version may come into force.
    mapping(uint256 agreementId => uint256) private _exitedCount;
    /// @dev How many leading parties activation found staked for the latest version (see {_tryActivate}).
    mapping(uint256 agreementId => uint256) private _stakedPrefix;

    /*//////////////////////////////////////////////////////////////
                              CONSTRUCTOR
    //////////////////////////////////////////////////////////////*/

    constructor(IPartnerRegistry partnerRegistry) EIP712("LeptonAgreementRegistry", "1") {
        partners = partnerRegistry;
    }

    /*//////////////////////////////////////////////////////////////
                                EXTERNAL
    //////////////////////////////////////////////////////////////*/

    /// @inheritdoc IAgreementRegistry
    function setVault(address newVault) external {
        if (!LeptonRoles.has(address(partners), LeptonRoles.ADMIN, msg.sender)) {
            revert AgreementRegistryNotAdmin(msg.sender);
        }
        if (vault != address(0)) revert AgreementRegistryVaultAlreadySet(vault);
        if (newVault == address(0)) revert AgreementRegistryZeroVault();
        vault = newVault;
        emit VaultSet(newVault);
    }

    /// @inheritdoc IAgreementRegistry
    function propose(Terms calldata newTerms) external returns (uint256 agreementId) {
        if (!LeptonRoles.has(address(partners), LeptonRoles.COORDINATOR, msg.sender)) {
            revert AgreementRegistryNotCoordinator(msg.sender);
        }
        if (newTerms.coordinator != msg.sender) revert AgreementRegistryInvalidCoordinator(newTerms.coordinator);
        _validate(newTerms);
        agreementId = ++agreementCount;
        uint256 count = newTerms.parties.length;
        for (uint256 i; i < count; ++i) {
            address party = newTerms.parties[i];
            if (_partyPosition[agreementId][party] != 0) revert AgreementRegistryDuplicateParty(party);
            _partyPosition[agreementId][party] = i + 1;
        }
        bytes32 termsHash = hashTerms(newTerms);
        _versions[agreementId][1] = newTerms;
        _states[agreementId] = AgreementState({
            status: AgreementStatus.Proposed,
            version: 1,
            signatures: 0,
            activeVersion: 0,
            proposedAt: uint64(block.timestamp),
            coordinator: msg.sender,
            epsilonCap: newTerms.epsilonCap,
            // count <= MAX_PARTIES (checked by _validate), so it fits 16 bits.
            partyCount: uint16(count),
            epsilonLaneBits: epsilonLaneBitsFor(newTerms.epsilonCap),
            termsHash: termsHash
        });
        uint256 logged = partners.suspensionCount();
        if (logged != 0) _suspensionLogStart[agreementId] = logged;
        emit AgreementProposed(agreementId, msg.sender, termsHash, newTerms);
    }

    /// @inheritdoc IAgreementRegistry
    function amend(uint256 agreementId, Terms calldata newTerms) external {
        AgreementState storage state = _existing(agreementId);
        _onlyCoordinatorOf(agreementId, state);
        if (state.status == AgreementStatus.Terminated) {
            revert AgreementRegistryInvalidStatus(agreementId, state.status);
        }
        if (!LeptonRoles.has(address(partners), LeptonRoles.COORDINATOR, newTerms.coordinator)) {
            revert AgreementRegistryInvalidCoordinator(newTerms.coordinator);
        }
        _validate(newTerms);
        // The ledger's lanes keep the width chosen at the proposal: a cap past it could not be stored.
        if (epsilonLaneBitsFor(newTerms.epsilonCap) > state.epsilonLaneBits) {
            revert AgreementRegistryEpsilonCapOverLanes(newTerms.epsilonCap, uint32(type(uint24).max));
        }
        Terms storage current = _versions[agreementId][_inForceVersion(state)];
        uint256 count = current.parties.length;
        if (newTerms.parties.length != count) revert AgreementRegistryPartiesChanged(agreementId);
        for (uint256 i; i < count; ++i) {
            if (newTerms.parties[i] != current.parties[i]) revert AgreementRegistryPartiesChanged(agreementId);
        }
        // The vault's books for this agreement are kept in one token.
        if (newTerms.rewardToken != current.rewardToken) revert AgreementRegistryRewardTokenChanged(agreementId);
        bytes32 termsHash = hashTerms(newTerms);
        uint32 version = state.version + 1;
        // The pending version is stored beside the one in force, which stays what every call reads.
        _versions[agreementId][version] = newTerms;
        state.version = version;
        state.signatures = 0;
        state.termsHash = termsHash;
        delete _stakedPrefix[agreementId]; // the new version may require more stake
        emit AgreementAmended(agreementId, version, termsHash, newTerms);
    }

    /// @inheritdoc IAgreementRegistry
    function sign(uint256 agreementId) external {
        _sign(agreementId, msg.sender, false);
    }

    /// @inheritdoc IAgreementRegistry
    function signBySig(uint256 agreementId, address party, uint256 deadline, bytes calldata signature) external {
        if (block.timestamp > deadline) revert AgreementRegistryExpiredSignature(deadline);
        bytes32 digest = _signingDigest(agreementId, party, _useNonce(party), deadline);
        if (!SignatureChecker.isValidSignatureNow(party, digest, signature)) {
            revert AgreementRegistryInvalidSignature(party);
        }
        _sign(agreementId, party, true);
    }

    /// @inheritdoc IAgreementRegistry
    function tryActivate(uint256 agreementId) external returns (bool active) {
        _existing(agreementId);
        return _tryActivate(agreementId);
    }

    /// @inheritdoc IAgreementRegistry
    function terminate(uint256 agreementId, bytes32 reasonDigest) external {
        AgreementState storage state = _existing(agreementId);
        _onlyCoordinatorOf(agreementId, state);
        if (state.status == AgreementStatus.Terminated) {
            revert AgreementRegistryInvalidStatus(agreementId, state.status);
        }
        state.status = AgreementStatus.Terminated;
        emit AgreementTerminated(agreementId, msg.sender, reasonDigest);
    }

    /// @inheritdoc IAgreementRegistry
    function exit(uint256 agreementId) external {
        AgreementState storage state = _existing(agreementId);
        if (_partyPosition[agreementId][msg.sender] == 0) revert AgreementRegistryNotParty(agreementId, msg.sender);
        uint64 end = _versions[agreementId][_inForceVersion(state)].end;
        if (block.timestamp <= end) revert AgreementRegistryNotEnded(agreementId, end);
        if (_exited[agreementId][msg.sender]) revert AgreementRegistryAlreadyExited(agreementId, msg.sender);
        _exited[agreementId][msg.sender] = true;
        ++_exitedCount[agreementId];
        emit PartyExited(agreementId, msg.sender);
    }

    /*//////////////////////////////////////////////////////////////
                                 VIEWS
    //////////////////////////////////////////////////////////////*/

    /// @inheritdoc IAgreementRegistry
    function terms(uint256 agreementId) external view returns (Terms memory) {
        return _versions[agreementId][_inForceVersion(_existing(agreementId))];
    }

    /// @inheritdoc IAgreementRegistry
    function termsAt(uint256 agreementId, uint32 version) external view returns (Terms memory) {
        AgreementState storage state = _existing(agreementId);
        if (version == 0 || version > state.version) revert AgreementRegistryUnknownVersion(agreementId, version);
        return _versions[agreementId][version];
    }

    /// @inheritdoc IAgreementRegistry
    function agreementState(uint256 agreementId) external view returns (AgreementState memory) {
        _existing(agreementId);
        return _states[agreementId];
    }

    /// @inheritdoc IAgreementRegistry
    function roundConfig(uint256 agreementId) external view returns (RoundConfig memory) {
        AgreementState storage state = _states[agreementId];
        return _roundConfig(agreementId, state, _inForceVersion(state));
    }

    /// @inheritdoc IAgreementRegistry
    function coordinatorBondOf(uint256 agreementId) external view returns (address coordinator, uint256 bond) {
        Terms storage t = _versions[agreementId][_inForceVersion(_states[agreementId])];
        return (t.coordinator, t.coordinatorBond);
    }

    /// @inheritdoc IAgreementRegistry
    function roundConfigAt(uint256 agreementId, uint32 version) external view returns (RoundConfig memory) {
        return _roundConfig(agreementId, _states[agreementId], version);
    }

    /// @inheritdoc IAgreementRegistry
    function submissionTerms(uint256 agreementId, address account)
        external
        view
        returns (
            AgreementStatus status,
            bool isParty,
            uint256 index,
            uint32 epsilonCap,
            uint64 maxSampleCount,
            uint8 epsilonLaneBits
        )
    {
        AgreementState storage state = _states[agreementId];
        Terms storage t = _versions[agreementId][_inForceVersion(state)];
        uint256 position = _partyPosition[agreementId][account];
        // unchecked: position is non-zero when it is used.
        unchecked {
            return (
                state.status,
                position != 0,
                position == 0 ? 0 : position - 1,
                state.epsilonCap,
                t.maxSampleCount,
                state.epsilonLaneBits
            );
        }
    }

    /// @inheritdoc IAgreementRegistry
    function partyIndex(uint256 agreementId, address account) external view returns (bool isParty, uint256 index) {
        uint256 position = _partyPosition[agreementId][account];
        if (position == 0) return (false, 0);
        // unchecked: position is non-zero here.
        unchecked {
            return (true, position - 1);
        }
    }

    /// @inheritdoc IAgreementRegistry
    function batchTerms(uint256 agreementId)
        external
        view
        returns (
            AgreementStatus status,
            address coordinator,
            uint32 partyCount,
            uint32 epsilonCap,
            uint8 epsilonLaneBits
        )
    {
        // Two storage words: the status's, and the coordinator's with the copies of the terms beside it.
        AgreementState storage state = _states[agreementId];
        return (state.status, state.coordinator, state.partyCount, state.epsilonCap, state.epsilonLaneBits);
    }

    /// @inheritdoc IAgreementRegistry
    function epsilonLaneBitsFor(uint32 epsilonCap) public pure returns (uint8) {
        return epsilonCap <= type(uint24).max ? 24 : 32;
    }

    /// @inheritdoc IAgreementRegistry
    function suspensionLogStart(uint256 agreementId) external view returns (uint256) {
        return _suspensionLogStart[agreementId];
    }

    /// @inheritdoc IAgreementRegistry
    function partyAt(uint256 agreementId, uint256 index) external view returns (address) {
        // Every version has the same parties; version 1 always exists.
        return _versions[agreementId][1].parties[index];
    }

    /// @inheritdoc IAgreementRegistry
    function hasSigned(uint256 agreementId, uint32 version, address party) external view returns (bool) {
        return _signed[agreementId][version][party];
    }

    /// @inheritdoc IAgreementRegistry
    function hasExited(uint256 agreementId, address party) external view returns (bool) {
        return _exited[agreementId][party];
    }

    /// @inheritdoc IAgreementRegistry
    function pendingParty(uint256 agreementId) public view returns (address party, bool needsSignature) {
        uint32 version = _states[agreementId].version;
        Terms storage t = _versions[agreementId][version];
        uint256 required = t.requiredStake;
        address stakeVault = vault;
        uint256 count = t.parties.length;
        for (uint256 i; i < count; ++i) {
            address p = t.parties[i];
            if (!_signed[agreementId][version][p]) return (p, true);
            if (required != 0) {
                uint256 staked = stakeVault == address(0) ? 0 : IRewardVault(stakeVault).stakeOf(agreementId, p);
                if (staked < required) return (p, false);
            }
        }
        return (address(0), false);
    }

    /// @inheritdoc IAgreementRegistry
    function hashTerms(Terms calldata t) public pure returns (bytes32) {
        return keccak256(abi.encode(t));
    }

    /// @inheritdoc IAgreementRegistry
    function signingDigest(uint256 agreementId, address party, uint256 deadline) external view returns (bytes32) {
        return _signingDigest(agreementId, party, nonces(party), deadline);
    }

    /*//////////////////////////////////////////////////////////////
                                INTERNAL
    //////////////////////////////////////////////////////////////*/

    function _sign(uint256 agreementId, address party, bool relayed) private {
        AgreementState storage state = _existing(agreementId);
        if (state.status == AgreementStatus.Terminated) revert AgreementRegistryInvalidStatus(agreementId, state.status);
        uint32 version = state.version;
        if (version == state.activeVersion) revert AgreementRegistryNothingToSign(agreementId);
        uint64 end = _versions[agreementId][version].end;
        if (block.timestamp > end) revert AgreementRegistryAgreementEnded(agreementId, end);
        if (_partyPosition[agreementId][party] == 0) revert AgreementRegistryNotParty(agreementId, party);
        if (_exited[agreementId][party]) revert AgreementRegistryPartyExited(agreementId, party);
        if (!partners.isApproved(party)) revert AgreementRegistryPartnerNotApproved(party);
        if (_signed[agreementId][version][party]) revert AgreementRegistryAlreadySigned(agreementId, version, party);
        _signed[agreementId][version][party] = true;
        ++state.signatures;
        emit AgreementSigned(agreementId, version, party, relayed);
        _tryActivate(agreementId);
    }

    /// @dev Activation checks the parties' stakes in order and remembers how many leading parties it has
    /// already found staked for this version, so the stakes of n parties cost O(n) checks in all instead of
    /// O(n) each. A stake behind the cursor can still shrink (a slash), so the prefix is checked again once the
    /// walk reaches the end, before activating. An amendment waits for no open round, so that every round runs
    /// under one version from its opening to its finalization.
    function _tryActivate(uint256 agreementId) private returns (bool) {
        AgreementState storage state = _states[agreementId];
        if (state.status == AgreementStatus.Terminated) return false;
        uint32 version = state.version;
        if (version == state.activeVersion) return true;
        Terms storage t = _versions[agreementId][version];
        uint256 count = t.parties.length;
        if (state.signatures != count || block.timestamp > t.end || _exitedCount[agreementId] != 0) return false;
        if (state.activeVersion != 0 && _roundOpen(agreementId)) return false;
        uint256 required = t.requiredStake;
        uint256 cursor = _stakedPrefix[agreementId];
        if (required != 0) {
            address stakeVault = vault;
            for (uint256 i = cursor; i < count; ++i) {
                uint256 staked = stakeVault == address(0) ? 0 : IRewardVault(stakeVault).stakeOf(agreementId, t.parties[i]);
                if (staked < required) {
                    if (i != cursor) _stakedPrefix[agreementId] = i;
                    return false;
                }
            }
            // cursor != 0 only after a walk that found the vault set, so stakeVault is non-zero here.
            for (uint256 i; i < cursor; ++i) {
                if (IRewardVault(stakeVault).stakeOf(agreementId, t.parties[i]) < required) {
                    _stakedPrefix[agreementId] = i;
                    return false;
                }
            }
        }
        state.status = AgreementStatus.Active;
        state.activeVersion = version;
        state.coordinator = t.coordinator;
        state.epsilonCap = t.epsilonCap;
        emit AgreementActivated(agreementId, version);
        return true;
    }

    /// @dev Whether the agreement has an open round. Only an amendment asks, so the lookup of the ledger
    /// through the vault is paid only then; without a vault or ledger no round can be open.
    function _roundOpen(uint256 agreementId) private view returns (bool) {
        address stakeVault = vault;
        if (stakeVault == address(0)) return false;
        address ledger = IRewardVault(stakeVault).roundLedger();
        return ledger != address(0) && IRoundLedger(ledger).openRoundOf(agreementId) != 0;
    }

    function _roundConfig(uint256 agreementId, AgreementState storage state, uint32 version)
        private
        view
        returns (RoundConfig memory config)
    {
        Terms storage t = _versions[agreementId][version];
        config = RoundConfig({
            status: state.status,
            version: version,
            partyCount: uint32(t.parties.length),
            epsilonCap: t.epsilonCap,
            maxRounds: t.maxRounds,
            start: t.start,
            end: t.end,
            rewardPerRound: t.rewardPerRound,
            rewardToken: t.rewardToken,
            coordinator: t.coordinator,
            arbiter: t.arbiter,
            maxSampleCount: t.maxSampleCount,
            epsilonLaneBits: state.epsilonLaneBits
        });
    }

    /// @dev The version in force, or version 1 (the proposal) before the first activation; 0 for an unknown
    /// agreement, whose version 0 is all zeros.
    function _inForceVersion(AgreementState storage state) private view returns (uint32) {
        uint32 active = state.activeVersion;
        if (active != 0) return active;
        return state.version == 0 ? 0 : 1;
    }

    function _signingDigest(uint256 agreementId, address party, uint256 nonce, uint256 deadline)
        private
        view
        returns (bytes32)
    {
        AgreementState storage state = _existing(agreementId);
        return _hashTypedDataV4(
            keccak256(
                abi.encode(SIGN_AGREEMENT_TYPEHASH, agreementId, state.version, state.termsHash, party, nonce, deadline)
            )
        );
    }

    function _validate(Terms calldata t) private view {
        uint256 count = t.parties.length;
        if (count == 0) revert AgreementRegistryNoParties();
        if (count > MAX_PARTIES) revert AgreementRegistryTooManyParties(count, MAX_PARTIES);
        for (uint256 i; i < count; ++i) {
            if (t.parties[i] == address(0)) revert AgreementRegistryZeroParty(i);
        }
        if (t.termsDigest == bytes32(0)) revert AgreementRegistryZeroTermsDigest();
        if (t.rewardToken == address(0)) revert AgreementRegistryZeroRewardToken();
        if (t.epsilonCap == 0) revert AgreementRegistryZeroEpsilonCap();
        if (t.delta == 0 || t.delta >= _ONE_DELTA) revert AgreementRegistryInvalidDelta(t.delta);
        if (t.start >= t.end || t.end <= block.timestamp) revert AgreementRegistryInvalidPeriod(t.start, t.end);
        if (t.maxRounds == 0) revert AgreementRegistryZeroMaxRounds();
        if (t.maxSampleCount == 0) revert AgreementRegistryZeroMaxSampleCount();
        if (t.arbiter == address(0)) revert AgreementRegistryZeroArbiter();
    }

    /// @dev The coordinator of the version in force (or of the proposal) is the only one who acts on it.
    function _onlyCoordinatorOf(uint256 agreementId, AgreementState storage state) private view {
        if (state.coordinator != msg.sender) revert AgreementRegistryNotAgreementCoordinator(agreementId, msg.sender);
    }

    function _existing(uint256 agreementId) private view returns (AgreementState storage state) {
        state = _states[agreementId];
        if (state.status == AgreementStatus.None) revert AgreementRegistryUnknownAgreement(agreementId);
    }
}
