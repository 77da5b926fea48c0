// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.28;

import {AccessControlDefaultAdminRules} from
    "@openzeppelin/contracts/access/extensions/AccessControlDefaultAdminRules.sol";
import {IPartnerRegistry} from "../interfaces/IPartnerRegistry.sol";
import {LeptonRoles} from "./libraries/LeptonRoles.sol";

/// @title PartnerRegistry
/// @notice Partners, their encryption keys, and the roles of the whole lepton-ledger deployment.
/// @dev The admin role has one holder, and moving it takes two steps with a delay (OpenZeppelin's
/// AccessControlDefaultAdminRules): the new admin must accept, after ADMIN_TRANSFER_DELAY, so a stolen or
/// mistaken transfer can be seen and cancelled first.
contract PartnerRegistry is IPartnerRegistry, AccessControlDefaultAdminRules {
    /*//////////////////////////////////////////////////////////////
                                 ROLES
    //////////////////////////////////////////////////////////////*/

    /// @notice May propose agreements and be named their coordinator; acts only on the agreements naming it.
    bytes32 public constant COORDINATOR_ROLE = LeptonRoles.COORDINATOR;
    /// @notice Approves and suspends partners in this registry, for the whole deployment. A coordinator does
    /// not: its role spans every agreement, and one coordinator must not exclude another's partners.
    bytes32 public constant REGISTRAR_ROLE = LeptonRoles.REGISTRAR;
    /// @notice Challenges submitted updates and proves forged batch commitments.
    bytes32 public constant AUDITOR_ROLE = LeptonRoles.AUDITOR;
    /// @notice How long a new admin waits between being proposed and accepting the role.
    uint48 public constant ADMIN_TRANSFER_DELAY = 2 days;

    /*//////////////////////////////////////////////////////////////
                                STORAGE
    //////////////////////////////////////////////////////////////*/

    mapping(address account => Partner) private _partners;

    /// @inheritdoc IPartnerRegistry
    uint256 public suspendedCount;
    /// @dev Every suspension, in order (see {suspensionsSince}).
    address[] private _suspensions;

    /*//////////////////////////////////////////////////////////////
                              CONSTRUCTOR
    //////////////////////////////////////////////////////////////*/

    constructor(address admin) AccessControlDefaultAdminRules(ADMIN_TRANSFER_DELAY, admin) {}

    /*//////////////////////////////////////////////////////////////
                                EXTERNAL
    //////////////////////////////////////////////////////////////*/

    /// @inheritdoc IPartnerRegistry
    function register(bytes32 profileDigest, bytes32 encryptionKey) external {
        if (_partners[msg.sender].status != PartnerStatus.None) revert PartnerRegistryAlreadyRegistered(msg.sender);
        if (profileDigest == bytes32(0)) revert PartnerRegistryZeroProfileDigest();
        if (encryptionKey == bytes32(0)) revert PartnerRegistryZeroEncryptionKey();
        _partners[msg.sender] = Partner({
            status: PartnerStatus.Pending,
            registeredAt: uint64(block.timestamp),
            profileDigest: profileDigest,
            encryptionKey: encryptionKey
        });
        emit PartnerRegistered(msg.sender, profileDigest, encryptionKey);
    }

    /// @inheritdoc IPartnerRegistry
    function approve(address partner) external onlyRole(REGISTRAR_ROLE) {
        PartnerStatus status = _partners[partner].status;
        if (status != PartnerStatus.Pending && status != PartnerStatus.Suspended) {
            revert PartnerRegistryInvalidStatus(partner, status);
        }
        _partners[partner].status = PartnerStatus.Approved;
        if (status == PartnerStatus.Suspended) {
            // unchecked: a Suspended partner was counted when suspended, so the count is at least 1.
            unchecked {
                --suspendedCount;
            }
        }
        emit PartnerApproved(partner, msg.sender);
    }

    /// @inheritdoc IPartnerRegistry
    function suspend(address partner, bytes32 reasonDigest) external onlyRole(REGISTRAR_ROLE) {
        PartnerStatus status = _partners[partner].status;
        if (status != PartnerStatus.Pending && status != PartnerStatus.Approved) {
            revert PartnerRegistryInvalidStatus(partner, status);
        }
        _partners[partner].status = PartnerStatus.Suspended;
        ++suspendedCount;
        _suspensions.push(partner);
        emit PartnerSuspended(partner, msg.sender, reasonDigest);
    }

    /// @inheritdoc IPartnerRegistry
    function rotateEncryptionKey(bytes32 newKey) external {
        Partner storage p = _registered(msg.sender);
        if (newKey == bytes32(0)) revert PartnerRegistryZeroEncryptionKey();
        bytes32 previous = p.encryptionKey;
        if (newKey == previous) revert PartnerRegistryKeyUnchanged(newKey);
        p.encryptionKey = newKey;
        emit EncryptionKeyRotated(msg.sender, previous, newKey);
    }

    /// @inheritdoc IPartnerRegistry
    function updateProfile(bytes32 newDigest) external {
        Partner storage p = _registered(msg.sender);
        if (newDigest == bytes32(0)) revert PartnerRegistryZeroProfileDigest();
        bytes32 previous = p.profileDigest;
        p.profileDigest = newDigest;
        emit ProfileUpdated(msg.sender, previous, newDigest);
    }

    /*//////////////////////////////////////////////////////////////
                                 VIEWS
    //////////////////////////////////////////////////////////////*/

    /// @inheritdoc IPartnerRegistry
    function partnerOf(address account) external view returns (Partner memory) {
        return _partners[account];
    }

    /// @inheritdoc IPartnerRegistry
    function isApproved(address account) external view returns (bool) {
        // An exact match on an enum is the intent. Slither taints the whole record with block.timestamp because
        // `registeredAt` sits in the same struct; the status never depends on time.
        // slither-disable-next-line incorrect-equality,timestamp
        return _partners[account].status == PartnerStatus.Approved;
    }

    /// @inheritdoc IPartnerRegistry
    function suspensionCount() external view returns (uint256) {
        return _suspensions.length;
    }

    /// @inheritdoc IPartnerRegistry
    function suspensionsSince(uint256 from, uint256 max) external view returns (address[] memory suspended) {
        uint256 end = _suspensions.length;
        if (from > end) from = end;
        if (end - from > max) end = from + max;
        suspended = new address[](end - from);
        for (uint256 i; i < suspended.length; ++i) {
            suspended[i] = _suspensions[from + i];
        }
    }

    /*//////////////////////////////////////////////////////////////
                                INTERNAL
    //////////////////////////////////////////////////////////////*/

    function _registered(address account) private view returns (Partner storage p) {
        p = _partners[account];
        if (p.status == PartnerStatus.None) revert PartnerRegistryNotRegistered(account);
    }
}
