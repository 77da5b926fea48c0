"""AgreementRegistry: proposal and its validation, signatures, activation (signatures and stakes), amendments,
termination, exit, and the views. EIP-712 relayed signatures are in test_agreement_signatures.py."""

import pytest
from brownie import AgreementRegistry, accounts, chain, web3
from conftest import DISPUTE_WINDOW, STAKE, reverts_with
from eth_abi import encode

NONE, PROPOSED, ACTIVE, TERMINATED = range(4)
ZERO_ADDRESS = "0x" + "00" * 20
ZERO = b"\x00" * 32
REASON = web3.keccak(text="termination reason")
TERMS_V2 = web3.keccak(text="terms v2")
TERMS_ABI = (
    "(bytes32,address[],address,uint256,uint8,uint32,uint64,uint256,uint64,uint64,uint32,address,address,uint64,"
    "uint256)"
)
FIELDS = (
    "termsDigest",
    "parties",
    "rewardToken",
    "rewardPerRound",
    "payoutRule",
    "epsilonCap",
    "delta",
    "requiredStake",
    "start",
    "end",
    "maxRounds",
    "coordinator",
    "arbiter",
    "maxSampleCount",
    "coordinatorBond",
)
DAY = 86400


def python_terms_hash(terms) -> str:
    """keccak256(abi.encode(terms)), computed off-chain."""
    digest, parties, token, *rest = terms
    return web3.keccak(encode([TERMS_ABI], [(bytes(digest), list(parties), token, *rest)])).hex().removeprefix("0x")


def hexed(value) -> str:
    return bytes(value).hex()


def tuple_of(view, *args):
    """A view's result as a plain tuple (brownie's ReturnValue refuses some comparisons with tuples)."""
    return tuple(view(*args))


def status_of(agreements, agreement_id):
    return agreements.agreementState(agreement_id)[0]


def in_force(agreements, agreement_id):
    """The version in force (0 before the first activation)."""
    return agreements.agreementState(agreement_id)[3]


@pytest.fixture(scope="module", autouse=True)
def trio(partner_a, partner_b, partner_c, register):
    """Partners a, b and c, registered and approved once for the module (tests revert to this state)."""
    for partner in (partner_a, partner_b, partner_c):
        register(partner)
    return [partner_a, partner_b, partner_c]


@pytest.fixture(scope="module")
def newcomer():
    """An account that no fixture registers."""
    return accounts[8]


@pytest.fixture
def proposed(make_agreement, trio):
    """A proposal between partners a, b and c that nobody has signed or staked for."""
    return make_agreement(trio, sign=False, stake=False)


@pytest.fixture
def active(make_agreement, trio):
    """An Active agreement between partners a, b and c (every party signed and staked)."""
    return make_agreement(trio)


@pytest.fixture(scope="module")
def stake_for(vault, token):
    def _stake(agreement_id, party, amount=STAKE):
        token.approve(vault, amount, {"from": party})
        return vault.stake(agreement_id, amount, {"from": party})

    return _stake


@pytest.fixture(scope="module")
def bare_agreements(partners, admin):
    """A registry with no vault bound yet."""
    return AgreementRegistry.deploy(partners, {"from": admin})


# ---------------------------------------------------------------------------------------------------------------
# setVault
# ---------------------------------------------------------------------------------------------------------------


def test_set_vault_binds_vault(bare_agreements, vault, admin, assert_events):
    tx = bare_agreements.setVault(vault, {"from": admin})

    assert bare_agreements.vault() == vault
    assert_events(tx, ("VaultSet", {"vault": vault}))


def test_set_vault_refuses_second_binding(agreements, vault, admin, rando):
    with reverts_with("AgreementRegistryVaultAlreadySet", vault):
        agreements.setVault(rando, {"from": admin})

    assert agreements.vault() == vault


def test_set_vault_refuses_zero_address(bare_agreements, admin):
    with reverts_with("AgreementRegistryZeroVault"):
        bare_agreements.setVault(ZERO_ADDRESS, {"from": admin})

    assert bare_agreements.vault() == ZERO_ADDRESS


def test_set_vault_refuses_non_admin(bare_agreements, vault, coordinator):
    with reverts_with("AgreementRegistryNotAdmin", coordinator):
        bare_agreements.setVault(vault, {"from": coordinator})

    assert bare_agreements.vault() == ZERO_ADDRESS


def test_registry_reads_roles_and_approvals_from_its_partner_registry(agreements, partners):
    assert agreements.partners() == partners


