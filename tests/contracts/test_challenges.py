"""Disputes: auditors' challenges, the admin's rulings, slashing and forfeiting (RoundLedger + RewardVault),
and fraud proofs against anchored batches (proveForgedCommitment), with the books checked after each."""

import pytest
from brownie import AgreementRegistry
from conftest import (
    DISPUTE_WINDOW,
    EPSILON_ONE,
    REWARD_PER_ROUND,
    ROUND_LENGTH,
    STAKE,
    advance,
    at_block,
    digest_of,
    hex32,
    private_key_of,
    reverts_with,
)

pytestmark = pytest.mark.usefixtures("synced_clock")

NONE, OPEN, UPHELD, DISMISSED, EXECUTED = range(5)
ROUND_OPEN, ROUND_FINALIZED, ROUND_VOIDED = 1, 2, 3
EVIDENCE = digest_of("auditor's evidence")
RULING = digest_of("admin's ruling")
REASON = digest_of("terminated")
A_PAY, B_PAY, C_PAY = 120 * 10**18, 100 * 10**18, 80 * 10**18
MAX_UINT = 2**256 - 1


@pytest.fixture(scope="module")
def trio(partner_a, partner_b, partner_c):
    return [partner_a, partner_b, partner_c]


@pytest.fixture
def paid_round(active_agreement, run_round, partner_a, partner_b, partner_c):
    """A finalized round of the active agreement paying a, b and c: (round id, tree)."""
    return run_round(active_agreement, {partner_a: A_PAY, partner_b: B_PAY, partner_c: C_PAY})


@pytest.fixture
def challenged(ledger, active_agreement, paid_round, partner_b, auditor):
    """`paid_round` with partner_b's update challenged: (round id, tree, challenge id)."""
    round_id, tree = paid_round
    tx = ledger.challenge(active_agreement, round_id, partner_b, EVIDENCE, {"from": auditor})
    return round_id, tree, tx.return_value


@pytest.fixture
def upheld(ledger, challenged, admin):
    ledger.resolveChallenge(challenged[2], True, RULING, {"from": admin})
    return challenged


@pytest.fixture
def executable(upheld):
    """`upheld` once the round's dispute window has ended."""
    advance(DISPUTE_WINDOW)
    return upheld


def challenge_of(ledger, challenge_id) -> dict:
    return ledger.challengeOf(challenge_id).dict()


def finalized_at(ledger, agreement_id, round_id):
    return ledger.round(agreement_id, round_id).dict()["finalizedAt"]


# ------------------------------------------------------------------------------------------------ challenge


def test_challenge_records_challenge(ledger, active_agreement, paid_round, partner_b, auditor):
    round_id, _ = paid_round
    tx = ledger.challenge(active_agreement, round_id, partner_b, EVIDENCE, {"from": auditor})
    assert tx.return_value == 1
    assert ledger.challengeCount() == 1
    assert challenge_of(ledger, 1) == {
        "status": OPEN,
        "round": round_id,
        "raisedAt": tx.timestamp,
        "agreementId": active_agreement,
        "partner": partner_b,
        "challenger": auditor,
        "evidenceDigest": EVIDENCE,
        "rulingDigest": hex32(b"\x00" * 32),
    }


def test_challenge_emits_challenge_raised(ledger, active_agreement, paid_round, partner_b, auditor, assert_events):
    round_id, _ = paid_round
    tx = ledger.challenge(active_agreement, round_id, partner_b, EVIDENCE, {"from": auditor})
    assert_events(
        tx,
        (
            "ChallengeRaised",
            {
                "challengeId": 1,
                "agreementId": active_agreement,
                "round": round_id,
                "partner": partner_b,
                "challenger": auditor,
                "evidenceDigest": EVIDENCE,
            },
        ),
    )


def test_challenge_locks_stake_and_blocks_claim_of_that_partner_only(
    ledger, active_agreement, challenged, partner_a, partner_b
):
    round_id, _, _ = challenged
    advance(DISPUTE_WINDOW)
    assert ledger.isStakeLocked(active_agreement, partner_b)
    assert ledger.isClaimBlocked(active_agreement, round_id, partner_b)
    assert not ledger.isStakeLocked(active_agreement, partner_a)
    assert not ledger.isClaimBlocked(active_agreement, round_id, partner_a)


def test_challenge_accepts_update_of_open_round(ledger, active_agreement, open_round, submit, partner_a, auditor):
    round_id = open_round(active_agreement)
    submit(active_agreement, round_id, partner_a)
    tx = ledger.challenge(active_agreement, round_id, partner_a, EVIDENCE, {"from": auditor})
    assert challenge_of(ledger, tx.return_value)["status"] == OPEN


