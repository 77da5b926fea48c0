"""RoundLedger.commitBatch: the coordinator anchors many partners' signed commitments at once, and every
guarantee of submitUpdate (membership, approval, once per round, increasing epsilon within the cap, the round
window) still holds entry by entry. Fraud proofs against anchored batches are in test_challenges.py. Each refusal
that the forge suite (tests/forge/BatchCommit.t.sol) checks case for case lives there only."""

import pytest
from brownie import accounts, web3
from conftest import (
    EPSILON_ONE,
    ROUND_LENGTH,
    STAKE,
    advance,
    digest_of,
    reverts_with,
)

from lepton_ledger.chain.merkle import pack_entries

pytestmark = pytest.mark.usefixtures("synced_clock")

OPEN, FINALIZED = 1, 2
CAP = 8 * EPSILON_ONE
REASON = digest_of("suspended")
ROOT = digest_of("some root")
DOCUMENT = digest_of("some batch document")


@pytest.fixture(scope="module")
def trio(partner_a, partner_b, partner_c):
    return [partner_a, partner_b, partner_c]


@pytest.fixture
def running(active_agreement, open_round):
    """(agreement id, round id) of an open round of the active agreement of partners a, b, c."""
    return active_agreement, open_round(active_agreement)


def recorded(ledger, agreement_id, round_id, parties):
    """What the ledger holds for `parties`: (submitted?, cumulative epsilon) each, and the round's count."""
    return (
        [(ledger.hasSubmitted(agreement_id, round_id, p), ledger.cumulativeEpsilon(agreement_id, p)) for p in parties],
        ledger.round(agreement_id, round_id).dict()["submissions"],
    )


def nothing_recorded(ledger, agreement_id, round_id, parties):
    return recorded(ledger, agreement_id, round_id, parties) == ([(False, 0)] * len(parties), 0)


def raw_commit(ledger, coordinator, agreement_id, round_id, entries, root=ROOT, document=DOCUMENT):
    return ledger.commitBatch(agreement_id, round_id, root, document, entries, {"from": coordinator})


# ----------------------------------------------------------------------------------------------- happy path


def test_commit_batch_records_every_entry(ledger, running, trio, make_batch, commit_batch):
    agreement_id, round_id = running
    batch = make_batch(agreement_id, round_id, [(trio[0], 1_000_000), (trio[1], 2_500_000), (trio[2], 7_999_999)])
    tx = commit_batch(batch)
    assert tx.return_value == 0
    assert recorded(ledger, agreement_id, round_id, trio) == (
        [(True, 1_000_000), (True, 2_500_000), (True, 7_999_999)],
        3,
    )


def test_commit_batch_emits_batch_committed(ledger, running, trio, make_batch, commit_batch, assert_events):
    agreement_id, round_id = running
    batch = make_batch(agreement_id, round_id, [(p, EPSILON_ONE) for p in trio])
    tx = commit_batch(batch)
    assert_events(
        tx,
        (
            "BatchCommitted",
            {
                "agreementId": agreement_id,
                "round": round_id,
                "batchIndex": 0,
                "commitmentsRoot": batch.root,
                "batchDocumentDigest": batch.document_digest,
                "entries": batch.entries,
                "skipped": 0,
            },
        ),
    )


def test_commit_batch_entries_are_packed_index_and_epsilon(running, trio, make_batch):
    agreement_id, round_id = running
    batch = make_batch(agreement_id, round_id, [(trio[0], 1), (trio[2], 0x01020304)])
    assert batch.entries == bytes.fromhex("000000000001000201020304")


def test_commit_batch_numbers_batches_of_a_round(ledger, running, trio, make_batch, commit_batch, assert_events):
    agreement_id, round_id = running
    commit_batch(make_batch(agreement_id, round_id, [(trio[0], EPSILON_ONE)]))
    second = make_batch(agreement_id, round_id, [(trio[1], EPSILON_ONE), (trio[2], EPSILON_ONE)])
    tx = commit_batch(second)
    assert tx.return_value == 1
    assert tx.events["BatchCommitted"]["batchIndex"] == 1
    assert recorded(ledger, agreement_id, round_id, trio)[1] == 3


def test_commit_batch_single_entry(ledger, running, partner_b, make_batch, commit_batch):
    agreement_id, round_id = running
    commit_batch(make_batch(agreement_id, round_id, [(partner_b, 3 * EPSILON_ONE)]))
    assert ledger.hasSubmitted(agreement_id, round_id, partner_b)
    assert ledger.cumulativeEpsilon(agreement_id, partner_b) == 3 * EPSILON_ONE


