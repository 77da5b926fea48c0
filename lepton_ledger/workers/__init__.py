"""Training executors: local worker processes (the default) and a Ray cluster.

>>> from lepton_ledger.workers import LocalExecutor
>>> with LocalExecutor(max_workers=2) as pool:          # doctest: +SKIP
...     deltas = list(pool.map(train_partner, jobs))

:class:`RayExecutor` is imported lazily from :mod:`lepton_ledger.workers.ray_executor`, so that importing this
package never imports Ray.
"""

from __future__ import annotations

from typing import Any

from .base import Executor, ExecutorClosed, TaskFuture, WorkerError
from .local import LocalExecutor, use_evaluation_threads, visible_gpus

__all__ = [
    "Executor",
    "ExecutorClosed",
    "LocalExecutor",
    "RayExecutor",
    "TaskFuture",
    "WorkerError",
    "open_executor",
    "use_evaluation_threads",
    "visible_gpus",
]


def open_executor(ray_address: str | None = None, *, in_process: bool = False, **local_options: Any) -> Executor:
    """The executor partners train in: a :class:`RayExecutor` when `ray_address` or ``$LEPTON_RAY_ADDRESS`` is set
    (``local`` starts a Ray cluster on this machine, anything else is joined), else with `in_process` an
    :class:`InlineExecutor` (tasks run in this process: no worker to start, for one task at a time), else a
    :class:`LocalExecutor` with `local_options` (``max_workers``, ``gpus``, ``threads_per_worker``...).

    Raises:
        WorkerError: the Ray cluster cannot be started or joined.
    """
    from ..settings import ray_address as configured

    address = ray_address or configured()
    if address is None and in_process:
        from .inline import InlineExecutor

        return InlineExecutor()
    if address is None:
        return LocalExecutor(**local_options)
    from .ray_executor import RayExecutor

    return RayExecutor(None if address == "local" else address)


def __getattr__(name: str) -> Any:
    if name == "RayExecutor":
        from .ray_executor import RayExecutor

        return RayExecutor
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
