"""Training on a Ray cluster: the way out of one machine.

``RayExecutor(address="ray://head:10001")`` (or ``"auto"``, or an explicit GCS address) joins an existing
cluster; without an address, it starts a local one. Each task is a Ray task asking for ``num_cpus`` CPUs and,
when the cluster has GPUs, ``num_gpus`` of them (default 1), so that Ray places it on a node with a free GPU
and sets ``CUDA_VISIBLE_DEVICES`` for it: the task just uses ``cuda`` when ``torch.cuda.is_available()``.

Ray is imported lazily: the package imports without it, and only this executor needs it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from ..errors import ConfigurationError
from .base import Executor, ExecutorClosed, TaskFuture, WorkerError

__all__ = ["RayExecutor", "RayFuture"]

T = TypeVar("T")


def _ray() -> Any:
    try:
        import ray
    except ImportError as exc:  # pragma: no cover - ray is a declared dependency
        raise WorkerError("RayExecutor needs the 'ray' package (pip install ray)") from exc
    return ray


class RayFuture:
    """A :class:`~lepton_ledger.workers.base.TaskFuture` over a Ray ``ObjectRef``."""

    def __init__(self, ref: Any) -> None:
        self.ref = ref

    def result(self, timeout: float | None = None) -> Any:
        """The task's value.

        Raises:
            TimeoutError: not ready within `timeout` seconds.
            Exception: the task's own exception; Ray's wrapper is also an instance of the original type, so
                ``except ValueError`` catches a task's ValueError.
            WorkerError: the task's worker or node died.
        """
        ray = _ray()
        try:
            return ray.get(self.ref, timeout=timeout)
        except ray.exceptions.GetTimeoutError as exc:
            raise TimeoutError(f"Ray task not done within {timeout} s") from exc
        except ray.exceptions.RayTaskError as exc:
            # as_instanceof_cause() is both a RayTaskError and the task's exception type.
            raise exc.as_instanceof_cause() from None
        except (ray.exceptions.WorkerCrashedError, ray.exceptions.NodeDiedError) as exc:
            raise WorkerError(f"Ray worker died: {exc}") from exc

    def done(self) -> bool:
        """Whether the task has finished."""
        ready, _ = _ray().wait([self.ref], timeout=0)
        return bool(ready)


class RayExecutor(Executor):
    """Runs tasks as Ray tasks.

    Args:
        address: a Ray cluster to join (``"auto"``, ``"ray://host:10001"``, ``"host:6379"``); ``None`` starts
            a local cluster. When Ray is already initialised in this process, that connection is used as it
            is (`address`, `num_cpus` and `init_kwargs` are then ignored) and left running at shutdown.
        num_cpus: CPUs of the local cluster when one is started (default: all).
        cpus_per_task: CPUs each task asks for.
        gpus_per_task: GPUs each task asks for; default 1 when the cluster has GPUs, else 0.
        max_retries: times Ray retries a task whose worker died (not one that raised).
        init_kwargs: further ``ray.init`` keywords (``runtime_env``, ``namespace``...).

    Raises:
        ConfigurationError: a negative resource request or retry count.
        WorkerError: Ray is missing, or ``ray.init`` failed (cluster unreachable).
    """

    def __init__(
        self,
        address: str | None = None,
        *,
        num_cpus: int | None = None,
        cpus_per_task: float = 1,
        gpus_per_task: float | None = None,
        max_retries: int = 0,
        init_kwargs: Mapping[str, Any] | None = None,
    ) -> None:
        if cpus_per_task < 0 or (gpus_per_task is not None and gpus_per_task < 0) or max_retries < 0:
            raise ConfigurationError("cpus_per_task, gpus_per_task and max_retries must be >= 0")
        ray = _ray()
        self._owns_ray = False
        if not ray.is_initialized():
            kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False, **(init_kwargs or {})}
            if address is None and num_cpus is not None:
                kwargs["num_cpus"] = num_cpus
            try:
                ray.init(address=address, **kwargs)
            except Exception as exc:  # ConnectionError, RuntimeError, ValueError depending on the address
                raise WorkerError(f"could not start or join Ray (address={address!r}): {exc}") from exc
            self._owns_ray = True
        cluster_gpus = float(ray.cluster_resources().get("GPU", 0))
        self.gpus_per_task = float(gpus_per_task if gpus_per_task is not None else (1 if cluster_gpus > 0 else 0))
        self.cpus_per_task = float(cpus_per_task)
        self._max_retries = max_retries
        self._remotes: dict[Any, Any] = {}
        self._pending: list[Any] = []
        self._closed = False

    def _remote(self, fn: Callable[..., Any]) -> Any:
        # One RemoteFunction per callable: ray.remote() pickles and exports the function each time it is made.
        key = fn if getattr(fn, "__hash__", None) is not None else id(fn)
        if key not in self._remotes:
            self._remotes[key] = _ray().remote(
                num_cpus=self.cpus_per_task, num_gpus=self.gpus_per_task, max_retries=self._max_retries
            )(fn)
        return self._remotes[key]

    def submit(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> TaskFuture[T]:
        """Schedules ``fn(*args, **kwargs)`` as a Ray task.

        Raises:
            ExecutorClosed: after :meth:`shutdown`.
        """
        if self._closed:
            raise ExecutorClosed("RayExecutor is shut down")
        ref = self._remote(fn).remote(*args, **kwargs)
        if self._pending:  # forget finished tasks, so that shutdown(wait=True) only waits on live ones
            _, self._pending = _ray().wait(self._pending, num_returns=len(self._pending), timeout=0)
        self._pending.append(ref)
        return RayFuture(ref)

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """Waits for (or cancels) this executor's tasks, then shuts Ray down if this executor started it."""
        if self._closed:
            return
        self._closed = True
        ray = _ray()
        if cancel_futures:
            for ref in self._pending:
                ray.cancel(ref)
        elif wait and self._pending:
            ray.wait(self._pending, num_returns=len(self._pending))
        self._pending = []
        if self._owns_ray:
            ray.shutdown()