def test_commit_batch_accepts_epsilon_exactly_at_cap(ledger, running, partner_a, make_batch, commit_batch):
    agreement_id, round_id = running
    commit_batch(make_batch(agreement_id, round_id, [(partner_a, CAP)]))
    assert ledger.cumulativeEpsilon(agreement_id, partner_a) == CAP


def test_commit_batch_mixes_with_single_submissions(ledger, running, trio, submit, make_batch, commit_batch, finalize):
    agreement_id, round_id = running
    submit(agreement_id, round_id, trio[0], epsilon=EPSILON_ONE)
    commit_batch(make_batch(agreement_id, round_id, [(trio[1], EPSILON_ONE), (trio[2], EPSILON_ONE)]))
    # Every party is in, so the round can close before its deadline.
    finalize(agreement_id, round_id)
    assert ledger.round(agreement_id, round_id).dict()["status"] == FINALIZED


def test_commit_batch_epsilon_carries_to_next_round(
    ledger, active_agreement, trio, open_round, make_batch, commit_batch, finalize
):
    first = open_round(active_agreement)
    commit_batch(make_batch(active_agreement, first, [(p, EPSILON_ONE) for p in trio]))
    finalize(active_agreement, first)
    second = open_round(active_agreement)
    commit_batch(make_batch(active_agreement, second, [(trio[1], 2 * EPSILON_ONE)]))
    assert recorded(ledger, active_agreement, second, trio) == (
        [(False, EPSILON_ONE), (True, 2 * EPSILON_ONE), (False, EPSILON_ONE)],
        1,
    )


# ------------------------------------------------------------------------------------------------ refusals


def test_commit_batch_refuses_largest_party_index(ledger, running, trio, coordinator):
    agreement_id, round_id = running
    with reverts_with("RoundLedgerPartyIndexOutOfRange", 65535, 3):
        raw_commit(ledger, coordinator, agreement_id, round_id, pack_entries([(65535, EPSILON_ONE)]))
    assert nothing_recorded(ledger, agreement_id, round_id, trio)


@pytest.mark.parametrize("length", [1, 5, 7, 13])
def test_commit_batch_refuses_malformed_entries(ledger, running, trio, coordinator, length):
    agreement_id, round_id = running
    entries = (pack_entries([(0, EPSILON_ONE), (1, EPSILON_ONE), (2, EPSILON_ONE)]) + b"\x00")[:length]
    with reverts_with("RoundLedgerMalformedEntries", length):
        raw_commit(ledger, coordinator, agreement_id, round_id, entries)
    assert nothing_recorded(ledger, agreement_id, round_id, trio)


def test_commit_batch_refuses_epsilon_not_increasing(
    ledger, active_agreement, trio, open_round, submit, finalize, make_batch, commit_batch
):
    first = open_round(active_agreement)
    submit(active_agreement, first, trio[0], epsilon=2 * EPSILON_ONE)
    advance(ROUND_LENGTH + 1)
    finalize(active_agreement, first)
    second = open_round(active_agreement)
    batch = make_batch(active_agreement, second, [(trio[0], 2 * EPSILON_ONE)])
    with reverts_with("RoundLedgerEpsilonNotIncreasing", trio[0], 2 * EPSILON_ONE, 2 * EPSILON_ONE):
        commit_batch(batch)
    assert recorded(ledger, active_agreement, second, trio[:1]) == ([(False, 2 * EPSILON_ONE)], 0)


def test_single_submission_refused_after_batch(ledger, running, partner_a, make_batch, commit_batch, submit):
    agreement_id, round_id = running
    commit_batch(make_batch(agreement_id, round_id, [(partner_a, EPSILON_ONE)]))
    with reverts_with("RoundLedgerAlreadySubmitted", agreement_id, round_id, partner_a):
        submit(agreement_id, round_id, partner_a, epsilon=2 * EPSILON_ONE)
    assert ledger.cumulativeEpsilon(agreement_id, partner_a) == EPSILON_ONE


def test_commit_batch_accepts_partner_approved_again(
    ledger, partners, running, trio, coordinator, make_batch, commit_batch
):
    partners.suspend(trio[0], REASON, {"from": coordinator})
    partners.approve(trio[0], {"from": coordinator})
    agreement_id, round_id = running
    commit_batch(make_batch(agreement_id, round_id, [(trio[0], EPSILON_ONE)]))
    assert ledger.hasSubmitted(agreement_id, round_id, trio[0])


