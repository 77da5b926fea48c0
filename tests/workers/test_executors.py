import multiprocessing
import os
import subprocess
import sys
from pathlib import Path

import _tasks
import pytest
import torch

from lepton_ledger.errors import ConfigurationError, LeptonError
from lepton_ledger.workers import (
    Executor,
    ExecutorClosed,
    LocalExecutor,
    TaskFuture,
    use_evaluation_threads,
    visible_gpus,
)
from lepton_ledger.workers.local import EVALUATION_THREADS, _init_worker

SEEDS = [0, 1, 2]


@pytest.fixture(scope="module")
def local() -> LocalExecutor:
    with LocalExecutor(max_workers=2, gpus=[]) as executor:
        yield executor


@pytest.fixture(scope="module")
def ray_executor():
    # One local Ray cluster for the whole module: startup costs seconds. Its workers import the test tasks
    # from this folder, hence the PYTHONPATH (a real deployment ships its code the same way, or by wheel).
    from lepton_ledger.workers.ray_executor import RayExecutor

    executor = RayExecutor(
        num_cpus=2, init_kwargs={"runtime_env": {"env_vars": {"PYTHONPATH": str(Path(__file__).parent)}}}
    )
    yield executor
    executor.shutdown()


# --- local -------------------------------------------------------------------------------------------------