def test_challenge_accepts_batched_update(
    ledger, active_agreement, open_round, make_batch, commit_batch, partner_c, auditor
):
    round_id = open_round(active_agreement)
    commit_batch(make_batch(active_agreement, round_id, [(partner_c, EPSILON_ONE)]))
    tx = ledger.challenge(active_agreement, round_id, partner_c, EVIDENCE, {"from": auditor})
    assert challenge_of(ledger, tx.return_value)["partner"] == partner_c


def test_challenge_refuses_at_the_second_claims_open(ledger, vault, active_agreement, paid_round, partner_b, auditor):
    # Claims open at finalizedAt + disputeWindow: a challenge at that second could follow the claim it must hold.
    round_id, _ = paid_round
    claimable_at = vault.allocation(active_agreement, round_id).dict()["claimableAt"]
    at_block(claimable_at)
    with reverts_with("RoundLedgerDisputeWindowClosed", active_agreement, round_id):
        ledger.challenge(active_agreement, round_id, partner_b, EVIDENCE, {"from": auditor, "gas_limit": 10**6})
    assert ledger.challengeCount() == 0


@pytest.mark.parametrize("caller", ["admin", "coordinator", "partner_a", "rando"])
def test_challenge_refuses_non_auditor(ledger, active_agreement, paid_round, partner_b, caller, request):
    account = request.getfixturevalue(caller)
    with reverts_with("RoundLedgerNotAuditor", account):
        ledger.challenge(active_agreement, paid_round[0], partner_b, EVIDENCE, {"from": account})
    assert ledger.challengeCount() == 0


# ----------------------------------------------------------------------------------------- resolveChallenge


def test_resolve_upholds_challenge(ledger, active_agreement, challenged, admin, partner_b, assert_events):
    round_id, _, challenge_id = challenged
    tx = ledger.resolveChallenge(challenge_id, True, RULING, {"from": admin})
    assert_events(tx, ("ChallengeResolved", {"challengeId": challenge_id, "upheld": True, "rulingDigest": RULING}))
    recorded = challenge_of(ledger, challenge_id)
    assert (recorded["status"], recorded["rulingDigest"]) == (UPHELD, RULING)
    advance(DISPUTE_WINDOW)
    assert ledger.isStakeLocked(active_agreement, partner_b)
    assert ledger.isClaimBlocked(active_agreement, round_id, partner_b)


def test_resolve_dismisses_challenge_and_frees_partner(
    ledger, vault, active_agreement, challenged, admin, partner_b, assert_events
):
    round_id, tree, challenge_id = challenged
    tx = ledger.resolveChallenge(challenge_id, False, RULING, {"from": admin})
    assert_events(tx, ("ChallengeResolved", {"challengeId": challenge_id, "upheld": False, "rulingDigest": RULING}))
    assert challenge_of(ledger, challenge_id)["status"] == DISMISSED
    advance(DISPUTE_WINDOW)
    assert not ledger.isStakeLocked(active_agreement, partner_b)
    assert not ledger.isClaimBlocked(active_agreement, round_id, partner_b)
    vault.claim(active_agreement, round_id, B_PAY, tree.proof(str(partner_b)), {"from": partner_b})
    assert vault.hasClaimed(active_agreement, round_id, partner_b)


@pytest.mark.parametrize("caller", ["coordinator", "auditor", "partner_b", "rando"])
def test_resolve_refuses_anyone_but_the_arbiter(ledger, active_agreement, challenged, caller, request):
    """The test agreements name the admin account as their arbiter; nobody else rules."""
    account = request.getfixturevalue(caller)
    with reverts_with("RoundLedgerNotArbiter", active_agreement, account):
        ledger.resolveChallenge(challenged[2], False, RULING, {"from": account})
    assert challenge_of(ledger, challenged[2])["status"] == OPEN


@pytest.mark.parametrize("challenge_id", [0, 2])
def test_resolve_refuses_unknown_challenge(ledger, challenged, admin, challenge_id):
    with reverts_with("RoundLedgerUnknownChallenge", challenge_id):
        ledger.resolveChallenge(challenge_id, True, RULING, {"from": admin})


@pytest.mark.parametrize("first, status", [(True, UPHELD), (False, DISMISSED)])
def test_resolve_refuses_resolved_challenge(ledger, challenged, admin, first, status):
    challenge_id = challenged[2]
    ledger.resolveChallenge(challenge_id, first, RULING, {"from": admin})
    with reverts_with("RoundLedgerInvalidChallengeStatus", challenge_id, status):
        ledger.resolveChallenge(challenge_id, not first, digest_of("other"), {"from": admin})
    assert challenge_of(ledger, challenge_id)["rulingDigest"] == RULING


# ---------------------------------------------------------------------------------------------------- slash


