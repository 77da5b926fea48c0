"""A whole round with a real-sized model (the 1.2 MB mlp: every artifact spans several blocks) through the Kubo
RPC store (issue 11, item 1): the in-test kubo keys its blockstore by multihash as kubo does, so the raw CID of a
multi-block file's root would name the root node alone; fetching by on-chain digest must not fall into it."""

from __future__ import annotations

import sys
from pathlib import Path

from agreement_setup import NAMES, make_coordinator, make_partner, new_agreement, open_round, recipients

from lepton_ledger.protocol.addressing import fetch
from lepton_ledger.storage.kubo import KuboStore

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "storage"))  # the in-test kubo lives there
from fake_kubo import FakeKubo  # noqa: E402


def test_a_round_with_the_mlp_finalizes_through_kubo(world, executor):
    with FakeKubo() as daemon, KuboStore(daemon.url, timeout=60, retries=0, offline=True) as store:
        on_kubo = {**world, "store": store}
        agreement_id = new_agreement(on_kubo)  # the terms document goes to kubo, where the coordinator reads it
        coordinator = make_coordinator(on_kubo, "kubo-mlp", model="mlp")
        round_id, model_cid = open_round(on_kubo, coordinator, agreement_id)
        partners = [make_partner(on_kubo, n, agreement_id, executor, model="mlp") for n in NAMES]
        for p in partners:
            p.run_round(agreement_id, round_id, recipients(world))

        outcome = coordinator.close_round(agreement_id, round_id)
        assert sorted(outcome.report.accepted) == sorted(p.address for p in partners)
        assert len(fetch(store, outcome.aggregate_digest)) > 4 * 262144
        assert daemon.count("block/get") > 0 and "cat" not in daemon.requests  # every block verified here
