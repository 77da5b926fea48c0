"""Training in local worker processes: the embedded default.

Workers are started with the ``spawn`` method: a forked child of a process that has already initialised
torch's thread pools or CUDA can deadlock or fail, and spawn is also what macOS and Windows do.

GPU placement: when several GPUs are visible, worker ``k`` (in start order) sees only GPU
``gpus[k % len(gpus)]`` through ``CUDA_VISIBLE_DEVICES``, so a task that uses ``cuda`` (i.e. ``cuda:0``) lands
on its own device and workers spread round-robin over them. Without a GPU nothing is changed and tasks run on
CPU. Each worker is also limited to its share of the CPU threads, so that N torch workers do not each start
``cpu_count`` threads and thrash.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import sys
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from types import TracebackType
from typing import Any, TypeVar

from ..errors import ConfigurationError
from .base import Executor, ExecutorClosed, TaskFuture, WorkerError

__all__ = ["EVALUATION_THREADS", "LocalExecutor", "limit_torch_threads", "use_evaluation_threads", "visible_gpus"]

T = TypeVar("T")


def visible_gpus() -> list[str]:
    """The CUDA devices this process may hand out, as ``CUDA_VISIBLE_DEVICES`` entries: the entries of that
    variable when it is set (indices or UUIDs, as many as torch reports), ``"0".."n-1"`` otherwise, and an
    empty list without CUDA."""
    try:
        import torch

        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    except RuntimeError:  # a broken driver or runtime means no GPU for us, not a crash
        count = 0
    if count == 0:
        return []
    declared = os.environ.get("CUDA_VISIBLE_DEVICES")
    if declared is not None:
        entries = [e.strip() for e in declared.split(",") if e.strip()]
        return entries[:count]
    return [str(i) for i in range(count)]


def _init_worker(counter: Any, gpus: tuple[str, ...], threads: int) -> None:
    """Runs once in each new worker, before any task: picks its GPU and thread count."""
    # Ctrl-C reaches the whole process group: the parent stops the pool; a worker printing its own traceback
    # for it would only bury the parent's one-line message.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    with counter.get_lock():
        index = counter.value
        counter.value += 1
    if gpus:
        os.environ["CUDA_VISIBLE_DEVICES"] = gpus[index % len(gpus)]
    os.environ["LEPTON_WORKER_INDEX"] = str(index)
    limit_torch_threads(threads)


def limit_torch_threads(threads: int) -> None:
    """Gives this process's torch `threads` CPU threads: through OpenMP's and MKL's variables before torch loads
    (unless they are set), with ``torch.set_num_threads`` once it has. Once, where the process starts: the count
    is process state, which no thread of a running process should change under the others."""
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(var, str(threads))
    if "torch" in sys.modules:  # already imported (e.g. by the main module): too late for the variables
        sys.modules["torch"].set_num_threads(threads)


#: The torch threads of a process that evaluates rounds (``rounds.outcome.Evaluation``) and trains nothing: a
#: product this small gains nothing from a second thread, and on a busy machine each call waited on it (14-17 ms
#: against 0.5 ms a call, 11 calls a round, measured with two cores under load).
EVALUATION_THREADS = 1


def use_evaluation_threads() -> None:
    """:func:`limit_torch_threads` to :data:`EVALUATION_THREADS`, where a coordinator's close, an audit or the
    service starts (the service closes rounds in a thread beside its request handlers)."""
    limit_torch_threads(EVALUATION_THREADS)


class LocalExecutor(Executor):
    """A process pool (``spawn``) with GPU-aware placement.

    Args:
        max_workers: number of worker processes; default one per GPU when there are GPUs, else
            ``os.cpu_count()``.
        gpus: ``CUDA_VISIBLE_DEVICES`` entries to spread workers over; default :func:`visible_gpus`. Pass
            ``[]`` to keep everything on CPU.
        threads_per_worker: torch CPU threads per worker; default ``max(1, cpu_count // max_workers)``.
        max_tasks_per_child: replace a worker after this many tasks (frees memory a task leaked); the
            replacement takes the next GPU in the rotation.

    Raises:
        ConfigurationError: `max_workers`, `threads_per_worker` or `max_tasks_per_child` below 1.
    """

    def __init__(
        self,
        max_workers: int | None = None,
        *,
        gpus: Sequence[str] | None = None,
        threads_per_worker: int | None = None,
        max_tasks_per_child: int | None = None,
    ) -> None:
        self.gpus: tuple[str, ...] = tuple(visible_gpus() if gpus is None else gpus)
        cpus = os.cpu_count() or 1
        workers = max_workers if max_workers is not None else (len(self.gpus) or cpus)
        if workers < 1:
            raise ConfigurationError(f"max_workers must be >= 1, got {max_workers}")
        threads = threads_per_worker if threads_per_worker is not None else max(1, cpus // workers)
        if threads < 1:
            raise ConfigurationError(f"threads_per_worker must be >= 1, got {threads_per_worker}")
        if max_tasks_per_child is not None and max_tasks_per_child < 1:
            raise ConfigurationError(f"max_tasks_per_child must be >= 1, got {max_tasks_per_child}")
        self.max_workers = workers
        context = multiprocessing.get_context("spawn")
        self._pool = ProcessPoolExecutor(
            max_workers=workers,
            mp_context=context,
            initializer=_init_worker,
            initargs=(context.Value("i", 0), self.gpus, threads),
            max_tasks_per_child=max_tasks_per_child,
        )
        self._closed = False

    def submit(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> TaskFuture[T]:
        """Schedules ``fn(*args, **kwargs)`` in a worker process.

        Raises:
            ExecutorClosed: after :meth:`shutdown`.
            WorkerError: the pool is broken (a worker died abruptly).
        """
        if self._closed:
            raise ExecutorClosed("LocalExecutor is shut down")
        try:
            return self._pool.submit(fn, *args, **kwargs)
        except BrokenProcessPool as exc:
            raise WorkerError(f"local worker pool is broken: {exc}") from exc

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """Stops the worker processes; see :meth:`Executor.shutdown`."""
        self._closed = True
        self._pool.shutdown(wait=wait, cancel_futures=cancel_futures)

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc_type is not None:
            # The caller reads no result (Ctrl-C, an error): a running task -- a training, minutes long -- is
            # stopped, not waited for. Workers ignore SIGINT, so nothing else would stop them; a task only
            # computes, and what a round keeps is recorded by the caller, never inside a task.
            for process in list(self._pool._processes.values()):
                process.terminate()
        super().__exit__(exc_type, exc, tb)
