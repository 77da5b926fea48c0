"""Round trips and disk syncs of a full audit (issue 15), counted on a real anvil and a real SQLite file: the gas
of a round's transactions comes from one batch request per round, not one request per transaction, and the
audit state is a write-ahead log (no sync of the whole file per recorded DP entry)."""

from __future__ import annotations

import sqlite3

from web3._utils.http_session_manager import HTTPSessionManager

from lepton_ledger.audit import audit_workdir


def test_a_full_audit_asks_the_node_once_per_round_for_gas(demo_single, fresh_copy, monkeypatch):
    folder = fresh_copy(demo_single)
    counts = {"requests": 0}
    post = HTTPSessionManager.make_post_request

    def counted_post(self, *args, **kwargs):
        answer = post(self, *args, **kwargs)  # raises while the node is not listening yet: no round trip
        counts["requests"] += 1
        return answer

    monkeypatch.setattr(HTTPSessionManager, "make_post_request", counted_post)
    state = folder / "audit" / "state.sqlite"
    result = audit_workdir(folder, state_path=state, full=True)
    assert result.ok and len(result.rounds) == 2
    # Two rounds of two partners, each with an open, two submits, a finalize and two claims: receipt by receipt,
    # gas took 12 requests; with one batch a round it takes 2, and the whole audit about 34 (it also reads the
    # results court and the disputes): receipt by receipt it would be over 40.
    assert counts["requests"] <= 36, counts
    with sqlite3.connect(state) as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
