"""workers.concurrent.run_each: a round's partners at the same time, results in their order, every call let
finish before the first error is raised."""

from __future__ import annotations

import threading

import pytest

from lepton_ledger.workers.concurrent import run_each


def test_calls_run_at_the_same_time_and_results_keep_the_order():
    barrier = threading.Barrier(3, timeout=30)  # passes only when all three calls are in flight together

    def step(x: int) -> int:
        barrier.wait()
        return x * 10

    assert run_each(step, [3, 1, 2]) == [30, 10, 20]


def test_every_call_finishes_before_the_first_error_is_raised():
    done = []

    def step(x: int) -> int:
        if x in (1, 3):
            raise ValueError(f"partner {x} failed")
        done.append(x)
        return x

    with pytest.raises(ValueError, match="partner 1"):
        run_each(step, [0, 1, 2, 3, 4])
    assert sorted(done) == [0, 2, 4]


def test_no_items_or_one_item_runs_in_the_callers_thread():
    assert run_each(lambda x: x, []) == []
    assert run_each(lambda x: threading.current_thread(), ["one"]) == [threading.current_thread()]
