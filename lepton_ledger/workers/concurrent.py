"""Independent parties' steps at the same time: in production each partner runs on its own machine, so a round's
partners are not made to wait for one another. Each call runs on a thread of its own (the work of a round step is
waiting: on the node, the store, or the executor's worker processes where the training runs).

The threads are kept after their call for the next one (and leave after a minute without work): a round started
ten threads and joined them again, which cost ~10 ms of the round (bench/round_overhead.py), most of it each new
thread waiting for the interpreter lock, which the other partners' threads held, to say it had started.
"""

from __future__ import annotations

import atexit
import os
import queue
import threading
import weakref
from collections.abc import Callable, Iterable
from concurrent.futures import Future, wait
from functools import partial
from typing import Any, TypeVar

__all__ = ["MAX_THREADS", "run_each"]

T = TypeVar("T")
R = TypeVar("R")
MAX_THREADS = 32  # beyond this, more threads only queue on the executor and the node
IDLE_SECONDS = 60.0  # how long a kept thread waits for its next call before it leaves


def run_each(step: Callable[[T], R], items: Iterable[T], *, max_threads: int = MAX_THREADS) -> list[R]:
    """``[step(item) for item in items]`` with the calls at the same time (at most `max_threads` at once);
    results in the order of `items`. Every call is let finish (none is left half done); then the first error,
    in the order of `items`, is raised."""
    items = list(items)
    if len(items) <= 1:
        return [step(item) for item in items]
    slots = threading.BoundedSemaphore(max(1, max_threads))

    def call(item: T) -> R:
        try:
            return step(item)
        finally:
            slots.release()

    threads = _kept_threads()
    futures = []
    try:
        for item in items:
            slots.acquire()
            futures.append(threads.submit(call, item))
        wait(futures)  # every call, before any error is raised
    except BaseException:  # interrupted (Ctrl-C): the calls handed out still finish, before the interpreter exits
        threads.interrupted.update(futures)
        raise
    return [future.result() for future in futures]


class _KeptThreads:
    """Runs each submitted call on an idle kept thread, or on a new one when none is idle."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.idle: list[_KeptThread] = []
        self.pid = os.getpid()
        # Calls whose caller was interrupted: waited for at exit, which a kept (daemon) thread does not hold back.
        self.interrupted: weakref.WeakSet[Future[Any]] = weakref.WeakSet()

    def submit(self, fn: Callable[..., R], *args: Any) -> Future[R]:
        future: Future[R] = Future()
        if self.pid != os.getpid():
            self.forget()
        with self.lock:
            thread = self.idle.pop() if self.idle else None
        if thread is None:
            thread = _KeptThread(self)
        thread.calls.put((fn, args, future))
        return future

    def forget(self) -> None:
        """In a forked child: the parent's threads are not there, and its lock may be held by one of them. (Seen
        at the first call in the child, not in an at-fork hook: a hook runs Python in every forked child, and one
        registered here made the CLI's Ctrl-C end the process by the signal instead of exit code 130.)"""
        self.lock, self.idle, self.pid = threading.Lock(), [], os.getpid()
        self.interrupted = weakref.WeakSet()

    def finish_interrupted(self) -> None:
        if self.pid == os.getpid():  # a forked child never ran the parent's calls
            wait(list(self.interrupted))


class _KeptThread(threading.Thread):
    def __init__(self, owner: _KeptThreads) -> None:
        super().__init__(name="party", daemon=True)  # an idle kept thread must not hold the interpreter open
        self.owner = owner
        self.calls: queue.SimpleQueue[tuple[Callable[..., Any], tuple[Any, ...], Future[Any]]] = queue.SimpleQueue()
        self.start()

    def run(self) -> None:
        while True:
            try:
                fn, args, future = self.calls.get(timeout=IDLE_SECONDS)
            except queue.Empty:
                with self.owner.lock:
                    if self in self.owner.idle:  # else a call was just handed to it: take it
                        self.owner.idle.remove(self)
                        return
                continue
            settle: Callable[[], object] | None = None  # stays None for a call cancelled before it ran
            if future.set_running_or_notify_cancel():
                try:
                    settle = partial(future.set_result, fn(*args))
                except BaseException as exc:  # noqa: BLE001 -- handed to the caller, who raises it
                    settle = partial(future.set_exception, exc)
            del fn, args, future  # nothing of the call outlives it on an idle thread
            with self.owner.lock:  # idle before the caller hears of its call: its next run finds this thread
                self.owner.idle.append(self)
            if settle is not None:
                settle()
            del settle


_THREADS: _KeptThreads | None = None
_THREADS_MADE = threading.Lock()


def _kept_threads() -> _KeptThreads:
    """The process's kept threads, made at the first run: a process that never runs parties' steps (the CLI's
    commands) registers nothing at exit (with the hook registered at import, a CLI training interrupted by Ctrl-C
    ended now and then by SIGINT instead of exit code 130)."""
    global _THREADS
    with _THREADS_MADE:
        if _THREADS is None:
            _THREADS = _KeptThreads()
            atexit.register(_THREADS.finish_interrupted)
        return _THREADS
