"""Tasks for executor tests: module-level so that both process pools and Ray can pickle them by reference."""

from __future__ import annotations

import os

import torch


def train_step(seed: int, steps: int = 5) -> dict[str, torch.Tensor]:
    """A short seeded SGD run of a tiny linear model on seeded random data; returns its state_dict."""
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(64, 8, generator=generator)
    y = torch.randint(0, 3, (64,), generator=generator)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = torch.nn.Linear(8, 3)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    for _ in range(steps):
        optimizer.zero_grad()
        torch.nn.functional.cross_entropy(model(x), y).backward()
        optimizer.step()
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


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