def test_local_map_runs_in_worker_processes_in_input_order(local):
    assert list(local.map(_tasks.add, [1, 2, 3, 4], [10, 20, 30, 40])) == [11, 22, 33, 44]
    where = local.submit(_tasks.whereami)
    assert isinstance(where, TaskFuture)
    info = where.result(timeout=60)
    assert info["pid"] != os.getpid()
    assert info["worker"] in {"0", "1"}
    assert info["cuda_visible_devices"] == os.environ.get("CUDA_VISIBLE_DEVICES")  # gpus=[]: left alone
    if "OMP_NUM_THREADS" not in os.environ:
        # Two workers share the machine's cores instead of each taking all of them.
        assert info["threads"] == max(1, (os.cpu_count() or 1) // 2)


def test_local_task_error_keeps_its_type(local):
    with pytest.raises(ValueError, match="boom"):
        local.submit(_tasks.fail, "boom").result(timeout=60)


def test_local_workers_take_gpus_round_robin():
    with LocalExecutor(max_workers=2, gpus=["5", "7"]) as executor:
        seen = [f.result(timeout=60) for f in [executor.submit(_tasks.whereami) for _ in range(6)]]
    for info in seen:
        assert info["cuda_visible_devices"] == ["5", "7"][int(info["worker"]) % 2]


def test_worker_initializer_rotates_over_gpus(monkeypatch):
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    monkeypatch.delenv("LEPTON_WORKER_INDEX", raising=False)
    counter = multiprocessing.get_context("spawn").Value("i", 0)
    assigned = []
    for _ in range(5):
        _init_worker(counter, ("0", "1", "2"), torch.get_num_threads())
        assigned.append(os.environ["CUDA_VISIBLE_DEVICES"])
    assert assigned == ["0", "1", "2", "0", "1"]


def test_visible_gpus_matches_torch():
    expected = torch.cuda.device_count() if torch.cuda.is_available() else 0
    assert len(visible_gpus()) == expected


@pytest.mark.parametrize("kwargs", [{"max_workers": 0}, {"threads_per_worker": 0}, {"max_tasks_per_child": 0}])
def test_local_refuses_bad_configuration(kwargs):
    with pytest.raises(ConfigurationError):
        LocalExecutor(gpus=[], **kwargs)


def test_local_refuses_tasks_after_shutdown():
    executor = LocalExecutor(max_workers=1, gpus=[])
    with executor:
        assert executor.submit(_tasks.add, 2, 3).result(timeout=60) == 5
    with pytest.raises(ExecutorClosed) as info:
        executor.submit(_tasks.add, 1, 1)
    assert isinstance(info.value, LeptonError) and isinstance(info.value, RuntimeError)


# --- Ray ---------------------------------------------------------------------------------------------------


def test_local_and_ray_give_the_same_training_results(local, ray_executor):
    assert isinstance(ray_executor, Executor)
    # the real workload: train_local (seeded Poisson sampling and noise) in worker processes and in Ray tasks
    seeds = SEEDS[:2]
    from_local = list(local.map(_tasks.dp_train, seeds, timeout=120))
    from_ray = list(ray_executor.map(_tasks.dp_train, seeds, timeout=120))
    for seed, a, b in zip(seeds, from_local, from_ray):
        in_process = _tasks.dp_train(seed)
        assert a.keys() == b.keys() == in_process.keys() == {"weight", "bias"}
        for name in a:
            assert torch.equal(a[name], b[name])
            torch.testing.assert_close(a[name], in_process[name])
    # Different seeds give different models: the comparison above is not between constants.
    assert not torch.equal(from_ray[0]["weight"], from_ray[1]["weight"])


def test_ray_task_error_keeps_its_type_and_done_reports(ray_executor):
    future = ray_executor.submit(_tasks.fail, "ray boom")
    with pytest.raises(ValueError, match="ray boom"):
        future.result(timeout=60)
    assert future.done()


def test_ray_asks_for_gpus_only_when_the_cluster_has_them(ray_executor):
    import ray

    has_gpus = ray.cluster_resources().get("GPU", 0) > 0
    assert ray_executor.gpus_per_task == (1.0 if has_gpus else 0.0)
    assert ray_executor.cpus_per_task == 1.0


def test_open_executor_is_local_unless_ray_is_configured(monkeypatch):
    from lepton_ledger.workers import LocalExecutor, open_executor

    monkeypatch.delenv("LEPTON_RAY_ADDRESS", raising=False)
    with open_executor(max_workers=1) as executor:
        assert isinstance(executor, LocalExecutor) and executor.submit(_tasks.add, 1, 2).result() == 3


def test_open_executor_in_process_runs_the_task_here_with_its_error_type(monkeypatch):
    from lepton_ledger.workers import open_executor
    from lepton_ledger.workers.inline import InlineExecutor

    monkeypatch.delenv("LEPTON_RAY_ADDRESS", raising=False)
    with open_executor(in_process=True) as executor:
        assert isinstance(executor, InlineExecutor)
        assert executor.submit(_tasks.whereami).result()["pid"] == os.getpid()  # no worker process to start
        failed = executor.submit(_tasks.fail, "boom")
        assert failed.done()
        with pytest.raises(ValueError, match="boom"):
            failed.result()
    with pytest.raises(ExecutorClosed):
        executor.submit(_tasks.add, 1, 2)


def test_a_process_that_evaluates_gets_the_evaluation_threads_once_torch_is_loaded(monkeypatch):
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        monkeypatch.delenv(var, raising=False)
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        use_evaluation_threads()
        assert torch.get_num_threads() == EVALUATION_THREADS == 1
    finally:
        torch.set_num_threads(before)


def test_a_process_that_evaluates_gets_the_evaluation_threads_before_torch_loads():
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    script = (
        "import sys; from lepton_ledger.workers import use_evaluation_threads; assert 'torch' not in sys.modules; "
        "use_evaluation_threads(); import torch; print(torch.get_num_threads())"
    )
    out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == str(EVALUATION_THREADS)


def test_an_interrupted_caller_stops_the_running_task_instead_of_waiting_for_it(tmp_path):
    """Ctrl-C while a worker trains: the executor's exit stops the worker (workers ignore SIGINT) and returns, so
    the command ends with its one line; it used to wait for the training to finish (minutes, or forever here)."""
    import threading
    import time

    started = tmp_path / "started"
    done = threading.Event()

    def interrupted() -> None:
        try:
            with LocalExecutor(max_workers=1) as ex:
                ex.submit(_tasks.wait_forever, str(started))
                while not started.exists():
                    time.sleep(0.05)  # polls the task's mark: it runs in the worker now
                raise KeyboardInterrupt
        except KeyboardInterrupt:
            done.set()

    caller = threading.Thread(target=interrupted, daemon=True)
    caller.start()
    caller.join(timeout=120)  # a bound for a failing run, not a timing: the exit takes about a second
    assert done.is_set(), "the executor's exit waited for the running task"
