// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.28;

/// @title IAgreementRegistry
/// @notice Partner agreements: the terms a coordinator proposes, each party's signature on the exact version
/// in force, and the lifecycle Proposed -> Active -> Terminated.
/// @dev An agreement becomes Active once every party has signed its current version and holds at least the
/// required stake in the reward vault. An amendment is a new version: it returns the agreement to Proposed and
/// needs every signature again. The parties themselves never change: each party's privacy budget is tied to its
/// position in the agreement, and letting an amendment re-seat parties would let a budget be reset.
interface IAgreementRegistry {
    enum PayoutRule {
        Proportional, // to positive contribution scores
        Equal,
        BySampleCount
    }

    enum AgreementStatus {
        None,
        Proposed,
        Active,
        Terminated
    }

    /// @dev Everything the parties sign. `epsilonCap` is fixed point with 1e6 = 1.0 (so at most 4294.967295);
    /// `delta` is fixed point with 1e18 = 1.0.
    // Field order is part of the ABI and of hashTerms, which parties sign, so it is not re-packed for storage.
    // solhint-disable-next-line gas-struct-packing
    struct Terms {
        bytes32 termsDigest;
        address[] parties;
        address rewardToken;
        uint256 rewardPerRound;
        PayoutRule payoutRule;
        uint32 epsilonCap;
        uint64 delta;
        uint256 requiredStake;
        uint64 start;
        uint64 end;
        uint32 maxRounds;
    }

    /// @dev The state of an agreement beside its terms.
    struct AgreementState {
        AgreementStatus status;
        uint32 version;
        uint32 signatures;
        uint64 proposedAt;
        address coordinator;
        bytes32 termsHash;
    }

    /// @dev What the round ledger needs on every call, without the party list.
    struct RoundConfig {
        AgreementStatus status;
        uint32 version;
        uint32 partyCount;
        uint32 epsilonCap;
        uint32 maxRounds;
        uint64 start;
        uint64 end;
        uint256 rewardPerRound;
        address rewardToken;
    }

    error AgreementRegistryUnknownAgreement(uint256 agreementId);
    error AgreementRegistryNoParties();
    error AgreementRegistryTooManyParties(uint256 count, uint256 max);
    error AgreementRegistryZeroParty(uint256 index);
    error AgreementRegistryDuplicateParty(address party);
    error AgreementRegistryZeroTermsDigest();
    error AgreementRegistryZeroRewardToken();
    error AgreementRegistryZeroEpsilonCap();
    /// @dev delta must lie strictly between 0 and 1 (1e18).
    error AgreementRegistryInvalidDelta(uint64 delta);
    error AgreementRegistryInvalidPeriod(uint64 start, uint64 end);
    error AgreementRegistryZeroMaxRounds();
    /// @dev An amendment must keep the parties, in the same order.
    error AgreementRegistryPartiesChanged(uint256 agreementId);
    /// @dev An amendment must keep the reward token: the vault's books are in it.
    error AgreementRegistryRewardTokenChanged(uint256 agreementId);
    error AgreementRegistryNotParty(uint256 agreementId, address account);
    error AgreementRegistryPartnerNotApproved(address partner);
    error AgreementRegistryInvalidStatus(uint256 agreementId, AgreementStatus status);
    error AgreementRegistryAlreadySigned(uint256 agreementId, uint32 version, address party);
    error AgreementRegistryExpiredSignature(uint256 deadline);
    error AgreementRegistryInvalidSignature(address party);
    error AgreementRegistryAgreementEnded(uint256 agreementId, uint64 end);
    error AgreementRegistryNotEnded(uint256 agreementId, uint64 end);
    error AgreementRegistryAlreadyExited(uint256 agreementId, address party);
    error AgreementRegistryVaultAlreadySet(address vault);
    error AgreementRegistryZeroVault();
    error AgreementRegistryNotCoordinator(address account);
    error AgreementRegistryNotAdmin(address account);

    /// @notice Emitted once, when the admin binds the reward vault.
    event VaultSet(address indexed vault);
    /// @notice Emitted for a new agreement; the full terms are in the event so that indexers need no extra call.
    event AgreementProposed(uint256 indexed agreementId, address indexed coordinator, bytes32 termsHash, Terms terms);
    /// @notice Emitted for an amendment: `version` is the new version, whose signatures start from zero.
    event AgreementAmended(uint256 indexed agreementId, uint32 version, bytes32 termsHash, Terms terms);
    /// @notice Emitted when `party` signs `version`; `relayed` when the signature came through {signBySig}.
    event AgreementSigned(uint256 indexed agreementId, uint32 version, address indexed party, bool relayed);
    /// @notice Emitted when `version` becomes Active: every party has signed it and staked enough.
    event AgreementActivated(uint256 indexed agreementId, uint32 version);
    /// @notice Emitted when a coordinator terminates the agreement; `reasonDigest` commits to the published reason.
    event AgreementTerminated(uint256 indexed agreementId, address indexed coordinator, bytes32 reasonDigest);
    /// @notice Emitted when `party` leaves the agreement after its end.
    event PartyExited(uint256 indexed agreementId, address indexed party);