# ---------------------------------------------------------------------------------------------------------------
# propose
# ---------------------------------------------------------------------------------------------------------------


def test_propose_records_terms_and_state(agreements, coordinator, make_terms, trio, assert_events):
    terms = make_terms(trio)

    tx = agreements.propose(terms, {"from": coordinator})

    terms_hash = "0x" + python_terms_hash(terms)
    assert tx.return_value == 1
    assert agreements.agreementCount() == 1
    assert hexed(agreements.hashTerms(terms)) == python_terms_hash(terms)
    state = agreements.agreementState(1)
    assert tuple(state[:6]) == (PROPOSED, 1, 0, 0, tx.timestamp, coordinator)
    # the cap and party count the ledger's batches read, and the lane width the cap fixes (it fits 24 bits)
    assert tuple(state[6:9]) == (terms[5], 3, 24)
    assert "0x" + hexed(state[9]) == terms_hash
    assert_events(
        tx,
        (
            "AgreementProposed",
            {"agreementId": 1, "coordinator": coordinator, "termsHash": terms_hash, "terms": terms},
        ),
    )


def test_propose_stores_terms_verbatim(agreements, coordinator, make_terms, trio, assert_events):
    terms = make_terms(trio)
    agreements.propose(terms, {"from": coordinator})

    stored = agreements.terms(1)

    assert hexed(stored[0]) == hexed(terms[0])
    assert list(stored[1]) == [p.address for p in trio]
    assert tuple(stored[2:]) == tuple(terms[2:])


def test_propose_numbers_agreements_from_one(agreements, coordinator, make_terms, trio, partner_a):
    first = agreements.propose(make_terms(trio), {"from": coordinator}).return_value
    second = agreements.propose(make_terms([partner_a]), {"from": coordinator}).return_value

    assert (first, second) == (1, 2)
    assert agreements.agreementCount() == 2
    assert tuple_of(agreements.partyIndex, 2, partner_a) == (True, 0)


def test_propose_does_not_require_registered_parties(agreements, coordinator, make_terms, rando):
    # Registration and approval are checked when a party signs or stakes, not when the coordinator proposes.
    agreements.propose(make_terms([rando]), {"from": coordinator})

    assert status_of(agreements, 1) == PROPOSED


def test_propose_accepts_future_start(agreements, coordinator, make_terms, trio):
    now = chain.time()
    agreements.propose(make_terms(trio, start=now + DAY, end=now + 2 * DAY), {"from": coordinator})

    assert agreements.terms(1)[8] == now + DAY


def test_propose_accepts_delta_just_below_one(agreements, coordinator, make_terms, trio):
    agreements.propose(make_terms(trio, delta=10**18 - 1), {"from": coordinator})

    assert agreements.terms(1)[6] == 10**18 - 1


def test_propose_refuses_non_coordinator(agreements, make_terms, trio, admin):
    with reverts_with("AgreementRegistryNotCoordinator", admin):
        agreements.propose(make_terms(trio), {"from": admin})

    assert agreements.agreementCount() == 0


def test_propose_refuses_no_parties(agreements, coordinator, make_terms):
    with reverts_with("AgreementRegistryNoParties"):
        agreements.propose(make_terms([]), {"from": coordinator})

    assert agreements.agreementCount() == 0


def test_propose_refuses_too_many_parties(agreements, coordinator, make_terms):
    parties = ["0x" + (i + 1).to_bytes(20, "big").hex() for i in range(257)]

    with reverts_with("AgreementRegistryTooManyParties", 257, 256):
        agreements.propose(make_terms(parties), {"from": coordinator})

    assert agreements.agreementCount() == 0
    assert agreements.MAX_PARTIES() == 256


def test_propose_refuses_zero_party(agreements, coordinator, make_terms, partner_a, partner_b):
    with reverts_with("AgreementRegistryZeroParty", 1):
        agreements.propose(make_terms([partner_a, ZERO_ADDRESS, partner_b]), {"from": coordinator})

    assert agreements.agreementCount() == 0


def test_propose_refuses_duplicate_party(agreements, coordinator, make_terms, partner_a, partner_b):
    with reverts_with("AgreementRegistryDuplicateParty", partner_a):
        agreements.propose(make_terms([partner_a, partner_b, partner_a]), {"from": coordinator})

    assert agreements.agreementCount() == 0
    assert tuple_of(agreements.partyIndex, 1, partner_a) == (False, 0)


def test_propose_refuses_zero_terms_digest(agreements, coordinator, make_terms, trio):
    with reverts_with("AgreementRegistryZeroTermsDigest"):
        agreements.propose(make_terms(trio, termsDigest=ZERO), {"from": coordinator})

    assert agreements.agreementCount() == 0


