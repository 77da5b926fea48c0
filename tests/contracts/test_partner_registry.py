"""PartnerRegistry: registration, the registrar's approve/suspend, key rotation, profiles and roles."""

import pytest
from brownie import chain, web3
from conftest import ADMIN_ROLE, AUDITOR_ROLE, COORDINATOR_ROLE, REGISTRAR_ROLE, reverts_with

NONE, PENDING, APPROVED, SUSPENDED = range(4)
PROFILE = web3.keccak(text="profile document")
KEY = web3.keccak(text="x25519 public key")
NEW_KEY = web3.keccak(text="x25519 public key, rotated")
NEW_PROFILE = web3.keccak(text="profile document v2")
REASON = web3.keccak(text="published reason")


def record(partners, account):
    """partnerOf as plain values, comparable with tuples of bytes."""
    status, registered_at, profile, key = partners.partnerOf(account)
    return (status, registered_at, "0x" + bytes(profile).hex(), "0x" + bytes(key).hex())


def hexed(value):
    return "0x" + bytes(value).hex()


# ---------------------------------------------------------------------------------------------------------------
# register
# ---------------------------------------------------------------------------------------------------------------


def test_register_records_pending_partner(partners, partner_a, assert_events):
    tx = partners.register(PROFILE, KEY, {"from": partner_a})

    assert record(partners, partner_a) == (PENDING, tx.timestamp, hexed(PROFILE), hexed(KEY))
    assert not partners.isApproved(partner_a)
    assert_events(tx, ("PartnerRegistered", {"partner": partner_a, "profileDigest": PROFILE, "encryptionKey": KEY}))


# ---------------------------------------------------------------------------------------------------------------
# approve
# ---------------------------------------------------------------------------------------------------------------


def test_approve_approves_pending_partner(partners, partner_a, coordinator, register, assert_events):
    register(partner_a, approve=False)

    tx = partners.approve(partner_a, {"from": coordinator})

    assert partners.partnerOf(partner_a)[0] == APPROVED
    assert partners.isApproved(partner_a)
    assert partners.suspendedCount() == 0
    assert_events(tx, ("PartnerApproved", {"partner": partner_a, "registrar": coordinator}))


def test_approve_keeps_the_rest_of_the_record(partners, partner_a, coordinator):
    registered = partners.register(PROFILE, KEY, {"from": partner_a})
    chain.sleep(100)

    partners.approve(partner_a, {"from": coordinator})

    assert record(partners, partner_a) == (APPROVED, registered.timestamp, hexed(PROFILE), hexed(KEY))


def test_approve_reinstates_suspended_partner(partners, partner_a, coordinator, register, assert_events):
    register(partner_a)
    partners.suspend(partner_a, REASON, {"from": coordinator})
    assert partners.suspendedCount() == 1

    tx = partners.approve(partner_a, {"from": coordinator})

    assert partners.isApproved(partner_a)
    assert partners.suspendedCount() == 0
    assert_events(tx, ("PartnerApproved", {"partner": partner_a, "registrar": coordinator}))


def test_approve_refuses_non_registrar(partners, partner_a, admin, register, reverts_exactly):
    register(partner_a, approve=False)

    with reverts_exactly("AccessControlUnauthorizedAccount", admin, REGISTRAR_ROLE):
        partners.approve(partner_a, {"from": admin})

    assert partners.partnerOf(partner_a)[0] == PENDING


# ---------------------------------------------------------------------------------------------------------------
# suspend
# ---------------------------------------------------------------------------------------------------------------


def test_suspend_suspends_approved_partner(partners, partner_a, coordinator, register, assert_events):
    register(partner_a)

    tx = partners.suspend(partner_a, REASON, {"from": coordinator})

    assert partners.partnerOf(partner_a)[0] == SUSPENDED
    assert not partners.isApproved(partner_a)
    assert partners.suspendedCount() == 1
    assert_events(tx, ("PartnerSuspended", {"partner": partner_a, "registrar": coordinator, "reasonDigest": REASON}))


