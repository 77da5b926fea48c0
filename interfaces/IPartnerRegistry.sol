// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.28;

/// @title IPartnerRegistry
/// @notice Who may take part in the ecosystem, under which role, and which key receives their encrypted updates.
/// @dev The registry is also the single source of roles (admin, coordinator, auditor, registrar) for every
/// lepton-ledger contract: the others ask it through {IAccessControl-hasRole}.
/// Who decides who takes part: the registrar (a role the admin grants) approves and suspends partners for the
/// whole deployment. Within one agreement, its own coordinator decides whose updates it anchors, and its arbiter
/// rules on challenges (slashing); neither can touch a partner's standing in another coordinator's agreement.
interface IPartnerRegistry {
    enum PartnerStatus {
        None,
        Pending,
        Approved,
        Suspended
    }

    struct Partner {
        PartnerStatus status;
        uint64 registeredAt;
        bytes32 profileDigest;
        bytes32 encryptionKey;
    }

    /// @dev `partner` has registered already.
    error PartnerRegistryAlreadyRegistered(address partner);
    /// @dev `partner` has never registered.
    error PartnerRegistryNotRegistered(address partner);
    /// @dev The X25519 public key is all zeroes, which no real key is.
    error PartnerRegistryZeroEncryptionKey();
    /// @dev A profile digest of zero commits to nothing.
    error PartnerRegistryZeroProfileDigest();
    /// @dev The new key equals the key in force; rotating to it would record a rotation that did not happen.
    error PartnerRegistryKeyUnchanged(bytes32 key);
    /// @dev `partner` is in `status`, from which the requested transition is not allowed.
    error PartnerRegistryInvalidStatus(address partner, PartnerStatus status);

    /// @notice Emitted when `partner` registers, before any approval.
    event PartnerRegistered(address indexed partner, bytes32 profileDigest, bytes32 encryptionKey);
    /// @notice Emitted when the registrar `registrar` approves (or reinstates) `partner`.
    event PartnerApproved(address indexed partner, address indexed registrar);
    /// @notice Emitted when the registrar `registrar` suspends `partner`; `reasonDigest` commits to the published
    /// reason.
    event PartnerSuspended(address indexed partner, address indexed registrar, bytes32 reasonDigest);
    /// @notice Emitted when `partner` replaces its X25519 key. Auditors follow these to know which key was in
    /// force at any block.
    event EncryptionKeyRotated(address indexed partner, bytes32 previousKey, bytes32 newKey);
    /// @notice Emitted when `partner` publishes a new profile document.
    event ProfileUpdated(address indexed partner, bytes32 previousDigest, bytes32 newDigest);

    /// @notice Registers the caller as a partner, pending approval.
    /// @param profileDigest Digest of the partner's public profile document.
    /// @param encryptionKey The partner's 32-byte X25519 public key for receiving encrypted updates.
    /// Requirements:
    /// - the caller has not registered before;
    /// - neither argument is zero.
    /// Emits {PartnerRegistered}.
    function register(bytes32 profileDigest, bytes32 encryptionKey) external;

    /// @notice Approves a pending partner, or reinstates a suspended one.
    /// Requirements: the caller has the registrar role; `partner` is Pending or Suspended.
    /// Emits {PartnerApproved}.
    function approve(address partner) external;

    /// @notice Suspends a partner: it can no longer sign agreements, stake or submit updates. The suspension is
    /// logged ({suspensionsSince}), so that each agreement's batches learn of it.
    /// Requirements: the caller has the registrar role; `partner` is Pending or Approved.
    /// Emits {PartnerSuspended}.
    function suspend(address partner, bytes32 reasonDigest) external;

    /// @notice Replaces the caller's X25519 key.
    /// Requirements: the caller is registered; the key is non-zero and differs from the current one.
    /// Emits {EncryptionKeyRotated}.
    function rotateEncryptionKey(bytes32 newKey) external;

    /// @notice Replaces the caller's profile digest.
    /// Requirements: the caller is registered; the digest is non-zero.
    /// Emits {ProfileUpdated}.
    function updateProfile(bytes32 newDigest) external;

    /// @notice The record of `account` (status None when it never registered).
    function partnerOf(address account) external view returns (Partner memory);

    /// @notice Whether `account` is an approved partner.
    function isApproved(address account) external view returns (bool);

    /// @notice How many partners are suspended right now. Lets batched checks skip per-partner look-ups
    /// in the common case where nobody is.
    function suspendedCount() external view returns (uint256);

    /// @notice How many suspensions there have been (reinstatements do not undo one): the length of the
    /// suspension log that {suspensionsSince} reads.
    function suspensionCount() external view returns (uint256);

    /// @notice The partners suspended at positions `from` to `from + max` (exclusive) of the suspension log, in
    /// order; fewer when the log ends first. The round ledger follows the log per agreement, so that a batch
    /// asks about approval only for its own agreement's parties suspended since it last looked.
    function suspensionsSince(uint256 from, uint256 max) external view returns (address[] memory);
}