def test_propose_refuses_zero_reward_token(agreements, coordinator, make_terms, trio):
    with reverts_with("AgreementRegistryZeroRewardToken"):
        agreements.propose(make_terms(trio, rewardToken=ZERO_ADDRESS), {"from": coordinator})

    assert agreements.agreementCount() == 0


def test_propose_refuses_zero_epsilon_cap(agreements, coordinator, make_terms, trio):
    with reverts_with("AgreementRegistryZeroEpsilonCap"):
        agreements.propose(make_terms(trio, epsilonCap=0), {"from": coordinator})

    assert agreements.agreementCount() == 0


@pytest.mark.parametrize("delta", [0, 10**18, 2**64 - 1], ids=["zero", "one", "above-one"])
def test_propose_refuses_delta_outside_open_unit_interval(agreements, coordinator, make_terms, trio, delta):
    with reverts_with("AgreementRegistryInvalidDelta", delta):
        agreements.propose(make_terms(trio, delta=delta), {"from": coordinator})

    assert agreements.agreementCount() == 0


@pytest.mark.parametrize(
    "start_offset, end_offset",
    [(DAY, DAY), (2 * DAY, DAY), (-1000, -10)],
    ids=["start-equals-end", "start-after-end", "end-in-the-past"],
)
def test_propose_refuses_bad_period(agreements, coordinator, make_terms, trio, start_offset, end_offset):
    now = chain.time()
    start, end = now + start_offset, now + end_offset

    with reverts_with("AgreementRegistryInvalidPeriod", start, end):
        agreements.propose(make_terms(trio, start=start, end=end), {"from": coordinator})

    assert agreements.agreementCount() == 0


def test_propose_refuses_zero_max_rounds(agreements, coordinator, make_terms, trio):
    with reverts_with("AgreementRegistryZeroMaxRounds"):
        agreements.propose(make_terms(trio, maxRounds=0), {"from": coordinator})

    assert agreements.agreementCount() == 0


# ---------------------------------------------------------------------------------------------------------------
# sign
# ---------------------------------------------------------------------------------------------------------------


def test_sign_records_signature(agreements, proposed, partner_b, assert_events):
    tx = agreements.sign(proposed, {"from": partner_b})

    assert agreements.hasSigned(proposed, 1, partner_b)
    assert agreements.agreementState(proposed)[2] == 1
    assert status_of(agreements, proposed) == PROPOSED
    assert_events(
        tx, ("AgreementSigned", {"agreementId": proposed, "version": 1, "party": partner_b, "relayed": False})
    )


def test_sign_refuses_unknown_agreement(agreements, partner_a):
    with reverts_with("AgreementRegistryUnknownAgreement", 77):
        agreements.sign(77, {"from": partner_a})


def test_sign_refuses_non_party(agreements, proposed, rando, register):
    register(rando)

    with reverts_with("AgreementRegistryNotParty", proposed, rando):
        agreements.sign(proposed, {"from": rando})

    assert agreements.agreementState(proposed)[2] == 0


def test_sign_refuses_pending_partner(agreements, make_agreement, newcomer, partner_b, register):
    register(newcomer, approve=False)
    agreement_id = make_agreement([newcomer, partner_b], sign=False, stake=False)

    with reverts_with("AgreementRegistryPartnerNotApproved", newcomer):
        agreements.sign(agreement_id, {"from": newcomer})

    assert not agreements.hasSigned(agreement_id, 1, newcomer)


def test_sign_refuses_suspended_partner(agreements, partners, proposed, partner_a, coordinator):
    partners.suspend(partner_a, REASON, {"from": coordinator})

    with reverts_with("AgreementRegistryPartnerNotApproved", partner_a):
        agreements.sign(proposed, {"from": partner_a})

    assert not agreements.hasSigned(proposed, 1, partner_a)


def test_sign_refuses_second_signature(agreements, proposed, partner_a):
    agreements.sign(proposed, {"from": partner_a})

    with reverts_with("AgreementRegistryAlreadySigned", proposed, 1, partner_a):
        agreements.sign(proposed, {"from": partner_a})

    assert agreements.agreementState(proposed)[2] == 1


def test_sign_refuses_active_agreement_with_nothing_pending(agreements, active, partner_a):
    with reverts_with("AgreementRegistryNothingToSign", active):
        agreements.sign(active, {"from": partner_a})