def test_suspend_suspends_pending_partner(partners, partner_a, coordinator, register, assert_events):
    register(partner_a, approve=False)

    tx = partners.suspend(partner_a, REASON, {"from": coordinator})

    assert partners.partnerOf(partner_a)[0] == SUSPENDED
    assert partners.suspendedCount() == 1
    assert_events(tx, ("PartnerSuspended", {"partner": partner_a, "registrar": coordinator, "reasonDigest": REASON}))


def test_suspend_refuses_non_registrar(partners, partner_a, auditor, register, reverts_exactly):
    register(partner_a)

    with reverts_exactly("AccessControlUnauthorizedAccount", auditor, REGISTRAR_ROLE):
        partners.suspend(partner_a, REASON, {"from": auditor})

    assert partners.isApproved(partner_a)
    assert partners.suspendedCount() == 0


def test_suspend_refuses_a_coordinator_that_is_not_registrar(
    partners, partner_a, admin, rando, register, reverts_exactly
):
    """Issue 10 (c): the coordinator role spans every agreement, so it does not vet partners."""
    register(partner_a)
    partners.grantRole(COORDINATOR_ROLE, rando, {"from": admin})

    with reverts_exactly("AccessControlUnauthorizedAccount", rando, REGISTRAR_ROLE):
        partners.suspend(partner_a, REASON, {"from": rando})

    assert partners.isApproved(partner_a)


def test_suspended_count_follows_suspensions_and_reinstatements(
    partners, partner_a, partner_b, partner_c, coordinator, register
):
    for partner in (partner_a, partner_b, partner_c):
        register(partner)

    partners.suspend(partner_a, REASON, {"from": coordinator})
    partners.suspend(partner_b, REASON, {"from": coordinator})
    assert partners.suspendedCount() == 2
    partners.approve(partner_a, {"from": coordinator})
    assert partners.suspendedCount() == 1
    partners.suspend(partner_c, REASON, {"from": coordinator})
    partners.approve(partner_b, {"from": coordinator})
    partners.approve(partner_c, {"from": coordinator})
    assert partners.suspendedCount() == 0


# ---------------------------------------------------------------------------------------------------------------
# rotateEncryptionKey
# ---------------------------------------------------------------------------------------------------------------


def test_rotate_encryption_key_replaces_key(partners, partner_a, assert_events):
    registered = partners.register(PROFILE, KEY, {"from": partner_a})

    tx = partners.rotateEncryptionKey(NEW_KEY, {"from": partner_a})

    assert record(partners, partner_a) == (PENDING, registered.timestamp, hexed(PROFILE), hexed(NEW_KEY))
    assert_events(tx, ("EncryptionKeyRotated", {"partner": partner_a, "previousKey": KEY, "newKey": NEW_KEY}))


def test_rotate_encryption_key_allowed_while_suspended(partners, partner_a, coordinator, assert_events):
    partners.register(PROFILE, KEY, {"from": partner_a})
    partners.suspend(partner_a, REASON, {"from": coordinator})

    tx = partners.rotateEncryptionKey(NEW_KEY, {"from": partner_a})

    assert hexed(partners.partnerOf(partner_a)[3]) == hexed(NEW_KEY)
    assert partners.partnerOf(partner_a)[0] == SUSPENDED
    assert_events(tx, ("EncryptionKeyRotated", {"partner": partner_a, "previousKey": KEY, "newKey": NEW_KEY}))


# ---------------------------------------------------------------------------------------------------------------
# updateProfile
# ---------------------------------------------------------------------------------------------------------------


def test_update_profile_replaces_digest(partners, partner_a, register, assert_events):
    registered = partners.register(PROFILE, KEY, {"from": partner_a})

    tx = partners.updateProfile(NEW_PROFILE, {"from": partner_a})

    assert record(partners, partner_a) == (PENDING, registered.timestamp, hexed(NEW_PROFILE), hexed(KEY))
    assert_events(tx, ("ProfileUpdated", {"partner": partner_a, "previousDigest": PROFILE, "newDigest": NEW_PROFILE}))