def test_slash_sends_whole_stake_to_treasury(
    ledger, vault, token, active_agreement, executable, partner_b, treasury, rando, assert_events, assert_books
):
    _, _, challenge_id = executable
    before = token.balanceOf(treasury)
    tx = vault.slash(challenge_id, {"from": rando})
    assert_events(
        tx,
        ("ChallengeExecuted", {"challengeId": challenge_id}),
        (
            "Slashed",
            {
                "challengeId": challenge_id,
                "agreementId": active_agreement,
                "partner": partner_b,
                "amount": STAKE,
                "recipient": treasury,
            },
        ),
        ("Transfer", {"from": vault, "to": treasury, "value": STAKE}),
    )
    assert token.balanceOf(treasury) == before + STAKE
    assert vault.stakeOf(active_agreement, partner_b) == 0
    assert vault.pool(active_agreement).dict()["stakeSlashed"] == STAKE
    assert challenge_of(ledger, challenge_id)["status"] == EXECUTED
    assert not ledger.isStakeLocked(active_agreement, partner_b)
    assert_books(active_agreement)


def test_slash_leaves_other_stakes_alone(vault, active_agreement, executable, partner_a, partner_c):
    vault.slash(executable[2], {"from": partner_a})
    assert (vault.stakeOf(active_agreement, partner_a), vault.stakeOf(active_agreement, partner_c)) == (STAKE, STAKE)


def test_slash_refuses_during_dispute_window(ledger, vault, active_agreement, upheld, partner_b):
    round_id, _, challenge_id = upheld
    ends_at = finalized_at(ledger, active_agreement, round_id) + DISPUTE_WINDOW
    with reverts_with("RoundLedgerDisputeWindowOpen", challenge_id, ends_at):
        vault.slash(challenge_id)
    assert vault.stakeOf(active_agreement, partner_b) == STAKE
    assert challenge_of(ledger, challenge_id)["status"] == UPHELD


def test_slash_refuses_challenge_of_round_still_open(
    ledger, vault, active_agreement, open_round, submit, partner_a, auditor, admin
):
    round_id = open_round(active_agreement)
    submit(active_agreement, round_id, partner_a)
    challenge_id = ledger.challenge(active_agreement, round_id, partner_a, EVIDENCE, {"from": auditor}).return_value
    ledger.resolveChallenge(challenge_id, True, RULING, {"from": admin})
    with reverts_with("RoundLedgerDisputeWindowOpen", challenge_id, MAX_UINT):
        vault.slash(challenge_id)
    assert vault.stakeOf(active_agreement, partner_a) == STAKE


def test_slash_of_challenge_raised_while_round_open_waits_for_its_finalization(
    ledger, vault, active_agreement, open_round, submit, finalize, trio, auditor, admin
):
    round_id = open_round(active_agreement)
    for party in trio:
        submit(active_agreement, round_id, party)
    challenge_id = ledger.challenge(active_agreement, round_id, trio[0], EVIDENCE, {"from": auditor}).return_value
    ledger.resolveChallenge(challenge_id, True, RULING, {"from": admin})
    finalize(active_agreement, round_id)
    advance(DISPUTE_WINDOW)
    vault.slash(challenge_id)
    assert vault.stakeOf(active_agreement, trio[0]) == 0


def test_slash_refuses_open_challenge(ledger, vault, active_agreement, challenged, partner_b):
    advance(DISPUTE_WINDOW)
    with reverts_with("RoundLedgerInvalidChallengeStatus", challenged[2], OPEN):
        vault.slash(challenged[2])
    assert vault.stakeOf(active_agreement, partner_b) == STAKE


def test_slash_refuses_dismissed_challenge(ledger, vault, active_agreement, challenged, partner_b, admin):
    ledger.resolveChallenge(challenged[2], False, RULING, {"from": admin})
    advance(DISPUTE_WINDOW)
    with reverts_with("RoundLedgerInvalidChallengeStatus", challenged[2], DISMISSED):
        vault.slash(challenged[2])
    assert vault.stakeOf(active_agreement, partner_b) == STAKE


def test_slash_refuses_second_execution(vault, token, active_agreement, executable, treasury):
    vault.slash(executable[2])
    before = token.balanceOf(treasury)
    with reverts_with("RoundLedgerInvalidChallengeStatus", executable[2], EXECUTED):
        vault.slash(executable[2])
    assert token.balanceOf(treasury) == before


def test_slash_refuses_unknown_challenge(vault):
    with reverts_with("RoundLedgerUnknownChallenge", 7):
        vault.slash(7)


@pytest.mark.parametrize("caller", ["admin", "auditor", "rando"])
def test_mark_challenge_executed_refuses_anyone_but_vault(ledger, executable, caller, request):
    account = request.getfixturevalue(caller)
    with reverts_with("RoundLedgerNotVault", account):
        ledger.markChallengeExecuted(executable[2], {"from": account})
    assert challenge_of(ledger, executable[2])["status"] == UPHELD