@pytest.mark.parametrize("caller", ["admin", "auditor", "partner_a", "rando"])
def test_commit_batch_refuses_non_coordinator(ledger, running, trio, make_batch, caller, request):
    agreement_id, round_id = running
    account = request.getfixturevalue(caller)
    batch = make_batch(agreement_id, round_id, [(trio[0], EPSILON_ONE)])
    with reverts_with("RoundLedgerNotCoordinator", account):
        ledger.commitBatch(agreement_id, round_id, batch.root, batch.document_digest, batch.entries, {"from": account})
    assert nothing_recorded(ledger, agreement_id, round_id, trio)


# ----------------------------------------------------------------------- many parties (packed storage words)


@pytest.fixture(scope="module")
def crowd(admin, token, partner_a, partner_b, partner_c):
    """Twelve parties: a, b, c and nine fresh accounts with known keys, so that epsilons span two storage words
    (eight to a word) and the walk over them crosses a word boundary."""
    extra = [accounts.add(bytes(web3.keccak(text=f"crowd party {i}"))) for i in range(9)]
    for account in extra:
        admin.transfer(account, 10**18)
        token.mint(account, 10 * STAKE, {"from": admin})
    return [partner_a, partner_b, partner_c, *extra]


@pytest.fixture
def crowd_round(crowd, make_agreement, open_round):
    agreement_id = make_agreement(crowd)
    return agreement_id, open_round(agreement_id)


def test_commit_batch_records_every_party_across_storage_words(ledger, crowd, crowd_round, make_batch, commit_batch):
    agreement_id, round_id = crowd_round
    epsilons = [1_000_000 + 1_111 * i for i in range(len(crowd))]
    commit_batch(make_batch(agreement_id, round_id, list(zip(crowd, epsilons))))
    assert recorded(ledger, agreement_id, round_id, crowd) == ([(True, e) for e in epsilons], len(crowd))


def test_commit_batch_of_sparse_parties_leaves_the_others_untouched(
    ledger, crowd, crowd_round, make_batch, commit_batch
):
    agreement_id, round_id = crowd_round
    chosen = {1: 1_500_000, 7: 2_500_000, 8: 3_500_000, 11: 4_500_000}  # 7 | 8 straddle a word boundary
    commit_batch(make_batch(agreement_id, round_id, [(crowd[i], e) for i, e in chosen.items()]))
    expected = [(i in chosen, chosen.get(i, 0)) for i in range(len(crowd))]
    assert recorded(ledger, agreement_id, round_id, crowd) == (expected, len(chosen))


def test_commit_batch_then_single_submissions_in_the_other_word(
    ledger, crowd, crowd_round, make_batch, commit_batch, submit
):
    agreement_id, round_id = crowd_round
    commit_batch(make_batch(agreement_id, round_id, [(crowd[i], EPSILON_ONE) for i in range(8)]))
    for party in crowd[8:]:
        submit(agreement_id, round_id, party, epsilon=2 * EPSILON_ONE)
    assert recorded(ledger, agreement_id, round_id, crowd) == (
        [(True, EPSILON_ONE)] * 8 + [(True, 2 * EPSILON_ONE)] * 4,
        len(crowd),
    )


def test_commit_batch_refusal_in_second_word_keeps_the_first_word(ledger, crowd, crowd_round, make_batch, commit_batch):
    agreement_id, round_id = crowd_round
    items = [(party, EPSILON_ONE) for party in crowd[:-1]] + [(crowd[-1], CAP + 1)]
    with reverts_with("RoundLedgerBudgetExceeded", crowd[-1], CAP + 1, CAP):
        commit_batch(make_batch(agreement_id, round_id, items))
    assert nothing_recorded(ledger, agreement_id, round_id, crowd)


def test_commit_batch_in_later_round_checks_each_party_against_its_own_epsilon(
    ledger, crowd, crowd_round, make_batch, commit_batch, finalize, open_round
):
    agreement_id, first = crowd_round
    commit_batch(make_batch(agreement_id, first, [(party, (i + 1) * 100_000) for i, party in enumerate(crowd)]))
    finalize(agreement_id, first)
    second = open_round(agreement_id)
    # Party 9 had 1.0; 0.9 is below it, while the parties around it in its word move up.
    items = [(crowd[8], 2 * EPSILON_ONE), (crowd[9], 900_000), (crowd[10], 2 * EPSILON_ONE)]
    with reverts_with("RoundLedgerEpsilonNotIncreasing", crowd[9], 1_000_000, 900_000):
        commit_batch(make_batch(agreement_id, second, items))
    assert [ledger.cumulativeEpsilon(agreement_id, p) for p in crowd[8:11]] == [900_000, 1_000_000, 1_100_000]
