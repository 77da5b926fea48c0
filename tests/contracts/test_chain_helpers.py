"""lepton_ledger.chain.merkle and .typed_data against the deployed contracts: every value the Python side
builds is the value the contract computes or accepts. tests/chain/ checks the same helpers without a chain."""

import random

import pytest
from brownie import chain
from conftest import (
    DISPUTE_WINDOW,
    EPSILON_ONE,
    advance,
    digest_of,
    hex32,
    private_key_of,
    reverts_with,
)

from lepton_ledger.chain.merkle import (
    PositionalTree,
    commitment_leaf,
    pack_entries,
    payout_leaf,
)
from lepton_ledger.chain.typed_data import (
    UpdateCommitment,
    sign_agreement_digest,
    sign_digest,
    terms_hash,
    update_commitment_digest,
)

pytestmark = pytest.mark.usefixtures("synced_clock")

VOIDED = 3
PARTNER = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"
# Pinned in tests/chain/test_merkle.py as the value of payout_leaf(7, 3, PARTNER, 25e18).
PAYOUT_LEAF_7_3 = "0xda841fea2a2ab391f7995b027bc3cdcfa80e0d838b7900130c9c247f6f7bb02b"


@pytest.fixture(scope="module")
def trio(partner_a, partner_b, partner_c):
    return [partner_a, partner_b, partner_c]


def commitment(agreement_id=1, round_id=1, partner=PARTNER, epsilon=EPSILON_ONE, samples=1000) -> UpdateCommitment:
    return UpdateCommitment(
        agreement_id=agreement_id,
        round=round_id,
        partner=str(partner),
        envelope_digest=digest_of(f"envelope {partner}"),
        manifest_digest=digest_of(f"manifest {partner}"),
        cumulative_epsilon=epsilon,
        sample_count=samples,
    )


# ---------------------------------------------------------------------------------------------------- leaves


def test_payout_leaf_equals_contract_vector(vault):
    assert vault.payoutLeaf(7, 3, PARTNER, 25 * 10**18) == PAYOUT_LEAF_7_3
    assert hex32(payout_leaf(7, 3, PARTNER, 25 * 10**18)) == PAYOUT_LEAF_7_3


@pytest.mark.parametrize("seed", range(4))
def test_payout_leaf_equals_contract(vault, seed):
    rng = random.Random(seed)
    args = (rng.getrandbits(256), rng.getrandbits(64), "0x" + rng.randbytes(20).hex(), rng.getrandbits(256))
    assert vault.payoutLeaf(*args) == hex32(payout_leaf(*args))


@pytest.mark.parametrize("epsilon, samples", [(1, 1), (EPSILON_ONE, 60_000), (2**32 - 1, 2**64 - 1)])
def test_commitment_digest_equals_contract(ledger, epsilon, samples):
    c = commitment(agreement_id=3, round_id=9, epsilon=epsilon, samples=samples)
    assert ledger.commitmentDigest(c.as_tuple()) == hex32(update_commitment_digest(chain.id, ledger.address, c))


def test_commitment_digest_binds_the_ledger_address(ledger, partners):
    c = commitment()
    assert ledger.commitmentDigest(c.as_tuple()) != hex32(update_commitment_digest(chain.id, partners.address, c))


def test_commitment_leaf_equals_contract(ledger):
    c = commitment()
    digest = update_commitment_digest(chain.id, ledger.address, c)
    signature = sign_digest(private_key_of(3), digest)
    assert ledger.commitmentLeaf(c.as_tuple(), signature) == hex32(commitment_leaf(digest, signature))


# ------------------------------------------------------------------------------------------------- agreements


def test_terms_hash_equals_contract(agreements, make_terms, trio):
    terms = make_terms(trio)
    assert agreements.hashTerms(terms) == hex32(terms_hash(terms))


def test_sign_agreement_digest_equals_contract(agreements, make_agreement, trio):
    agreement_id = make_agreement(trio, sign=False, stake=False)
    state = agreements.agreementState(agreement_id).dict()
    deadline = chain.time() + 3600
    python = sign_agreement_digest(
        chain.id,
        agreements.address,
        agreement_id,
        state["version"],
        state["termsHash"],
        str(trio[1]),
        agreements.nonces(trio[1]),
        deadline,
    )
    assert agreements.signingDigest(agreement_id, trio[1], deadline) == hex32(python)


def test_signature_from_sign_digest_is_accepted_by_sign_by_sig(agreements, make_agreement, trio, rando):
    agreement_id = make_agreement(trio, sign=False, stake=False)
    state = agreements.agreementState(agreement_id).dict()
    deadline = chain.time() + 3600
    digest = sign_agreement_digest(
        chain.id, agreements.address, agreement_id, state["version"], state["termsHash"], str(trio[0]), 0, deadline
    )
    agreements.signBySig(agreement_id, trio[0], deadline, sign_digest(private_key_of(3), digest), {"from": rando})
    assert agreements.hasSigned(agreement_id, state["version"], trio[0])


# ----------------------------------------------------------------------------------------------------- trees


def test_payout_tree_claims_succeed_for_every_partner(vault, active_agreement, run_round, trio, assert_books):
    payouts = {trio[0]: 11 * 10**18, trio[1]: 22 * 10**18, trio[2]: 33 * 10**18}  # three leaves: not a power of two
    round_id, tree = run_round(active_agreement, payouts)
    assert vault.allocation(active_agreement, round_id).dict()["root"] == hex32(tree.root)
    advance(DISPUTE_WINDOW)
    for partner, amount in payouts.items():
        vault.claim(active_agreement, round_id, amount, tree.proof(str(partner)), {"from": partner})
    assert vault.claimable(active_agreement) == 0
    assert_books(active_agreement)


def test_positional_tree_proof_is_accepted_by_prove_forged_commitment(
    ledger, active_agreement, open_round, trio, coordinator, auditor
):
    """Builds a batch with the package's helpers alone (no conftest.Batch): the contract accepts the
    positional proof of every position (a valid commitment is refused only after its proof verified) and
    voids the round on the forged one."""
    round_id = open_round(active_agreement)
    keys = [private_key_of(3), private_key_of(4), private_key_of(9)]  # c's commitment is signed by a stranger
    commitments = [commitment(active_agreement, round_id, p, EPSILON_ONE * (i + 1)) for i, p in enumerate(trio)]
    digests = [update_commitment_digest(chain.id, ledger.address, c) for c in commitments]
    signatures = [sign_digest(k, d) for k, d in zip(keys, digests)]
    tree = PositionalTree([commitment_leaf(d, s) for d, s in zip(digests, signatures)])
    entries = pack_entries([(i, EPSILON_ONE * (i + 1)) for i in range(3)])
    document = digest_of("published batch")
    ledger.commitBatch(active_agreement, round_id, tree.root, document, entries, {"from": coordinator})

    def evidence(position):
        return (active_agreement, round_id, 0, tree.root, document, entries, position, tree.proof(position))

    for position in (0, 1):
        with reverts_with("RoundLedgerCommitmentValid"):
            ledger.proveForgedCommitment(
                evidence(position), commitments[position].as_tuple(), signatures[position], {"from": auditor}
            )
    ledger.proveForgedCommitment(evidence(2), commitments[2].as_tuple(), signatures[2], {"from": auditor})
    assert ledger.round(active_agreement, round_id).dict()["status"] == VOIDED