# -------------------------------------------------------------------------------------------- forfeitReward


def test_forfeit_reward_sends_reward_to_treasury(
    ledger, vault, token, active_agreement, executable, partner_b, treasury, rando, assert_events, assert_books
):
    round_id, tree, challenge_id = executable
    vault.slash(challenge_id)
    before = token.balanceOf(treasury)
    tx = vault.forfeitReward(challenge_id, B_PAY, tree.proof(str(partner_b)), {"from": rando})
    assert_events(
        tx,
        (
            "RewardForfeited",
            {
                "challengeId": challenge_id,
                "agreementId": active_agreement,
                "round": round_id,
                "partner": partner_b,
                "amount": B_PAY,
                "recipient": treasury,
            },
        ),
        ("Transfer", {"from": vault, "to": treasury, "value": B_PAY}),
    )
    assert token.balanceOf(treasury) == before + B_PAY
    assert vault.hasClaimed(active_agreement, round_id, partner_b)
    assert vault.pool(active_agreement).dict()["slashed"] == B_PAY
    assert vault.allocation(active_agreement, round_id).dict()["claimed"] == B_PAY
    assert_books(active_agreement)


def test_forfeit_reward_refuses_challenge_not_executed(vault, active_agreement, executable, partner_b):
    round_id, tree, challenge_id = executable
    with reverts_with("RewardVaultChallengeNotExecuted", challenge_id):
        vault.forfeitReward(challenge_id, B_PAY, tree.proof(str(partner_b)))
    assert not vault.hasClaimed(active_agreement, round_id, partner_b)


def test_forfeit_reward_refuses_wrong_amount(vault, active_agreement, executable, partner_b):
    round_id, tree, challenge_id = executable
    vault.slash(challenge_id)
    with reverts_with("RewardVaultInvalidProof", active_agreement, round_id, partner_b, B_PAY - 1):
        vault.forfeitReward(challenge_id, B_PAY - 1, tree.proof(str(partner_b)))
    assert vault.pool(active_agreement).dict()["slashed"] == 0


def test_forfeit_reward_refuses_second_forfeit(vault, token, active_agreement, executable, partner_b, treasury):
    round_id, tree, challenge_id = executable
    vault.slash(challenge_id)
    vault.forfeitReward(challenge_id, B_PAY, tree.proof(str(partner_b)))
    before = token.balanceOf(treasury)
    with reverts_with("RewardVaultAlreadyClaimed", active_agreement, round_id, partner_b):
        vault.forfeitReward(challenge_id, B_PAY, tree.proof(str(partner_b)))
    assert token.balanceOf(treasury) == before


def test_forfeit_reward_refuses_round_without_allocation(
    ledger, vault, active_agreement, run_round, partner_a, auditor, admin
):
    round_id, _ = run_round(active_agreement)
    challenge_id = ledger.challenge(active_agreement, round_id, partner_a, EVIDENCE, {"from": auditor}).return_value
    ledger.resolveChallenge(challenge_id, True, RULING, {"from": admin})
    advance(DISPUTE_WINDOW)
    vault.slash(challenge_id)
    with reverts_with("RewardVaultNoAllocation", active_agreement, round_id):
        vault.forfeitReward(challenge_id, 0, [])


def test_partner_cannot_claim_reward_of_executed_challenge(vault, active_agreement, executable, partner_b):
    round_id, tree, challenge_id = executable
    vault.slash(challenge_id)
    with reverts_with("RewardVaultClaimBlocked", active_agreement, round_id, partner_b):
        vault.claim(active_agreement, round_id, B_PAY, tree.proof(str(partner_b)), {"from": partner_b})
    assert not vault.hasClaimed(active_agreement, round_id, partner_b)


# ------------------------------------------------------------------------------------------------ end to end


def test_unstake_is_locked_while_challenge_is_live(
    ledger, vault, agreements, active_agreement, upheld, partner_a, partner_b, coordinator
):
    agreements.terminate(active_agreement, REASON, {"from": coordinator})
    advance(DISPUTE_WINDOW)
    with reverts_with("RewardVaultStakeLocked", active_agreement, partner_b):
        vault.unstake(active_agreement, STAKE, {"from": partner_b})
    assert vault.stakeOf(active_agreement, partner_b) == STAKE
    vault.unstake(active_agreement, STAKE, {"from": partner_a})  # the unchallenged party is free
    assert vault.stakeOf(active_agreement, partner_a) == 0