def test_sign_refuses_terminated_agreement(agreements, proposed, partner_a, coordinator):
    agreements.terminate(proposed, REASON, {"from": coordinator})

    with reverts_with("AgreementRegistryInvalidStatus", proposed, TERMINATED):
        agreements.sign(proposed, {"from": partner_a})

    assert not agreements.hasSigned(proposed, 1, partner_a)


def test_sign_refuses_after_end(agreements, proposed, partner_a):
    end = agreements.terms(proposed)[9]
    chain.sleep(end - chain.time() + 1)

    with reverts_with("AgreementRegistryAgreementEnded", proposed, end):
        agreements.sign(proposed, {"from": partner_a})

    assert not agreements.hasSigned(proposed, 1, partner_a)


# ---------------------------------------------------------------------------------------------------------------
# activation: every party signed the current version AND staked the required amount
# ---------------------------------------------------------------------------------------------------------------


def test_last_signature_activates_when_stakes_are_in(agreements, make_agreement, trio, assert_events):
    agreement_id = make_agreement(trio, sign=False, stake=True)
    for party in trio[:-1]:
        agreements.sign(agreement_id, {"from": party})
    assert status_of(agreements, agreement_id) == PROPOSED

    tx = agreements.sign(agreement_id, {"from": trio[-1]})

    assert status_of(agreements, agreement_id) == ACTIVE
    assert_events(
        tx,
        ("AgreementSigned", {"agreementId": agreement_id, "version": 1, "party": trio[-1], "relayed": False}),
        ("AgreementActivated", {"agreementId": agreement_id, "version": 1}),
    )


def test_last_stake_activates_when_signatures_are_in(agreements, vault, make_agreement, trio, stake_for, assert_events):
    agreement_id = make_agreement(trio, sign=True, stake=False)
    for party in trio[:-1]:
        stake_for(agreement_id, party)
    assert status_of(agreements, agreement_id) == PROPOSED

    tx = stake_for(agreement_id, trio[-1])

    assert status_of(agreements, agreement_id) == ACTIVE
    assert_events(tx, ("AgreementActivated", {"agreementId": agreement_id, "version": 1}), emitter=agreements)


def test_signatures_without_stakes_do_not_activate(agreements, make_agreement, trio, partner_a):
    agreement_id = make_agreement(trio, sign=True, stake=False)

    assert status_of(agreements, agreement_id) == PROPOSED
    assert agreements.agreementState(agreement_id)[2] == 3
    assert tuple_of(agreements.pendingParty, agreement_id) == (partner_a, False)


def test_short_stake_does_not_activate(
    agreements, make_agreement, trio, stake_for, partner_a, partner_b, assert_events
):
    agreement_id = make_agreement(trio, sign=True, stake=False)
    stake_for(agreement_id, partner_a)
    stake_for(agreement_id, partner_b)

    tx = stake_for(agreement_id, trio[2], STAKE - 1)

    assert status_of(agreements, agreement_id) == PROPOSED
    assert tuple_of(agreements.pendingParty, agreement_id) == (trio[2], False)
    assert_events(tx, emitter=agreements)


def test_stake_topped_up_to_requirement_activates(agreements, make_agreement, trio, stake_for, assert_events):
    agreement_id = make_agreement(trio, sign=True, stake=False)
    for party in trio:
        stake_for(agreement_id, party, STAKE - 1)

    for party in trio[:-1]:
        stake_for(agreement_id, party, 1)
    tx = stake_for(agreement_id, trio[-1], 1)

    assert status_of(agreements, agreement_id) == ACTIVE
    assert_events(tx, ("AgreementActivated", {"agreementId": agreement_id, "version": 1}), emitter=agreements)


def test_zero_required_stake_activates_on_last_signature(agreements, make_agreement, trio):
    agreement_id = make_agreement(trio, sign=True, stake=False, requiredStake=0)

    assert status_of(agreements, agreement_id) == ACTIVE
    assert tuple_of(agreements.pendingParty, agreement_id) == (ZERO_ADDRESS, False)


def test_required_stake_blocks_activation_without_a_vault(bare_agreements, coordinator, make_terms, partner_a):
    bare_agreements.propose(make_terms([partner_a]), {"from": coordinator})

    bare_agreements.sign(1, {"from": partner_a})

    assert bare_agreements.agreementState(1)[0] == PROPOSED
    assert tuple_of(bare_agreements.pendingParty, 1) == (partner_a, False)


