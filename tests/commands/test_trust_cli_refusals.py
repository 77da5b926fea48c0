"""The trust-model commands, read as a dishonest party or a newcomer would use them, on a real chain, in file order
on the module's own `world` (the fixture of test_trust_cli): a round id the ledger never opened (negative, past
uint64) is refused with one line; a refusal prints tokens and epsilons exactly, and statuses by name; `partner status` does not call withdrawable a stake the vault will not
release; a refused `coordinator close` has sent nothing, not even the answers to open disputes it gives on its
way to finalizing; the audit examines again a round voided after it verified it; a partner disputes an entry
that carries the epsilon it signed but not its signed commitment."""

from __future__ import annotations

import json

import pytest
from cli_home import ADDRESS
from test_trust_cli import (  # noqa: F401 -- world: the module's fixture
    DATA,
    WINDOW,
    advance,
    honest_entry_disputed,
    refused,
    run,
    session,
    world,
)

from lepton_ledger.chain.state import Allocation, EntryDispute
from lepton_ledger.units import DisputeStatus


def test_a_refusal_prints_amounts_exactly_so_that_two_of_them_never_read_alike():
    from lepton_ledger.chain.transactions import human_revert
    from lepton_ledger.errors import ContractReverted

    assert (
        human_revert(
            ContractReverted("RoundLedgerBudgetExceeded", {"partner": "0xabc", "spent": 10_000_001, "cap": 10_000_000})
        )
        == "RoundLedgerBudgetExceeded(partner=0xabc, spent=epsilon 10.000001, cap=epsilon 10)"
    )
    assert (
        human_revert(
            ContractReverted(
                "RewardVaultInsufficientUnallocated",
                {"agreementId": 1, "unallocated": 9_999_995 * 10**17, "requested": 10**24},
            )
        )
        == "RewardVaultInsufficientUnallocated(agreementId=1, unallocated=999999.5 tokens, requested=1000000 tokens)"
    )


def test_a_refused_approval_names_the_partners_status(world):  # noqa: F811
    line = refused("coordinator", "approve", ADDRESS["partner-a"], "--key", "coordinator")
    assert line == f"error: {ADDRESS['partner-a']} is not a partner awaiting approval (its status is Approved)"


@pytest.mark.parametrize("command", [("round", "abandon"), ("round", "restore"), ("vault", "expire")])
@pytest.mark.parametrize("round_id", ["-1", str(2**64), "9"])
def test_a_round_id_the_ledger_never_opened_is_refused_with_one_line(world, command, round_id):  # noqa: F811
    line = refused(*command, "--key", "partner-b", "--", "1", round_id)  # "--": a negative id is not a flag
    assert line == f"error: agreement 1 has no round {round_id} (it has 0)"


def test_standing_does_not_call_a_stake_withdrawable_while_the_vault_refuses_to_unstake_it(world):  # noqa: F811
    # No round is open and no dispute window runs, but the terms are in force and partner-a has not exited.
    from lepton_ledger.commands.context import CommandError, read_call

    with session() as s, pytest.raises(CommandError, match="RewardVaultAgreementInForce"):
        read_call(s.deployment.vault.functions.unstake(1, 1), "unstake", sender=ADDRESS["partner-a"])
    standing = run("partner", "status", "1", "--key", "partner-a").output
    assert "stake:            100 (required 100; held while the terms are in force)" in standing


def test_a_refused_close_answers_no_dispute(world):  # noqa: F811 -- the imported fixture
    a = ADDRESS["partner-a"]
    honest_entry_disputed(world, 1)

    line = refused("coordinator", "close", "1", "1", "--key", "coordinator", *DATA)  # before the deadline
    assert "RoundLedgerRoundStillRunning" in line
    advance(f"{WINDOW // 2 + 1}s")
    line = refused(
        "coordinator",
        "close",
        "1",
        "1",
        "--key",
        "coordinator",
        "--dataset",
        "digits",
        "--partitions",
        "2",
        "--seed",
        "1",
    )
    assert "not the one the round committed to" in line
    with session() as s:
        assert EntryDispute.read(s.deployment.ledger.functions.entryDispute(1, 1, a)).status is DisputeStatus.OPEN

    closed = run("coordinator", "close", "1", "1", "--key", "coordinator", *DATA).output
    assert f"dispute: round 1, {a}: answered with its signed commitment" in closed
    assert "finalized round 1 of agreement 1" in closed