def test_challenge_flow_end_to_end(
    ledger,
    vault,
    token,
    agreements,
    active_agreement,
    paid_round,
    trio,
    auditor,
    admin,
    coordinator,
    treasury,
    assert_books,
):
    """Challenge b, uphold, wait out the window, slash and forfeit: the treasury gets b's stake and reward,
    a and c claim theirs, and once the agreement ends a and c get their stakes back while b has none."""
    round_id, tree = paid_round
    partner_a, partner_b, partner_c = trio
    treasury_before = token.balanceOf(treasury)
    challenge_id = ledger.challenge(active_agreement, round_id, partner_b, EVIDENCE, {"from": auditor}).return_value
    ledger.resolveChallenge(challenge_id, True, RULING, {"from": admin})
    agreements.terminate(active_agreement, REASON, {"from": coordinator})
    with reverts_with("RewardVaultStakeLocked", active_agreement, partner_b):
        vault.unstake(active_agreement, STAKE, {"from": partner_b})
    assert_books(active_agreement)

    advance(DISPUTE_WINDOW)
    vault.slash(challenge_id, {"from": partner_a})
    vault.forfeitReward(challenge_id, B_PAY, tree.proof(str(partner_b)), {"from": partner_a})
    for partner in (partner_a, partner_c):
        vault.claim(active_agreement, round_id, tree.amount(str(partner)), tree.proof(str(partner)), {"from": partner})
        vault.unstake(active_agreement, STAKE, {"from": partner})
    with reverts_with("RewardVaultInsufficientStake", active_agreement, partner_b, 0, STAKE):
        vault.unstake(active_agreement, STAKE, {"from": partner_b})
    vault.reclaim(active_agreement, {"from": coordinator})

    assert token.balanceOf(treasury) == treasury_before + STAKE + B_PAY
    pool = vault.pool(active_agreement).dict()
    assert (pool["paid"], pool["slashed"], pool["stakeSlashed"], pool["unstaked"]) == (
        A_PAY + C_PAY,
        B_PAY,
        STAKE,
        2 * STAKE,
    )
    assert vault.claimable(active_agreement) == 0
    assert token.balanceOf(vault) == 0
    assert_books(active_agreement)


# ------------------------------------------------------------------------------------------ fraud proofs


@pytest.fixture
def anchor(active_agreement, open_round, make_batch, commit_batch, trio):
    """anchor(signed=None) -> (round id, batch): a batch of a (1.0), b (2.0), c (3.0) in a new round, with
    what is signed overridden per position by `signed` (see conftest.Batch)."""

    def _anchor(signed=None):
        round_id = open_round(active_agreement)
        items = [(trio[0], EPSILON_ONE), (trio[1], 2 * EPSILON_ONE), (trio[2], 3 * EPSILON_ONE)]
        batch = make_batch(active_agreement, round_id, items, signed)
        commit_batch(batch)
        return round_id, batch

    return _anchor


def prove(ledger, auditor, batch, at, batch_index=0, **overrides):
    """Submits the commitment and signature published at position `at` of `batch` as a fraud proof, with
    evidence fields overridden by name (`position`, `proof`, `entries`, ...)."""
    return ledger.proveForgedCommitment(
        batch.evidence(batch_index, at, **overrides),
        batch.commitments[at].as_tuple(),
        batch.signatures[at],
        {"from": auditor},
    )


@pytest.mark.parametrize(
    "forgery",
    [
        pytest.param({"key": private_key_of(9)}, id="signed-by-another-key"),
        pytest.param({"epsilon": 1_500_000}, id="anchored-epsilon-differs-from-signed"),
        pytest.param({"partner": "0x" + "42" * 20, "key": private_key_of(4)}, id="signed-for-another-partner"),
    ],
)
def test_prove_forged_commitment_voids_open_round(
    ledger, active_agreement, anchor, auditor, assert_events, forgery, trio
):
    round_id, batch = anchor({1: forgery})
    words_at_void = epsilon_words(ledger, active_agreement, trio)
    tx = prove(ledger, auditor, batch, 1)
    assert_events(
        tx,
        ("EpsilonsAtClose", {"agreementId": active_agreement, "round": round_id, "words": words_at_void}),
        ("RoundVoided", {"agreementId": active_agreement, "round": round_id, "batchIndex": 0, "position": 1}),
    )
    recorded = ledger.round(active_agreement, round_id).dict()
    assert (recorded["status"], recorded["finalizedAt"]) == (ROUND_VOIDED, tx.timestamp)
    assert ledger.openRoundOf(active_agreement) == 0


def test_prove_forged_commitment_signed_by_another_party_voids(ledger, active_agreement, anchor, auditor, partner_a):
    # Entry 1 is b's, but the commitment there is a's, correctly signed by a.
    round_id, batch = anchor({1: {"partner": partner_a, "key": private_key_of(3)}})
    prove(ledger, auditor, batch, 1)
    assert ledger.round(active_agreement, round_id).dict()["status"] == ROUND_VOIDED