def test_stake_completed_after_end_does_not_activate(agreements, make_agreement, trio, stake_for, assert_events):
    agreement_id = make_agreement(trio, sign=True, stake=False)
    for party in trio[:-1]:
        stake_for(agreement_id, party)
    chain.sleep(agreements.terms(agreement_id)[9] - chain.time() + 1)

    tx = stake_for(agreement_id, trio[-1])

    assert status_of(agreements, agreement_id) == PROPOSED
    assert_events(tx, emitter=agreements)


def test_stake_slashed_while_activation_waits_blocks_activation(
    agreements,
    vault,
    ledger,
    make_agreement,
    make_terms,
    trio,
    stake_for,
    run_round,
    admin,
    coordinator,
    auditor,
    rando,
    assert_events,
):
    # Activation remembers how many leading parties it found staked; a slash empties a stake afterwards.
    a, b, c = trio
    agreement_id = make_agreement(trio)
    round_id, _ = run_round(agreement_id)
    challenge_id = ledger.challenge(agreement_id, round_id, a, REASON, {"from": auditor}).return_value
    ledger.resolveChallenge(challenge_id, True, REASON, {"from": admin})
    agreements.amend(
        agreement_id, make_terms(trio, termsDigest=TERMS_V2, requiredStake=2 * STAKE), {"from": coordinator}
    )
    for party in trio:
        agreements.sign(agreement_id, {"from": party})
    stake_for(agreement_id, a)  # a holds 2 * STAKE: the activation check gets past a and stops at b
    chain.sleep(DISPUTE_WINDOW + 1)
    vault.slash(challenge_id, {"from": rando})
    assert vault.stakeOf(agreement_id, a) == 0
    stake_for(agreement_id, b)

    tx = stake_for(agreement_id, c)

    assert in_force(agreements, agreement_id) == 1
    assert tuple_of(agreements.pendingParty, agreement_id) == (a, False)
    assert_events(tx, emitter=agreements)


def test_restaking_slashed_party_then_activates(
    agreements,
    vault,
    ledger,
    make_agreement,
    make_terms,
    trio,
    stake_for,
    run_round,
    admin,
    coordinator,
    auditor,
    rando,
    assert_events,
):
    a, b, c = trio
    agreement_id = make_agreement(trio)
    round_id, _ = run_round(agreement_id)
    challenge_id = ledger.challenge(agreement_id, round_id, a, REASON, {"from": auditor}).return_value
    ledger.resolveChallenge(challenge_id, True, REASON, {"from": admin})
    agreements.amend(
        agreement_id, make_terms(trio, termsDigest=TERMS_V2, requiredStake=2 * STAKE), {"from": coordinator}
    )
    for party in trio:
        agreements.sign(agreement_id, {"from": party})
    stake_for(agreement_id, a)
    chain.sleep(DISPUTE_WINDOW + 1)
    vault.slash(challenge_id, {"from": rando})
    stake_for(agreement_id, b)
    stake_for(agreement_id, c)

    tx = stake_for(agreement_id, a, 2 * STAKE)

    assert status_of(agreements, agreement_id) == ACTIVE
    assert_events(tx, ("AgreementActivated", {"agreementId": agreement_id, "version": 2}), emitter=agreements)


# ---------------------------------------------------------------------------------------------------------------
# tryActivate
# ---------------------------------------------------------------------------------------------------------------


def test_try_activate_refuses_unknown_agreement(agreements, rando):
    with reverts_with("AgreementRegistryUnknownAgreement", 55):
        agreements.tryActivate(55, {"from": rando})


def test_try_activate_returns_false_and_changes_nothing_while_signatures_missing(
    agreements, make_agreement, trio, rando, assert_events
):
    agreement_id = make_agreement(trio, sign=False, stake=True)

    tx = agreements.tryActivate(agreement_id, {"from": rando})

    assert tx.return_value is False
    assert status_of(agreements, agreement_id) == PROPOSED
    assert_events(tx)


def test_try_activate_returns_false_and_changes_nothing_while_stakes_missing(
    agreements, make_agreement, trio, rando, assert_events
):
    agreement_id = make_agreement(trio, sign=True, stake=False)

    tx = agreements.tryActivate(agreement_id, {"from": rando})

    assert tx.return_value is False
    assert status_of(agreements, agreement_id) == PROPOSED
    assert_events(tx)


def test_try_activate_returns_true_for_active_agreement_without_event(agreements, active, rando, assert_events):
    tx = agreements.tryActivate(active, {"from": rando})

    assert tx.return_value is True
    assert status_of(agreements, active) == ACTIVE
    assert_events(tx)


