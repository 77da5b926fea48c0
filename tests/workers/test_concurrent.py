"""workers.concurrent.run_each: a round's partners at the same time, results in their order, every call let
finish before the first error is raised."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import Future

import pytest

from lepton_ledger.workers import concurrent
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


INTERRUPTED = """
import atexit, os, signal, threading, time
from lepton_ledger.workers.concurrent import run_each

signal.signal(signal.SIGINT, signal.default_int_handler)  # whatever the parent left it as (ignored, say)

exiting = threading.Event()
atexit.register(exiting.set)  # registered after run_each's module: runs first, as the interpreter begins to exit


def step(x):
    if x == 0:
        os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C while the calls run
        exiting.wait(timeout=60)
        time.sleep(0.2)  # still at work well after its caller has gone
        print("finished", flush=True)
    return x


run_each(step, [0, 1])
"""


def test_calls_of_an_interrupted_run_finish_before_the_interpreter_exits():
    child = subprocess.run([sys.executable, "-c", INTERRUPTED], capture_output=True, text=True, timeout=120)
    assert "KeyboardInterrupt" in child.stderr and child.returncode != 0
    assert child.stdout == "finished\n"


def test_no_items_or_one_item_runs_in_the_callers_thread():
    assert run_each(lambda x: x, []) == []
    assert run_each(lambda x: threading.current_thread(), ["one"]) == [threading.current_thread()]


class SlowToLetGo(Future):
    """A future whose setter pauses once the result is set: the waiting caller goes on before the thread that ran
    the call reaches its next line, as the scheduler may arrange at any time."""

    def set_result(self, result: object) -> None:
        super().set_result(result)
        time.sleep(0.05)


def test_a_second_run_reuses_the_first_ones_threads(monkeypatch):
    monkeypatch.setattr(concurrent, "Future", SlowToLetGo)
    together = threading.Barrier(4, timeout=30)  # four calls in flight at once: four threads

    def step(_: int) -> threading.Thread:
        together.wait()
        return threading.current_thread()

    first = run_each(step, range(4))
    count = threading.active_count()
    second = run_each(step, range(4))  # the first run's threads are idle by the time it returned
    assert set(second) == set(first) and len(set(first)) == 4
    assert threading.active_count() == count


def test_a_run_inside_a_step_finishes():
    def outer(x: int) -> list[int]:
        return run_each(lambda y: x * 10 + y, range(3))

    done: list[list[list[int]]] = []
    caller = threading.Thread(target=lambda: done.append(run_each(outer, range(3))), daemon=True)
    caller.start()
    caller.join(timeout=30)  # a deadlock would hold the caller here
    assert done == [[[0, 1, 2], [10, 11, 12], [20, 21, 22]]]


def test_no_more_than_max_threads_calls_run_at_once():
    changed = threading.Condition()
    running, most = 0, 0
    pairs = threading.Barrier(2, timeout=30)  # calls meet two by two: two do run at once

    def step(x: int) -> int:
        nonlocal running, most
        with changed:
            running += 1
            most = max(most, running)
            changed.notify_all()
        pairs.wait()
        with changed:  # and stay a moment for a third that should not come (a bound, not a synchronisation)
            changed.wait_for(lambda: running > 2, timeout=0.02)
            running -= 1
        return x

    assert run_each(step, range(8), max_threads=2) == list(range(8))
    assert most == 2


def test_a_step_that_raised_leaves_its_thread_for_the_next_call():
    together = threading.Barrier(2, timeout=30)

    def step(x: int) -> threading.Thread:
        together.wait()
        if x == 1:
            raise ValueError("partner 1 failed")
        return threading.current_thread()

    failed_on: list[threading.Thread] = []

    def failing(x: int) -> threading.Thread:
        if x == 1:
            failed_on.append(threading.current_thread())
        return step(x)

    with pytest.raises(ValueError, match="partner 1"):
        run_each(failing, [0, 1])
    assert failed_on[0] in run_each(step, [0, 2]) and failed_on[0].is_alive()


def test_a_kept_thread_leaves_after_its_idle_time(monkeypatch):
    monkeypatch.setattr(concurrent, "IDLE_SECONDS", 0.05)
    together = threading.Barrier(3, timeout=30)

    def step(_: int) -> threading.Thread:
        together.wait()
        return threading.current_thread()

    used = set(run_each(step, range(3)))
    deadline = time.monotonic() + 30
    while used & set(threading.enumerate()) and time.monotonic() < deadline:
        time.sleep(0.01)  # polling for the threads' exit, not a wait for it
    assert not used & set(threading.enumerate())
    assert len(set(run_each(step, range(3)))) == 3  # new ones come when needed


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="os.fork: Linux only")
def test_a_forked_child_runs_its_calls_on_threads_of_its_own():
    together = threading.Barrier(3, timeout=10)

    def step(x: int) -> int:
        together.wait()
        return x * 10

    assert run_each(step, range(3)) == [0, 10, 20]  # the parent's threads are kept, idle
    pid = os.fork()
    if pid == 0:
        signal.alarm(30)  # a call handed to a parent's thread, which the child does not have, would never return
        try:
            code = 0 if run_each(step, range(3)) == [0, 10, 20] else 1
        except BaseException:  # noqa: BLE001 -- any failure is the child's exit code
            code = 2
        os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert run_each(step, range(3)) == [0, 10, 20]
