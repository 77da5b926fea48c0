"""Round trips, disk syncs and evaluations of a full audit (issue 15), counted on a real anvil, a real SQLite file
and the real evaluation: the rounds' statuses come from one batch request, the gas of every round's transactions
from one more (not a request per round, nor per transaction), the books of the vault and of the bonds from one
each, the audit state is a write-ahead log (no sync of the whole file per recorded DP entry), and no model is
evaluated twice."""

from __future__ import annotations

import json
import sqlite3
from collections import Counter

import torch
from web3 import Web3

from lepton_ledger.audit import audit_workdir
from lepton_ledger.audit.evaluation import RememberingEvaluation, state_digest
from lepton_ledger.chain.transport import KeptAliveConnections
from lepton_ledger.fl.data import make_federated
from lepton_ledger.fl.models import build_model
from lepton_ledger.rounds import outcome

ROUND_SELECTOR = "0x" + Web3.keccak(text="round(uint256,uint64)")[:4].hex()  # RoundLedger.round, a round's status
BOND_SHARE_SELECTOR = "0x" + Web3.keccak(text="bondShareOf(uint256,address)")[:4].hex()  # a party's bond share


def test_a_full_audit_reads_the_rounds_and_their_gas_in_one_request_each(demo_single, fresh_copy, monkeypatch):
    folder = fresh_copy(demo_single)
    posts: list[list[dict]] = []
    post = KeptAliveConnections.make_post_request  # where every node_web3 posts its requests

    def counted_post(self, endpoint_uri, data, *args, **kwargs):
        answer = post(self, endpoint_uri, data, *args, **kwargs)  # raises while the node is not listening yet
        sent = json.loads(data)
        posts.append(sent if isinstance(sent, list) else [sent])
        return answer

    monkeypatch.setattr(KeptAliveConnections, "make_post_request", counted_post)
    state = folder / "audit" / "state.sqlite"
    result = audit_workdir(folder, state_path=state, full=True)
    assert result.ok and len(result.rounds) == 2

    def posts_with(match) -> list[int]:
        return [sum(map(match, p)) for p in posts if any(map(match, p))]

    # Two rounds of two partners, each with an open, two submits, a finalize and two claims: 12 receipts, read a
    # batch a round before (2 requests), one batch now; both rounds' statuses in one batch (a request a round before).
    assert posts_with(lambda r: r["method"] == "eth_getTransactionReceipt") == [12]
    assert posts_with(lambda r: r["method"] == "eth_call" and r["params"][0]["data"][:10] == ROUND_SELECTOR) == [2]
    # The court's books, the bond each coordinator holds and each party's share, in one batch (a request each
    # before); the vault's books of each agreement in one more; the whole audit 21 requests (34 before).
    assert posts_with(lambda r: r["method"] == "eth_call" and r["params"][0]["data"][:10] == BOND_SHARE_SELECTOR) == [2]
    assert len(posts) <= 21, len(posts)
    with sqlite3.connect(state) as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_a_full_audit_evaluates_each_model_once(demo_single, fresh_copy, monkeypatch):
    folder = fresh_copy(demo_single)
    evaluated: Counter[bytes] = Counter()
    evaluate = outcome.evaluate

    def counted_evaluate(model, data, **kwargs):
        evaluated[state_digest(model.state_dict())] += 1
        return evaluate(model, data, **kwargs)

    monkeypatch.setattr(outcome, "evaluate", counted_evaluate)
    # One process (workers=1): a worker's evaluations would be counted in the worker, out of this test's sight.
    result = audit_workdir(folder, state_path=folder / "audit" / "state.sqlite", full=True, workers=1)
    assert result.ok and all(r.accuracy is not None for r in result.rounds)
    # Per round of two partners: everyone, each left out, the aggregate when its bytes differ from everyone's
    # (the settlement aggregates in commitment order, the scores in sorted order), and round 1's base model.
    assert evaluated and max(evaluated.values()) == 1, evaluated.values()
    assert sum(evaluated.values()) <= 2 * 4 + 1


def test_remembered_accuracy_is_the_evaluation_s_and_a_changed_model_is_evaluated_again():
    split = make_federated("digits", num_partners=2, seed=0)
    plain = outcome.Evaluation(split.eval_set, "logreg")
    remembering = RememberingEvaluation(split.eval_set, "logreg")
    state = build_model("logreg", split.eval_set.input_dim, split.eval_set.num_classes, seed=3).state_dict()
    assert remembering.accuracy(state) == remembering.accuracy(dict(state)) == plain.accuracy(state)
    assert remembering.evaluated == 1
    changed = {k: v.clone() for k, v in state.items()}
    changed["bias"] = changed["bias"] + torch.arange(split.eval_set.num_classes, dtype=torch.float32)
    assert remembering.accuracy(changed) == plain.accuracy(changed) != plain.accuracy(state)
    assert remembering.evaluated == 2
