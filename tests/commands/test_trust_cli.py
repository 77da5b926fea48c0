"""Every party's answer to another's misbehaviour has a command, on a real chain, in file order on the module's
`world`: a partner disputes a batch entry it never signed without the batch document and voids it when the
coordinator cannot answer (its epsilon restored), while an honest entry's dispute is answered by
`coordinator answer-disputes` and stands; the arbiter named in the terms lists, rules and (past the window) lets
anyone lapse a challenge, and a key that is not the arbiter is refused with one line; anyone abandons a stale
round; unclaimed allocations expire and the funder reclaims. Chain time moves with `node time --advance`."""

from __future__ import annotations

import json

import cli_lines
import pytest
from cli_home import ADDRESS, lepton_home
from typer.testing import CliRunner

from lepton_ledger.chain.connection import connect
from lepton_ledger.chain.state import Challenge, EntryDispute, Round
from lepton_ledger.cli import app
from lepton_ledger.units import ChallengeStatus, DisputeStatus, RoundStatus

DATA = cli_lines.DATA
WINDOW = 600  # the deployment's dispute window: answer window, ruling window and grace period

runner = CliRunner()
EPSILON_A: dict[str, int] = {}  # partner-a's on-chain epsilon at points of the module's story


def run(*args: str, ok: bool = True):
    result = runner.invoke(app, list(args))
    if ok:
        assert result.exit_code == 0, f"{args}: exit {result.exit_code}\n{result.output}\n{result.exception!r}"
    return result


def refused(*args: str) -> str:
    """Runs a command that must be refused: exit 1, one `error:` line, nothing sent from any test key."""
    before = _nonces()
    result = run(*args, ok=False)
    assert result.exit_code == 1, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.output
    assert _nonces() == before
    return lines[0]


def _nonces() -> list[int]:
    with connect() as w3:
        return [w3.eth.get_transaction_count(a) for a in ADDRESS.values()]


def advance(duration: str) -> None:
    run("node", "time", "--advance", duration)


def session():
    from lepton_ledger.commands.context import open_session

    return open_session(rpc_url=None, deployment=None, key="coordinator")


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """Agreement 1 between partner-a and partner-b (30 days, admin its arbiter), active and funded with 600."""
    with lepton_home(tmp_path_factory.mktemp("lepton-home")) as home:
        a, b = ADDRESS["partner-a"], ADDRESS["partner-b"]
        run(*cli_lines.deploy("--dispute-window", str(WINDOW)))
        for name in cli_lines.PARTIES:
            run(*cli_lines.register(name))
        for name in cli_lines.PARTNERS:
            run(*cli_lines.approve(name))
        run(
            "coordinator",
            "propose",
            "--key",
            "coordinator",
            "--party",
            a,
            "--party",
            b,
            "--days",
            "30",
            "--reward-per-round",
            "300",
            "--required-stake",
            "100",
        )
        for name in ("partner-a", "partner-b"):
            run("partner", "sign", "1", "--key", name)
            run("partner", "stake", "1", "--key", name)
        run("coordinator", "fund", "1", "900", "--key", "coordinator")
        run("coordinator", "bond", "1", "100", "--key", "coordinator")  # the terms' default coordinator bond
        yield home