    /// @notice Binds the reward vault whose stakes gate activation. Once only.
    /// Requirements: the caller has the admin role; no vault was set; `vault` is non-zero.
    /// Emits {VaultSet}.
    function setVault(address vault) external;

    /// @notice Proposes a new agreement. Returns its id (ids start at 1).
    /// Requirements: the caller has the coordinator role; the terms are well formed (each refusal names the
    /// offending field).
    /// Emits {AgreementProposed}.
    function propose(Terms calldata terms) external returns (uint256 agreementId);

    /// @notice Replaces the terms of a Proposed or Active agreement with a new version that every party must
    /// sign again. The agreement returns to Proposed.
    /// Requirements: the caller has the coordinator role; the agreement is not Terminated; the parties are
    /// unchanged, and so is the reward token; the terms are well formed.
    /// Emits {AgreementAmended}.
    function amend(uint256 agreementId, Terms calldata terms) external;

    /// @notice The caller signs the current version of `agreementId`.
    /// Requirements: the agreement is Proposed and not past its end; the caller is a party and an approved
    /// partner, and has not signed this version.
    /// Emits {AgreementSigned}, and {AgreementActivated} when this completes activation.
    function sign(uint256 agreementId) external;

    /// @notice Records `party`'s EIP-712 signature of the current version; anyone may relay it. Smart-wallet
    /// parties sign through ERC-1271.
    /// Requirements: as {sign}, plus `deadline` has not passed and `signature` is `party`'s signature of
    /// `SignAgreement(agreementId, version, termsHash, party, nonces(party), deadline)` under this contract's
    /// domain (which binds the chain id). The nonce is consumed.
    /// Emits {AgreementSigned}, and {AgreementActivated} when this completes activation.
    function signBySig(uint256 agreementId, address party, uint256 deadline, bytes calldata signature) external;

    /// @notice Activates the agreement if every party has signed the current version and staked enough.
    /// Anyone may call it; returns whether the agreement is Active afterwards.
    /// Emits {AgreementActivated} when it changes the status.
    function tryActivate(uint256 agreementId) external returns (bool active);

    /// @notice Ends the agreement for good: no new rounds; stakes become withdrawable once disputes clear.
    /// Requirements: the caller has the coordinator role; the agreement is Proposed or Active.
    /// Emits {AgreementTerminated}.
    function terminate(uint256 agreementId, bytes32 reasonDigest) external;

    /// @notice The caller, a party, leaves the agreement after its end, which frees its stake once disputes clear.
    /// Requirements: the agreement's end has passed; the caller is a party that has not exited.
    /// Emits {PartyExited}.
    function exit(uint256 agreementId) external;

    /// @notice The reward vault whose stakes gate activation; zero until {setVault}.
    function vault() external view returns (address);
    /// @notice How many agreements were proposed; ids run from 1 to this.
    function agreementCount() external view returns (uint256);
    /// @notice The latest version of the terms of `agreementId`. Reverts for an unknown agreement.
    function terms(uint256 agreementId) external view returns (Terms memory);
    /// @notice Status, version, signature count and terms hash of `agreementId`. Reverts for an unknown agreement.
    function agreementState(uint256 agreementId) external view returns (AgreementState memory);
    /// @notice What the round ledger and the vault need of `agreementId`, without the party list; status None
    /// when the agreement is unknown.
    function roundConfig(uint256 agreementId) external view returns (RoundConfig memory);
    /// @notice Whether `account` is a party, and its position in the party list.
    function partyIndex(uint256 agreementId, address account) external view returns (bool isParty, uint256 index);
    /// @notice The party at `index` of the party list; reverts when `index` is out of range.
    function partyAt(uint256 agreementId, uint256 index) external view returns (address);
    /// @notice Whether `party` has signed `version` of `agreementId`.
    function hasSigned(uint256 agreementId, uint32 version, address party) external view returns (bool);
    /// @notice Whether `party` has left `agreementId` through {exit}.
    function hasExited(uint256 agreementId, address party) external view returns (bool);
    /// @notice The first party that still lacks a signature or stake, or address(0) when none does.
    function pendingParty(uint256 agreementId) external view returns (address party, bool needsSignature);
    /// @notice The hash of `terms` that signatures bind to.
    function hashTerms(Terms calldata terms) external pure returns (bytes32);
    /// @notice The EIP-712 digest `party` signs to sign the current version of `agreementId` with `deadline`.
    function signingDigest(uint256 agreementId, address party, uint256 deadline) external view returns (bytes32);
}