# ---------------------------------------------------------------------------------------------------------------
# roles (OpenZeppelin AccessControl: the registry holds the roles of the whole deployment)
# ---------------------------------------------------------------------------------------------------------------


def test_role_constants_are_the_lepton_roles(partners):
    assert hexed(partners.COORDINATOR_ROLE()) == hexed(COORDINATOR_ROLE)
    assert hexed(partners.AUDITOR_ROLE()) == hexed(AUDITOR_ROLE)
    assert hexed(partners.REGISTRAR_ROLE()) == hexed(REGISTRAR_ROLE)
    assert hexed(partners.DEFAULT_ADMIN_ROLE()) == hexed(ADMIN_ROLE)
    for role in (COORDINATOR_ROLE, AUDITOR_ROLE, REGISTRAR_ROLE, ADMIN_ROLE):
        assert hexed(partners.getRoleAdmin(role)) == hexed(ADMIN_ROLE)


def test_constructor_grants_only_the_admin_role(admin, coordinator):
    from brownie import PartnerRegistry

    registry = PartnerRegistry.deploy(coordinator, {"from": admin})

    assert registry.hasRole(ADMIN_ROLE, coordinator)
    assert not registry.hasRole(ADMIN_ROLE, admin)
    assert not registry.hasRole(COORDINATOR_ROLE, coordinator)
    assert registry.suspendedCount() == 0


def test_admin_grants_coordinator_role(partners, admin, rando, assert_events):
    tx = partners.grantRole(COORDINATOR_ROLE, rando, {"from": admin})

    assert partners.hasRole(COORDINATOR_ROLE, rando)
    assert_events(tx, ("RoleGranted", {"role": COORDINATOR_ROLE, "account": rando, "sender": admin}))


def test_granted_registrar_can_approve(partners, admin, rando, partner_a, register):
    register(partner_a, approve=False)
    partners.grantRole(REGISTRAR_ROLE, rando, {"from": admin})

    partners.approve(partner_a, {"from": rando})

    assert partners.isApproved(partner_a)


def test_admin_revokes_registrar_role(partners, admin, coordinator, partner_a, register, assert_events):
    register(partner_a, approve=False)

    tx = partners.revokeRole(REGISTRAR_ROLE, coordinator, {"from": admin})

    assert not partners.hasRole(REGISTRAR_ROLE, coordinator)
    assert_events(tx, ("RoleRevoked", {"role": REGISTRAR_ROLE, "account": coordinator, "sender": admin}))
    with reverts_with("AccessControlUnauthorizedAccount"):
        partners.approve(partner_a, {"from": coordinator})


def test_grant_role_refuses_non_admin(partners, coordinator, rando, reverts_exactly):
    with reverts_exactly("AccessControlUnauthorizedAccount", coordinator, ADMIN_ROLE):
        partners.grantRole(COORDINATOR_ROLE, rando, {"from": coordinator})

    assert not partners.hasRole(COORDINATOR_ROLE, rando)


def test_holder_renounces_own_role(partners, auditor, assert_events):
    tx = partners.renounceRole(AUDITOR_ROLE, auditor, {"from": auditor})

    assert not partners.hasRole(AUDITOR_ROLE, auditor)
    assert_events(tx, ("RoleRevoked", {"role": AUDITOR_ROLE, "account": auditor, "sender": auditor}))


def test_renounce_role_refuses_another_account(partners, auditor, rando):
    with reverts_with("AccessControlBadConfirmation"):
        partners.renounceRole(AUDITOR_ROLE, auditor, {"from": rando})

    assert partners.hasRole(AUDITOR_ROLE, auditor)


@pytest.mark.parametrize(
    "interface_id, supported",
    [("0x01ffc9a7", True), ("0x7965db0b", True), ("0xffffffff", False), ("0x12345678", False)],
    ids=["IERC165", "IAccessControl", "invalid", "unknown"],
)
def test_supports_interface_reports_access_control(partners, interface_id, supported):
    assert partners.supportsInterface(interface_id) is supported
