"""An executor that runs each task in the calling process, at once: for one task at a time (a partner command
trains one update), where starting a worker process would cost more than the training itself."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future
from typing import Any, TypeVar

from .base import Executor, ExecutorClosed, TaskFuture

__all__ = ["InlineExecutor"]

T = TypeVar("T")


class InlineExecutor(Executor):
    """Runs ``fn(*args, **kwargs)`` inside :meth:`submit`; the returned future is already done. An interrupt
    (Ctrl-C) reaches the task directly, as in any code of this process."""

    def __init__(self) -> None:
        self._closed = False

    def submit(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> TaskFuture[T]:
        if self._closed:
            raise ExecutorClosed("submit after shutdown")
        future: Future[T] = Future()
        try:
            future.set_result(fn(*args, **kwargs))
        except Exception as exc:  # noqa: BLE001 -- handed to the caller by result(), as a worker's would be
            future.set_exception(exc)
        return future

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        self._closed = True
