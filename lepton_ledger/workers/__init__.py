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
from .local import LocalExecutor, visible_gpus

__all__ = ["Executor", "ExecutorClosed", "LocalExecutor", "RayExecutor", "TaskFuture", "WorkerError", "visible_gpus"]


def __getattr__(name: str) -> Any:
    if name == "RayExecutor":
        from .ray_executor import RayExecutor

        return RayExecutor
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
