from conftest import reverts_with


def test_register_twice_reverts(partners, partner_a, register):
    register(partner_a)
    with reverts_with("PartnerRegistryAlreadyRegistered", partner_a):
        partners.register(b"\x01" * 32, b"\x02" * 32, {"from": partner_a})


def test_active(active_agreement, agreements):
    assert agreements.agreementState(active_agreement)[0] == 2
