"""The trust-model commands refuse before they act: a refused `coordinator close` has sent nothing, not even the
answers to open disputes it gives on its way to finalizing. On a real chain, in file order on the module's own
`world` (the fixture of test_trust_cli)."""

from __future__ import annotations

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