def test_a_round_voided_after_an_audit_verified_it_is_audited_again(world):  # noqa: F811
    """The audit remembers the rounds it verified; one whose entry was voided since (an entry's dispute, raised in
    the dispute window after finalization, went unanswered) is audited again in full: the round and its payouts
    stand on-chain, but its results no longer follow from its surviving entries, and the audit says so (the
    coordinator that did not answer is the one at fault)."""
    a = ADDRESS["partner-a"]
    run("coordinator", "open", "1", "--key", "coordinator", *DATA, "--round-seconds", str(WINDOW // 2))  # round 2
    signed = world / "a2.json"
    run("partner", "train-and-sign", "1", "--key", "partner-a", "--out", str(signed), *DATA)
    run("partner", "train-and-submit", "1", "--key", "partner-b", *DATA, "--partition", "1")
    run("coordinator", "anchor", "1", "2", str(signed), "--key", "coordinator")
    assert "finalized round 2" in run("coordinator", "close", "1", "2", "--key", "coordinator", *DATA).output

    def payouts(name: str) -> dict[str, int]:
        out = world / name
        assert "every check holds" in run("audit", "--key", "auditor", "--json-out", str(out)).output
        (summary,) = [r for r in json.loads(out.read_text())["rounds"] if r["round"] == 2]
        return {p: int(line["payout"]) for p, line in summary["partners"].items()}

    assert all(payouts("before.json").values())
    run("partner", "dispute", "1", "2", "--key", "partner-a", "--force")
    advance(f"{WINDOW + 1}s")  # nobody answers
    run("partner", "void-entry", "1", "2", "--key", "partner-b", "--party", a)
    with session() as s:
        assert not Allocation.read(s.deployment.vault.functions.allocation(1, 2)).revoked  # the round stands
    after = world / "after.json"
    assert run("audit", "--key", "auditor", "--json-out", str(after), ok=False).exit_code == 1
    report = json.loads(after.read_text())
    assert [1, 2] in report["rounds_checked"]  # not merely re-checked from the earlier audit
    failed = {(c["name"], c["round"]) for c in report["checks"] if not c["ok"]}
    assert ("aggregate_recomputed", 2) in failed and all(r == 2 for _, r in failed)


def test_an_entry_with_the_signed_epsilon_but_not_the_signed_commitment_can_be_disputed(world):  # noqa: F811
    """partner-b signed its commitment for round 3; the coordinator anchors, in its place, an entry with the same
    epsilon but a leaf partner-b never signed and no document. It cannot answer, so partner-b's dispute must go
    through (its outbox knowing the epsilon proves nothing) and voids the entry."""
    b = ADDRESS["partner-b"]
    run("coordinator", "open", "1", "--key", "coordinator", *DATA)  # round 3
    signed = world / "b3.json"
    run("partner", "train-and-sign", "1", "--key", "partner-b", "--out", str(signed), *DATA)
    epsilon = json.loads(signed.read_text())["cumulativeEpsilon"]
    from lepton_ledger.chain.merkle import pack_entries

    with session() as s:
        _, index = s.deployment.agreements.functions.partyIndex(1, b).call()
        s.tx.transact(
            s.deployment.ledger.functions.commitBatch(
                1, 3, b"\x33" * 32, b"\x44" * 32, pack_entries([(index, epsilon)])
            ),
            s.address,
        )
    disputed = run("partner", "dispute", "1", "3", "--key", "partner-b").output
    exact = f"{epsilon // 10**6}.{epsilon % 10**6:06d}".rstrip("0")  # as signed, not rounded to 6 digits
    assert f"disputed the entry of {b} in round 3 of agreement 1 (batch 0, position 0, epsilon {exact})" in disputed
    answered = run("coordinator", "answer-disputes", "1", "--key", "coordinator").output
    assert f"dispute: round 3, {b}: cannot answer: batch document 0x{'44' * 32}" in answered


def test_leaving_before_the_end_of_the_terms_in_force_is_refused_with_one_line(world):  # noqa: F811
    """`partner exit` and `partner unstake` while the terms are in force: the contracts' refusal, one line, nothing
    sent; an amount above the stake is refused before anything is asked of the chain."""
    assert "AgreementRegistry" in refused("partner", "exit", "1", "--key", "partner-a")
    assert "RewardVault" in refused("partner", "unstake", "1", "--key", "partner-a")
    assert "cannot withdraw 1000000" in refused("partner", "unstake", "1", "--key", "partner-a", "--amount", "1000000")