def test_try_activate_leaves_terminated_agreement_terminated(agreements, active, coordinator, rando, assert_events):
    agreements.terminate(active, REASON, {"from": coordinator})

    tx = agreements.tryActivate(active, {"from": rando})

    assert tx.return_value is False
    assert status_of(agreements, active) == TERMINATED
    assert_events(tx)


# ---------------------------------------------------------------------------------------------------------------
# amend
# ---------------------------------------------------------------------------------------------------------------


def test_amend_makes_new_version_of_proposal(agreements, proposed, trio, coordinator, make_terms, assert_events):
    agreements.sign(proposed, {"from": trio[0]})
    new_terms = make_terms(trio, termsDigest=TERMS_V2, maxRounds=20)

    tx = agreements.amend(proposed, new_terms, {"from": coordinator})

    terms_hash = "0x" + python_terms_hash(new_terms)
    state = agreements.agreementState(proposed)
    assert tuple(state[:3]) == (PROPOSED, 2, 0)
    assert "0x" + hexed(state[9]) == terms_hash
    assert hexed(agreements.termsAt(proposed, 2)[0]) == hexed(TERMS_V2)
    assert agreements.termsAt(proposed, 2)[10] == 20
    assert agreements.hasSigned(proposed, 1, trio[0])
    assert not agreements.hasSigned(proposed, 2, trio[0])
    assert_events(
        tx,
        ("AgreementAmended", {"agreementId": proposed, "version": 2, "termsHash": terms_hash, "terms": new_terms}),
    )


def test_amend_keeps_proposer_and_proposal_time(agreements, proposed, trio, coordinator, make_terms):
    before = agreements.agreementState(proposed)
    chain.sleep(100)

    agreements.amend(proposed, make_terms(trio, termsDigest=TERMS_V2), {"from": coordinator})

    after = agreements.agreementState(proposed)
    assert (after[3], after[4]) == (before[3], before[4])


def test_amend_leaves_the_version_in_force_until_signed(agreements, active, trio, coordinator, make_terms):
    before = agreements.terms(active)
    agreements.amend(active, make_terms(trio, termsDigest=TERMS_V2, maxRounds=20), {"from": coordinator})

    assert tuple(agreements.agreementState(active)[:3]) == (ACTIVE, 2, 0)
    assert in_force(agreements, active) == 1
    assert agreements.terms(active) == before
    assert tuple_of(agreements.pendingParty, active) == (trio[0], True)


def test_amended_agreement_needs_every_signature_again(
    agreements, active, trio, coordinator, make_terms, assert_events
):
    agreements.amend(active, make_terms(trio, termsDigest=TERMS_V2), {"from": coordinator})
    for party in trio[:-1]:
        agreements.sign(active, {"from": party})
    assert in_force(agreements, active) == 1

    tx = agreements.sign(active, {"from": trio[-1]})

    assert in_force(agreements, active) == 2
    assert_events(
        tx,
        ("AgreementSigned", {"agreementId": active, "version": 2, "party": trio[-1], "relayed": False}),
        ("AgreementActivated", {"agreementId": active, "version": 2}),
    )


def test_amend_twice_counts_versions(agreements, proposed, trio, coordinator, make_terms):
    agreements.amend(proposed, make_terms(trio, termsDigest=TERMS_V2), {"from": coordinator})
    agreements.amend(proposed, make_terms(trio, termsDigest=web3.keccak(text="terms v3")), {"from": coordinator})

    assert agreements.agreementState(proposed)[1] == 3


@pytest.mark.parametrize(
    "change",
    ["reordered", "replaced", "added", "removed"],
)
def test_amend_refuses_changed_parties(agreements, proposed, trio, rando, coordinator, make_terms, change):
    a, b, c = trio
    parties = {"reordered": [b, a, c], "replaced": [a, b, rando], "added": [a, b, c, rando], "removed": [a, b]}[change]
    before = agreements.agreementState(proposed)

    with reverts_with("AgreementRegistryPartiesChanged", proposed):
        agreements.amend(proposed, make_terms(parties, termsDigest=TERMS_V2), {"from": coordinator})

    assert tuple(agreements.agreementState(proposed)) == tuple(before)


def test_amend_refuses_changed_reward_token(agreements, proposed, trio, coordinator, make_terms, fee_token):
    with reverts_with("AgreementRegistryRewardTokenChanged", proposed):
        agreements.amend(proposed, make_terms(trio, rewardToken=fee_token), {"from": coordinator})

    assert agreements.agreementState(proposed)[1] == 1