def test_prove_forged_commitment_refuses_valid_commitment(ledger, active_agreement, anchor, auditor):
    round_id, batch = anchor()
    for position in range(3):
        with reverts_with("RoundLedgerCommitmentValid"):
            prove(ledger, auditor, batch, position)
    assert ledger.round(active_agreement, round_id).dict()["status"] == ROUND_OPEN
    assert ledger.openRoundOf(active_agreement) == round_id


def test_prove_forged_commitment_refuses_proof_of_another_position(ledger, active_agreement, anchor, auditor):
    round_id, batch = anchor({1: {"key": private_key_of(9)}})
    with reverts_with("RoundLedgerInvalidMerkleProof"):
        prove(ledger, auditor, batch, 1, proof=batch.tree.proof(0))
    with reverts_with("RoundLedgerInvalidMerkleProof"):
        prove(ledger, auditor, batch, 1, position=2)
    assert ledger.round(active_agreement, round_id).dict()["status"] == ROUND_OPEN


def test_prove_forged_commitment_refuses_padding_position(ledger, active_agreement, anchor, auditor):
    # Three entries pad to four leaves; position 3 is a zero leaf, not a commitment.
    round_id, batch = anchor({2: {"key": private_key_of(9)}})
    with reverts_with("RoundLedgerInvalidMerkleProof"):
        prove(ledger, auditor, batch, 2, position=3, proof=batch.tree.proof(2))
    assert ledger.round(active_agreement, round_id).dict()["status"] == ROUND_OPEN


def test_prove_forged_commitment_refuses_truncated_proof(ledger, active_agreement, anchor, auditor):
    round_id, batch = anchor({0: {"key": private_key_of(9)}})
    with reverts_with("RoundLedgerInvalidMerkleProof"):
        prove(ledger, auditor, batch, 0, proof=batch.tree.proof(0)[:1])
    assert ledger.round(active_agreement, round_id).dict()["status"] == ROUND_OPEN


@pytest.mark.parametrize(
    "field, value",
    [
        ("entries", bytes.fromhex("000000000001000100200000000200300000")),
        ("root", digest_of("another root")),
        ("documentDigest", digest_of("another document")),
    ],
)
def test_prove_forged_commitment_refuses_evidence_not_as_anchored(
    ledger, active_agreement, anchor, auditor, field, value
):
    round_id, batch = anchor({1: {"key": private_key_of(9)}})
    with reverts_with("RoundLedgerBatchMismatch"):
        prove(ledger, auditor, batch, 1, **{field: value})
    assert ledger.round(active_agreement, round_id).dict()["status"] == ROUND_OPEN


def test_prove_forged_commitment_refuses_unknown_batch(ledger, active_agreement, anchor, auditor):
    round_id, batch = anchor({1: {"key": private_key_of(9)}})
    with reverts_with("RoundLedgerUnknownBatch", active_agreement, round_id, 1):
        prove(ledger, auditor, batch, 1, batch_index=1)
    assert ledger.round(active_agreement, round_id).dict()["status"] == ROUND_OPEN


def test_prove_forged_commitment_finds_second_batch_of_round(
    ledger, active_agreement, open_round, make_batch, commit_batch, trio, auditor
):
    round_id = open_round(active_agreement)
    commit_batch(make_batch(active_agreement, round_id, [(trio[0], EPSILON_ONE)]))
    forged = make_batch(active_agreement, round_id, [(trio[2], EPSILON_ONE)], {0: {"epsilon": 2}})
    commit_batch(forged)
    # A single-entry batch: its root is the leaf, its proof empty.
    assert forged.tree.proof(0) == [] and forged.root == forged.tree.leaves[0]
    with reverts_with("RoundLedgerBatchMismatch"):
        prove(ledger, auditor, forged, 0, batch_index=0)
    prove(ledger, auditor, forged, 0, batch_index=1)
    assert ledger.round(active_agreement, round_id).dict()["status"] == ROUND_VOIDED


@pytest.mark.parametrize("caller", ["admin", "coordinator", "partner_a", "rando"])
def test_prove_forged_commitment_refuses_non_auditor(ledger, active_agreement, anchor, caller, request):
    round_id, batch = anchor({1: {"key": private_key_of(9)}})
    account = request.getfixturevalue(caller)
    with reverts_with("RoundLedgerNotAuditor", account):
        prove(ledger, account, batch, 1)
    assert ledger.round(active_agreement, round_id).dict()["status"] == ROUND_OPEN


