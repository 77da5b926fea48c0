"""The trust-model commands refuse before they act, with one line: a round id the ledger never opened (negative,
past uint64) names the round; a refused `coordinator close` has sent nothing, not even the answers to open
disputes it gives on its way to finalizing. On a real chain, in file order on the module's own
`world` (the fixture of test_trust_cli)."""

from __future__ import annotations

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


@pytest.mark.parametrize("command", [("round", "abandon"), ("round", "restore"), ("vault", "expire")])
@pytest.mark.parametrize("round_id", ["-1", str(2**64), "9"])
def test_a_round_id_the_ledger_never_opened_is_refused_with_one_line(world, command, round_id):  # noqa: F811
    line = refused(*command, "--agreement", "1", "--round", round_id, "--key", "partner-b")
    assert line == f"error: agreement 1 has no round {round_id} (it has 0)"


def test_standing_does_not_call_a_stake_withdrawable_while_the_vault_refuses_to_unstake_it(world):  # noqa: F811
    # No round is open and no dispute window runs, but the terms are in force and partner-a has not exited.
    from lepton_ledger.commands.context import CommandError, read_call

    with session() as s, pytest.raises(CommandError, match="RewardVaultAgreementInForce"):
        read_call(s.deployment.vault.functions.unstake(1, 1), "unstake", sender=ADDRESS["partner-a"])
    standing = run("partner", "standing", "--agreement", "1", "--key", "partner-a").output
    assert "stake:    100 (held while the terms are in force)" in standing


def test_a_refused_close_answers_no_dispute(world):  # noqa: F811 -- the imported fixture
    a = ADDRESS["partner-a"]
    honest_entry_disputed(world, 1)

    line = refused("coordinator", "close", "1", "1", "--key", "coordinator", *DATA)  # before the deadline
    assert "RoundLedgerRoundStillRunning" in line
    advance(f"{WINDOW // 2 + 1}s")
    line = refused("coordinator", "close", "1", "1", "--key", "coordinator", "--dataset", "digits",
                   "--partitions", "2", "--seed", "1")  # fmt: skip
    assert "not the one the round committed to" in line
    with session() as s:
        assert s.deployment.ledger.functions.entryDispute(1, 1, a).call()[0] == 1  # still Open

    closed = run("coordinator", "close", "1", "1", "--key", "coordinator", *DATA).output
    assert f"dispute: round 1, {a}: answered with its signed commitment" in closed
    assert "finalized round 1 of agreement 1" in closed