def test_an_entry_the_partner_never_signed_is_disputed_without_the_document_and_voided(world):
    a, b = ADDRESS["partner-a"], ADDRESS["partner-b"]
    run("coordinator", "open", "1", "--key", "coordinator", *DATA)
    signed = world / "a.json"
    run("partner", "train-and-sign", "1", "--key", "partner-a", "--out", str(signed), *DATA)
    run("coordinator", "anchor", "1", "1", str(signed), "--key", "coordinator")
    # A dishonest coordinator anchors an entry for partner-b, who signed nothing: a random root, no document.
    from lepton_ledger.chain.merkle import pack_entries

    with session() as s:
        s.tx.transact(
            s.deployment.ledger.functions.commitBatch(1, 1, b"\x11" * 32, b"\x22" * 32, pack_entries([(1, 2_500_000)])),
            s.address,
        )
        assert s.deployment.ledger.functions.cumulativeEpsilon(1, b).call() == 2_500_000

    disputed = run("partner", "dispute", "1", "1", "--key", "partner-b").output
    assert f"disputed the entry of {b} in round 1 of agreement 1 (batch 1, position 0, epsilon 2.5)" in disputed
    assert "must answer by 20" in disputed and " UTC" in disputed  # a date, not a Unix time
    line = refused("partner", "dispute", "1", "1", "--key", "partner-a")
    assert f"{a} signed this commitment" in line and "--force" in line
    run("partner", "dispute", "1", "1", "--key", "partner-a", "--force")

    answered = run("coordinator", "answer-disputes", "1", "--key", "coordinator").output.splitlines()
    assert len(answered) == 2  # in the order the disputes were raised
    assert answered[0].startswith(f"dispute: round 1, {b}: cannot answer: batch document 0x{'22' * 32}")
    assert answered[1].startswith(f"dispute: round 1, {a}: answered with its signed commitment, tx 0x")

    line = refused("partner", "void-entry", "1", "1", "--key", "partner-b")
    assert "may answer the dispute of" in line and " UTC; it can be voided after that" in line
    advance(f"{WINDOW + 1}s")
    line = refused("partner", "void-entry", "1", "1", "--key", "partner-b", "--party", a)
    assert "answered the dispute" in line and "the entry stands" in line
    voided = run("partner", "void-entry", "1", "1", "--key", "partner-b").output
    assert f"voided the entry of {b} in round 1 of agreement 1 (the round stands): its epsilon is back to 0" in voided
    with session() as s:
        assert s.deployment.ledger.functions.cumulativeEpsilon(1, b).call() == 0
        # The entry alone is voided: the round stays open.
        assert Round.read(s.deployment.ledger.functions.round(1, 1)).status is RoundStatus.OPEN

    standing = run("partner", "status", "1", "--key", "partner-b").output
    assert "epsilon on-chain: 0.000000 of cap 10" in standing and "round 1, entry epsilon 2.5: Voided" in standing
    assert "entry epsilon" in run("partner", "status", "1", "--address", a).output
    assert ": Answered" in run("partner", "status", "1", "--address", a).output


def test_the_arbiter_of_the_terms_rules_and_an_unruled_challenge_lapses(world):
    a = ADDRESS["partner-a"]
    advance("1h")
    assert (
        "finalized round 1 of agreement 1"
        in run("coordinator", "close", "1", "1", "--key", "coordinator", *DATA).output
    )  # partner-a's entry stands
    run("coordinator", "open", "1", "--key", "coordinator", *DATA)  # round 2
    run("partner", "train-and-submit", "1", "--key", "partner-a", *DATA, "--partition", "0")
    evidence = world / "evidence.json"
    evidence.write_text(json.dumps({"claim": "the update is wrong"}))
    raise_args = (
        "challenge",
        "raise",
        "--agreement",
        "1",
        "--round",
        "2",
        "--partner",
        a,
        "--evidence",
        str(evidence),
        "--key",
        "auditor",
    )
    run(*raise_args)

    listed = run("arbiter", "list", "--key", "admin").output
    assert f"challenge 1: agreement 1, round 2, partner {a}, raised by {ADDRESS['auditor']}" in listed
    assert "evidence Qm" in listed and "(digest 0x" in listed and "rule by 20" in listed
    assert "no open challenge" in run("arbiter", "list", "--key", "coordinator").output

    ruling = world / "ruling.txt"
    ruling.write_text("not shown: dismissed\n")
    line = refused("arbiter", "rule", "1", "--dismiss", "--ruling", str(ruling), "--key", "coordinator")
    assert f"{ADDRESS['coordinator']} is not the arbiter of agreement 1 (its terms name {ADDRESS['admin']})" in line
    ruled = run("arbiter", "rule", "1", "--dismiss", "--ruling", str(ruling), "--key", "admin").output
    assert "challenge 1 dismissed; ruling " in ruled
    from lepton_ledger.protocol.addressing import content_digest

    with session() as s:
        c = Challenge.read(s.deployment.ledger.functions.challengeOf(1))
    assert (c.status, c.ruling_digest) == (ChallengeStatus.DISMISSED, content_digest(ruling.read_bytes()))

    run(*raise_args)  # challenge 2: nobody rules on it
    line = refused("arbiter", "lapse", "2", "--key", "partner-b")
    assert "the arbiter may rule on challenge 2 until 20" in line
    advance(f"{WINDOW}s")
    line = refused("arbiter", "rule", "2", "--uphold", "--ruling", str(ruling), "--key", "admin")
    assert "the ruling window of challenge 2 closed at 20" in line and "arbiter lapse 2" in line
    assert "challenge 2 lapsed (dismissed)" in run("arbiter", "lapse", "2", "--key", "partner-b").output
    line = refused("arbiter", "lapse", "2", "--key", "partner-b")
    assert "challenge 2 is Dismissed" in line
    assert (
        refused("arbiter", "rule", "3", "--uphold", "--ruling", str(ruling), "--key", "admin")
        == "error: there is no challenge 3: the ledger has 2 (ids 1 to 2)"
    )


