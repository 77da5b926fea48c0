// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.28;

import {IAccessControl} from "@openzeppelin/contracts/access/IAccessControl.sol";
import {IAccessControlDefaultAdminRules} from
    "@openzeppelin/contracts/access/extensions/IAccessControlDefaultAdminRules.sol";
import {AgreementFixture} from "./utils/AgreementFixture.sol";
import {IPartnerRegistry} from "../../interfaces/IPartnerRegistry.sol";

contract PartnerRegistryTest is AgreementFixture {
    bytes32 internal constant PROFILE = keccak256("profile document");
    bytes32 internal constant KEY = keccak256("x25519 public key");
    bytes32 internal constant REASON = keccak256("suspension reason");

    address internal partnerA = address(0xA1);
    address internal partnerB = address(0xB2);

    /*//////////////////////////////////////////////////////////////
                                HELPERS
    //////////////////////////////////////////////////////////////*/

    function statusOf(address account) internal view returns (IPartnerRegistry.PartnerStatus) {
        return partners.partnerOf(account).status;
    }

    function assertStatus(address account, IPartnerRegistry.PartnerStatus expected, string memory what) internal view {
        assertEq(uint256(statusOf(account)), uint256(expected), what);
    }

    /// @dev A coordinator of the deployment that is not its registrar.
    function otherCoordinator() internal returns (address other) {
        other = address(0xC0C0);
        bytes32 role = partners.COORDINATOR_ROLE();
        vm.prank(admin);
        partners.grantRole(role, other);
    }

    function suspendAs(address partner) internal {
        vm.prank(coordinator);
        partners.suspend(partner, REASON);
    }

    function approveAs(address partner) internal {
        vm.prank(coordinator);
        partners.approve(partner);
    }

    function expectUnauthorized(address caller, bytes32 role) internal {
        vm.expectRevert(abi.encodeWithSelector(IAccessControl.AccessControlUnauthorizedAccount.selector, caller, role));
    }

    function expectInvalidStatus(address partner, IPartnerRegistry.PartnerStatus status) internal {
        vm.expectRevert(abi.encodeWithSelector(IPartnerRegistry.PartnerRegistryInvalidStatus.selector, partner, status));
    }

    /*//////////////////////////////////////////////////////////////
                                 ROLES
    //////////////////////////////////////////////////////////////*/

    function test_roleConstantsMatchLeptonRoles() public view {
        assertEq(partners.COORDINATOR_ROLE(), keccak256("COORDINATOR_ROLE"), "coordinator role");
        assertEq(partners.AUDITOR_ROLE(), keccak256("AUDITOR_ROLE"), "auditor role");
        assertEq(partners.REGISTRAR_ROLE(), keccak256("REGISTRAR_ROLE"), "registrar role");
        assertEq(partners.DEFAULT_ADMIN_ROLE(), bytes32(0), "admin role");
    }

    function test_constructorMakesAdminTheOnlyRoleHolder() public view {
        assertTrue(partners.hasRole(bytes32(0), admin), "admin holds admin role");
        assertFalse(partners.hasRole(bytes32(0), coordinator), "coordinator is not admin");
        assertFalse(partners.hasRole(partners.COORDINATOR_ROLE(), admin), "admin is not coordinator");
    }

    function test_grantRoleRefusesNonAdmin() public {
        bytes32 role = partners.COORDINATOR_ROLE();
        expectUnauthorized(coordinator, bytes32(0));
        vm.prank(coordinator);
        partners.grantRole(role, rando);
    }

    /*//////////////////////////////////////////////////////////////
                                REGISTER
    //////////////////////////////////////////////////////////////*/

    function test_registerStoresPendingRecord() public {
        vm.warp(1_700_000_123);
        vm.prank(partnerA);
        partners.register(PROFILE, KEY);
        IPartnerRegistry.Partner memory p = partners.partnerOf(partnerA);
        assertEq(uint256(p.status), uint256(IPartnerRegistry.PartnerStatus.Pending), "status");
        assertEq(p.registeredAt, 1_700_000_123, "registeredAt");
        assertEq(p.profileDigest, PROFILE, "profile");
        assertEq(p.encryptionKey, KEY, "key");
        assertFalse(partners.isApproved(partnerA), "pending is not approved");
    }

    function test_registerEmitsPartnerRegistered() public {
        vm.expectEmit(true, true, true, true);
        emit IPartnerRegistry.PartnerRegistered(partnerA, PROFILE, KEY);
        vm.prank(partnerA);
        partners.register(PROFILE, KEY);
    }

    function test_registerRefusesSecondRegistration() public {
        vm.prank(partnerA);
        partners.register(PROFILE, KEY);
        vm.expectRevert(abi.encodeWithSelector(IPartnerRegistry.PartnerRegistryAlreadyRegistered.selector, partnerA));
        vm.prank(partnerA);
        partners.register(keccak256("other profile"), keccak256("other key"));
    }

    function test_registerRefusesSecondRegistrationWhileSuspended() public {
        vm.prank(partnerA);
        partners.register(PROFILE, KEY);
        suspendAs(partnerA);
        vm.expectRevert(abi.encodeWithSelector(IPartnerRegistry.PartnerRegistryAlreadyRegistered.selector, partnerA));
        vm.prank(partnerA);
        partners.register(PROFILE, KEY);
    }

    function test_registerRefusesZeroProfileDigest() public {
        vm.expectRevert(abi.encodeWithSelector(IPartnerRegistry.PartnerRegistryZeroProfileDigest.selector));
        vm.prank(partnerA);
        partners.register(bytes32(0), KEY);
    }

    function test_registerRefusesZeroEncryptionKey() public {
        vm.expectRevert(abi.encodeWithSelector(IPartnerRegistry.PartnerRegistryZeroEncryptionKey.selector));
        vm.prank(partnerA);
        partners.register(PROFILE, bytes32(0));
    }

    function test_partnerOfUnknownAccountIsEmpty() public view {
        IPartnerRegistry.Partner memory p = partners.partnerOf(rando);
        assertEq(uint256(p.status), uint256(IPartnerRegistry.PartnerStatus.None), "status");
        assertEq(p.registeredAt, 0, "registeredAt");
        assertEq(p.profileDigest, bytes32(0), "profile");
        assertEq(p.encryptionKey, bytes32(0), "key");
        assertFalse(partners.isApproved(rando), "approved");
    }

    /*//////////////////////////////////////////////////////////////
                                APPROVE
    //////////////////////////////////////////////////////////////*/

    function test_approveMakesPendingPartnerApproved() public {
        registerOnly(partnerA);
        approveAs(partnerA);
        assertStatus(partnerA, IPartnerRegistry.PartnerStatus.Approved, "status");
        assertTrue(partners.isApproved(partnerA), "isApproved");
        assertEq(partners.suspendedCount(), 0, "suspendedCount");
    }

    function test_approveEmitsPartnerApproved() public {
        registerOnly(partnerA);
        vm.expectEmit(true, true, true, true);
        emit IPartnerRegistry.PartnerApproved(partnerA, coordinator);
        approveAs(partnerA);
    }

    function test_approveReinstatesSuspendedPartnerAndUncountsIt() public {
        registerOnly(partnerA);
        approveAs(partnerA);
        suspendAs(partnerA);
        assertEq(partners.suspendedCount(), 1, "counted while suspended");
        approveAs(partnerA);
        assertStatus(partnerA, IPartnerRegistry.PartnerStatus.Approved, "status");
        assertEq(partners.suspendedCount(), 0, "uncounted once reinstated");
    }

    function test_approveRefusesNonRegistrar() public {
        registerOnly(partnerA);
        address[5] memory wrong = [admin, auditor, rando, partnerA, otherCoordinator()];
        for (uint256 i; i < wrong.length; ++i) {
            expectUnauthorized(wrong[i], partners.REGISTRAR_ROLE());
            vm.prank(wrong[i]);
            partners.approve(partnerA);
        }
        assertStatus(partnerA, IPartnerRegistry.PartnerStatus.Pending, "still pending");
    }

    function test_approveRefusesUnregisteredAccount() public {
        expectInvalidStatus(rando, IPartnerRegistry.PartnerStatus.None);
        approveAs(rando);
    }

    function test_approveRefusesApprovedPartner() public {
        registerOnly(partnerA);
        approveAs(partnerA);
        expectInvalidStatus(partnerA, IPartnerRegistry.PartnerStatus.Approved);
        approveAs(partnerA);
    }

    /*//////////////////////////////////////////////////////////////
                                SUSPEND
    //////////////////////////////////////////////////////////////*/

    function test_suspendApprovedPartnerCountsIt() public {
        registerOnly(partnerA);
        approveAs(partnerA);
        suspendAs(partnerA);
        assertStatus(partnerA, IPartnerRegistry.PartnerStatus.Suspended, "status");
        assertFalse(partners.isApproved(partnerA), "isApproved");
        assertEq(partners.suspendedCount(), 1, "suspendedCount");
    }

    function test_suspendPendingPartnerCountsIt() public {
        registerOnly(partnerA);
        suspendAs(partnerA);
        assertStatus(partnerA, IPartnerRegistry.PartnerStatus.Suspended, "status");
        assertEq(partners.suspendedCount(), 1, "suspendedCount");
    }

    function test_suspendEmitsPartnerSuspendedWithReason() public {
        registerOnly(partnerA);
        vm.expectEmit(true, true, true, true);
        emit IPartnerRegistry.PartnerSuspended(partnerA, coordinator, REASON);
        suspendAs(partnerA);
    }

    /// @dev Issue 10 (c), as the attack: approval and suspension were gated by the coordinator role, which spans
    /// every agreement, so any coordinator could suspend the partners of another coordinator's agreement (and
    /// stop their submissions there). Only the registrar can now; a coordinator without that role is refused.
    function test_attack_aCoordinatorCannotSuspendAnotherCoordinatorsPartner() public {
        registerOnly(partnerA);
        approveAs(partnerA);
        address other = otherCoordinator();
        expectUnauthorized(other, partners.REGISTRAR_ROLE());
        vm.prank(other);
        partners.suspend(partnerA, REASON);
        assertTrue(partners.isApproved(partnerA), "still approved");
    }

    function test_suspendRefusesNonRegistrar() public {
        registerOnly(partnerA);
        address[5] memory wrong = [admin, auditor, rando, partnerA, otherCoordinator()];
        for (uint256 i; i < wrong.length; ++i) {
            expectUnauthorized(wrong[i], partners.REGISTRAR_ROLE());
            vm.prank(wrong[i]);
            partners.suspend(partnerA, REASON);
        }
        assertEq(partners.suspendedCount(), 0, "nobody suspended");
    }

    function test_suspendRefusesUnregisteredAccount() public {
        expectInvalidStatus(rando, IPartnerRegistry.PartnerStatus.None);
        suspendAs(rando);
    }

    function test_suspendRefusesSuspendedPartnerSoCountStaysExact() public {
        registerOnly(partnerA);
        suspendAs(partnerA);
        expectInvalidStatus(partnerA, IPartnerRegistry.PartnerStatus.Suspended);
        suspendAs(partnerA);
        assertEq(partners.suspendedCount(), 1, "counted once");
    }

    function test_suspensionsSinceReadsTheLogInOrderWithinItsBounds() public {
        registerOnly(partnerA);
        registerOnly(partnerB);
        suspendAs(partnerA);
        suspendAs(partnerB);
        approveAs(partnerA);
        suspendAs(partnerA);
        assertEq(partners.suspensionCount(), 3, "every suspension is logged, reinstatements undo none");
        address[] memory all = partners.suspensionsSince(0, 10);
        assertEq(all.length, 3, "the whole log");
        assertEq(all[0], partnerA, "first");
        assertEq(all[1], partnerB, "second");
        assertEq(all[2], partnerA, "third");
        address[] memory some = partners.suspensionsSince(1, 1);
        assertEq(some.length, 1, "at most max");
        assertEq(some[0], partnerB, "from `from`");
        assertEq(partners.suspensionsSince(7, 10).length, 0, "past the end: none");
    }

    function test_suspendedCountCountsEachSuspendedPartner() public {
        registerOnly(partnerA);
        registerOnly(partnerB);
        approveAs(partnerB);
        suspendAs(partnerA);
        suspendAs(partnerB);
        assertEq(partners.suspendedCount(), 2, "two suspended");
        approveAs(partnerA);
        assertEq(partners.suspendedCount(), 1, "one reinstated");
    }

    /// @dev Any sequence of approvals and suspensions over a few partners leaves `suspendedCount` equal to
    /// the number of partners whose status is Suspended.
    function testFuzz_suspendedCountEqualsSuspendedPartners(uint256[16] calldata ops) public {
        address[4] memory accounts = [partnerA, partnerB, address(0xC3), address(0xD4)];
        for (uint256 i; i < 3; ++i) {
            registerOnly(accounts[i]); // the fourth stays unregistered
        }
        for (uint256 i; i < ops.length; ++i) {
            address who = accounts[ops[i] % 4];
            vm.prank(coordinator);
            if ((ops[i] >> 8) & 1 == 0) {
                try partners.approve(who) {} catch {}
            } else {
                try partners.suspend(who, REASON) {} catch {}
            }
        }
        uint256 suspended;
        for (uint256 i; i < accounts.length; ++i) {
            if (statusOf(accounts[i]) == IPartnerRegistry.PartnerStatus.Suspended) ++suspended;
        }
        assertEq(partners.suspendedCount(), suspended, "suspendedCount");
    }

    /*//////////////////////////////////////////////////////////////
                                  KEYS
    //////////////////////////////////////////////////////////////*/

    function test_rotateEncryptionKeyReplacesKey() public {
        registerOnly(partnerA);
        bytes32 previous = partners.partnerOf(partnerA).encryptionKey;
        vm.expectEmit(true, true, true, true);
        emit IPartnerRegistry.EncryptionKeyRotated(partnerA, previous, KEY);
        vm.prank(partnerA);
        partners.rotateEncryptionKey(KEY);
        assertEq(partners.partnerOf(partnerA).encryptionKey, KEY, "key");
    }

    function test_rotateEncryptionKeyKeepsStatusAndProfile() public {
        registerOnly(partnerA);
        approveAs(partnerA);
        IPartnerRegistry.Partner memory before = partners.partnerOf(partnerA);
        vm.prank(partnerA);
        partners.rotateEncryptionKey(KEY);
        IPartnerRegistry.Partner memory afterwards = partners.partnerOf(partnerA);
        assertEq(uint256(afterwards.status), uint256(before.status), "status");
        assertEq(afterwards.registeredAt, before.registeredAt, "registeredAt");
        assertEq(afterwards.profileDigest, before.profileDigest, "profile");
    }

    function test_rotateEncryptionKeyAllowedWhileSuspended() public {
        registerOnly(partnerA);
        suspendAs(partnerA);
        vm.prank(partnerA);
        partners.rotateEncryptionKey(KEY);
        assertEq(partners.partnerOf(partnerA).encryptionKey, KEY, "key");
    }

    function test_rotateEncryptionKeyRefusesUnregisteredCaller() public {
        vm.expectRevert(abi.encodeWithSelector(IPartnerRegistry.PartnerRegistryNotRegistered.selector, rando));
        vm.prank(rando);
        partners.rotateEncryptionKey(KEY);
    }

    function test_rotateEncryptionKeyRefusesZeroKey() public {
        registerOnly(partnerA);
        vm.expectRevert(abi.encodeWithSelector(IPartnerRegistry.PartnerRegistryZeroEncryptionKey.selector));
        vm.prank(partnerA);
        partners.rotateEncryptionKey(bytes32(0));
    }

    function test_rotateEncryptionKeyRefusesUnchangedKey() public {
        vm.prank(partnerA);
        partners.register(PROFILE, KEY);
        vm.expectRevert(abi.encodeWithSelector(IPartnerRegistry.PartnerRegistryKeyUnchanged.selector, KEY));
        vm.prank(partnerA);
        partners.rotateEncryptionKey(KEY);
    }

    /*//////////////////////////////////////////////////////////////
                                PROFILE
    //////////////////////////////////////////////////////////////*/

    function test_updateProfileReplacesDigest() public {
        registerOnly(partnerA);
        bytes32 previous = partners.partnerOf(partnerA).profileDigest;
        vm.expectEmit(true, true, true, true);
        emit IPartnerRegistry.ProfileUpdated(partnerA, previous, PROFILE);
        vm.prank(partnerA);
        partners.updateProfile(PROFILE);
        assertEq(partners.partnerOf(partnerA).profileDigest, PROFILE, "profile");
        assertEq(partners.partnerOf(partnerA).encryptionKey, keccak256(abi.encode("x25519", partnerA)), "key kept");
    }

    function test_updateProfileRefusesUnregisteredCaller() public {
        vm.expectRevert(abi.encodeWithSelector(IPartnerRegistry.PartnerRegistryNotRegistered.selector, rando));
        vm.prank(rando);
        partners.updateProfile(PROFILE);
    }

    function test_updateProfileRefusesZeroDigest() public {
        registerOnly(partnerA);
        vm.expectRevert(abi.encodeWithSelector(IPartnerRegistry.PartnerRegistryZeroProfileDigest.selector));
        vm.prank(partnerA);
        partners.updateProfile(bytes32(0));
    }

    /*//////////////////////////////////////////////////////////////
                          admin role transfer
    //////////////////////////////////////////////////////////////*/

    /// @dev Issue 10, item 7: the admin role moves in two steps with a delay, never by one grant.
    function test_adminRoleCannotBeGrantedInOneStep() public {
        bytes32 adminRole = partners.DEFAULT_ADMIN_ROLE();
        vm.expectRevert(IAccessControlDefaultAdminRules.AccessControlEnforcedDefaultAdminRules.selector);
        vm.prank(admin);
        partners.grantRole(adminRole, rando);
        assertFalse(partners.hasRole(adminRole, rando), "not admin");
    }

    function test_adminRoleMovesAfterTheDelayOnceAccepted() public {
        vm.prank(admin);
        partners.beginDefaultAdminTransfer(rando);
        uint256 acceptableAt = block.timestamp + partners.ADMIN_TRANSFER_DELAY();
        vm.warp(acceptableAt);
        vm.expectRevert(
            abi.encodeWithSelector(
                IAccessControlDefaultAdminRules.AccessControlEnforcedDefaultAdminDelay.selector, uint48(acceptableAt)
            )
        );
        vm.prank(rando);
        partners.acceptDefaultAdminTransfer();
        vm.warp(acceptableAt + 1);
        vm.prank(rando);
        partners.acceptDefaultAdminTransfer();
        assertEq(partners.defaultAdmin(), rando, "new admin");
        assertFalse(partners.hasRole(partners.DEFAULT_ADMIN_ROLE(), admin), "old admin gone");
    }
}
