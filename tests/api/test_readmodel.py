"""The service's read model on a real anvil: views are cached per block, and a lookup about to answer "no such
agreement" or "no such round" first catches up with the node, so that what a caller's own transaction just
created is found even before the poller looks (under load the service once answered 404 for an agreement
proposed a moment earlier)."""

from __future__ import annotations

import sys
import threading
import time

from lepton_ledger.api.readmodel import ReadModel
from lepton_ledger.chain import agreements
from lepton_ledger.chain.agreements import AgreementTerms
from lepton_ledger.chain.anvil import Anvil, dev_account
from lepton_ledger.chain.deployment import DevRoles
from lepton_ledger.chain.transactions import Transactor
from lepton_ledger.rounds.world import build_world


def test_an_agreement_proposed_a_moment_ago_is_found_before_the_poller_looks():
    with Anvil() as w3:
        roles, partner = DevRoles.from_dev_keys(), dev_account(5)
        tx = Transactor(w3, [*roles.accounts(), partner])
        world = build_world(tx, {"alpha": partner}, dispute_window=600)
        reads = ReadModel(w3, world.deployment, poll=3600)  # its poller is not started: only lookups catch up
        assert reads.agreement(1) is None
        before = reads.block
        assert reads.agreement_count() == 0  # cached at that block
        now = int(w3.eth.get_block("latest")["timestamp"])
        terms = AgreementTerms(
            parties=[partner.address],
            reward_token=world.token.address,
            reward_per_round=10,
            epsilon_cap=8.0,
            delta=1e-5,
            required_stake=1,
            start=now,
            end=now + 86_400,
            max_rounds=3,
            coordinator=roles.coordinator.address,
            arbiter=roles.admin.address,
            max_sample_count=1_000,
        )
        agreement_id = agreements.propose(tx, world.deployment, roles.coordinator.address, terms)
        found = reads.agreement(agreement_id)
        assert found is not None and reads.block > before
        assert reads.round(agreement_id, 1) is None  # no round yet, at the latest block too
        assert reads.agreement(agreement_id + 1) is None


def test_requests_that_miss_the_cache_together_read_the_chain_once():
    """After a new block every request in flight misses at once: they wait for one computation of the view."""

    with Anvil() as w3:
        roles = DevRoles.from_dev_keys()
        world = build_world(Transactor(w3, roles.accounts()), {}, dispute_window=600)
        reads = ReadModel(w3, world.deployment, poll=3600)
        computing, release, calls = threading.Event(), threading.Event(), []

        def compute() -> int:
            calls.append(1)
            computing.set()
            release.wait(timeout=30)  # held until every other request has asked for the view
            return reads.block

        def ask() -> None:
            answers.append(reads.cached(("view",), compute))

        answers: list[int] = []
        first = threading.Thread(target=ask)
        first.start()
        assert computing.wait(timeout=30)
        others = [threading.Thread(target=ask) for _ in range(4)]
        for thread in others:
            thread.start()
        # Each of the others is either waiting for the first one's value (in `cached`) or computing it itself
        # (in `compute`, held there like the first): only then is the first let go.
        bound = time.monotonic() + 30
        while not all(_innermost(thread) in ("cached", "compute") for thread in others):
            assert time.monotonic() < bound, [_innermost(thread) for thread in others]
        release.set()
        for thread in (first, *others):
            thread.join(timeout=30)
        assert len(calls) == 1 and answers == [reads.block] * 5


def _innermost(thread: threading.Thread) -> str | None:
    """The function `thread` is running now (None before it starts)."""
    frame = sys._current_frames().get(thread.ident)
    return frame.f_code.co_name if frame is not None else None