def test_amend_refuses_terminated_agreement(agreements, active, trio, coordinator, make_terms):
    agreements.terminate(active, REASON, {"from": coordinator})

    with reverts_with("AgreementRegistryInvalidStatus", active, TERMINATED):
        agreements.amend(active, make_terms(trio, termsDigest=TERMS_V2), {"from": coordinator})

    assert tuple(agreements.agreementState(active)[:2]) == (TERMINATED, 1)


def test_amend_refuses_unknown_agreement(agreements, trio, coordinator, make_terms):
    with reverts_with("AgreementRegistryUnknownAgreement", 33):
        agreements.amend(33, make_terms(trio), {"from": coordinator})


def test_amend_refuses_malformed_terms(agreements, proposed, trio, coordinator, make_terms):
    with reverts_with("AgreementRegistryZeroEpsilonCap"):
        agreements.amend(proposed, make_terms(trio, epsilonCap=0), {"from": coordinator})

    assert agreements.agreementState(proposed)[1] == 1


def test_amend_refuses_non_coordinator(agreements, proposed, trio, auditor, make_terms):
    with reverts_with("AgreementRegistryNotAgreementCoordinator", proposed, auditor):
        agreements.amend(proposed, make_terms(trio, termsDigest=TERMS_V2), {"from": auditor})

    assert agreements.agreementState(proposed)[1] == 1


# ---------------------------------------------------------------------------------------------------------------
# terminate
# ---------------------------------------------------------------------------------------------------------------


def test_terminate_ends_active_agreement(agreements, active, coordinator, assert_events):
    tx = agreements.terminate(active, REASON, {"from": coordinator})

    assert status_of(agreements, active) == TERMINATED
    assert_events(
        tx, ("AgreementTerminated", {"agreementId": active, "coordinator": coordinator, "reasonDigest": REASON})
    )


def test_terminate_ends_proposal(agreements, proposed, coordinator, assert_events):
    tx = agreements.terminate(proposed, REASON, {"from": coordinator})

    assert status_of(agreements, proposed) == TERMINATED
    assert_events(
        tx, ("AgreementTerminated", {"agreementId": proposed, "coordinator": coordinator, "reasonDigest": REASON})
    )


def test_terminate_refuses_terminated_agreement(agreements, active, coordinator):
    agreements.terminate(active, REASON, {"from": coordinator})

    with reverts_with("AgreementRegistryInvalidStatus", active, TERMINATED):
        agreements.terminate(active, REASON, {"from": coordinator})


def test_terminate_refuses_unknown_agreement(agreements, coordinator):
    with reverts_with("AgreementRegistryUnknownAgreement", 44):
        agreements.terminate(44, REASON, {"from": coordinator})


def test_terminate_refuses_non_coordinator(agreements, active, partner_a):
    with reverts_with("AgreementRegistryNotAgreementCoordinator", active, partner_a):
        agreements.terminate(active, REASON, {"from": partner_a})

    assert status_of(agreements, active) == ACTIVE


# ---------------------------------------------------------------------------------------------------------------
# exit
# ---------------------------------------------------------------------------------------------------------------


@pytest.fixture
def ended(agreements, active):
    """The active agreement, with its end passed."""
    chain.sleep(agreements.terms(active)[9] - chain.time() + 1)
    return active


def test_exit_after_end_records_exit(agreements, ended, partner_b, assert_events):
    tx = agreements.exit(ended, {"from": partner_b})

    assert agreements.hasExited(ended, partner_b)
    assert_events(tx, ("PartyExited", {"agreementId": ended, "party": partner_b}))


def test_exit_of_one_party_leaves_the_others(agreements, ended, partner_a, partner_b, partner_c):
    agreements.exit(ended, {"from": partner_b})

    assert not agreements.hasExited(ended, partner_a)
    assert not agreements.hasExited(ended, partner_c)
    assert status_of(agreements, ended) == ACTIVE


def test_exit_refuses_before_end(agreements, active, partner_a):
    end = agreements.terms(active)[9]

    with reverts_with("AgreementRegistryNotEnded", active, end):
        agreements.exit(active, {"from": partner_a})

    assert not agreements.hasExited(active, partner_a)


def test_exit_refuses_second_exit(agreements, ended, partner_a):
    agreements.exit(ended, {"from": partner_a})

    with reverts_with("AgreementRegistryAlreadyExited", ended, partner_a):
        agreements.exit(ended, {"from": partner_a})


def test_exit_refuses_non_party(agreements, ended, rando):
    with reverts_with("AgreementRegistryNotParty", ended, rando):
        agreements.exit(ended, {"from": rando})

    assert not agreements.hasExited(ended, rando)


