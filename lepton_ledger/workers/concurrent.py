"""Independent parties' steps at the same time: in production each partner runs on its own machine, so a round's
partners are not made to wait for one another. Each call runs on a thread of its own (the work of a round step is
waiting: on the node, the store, or the executor's worker processes where the training runs)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

__all__ = ["MAX_THREADS", "run_each"]

T = TypeVar("T")
R = TypeVar("R")
MAX_THREADS = 32  # beyond this, more threads only queue on the executor and the node


def run_each(step: Callable[[T], R], items: Iterable[T], *, max_threads: int = MAX_THREADS) -> list[R]:
    """``[step(item) for item in items]`` with the calls at the same time; results in the order of `items`.
    Every call is let finish (none is left half done); then the first error, in the order of `items`, is raised."""
    items = list(items)
    if len(items) <= 1:
        return [step(item) for item in items]
    with ThreadPoolExecutor(max_workers=min(len(items), max_threads), thread_name_prefix="party") as pool:
        futures = [pool.submit(step, item) for item in items]
    return [future.result() for future in futures]