def test_prove_forged_commitment_voids_finalized_round_and_revokes_its_allocation(
    ledger, vault, active_agreement, anchor, finalize, trio, auditor, assert_events, assert_books
):
    round_id, batch = anchor({2: {"key": private_key_of(9)}})
    tree = finalize(active_agreement, round_id, {trio[0]: A_PAY, trio[1]: B_PAY, trio[2]: C_PAY})
    unallocated = vault.unallocated(active_agreement)
    tx = prove(ledger, auditor, batch, 2)
    assert_events(
        tx,
        ("RoundVoided", {"agreementId": active_agreement, "round": round_id, "batchIndex": 0, "position": 2}),
        ("AllocationRevoked", {"agreementId": active_agreement, "round": round_id, "total": tree.total}),
    )
    assert ledger.round(active_agreement, round_id).dict()["status"] == ROUND_VOIDED
    assert vault.allocation(active_agreement, round_id).dict()["revoked"] is True
    assert vault.unallocated(active_agreement) == unallocated + tree.total
    assert vault.claimable(active_agreement) == 0
    advance(DISPUTE_WINDOW)
    with reverts_with("RewardVaultAllocationRevoked", active_agreement, round_id):
        vault.claim(active_agreement, round_id, A_PAY, tree.proof(str(trio[0])), {"from": trio[0]})
    assert_books(active_agreement)


def test_prove_forged_commitment_keeps_finalized_time_of_finalized_round(
    ledger, active_agreement, anchor, finalize, auditor
):
    round_id, batch = anchor({0: {"epsilon": 7}})
    finalize(active_agreement, round_id)
    finalized = ledger.round(active_agreement, round_id).dict()["finalizedAt"]
    advance(60)
    prove(ledger, auditor, batch, 0)
    assert ledger.round(active_agreement, round_id).dict()["finalizedAt"] == finalized


def test_prove_forged_commitment_refuses_after_dispute_window(ledger, active_agreement, anchor, finalize, auditor):
    round_id, batch = anchor({1: {"key": private_key_of(9)}})
    finalize(active_agreement, round_id)
    advance(DISPUTE_WINDOW)
    with reverts_with("RoundLedgerDisputeWindowClosed", active_agreement, round_id):
        prove(ledger, auditor, batch, 1)
    assert ledger.round(active_agreement, round_id).dict()["status"] == ROUND_FINALIZED


def test_voided_round_cannot_be_disputed_again(ledger, active_agreement, anchor, auditor, partner_a):
    round_id, batch = anchor({1: {"key": private_key_of(9)}, 2: {"key": private_key_of(9)}})
    prove(ledger, auditor, batch, 1)
    with reverts_with("RoundLedgerDisputeWindowClosed", active_agreement, round_id):
        prove(ledger, auditor, batch, 2)
    with reverts_with("RoundLedgerDisputeWindowClosed", active_agreement, round_id):
        ledger.challenge(active_agreement, round_id, partner_a, EVIDENCE, {"from": auditor})