def test_a_coordinator_that_never_finalizes_loses_the_round_to_anyone(world):
    line = refused("partner", "dispute", "1", "2", "--key", "partner-b")
    assert f"{ADDRESS['partner-b']} has no entry in the batches anchored for round 2" in line
    advance("1h")
    closed = run("coordinator", "close", "1", "2", "--key", "coordinator", *DATA).output
    assert "finalized round 2 of agreement 1" in closed and "dispute:" not in closed  # none left to answer
    with session() as s:
        EPSILON_A["before round 3"] = s.deployment.ledger.functions.cumulativeEpsilon(1, ADDRESS["partner-a"]).call()
    run("coordinator", "open", "1", "--key", "coordinator", *DATA)  # round 3: never closed
    signed = world / "a3.json"
    run("partner", "train-and-sign", "1", "--key", "partner-a", "--out", str(signed), *DATA)
    run("coordinator", "anchor", "1", "3", str(signed), "--key", "coordinator")
    from lepton_ledger.chain import disputes

    with session() as s:  # the coordinator reveals the signed commitment before any dispute (as for a smart wallet)
        entry = disputes.entry_of(s.deployment, 1, 3, ADDRESS["partner-a"])
        early = disputes.DisputeRecord(
            1, 3, ADDRESS["partner-a"], "None", entry.batch_index, entry.position, entry.epsilon, 0
        )
        evidence, commitment, signature = disputes.answer_for(s.deployment, s.store, early)
        s.tx.transact(s.deployment.ledger.functions.answerDispute(evidence, commitment, signature), s.address)
        spent = s.deployment.ledger.functions.cumulativeEpsilon(1, ADDRESS["partner-a"]).call()
        assert spent > EPSILON_A["before round 3"]
        EPSILON_A["round 3"] = spent
    line = refused("round", "abandon", "1", "3", "--key", "partner-b")
    assert "can be abandoned after 20" in line and "(its deadline plus the grace period)" in line
    advance(f"{3600 + WINDOW + 1}s")
    abandoned = run("round", "abandon", "1", "3", "--key", "partner-b").output
    assert "abandoned round 3 of agreement 1" in abandoned
    line = refused("round", "abandon", "1", "3", "--key", "partner-b")
    assert "round 3 of agreement 1 is Voided" in line
    line = refused("round", "restore", "1", "2", "--key", "partner-b")
    assert (
        line == "error: round 2 of agreement 1 has nothing to restore: only a voided or abandoned round's spend "
        "is given back, once"
    )
    with session() as s:  # the abandoned round still charges partner-a's update until it is restored
        assert s.deployment.ledger.functions.cumulativeEpsilon(1, ADDRESS["partner-a"]).call() == spent


