"""The executor interface partners' training runs through.

An :class:`Executor` runs picklable callables somewhere else (a local process, a Ray worker on another
machine) and hands back a :class:`TaskFuture`. Tasks must be picklable: module-level functions and their
arguments (``functools.partial`` of one is fine), not lambdas or closures for the process pool. A task that
raises re-raises the same exception type from ``result()``.

The shape follows :class:`concurrent.futures.Executor` on purpose, so that code written against it (and
tests) can swap executors freely.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator
from types import TracebackType
from typing import Any, Protocol, Self, TypeVar, runtime_checkable

from ..errors import LeptonError

__all__ = ["Executor", "ExecutorClosed", "TaskFuture", "WorkerError"]

T = TypeVar("T")


class WorkerError(LeptonError, RuntimeError):
    """An executor could not be started or used (Ray missing or unreachable, a worker pool broken)."""


class ExecutorClosed(WorkerError):
    """A task was submitted after :meth:`Executor.shutdown`."""


@runtime_checkable
class TaskFuture(Protocol[T]):
    """What :meth:`Executor.submit` returns: a handle on a running task."""

    def result(self, timeout: float | None = None) -> T:
        """The task's return value, waiting up to `timeout` seconds (forever when ``None``).

        Raises:
            TimeoutError: not done within `timeout`.
            Exception: whatever the task raised, of the same type.
        """
        ...

    def done(self) -> bool:
        """Whether the task has finished (successfully or not)."""
        ...


class Executor(ABC):
    """Runs picklable tasks; a context manager that shuts down on exit."""

    @abstractmethod
    def submit(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> TaskFuture[T]:
        """Schedules ``fn(*args, **kwargs)``.

        Raises:
            ExecutorClosed: after :meth:`shutdown`.
        """

    def map(self, fn: Callable[..., T], *iterables: Iterable[Any], timeout: float | None = None) -> Iterator[T]:
        """Like the builtin ``map``, run in parallel: submits every call at once, then yields results in input
        order.

        Raises:
            ExecutorClosed: after :meth:`shutdown`.
            TimeoutError: a result is not ready within `timeout` seconds of this call.
            Exception: the first failing task's exception, when its result is reached.
        """
        import time

        futures = [self.submit(fn, *args) for args in zip(*iterables)]
        deadline = None if timeout is None else time.monotonic() + timeout

        def results() -> Iterator[T]:
            for future in futures:
                left = None if deadline is None else max(0.0, deadline - time.monotonic())
                yield future.result(timeout=left)

        return results()

    @abstractmethod
    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """Releases the workers. With `wait`, returns once running tasks are done; with `cancel_futures`,
        tasks not yet started are cancelled. Calling it twice is harmless."""

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        # On error, do not make the caller wait for queued work it will never read.
        self.shutdown(wait=True, cancel_futures=exc_type is not None)