def test_exit_refuses_unknown_agreement(agreements, partner_a):
    with reverts_with("AgreementRegistryUnknownAgreement", 99):
        agreements.exit(99, {"from": partner_a})


# ---------------------------------------------------------------------------------------------------------------
# views
# ---------------------------------------------------------------------------------------------------------------


def test_party_index_and_party_at_follow_the_party_list(agreements, proposed, trio, rando):
    for index, party in enumerate(trio):
        assert tuple_of(agreements.partyIndex, proposed, party) == (True, index)
        assert agreements.partyAt(proposed, index) == party
    assert tuple_of(agreements.partyIndex, proposed, rando) == (False, 0)


def test_party_at_refuses_index_past_the_list(agreements, proposed):
    with reverts_with("Index out of range"):
        agreements.partyAt(proposed, 3)


def test_pending_party_walks_the_party_list(agreements, proposed, trio, stake_for):
    a, b, c = trio
    assert tuple_of(agreements.pendingParty, proposed) == (a, True)
    agreements.sign(proposed, {"from": a})
    assert tuple_of(agreements.pendingParty, proposed) == (a, False)
    stake_for(proposed, a)
    assert tuple_of(agreements.pendingParty, proposed) == (b, True)
    stake_for(proposed, b)
    assert tuple_of(agreements.pendingParty, proposed) == (b, True)
    agreements.sign(proposed, {"from": b})
    assert tuple_of(agreements.pendingParty, proposed) == (c, True)
    agreements.sign(proposed, {"from": c})
    assert tuple_of(agreements.pendingParty, proposed) == (c, False)
    stake_for(proposed, c)
    assert tuple_of(agreements.pendingParty, proposed) == (ZERO_ADDRESS, False)


def test_pending_party_reports_the_earliest_party_first(agreements, proposed, trio, stake_for):
    a, b, c = trio
    agreements.sign(proposed, {"from": b})
    stake_for(proposed, c)

    # a lacks both; b lacks a stake; c lacks a signature: a comes first in the list.
    assert tuple_of(agreements.pendingParty, proposed) == (a, True)
    agreements.sign(proposed, {"from": a})
    stake_for(proposed, a)
    assert tuple_of(agreements.pendingParty, proposed) == (b, False)


def test_terms_refuses_unknown_agreement(agreements):
    with reverts_with("AgreementRegistryUnknownAgreement", 1):
        agreements.terms(1)


def test_agreement_state_refuses_unknown_agreement(agreements):
    with reverts_with("AgreementRegistryUnknownAgreement", 2):
        agreements.agreementState(2)


def test_round_config_summarises_terms_and_state(agreements, active, token):
    t = agreements.terms(active)

    config = agreements.roundConfig(active)

    assert tuple(config) == (ACTIVE, 1, 3, t[5], t[10], t[8], t[9], t[3], token.address, t[11], t[12], t[13], 24)


def test_round_config_of_unknown_agreement_is_empty(agreements):
    assert tuple(agreements.roundConfig(6)) == (
        NONE,
        0,
        0,
        0,
        0,
        0,
        0,
        0,
        ZERO_ADDRESS,
        ZERO_ADDRESS,
        ZERO_ADDRESS,
        0,
        0,
    )


def test_hash_terms_is_keccak_of_abi_encoded_terms(agreements, make_terms, trio):
    terms = make_terms(trio)

    assert hexed(agreements.hashTerms(terms)) == python_terms_hash(terms)


@pytest.mark.parametrize("name", [f for f in FIELDS if f != "parties"])
def test_hash_terms_binds_every_field(agreements, make_terms, trio, rando, name):
    terms = make_terms(trio)
    changed = list(terms)
    index = FIELDS.index(name)
    if name == "termsDigest":
        changed[index] = TERMS_V2
    elif name in ("rewardToken", "coordinator", "arbiter"):
        changed[index] = rando.address
    else:
        changed[index] = terms[index] + 1
    changed = tuple(changed)

    assert hexed(agreements.hashTerms(changed)) == python_terms_hash(changed)
    assert hexed(agreements.hashTerms(changed)) != hexed(agreements.hashTerms(terms))


def test_hash_terms_binds_party_order(agreements, make_terms, partner_a, partner_b):
    forward = make_terms([partner_a, partner_b])
    backward = (forward[0], [partner_b.address, partner_a.address], *forward[2:])

    assert hexed(agreements.hashTerms(backward)) == python_terms_hash(backward)
    assert hexed(agreements.hashTerms(forward)) != hexed(agreements.hashTerms(backward))