def test_the_next_open_restores_the_abandoned_round_first(world):
    """openRound waits while an abandoned round is unrestored: `coordinator open` restores it first and round 4
    opens; partner-a's spend in round 3, an update it signed and revealed, stays charged."""
    opened = run("coordinator", "open", "1", "--key", "coordinator", *DATA, "--round-seconds", str(WINDOW // 2))
    lines = opened.output.splitlines()
    assert lines[0].startswith(
        "restored round 3 of agreement 1: an entry proven forged gives its epsilon back, signed entries stay "
        "charged, tx 0x"
    )
    assert lines[1].startswith("opened round 4 of agreement 1")
    with session() as s:
        assert s.deployment.ledger.functions.cumulativeEpsilon(1, ADDRESS["partner-a"]).call() == EPSILON_A["round 3"]
    assert "has nothing to restore" in refused("round", "restore", "1", "3", "--key", "partner-b")


def honest_entry_disputed(world, round_id: int, *, opened: bool = False) -> None:
    """Opens round `round_id` (unless `opened`), which ends before the answer window of a dispute raised in it (the
    dispute window) closes; partner-a signs, the coordinator anchors its entry and partner-a disputes it anyway
    (--force)."""
    if not opened:
        run("coordinator", "open", "1", "--key", "coordinator", *DATA, "--round-seconds", str(WINDOW // 2))
    signed = world / f"a{round_id}.json"
    run("partner", "train-and-sign", "1", "--key", "partner-a", "--out", str(signed), *DATA)
    run("coordinator", "anchor", "1", str(round_id), str(signed), "--key", "coordinator")
    run("partner", "dispute", "1", str(round_id), "--key", "partner-a", "--force")


def test_close_answers_an_open_dispute_of_an_honest_entry_before_finalizing(world):
    a = ADDRESS["partner-a"]
    honest_entry_disputed(world, 4, opened=True)  # round 4 opened above, after the restore
    advance(f"{WINDOW // 2 + 1}s")
    closed = run("coordinator", "close", "1", "4", "--key", "coordinator", *DATA).output
    assert f"dispute: round 4, {a}: answered with its signed commitment" in closed
    assert "finalized round 4 of agreement 1" in closed
    with session() as s:
        assert EntryDispute.read(s.deployment.ledger.functions.entryDispute(1, 4, a)).status is DisputeStatus.ANSWERED


def test_unclaimed_rewards_expire_and_the_funder_reclaims(world):
    line = refused("vault", "expire", "1", "2", "--key", "partner-b")
    assert "claims of round 2 of agreement 1 run until 20" in line
    line = refused("vault", "reclaim", "1", "--key", "partner-b")
    assert "did not fund agreement 1" in line
    line = refused("vault", "reclaim", "1", "--key", "coordinator")
    assert "the vault refuses the reclaim: RewardVaultAgreementRunning(agreementId=1)" in line
    advance("181d")  # past the claim period and the agreement's end
    expired = run("vault", "expire", "1", "2", "--key", "partner-b").output
    assert "expired the allocation of round 2 of agreement 1: 300 unclaimed tokens are back in the pool" in expired
    run("vault", "expire", "1", "4", "--key", "partner-b")
    reclaimed = run("vault", "reclaim", "1", "--key", "coordinator").output
    assert f"reclaimed 600 tokens of agreement 1 to {ADDRESS['coordinator']}" in reclaimed
    line = refused("vault", "reclaim", "1", "--key", "coordinator")
    assert "the vault refuses the reclaim: RewardVaultNothingToReclaim(agreementId=1)" in line


def test_contract_errors_read_in_tokens_and_utc_dates():
    from lepton_ledger.chain.transactions import human_revert
    from lepton_ledger.errors import ContractReverted

    text = human_revert(
        ContractReverted(
            "RewardVaultInsufficientStake",
            {"agreementId": 1, "party": "0xabc", "staked": 5 * 10**17, "requested": 2 * 10**18},
        )
    )
    assert text == "RewardVaultInsufficientStake(agreementId=1, party=0xabc, staked=0.5 tokens, requested=2 tokens)"
    assert (
        human_revert(ContractReverted("RoundLedgerAnswerWindowOpen", {"answerBy": 1_800_000_000}))
        == "RoundLedgerAnswerWindowOpen(answerBy=2027-01-15 08:00:00 UTC)"
    )
    assert (
        human_revert(
            ContractReverted("RoundLedgerBudgetExceeded", {"partner": "0xabc", "spent": 12_500_000, "cap": 10_000_000})
        )
        == "RoundLedgerBudgetExceeded(partner=0xabc, spent=epsilon 12.5, cap=epsilon 10)"
    )
    assert (
        human_revert(ContractReverted("RoundLedgerInvalidChallengeStatus", {"challengeId": 2, "status": 3}))
        == "RoundLedgerInvalidChallengeStatus(challengeId=2, status=Dismissed)"
    )


def test_the_audit_accounts_for_the_voided_entry_the_abandoned_round_and_the_expired_allocation(world):
    """After all of the above: the batch whose only entry was voided needs no document, partner-b's DP history
    has no round 1 (its epsilon was restored), the sample counts are within the signed bound, the books add up
    with the expired allocation and the reclaim, and the event history takes round 1 (finalized, one entry
    voided), the early reveal of round 3 and its restore."""
    out = world / "audit.json"
    result = run("audit", "--key", "auditor", "--json-out", str(out))
    assert "every check holds" in result.output, result.output
    checks = json.loads(out.read_text())["checks"]
    voided = [c for c in checks if c["name"] == "batch_document" and "voided on-chain" in c["message"]]
    assert [(c["round"], c["evidence"]["voided"]) for c in voided] == [(1, [ADDRESS["partner-b"]])]
    bounds = [(c["round"], c["partner"]) for c in checks if c["name"] == "sample_count_bound"]
    assert (1, ADDRESS["partner-b"]) not in bounds and (2, ADDRESS["partner-a"]) in bounds
