"""Tasks for executor tests: module-level so that both process pools and Ray can pickle them by reference."""

from __future__ import annotations

import os

import torch


def dp_train(seed: int) -> dict[str, torch.Tensor]:
    """One epoch of ``train_local`` (DP-SGD, default grad-sample mode) of logreg on a wine partner; its delta."""
    from lepton_ledger.fl.data import make_federated
    from lepton_ledger.fl.models import build_model
    from lepton_ledger.fl.training import train_local

    split = make_federated("wine", num_partners=2, seed=0)
    model = build_model("logreg", split.input_dim, split.num_classes, seed=0)
    return train_local(model=model, data=split.partners[0], batch_size=16, noise_multiplier=1.0, seed=seed).delta


def whereami() -> dict[str, str | int | None]:
    return {
        "pid": os.getpid(),
        "worker": os.environ.get("LEPTON_WORKER_INDEX"),
        "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"),
        "threads": torch.get_num_threads(),
    }


def fail(message: str) -> None:
    raise ValueError(message)


def add(a: int, b: int) -> int:
    return a + b


def wait_forever(started: str) -> None:
    """Marks `started` (a file), then never returns on its own: stands for a training minutes long."""
    import time

    open(started, "w").close()
    while True:
        time.sleep(1)