def epsilon_words(ledger, agreement_id, parties):
    """The agreement's packed epsilon words now, from the view: lanes of the agreement's width (24 or 32 bits),
    256 // width to a word, by party index."""
    bits = AgreementRegistry.at(ledger.agreements()).roundConfig(agreement_id)[-1]
    lanes = 256 // bits
    words = [0] * ((len(parties) + lanes - 1) // lanes)
    for i, party in enumerate(parties):
        words[i // lanes] |= ledger.cumulativeEpsilon(agreement_id, party) << (bits * (i % lanes))
    return words


def snapshot_words(ledger, name, agreement_id, round_id):
    """The words of the `name` snapshot event (EpsilonsAtOpen or EpsilonsAtClose) of the round."""
    events = ledger.events.get_sequence(from_block=0, event_type=name)
    matching = [e.args for e in events if (e.args.agreementId, e.args.round) == (agreement_id, round_id)]
    assert len(matching) == 1
    return list(matching[0].words)


def restore(ledger, agreement_id, round_id, sender):
    """restoreVoidedRound with the words of the round's two snapshot events, as a caller finds them."""
    return ledger.restoreVoidedRound(
        agreement_id,
        round_id,
        snapshot_words(ledger, "EpsilonsAtOpen", agreement_id, round_id),
        snapshot_words(ledger, "EpsilonsAtClose", agreement_id, round_id),
        {"from": sender},
    )


def test_voided_round_refuses_finalization_and_frees_next_round_once_restored(
    ledger, active_agreement, anchor, auditor, coordinator, open_round, rando
):
    round_id, batch = anchor({1: {"key": private_key_of(9)}})
    prove(ledger, auditor, batch, 1)
    advance(ROUND_LENGTH + 1)
    with reverts_with("RoundLedgerRoundNotOpen", active_agreement, round_id):
        ledger.finalizeRound(
            active_agreement, round_id, digest_of("a"), digest_of("r"), b"\x00" * 32, 0, {"from": coordinator}
        )
    with reverts_with("RoundLedgerDisputePending", active_agreement):
        open_round(active_agreement)
    restore(ledger, active_agreement, round_id, rando)
    assert open_round(active_agreement) == round_id + 1


def test_voided_round_gives_back_the_forged_entry_alone_and_keeps_the_signed_ones(
    ledger, active_agreement, anchor, auditor, trio, rando, assert_events
):
    # Issue 10: the entry proven forged is taken off the books once anyone restores the round from the events;
    # the entries their partners signed stay charged (those updates were revealed whether or not the round pays).
    round_id, batch = anchor({1: {"key": private_key_of(9)}})
    prove(ledger, auditor, batch, 1)
    assert [ledger.cumulativeEpsilon(active_agreement, p) for p in trio] == [
        EPSILON_ONE,
        2 * EPSILON_ONE,
        3 * EPSILON_ONE,
    ]
    tx = restore(ledger, active_agreement, round_id, rando)
    assert_events(tx, ("VoidedRoundRestored", {"agreementId": active_agreement, "round": round_id}))
    assert [ledger.cumulativeEpsilon(active_agreement, p) for p in trio] == [EPSILON_ONE, 0, 3 * EPSILON_ONE]
    assert [ledger.hasSubmitted(active_agreement, round_id, p) for p in trio] == [True, False, True]
    with reverts_with("RoundLedgerNothingToRestore", active_agreement, round_id):
        restore(ledger, active_agreement, round_id, rando)


# --------------------------------------------------------------------------------- ERC-1271 smart-wallet party


@pytest.fixture
def wallet_agreement(
    smart_wallet, partners, agreements, vault, token, admin, coordinator, partner_a, partner_c, make_terms
):
    """An active, funded agreement between partner_a and an ERC-1271 wallet owned by partner_c's key."""
    owner = partner_c
    smart_wallet.execute(
        partners, partners.register.encode_input(digest_of("wallet"), digest_of("wallet key")), {"from": owner}
    )
    partners.approve(smart_wallet, {"from": coordinator})
    if partners.partnerOf(partner_a)[0] == 0:
        partners.register(digest_of("a"), digest_of("a key"), {"from": partner_a})
        partners.approve(partner_a, {"from": coordinator})
    agreement_id = agreements.propose(make_terms([partner_a, smart_wallet]), {"from": coordinator}).return_value
    agreements.sign(agreement_id, {"from": partner_a})
    smart_wallet.execute(agreements, agreements.sign.encode_input(agreement_id), {"from": owner})
    token.approve(vault, STAKE, {"from": partner_a})
    vault.stake(agreement_id, STAKE, {"from": partner_a})
    token.mint(smart_wallet, STAKE, {"from": admin})
    smart_wallet.execute(token, token.approve.encode_input(vault, STAKE), {"from": owner})
    smart_wallet.execute(vault, vault.stake.encode_input(agreement_id, STAKE), {"from": owner})
    token.approve(vault, REWARD_PER_ROUND, {"from": coordinator})
    vault.fund(agreement_id, REWARD_PER_ROUND, {"from": coordinator})
    assert agreements.agreementState(agreement_id)[0] == 2
    return agreement_id


def test_prove_forged_commitment_judges_a_wallet_entry_by_ecdsa_alone(
    ledger, wallet_agreement, smart_wallet, partner_a, open_round, make_batch, commit_batch, auditor
):
    """An ERC-1271 acceptance could be revoked after anchoring; batch entries are judged by ECDSA alone, so the
    wallet owner's signature is not the wallet's (a smart-wallet party submits directly)."""
    round_id = open_round(wallet_agreement)
    batch = make_batch(
        wallet_agreement,
        round_id,
        [(partner_a, EPSILON_ONE), (smart_wallet, EPSILON_ONE)],
        {1: {"key": private_key_of(5)}},
    )
    commit_batch(batch)
    with reverts_with("RoundLedgerCommitmentValid"):
        prove(ledger, auditor, batch, 0)  # partner_a's EOA signature stays valid
    prove(ledger, auditor, batch, 1)
    assert ledger.round(wallet_agreement, round_id).dict()["status"] == ROUND_VOIDED


def test_prove_forged_commitment_voids_signature_not_by_wallet_owner(
    ledger, wallet_agreement, smart_wallet, partner_a, open_round, make_batch, commit_batch, auditor
):
    round_id = open_round(wallet_agreement)
    batch = make_batch(
        wallet_agreement,
        round_id,
        [(partner_a, EPSILON_ONE), (smart_wallet, EPSILON_ONE)],
        {1: {"key": private_key_of(3)}},
    )
    commit_batch(batch)
    prove(ledger, auditor, batch, 1)
    assert ledger.round(wallet_agreement, round_id).dict()["status"] == ROUND_VOIDED
