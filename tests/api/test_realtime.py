"""The chain the service runs itself (``serve --workdir``) is mined in real time: with no transaction at all, its
clock, which every deadline and dispute window is read against, keeps up with the wall clock. A chain the service
does not run (a configured RPC URL, the data directory's shared node) it never mines."""

from __future__ import annotations

import time

from test_dashboard import demo, served  # noqa: F401 -- fixtures: a finished demo, served on a copy

REAL_TIME_BOUND = 30.0  # seconds of wall time the test waits, at most, for three seconds of chain time


def test_a_deadline_passes_in_real_time_with_no_transaction(served):  # noqa: F811
    server, _ = served
    first = server.client.get("/v1/health").json()
    assert first["mining"] == 1.0  # Settings.mine_after's default
    deadline = first["time"] + 3  # a deadline three seconds of chain time away
    bound = time.monotonic() + REAL_TIME_BOUND
    while (now := server.client.get("/v1/health").json())["time"] < deadline:
        assert time.monotonic() < bound, f"the chain's clock stood at {now['time']} (block {now['block']})"
        time.sleep(0.1)  # polling the service, as a client waiting on a deadline does
    assert now["block"] > first["block"]  # empty blocks the service mined: nobody else sends anything here


def test_a_chain_the_service_does_not_run_is_not_mined(service):
    """The session's service runs on the data directory's shared node: it reads that chain and never mines it."""
    assert service.api.get("/v1/health").json()["mining"] is None
