"""Book-keeping clipping for DP-SGD (Bu et al. 2023, "Differentially Private Optimization on Large Model at
Small Cost"): the default grad-sample mode ("bk") of ``training.train_local`` for models whose trainable
parameters all sit in ``nn.Linear`` layers.

For a Linear layer, sample i's weight gradient is ``sum_t g_t a_t^T`` (output gradients g, inputs a), so one
backward pass to the layers' outputs gives every per-sample norm and the clipped sum ``(c * G)^T A`` in one
matrix product, where Opacus's ghost clipping needs two backward passes and per-parameter Python. Everything
else is Opacus's mechanism (its Poisson ``DPDataLoader``, its clipping factor, its noise calls in its order,
its scaling by the expected batch size); tests/fl/test_training.py checks that the update equals Opacus's
"hooks" update for the same seed, noise included. Privacy-critical: change it only with those tests.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import nn
from torch.utils.data import DataLoader

from ..errors import ConfigurationError

if TYPE_CHECKING:
    from .training import DPParams

__all__ = ["supports_bookkeeping", "train_bookkeeping", "trainable_outside_linear"]


def supports_bookkeeping(model: nn.Module) -> bool:
    """True when every trainable parameter of `model` belongs to an ``nn.Linear`` (the layers "bk" clips)."""
    return not trainable_outside_linear(model) and any(p.requires_grad for p in model.parameters())


def trainable_outside_linear(model: nn.Module) -> list[str]:
    in_linear = {id(p) for m in model.modules() if isinstance(m, nn.Linear) for p in m.parameters(recurse=False)}
    return [n for n, p in model.named_parameters() if p.requires_grad and id(p) not in in_linear]


class _LinearRecorder:
    """Forward hooks keeping the input and output of each trainable ``nn.Linear`` for the current batch."""

    def __init__(self, model: nn.Module) -> None:
        self.records: list[tuple[nn.Linear, torch.Tensor, torch.Tensor, int, int]] = []
        self.handles = [
            m.register_forward_hook(self._keep)
            for m in model.modules()
            if isinstance(m, nn.Linear) and any(p.requires_grad for p in m.parameters(recurse=False))
        ]

    def _keep(self, module: nn.Module, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
        # versions: an in-place op on either tensor later in the forward would make the gradients below wrong
        self.records.append((module, inputs[0], output, inputs[0]._version, output._version))  # type: ignore[arg-type]

    def remove(self) -> None:
        for handle in self.handles:
            handle.remove()


def _clipped_grad_sums(
    records: list[tuple[nn.Linear, torch.Tensor, torch.Tensor, int, int]], loss_sum: torch.Tensor, max_grad_norm: float
) -> dict[int, torch.Tensor]:
    """Sum over the batch of the per-sample gradients clipped to `max_grad_norm`, keyed by ``id(parameter)``.

    One backward pass, to each Linear's output only: with input rows ``a`` and output gradients ``g`` of
    sample i, its weight gradient is ``sum_t g_t a_t^T``, so per-sample norms need no per-sample gradient
    for 2-D inputs (``|g| |a|``), and the clipped sum is one matrix product ``(c * G)^T A``.
    """
    if len({id(m) for m, *_ in records}) != len(records):
        raise ConfigurationError("grad_sample_mode 'bk' needs each nn.Linear called once per forward pass; use 'ghost'")
    if any(a._version != va or out._version != vo for _, a, out, va, vo in records):
        raise ConfigurationError("grad_sample_mode 'bk' cannot follow an in-place op on an nn.Linear's input or output")
    grads = torch.autograd.grad(loss_sum, [out for _, _, out, _, _ in records], allow_unused=True)
    layers, sq_norms = [], 0.0
    for (module, a, _, _, _), g in zip(records, grads):
        if g is None:
            continue  # this output does not reach the loss: every per-sample gradient is zero
        a = a.detach()
        weight, bias = module.weight.requires_grad, module.bias is not None and module.bias.requires_grad
        if a.dim() > 2:  # positions within a sample (e.g. fusion over classes): (batch, positions, features)
            a, g = a.flatten(1, -2), g.flatten(1, -2)
            if weight:
                sq_norms = sq_norms + torch.einsum("bto,bti->boi", g, a).pow(2).sum((1, 2))
            if bias:
                sq_norms = sq_norms + g.sum(1).pow(2).sum(1)
        elif weight or bias:  # |g_i a_i^T|^2 + |g_i|^2 = |g_i|^2 (|a_i|^2 + 1)
            a_sq = a.pow(2).sum(1) if weight else 0.0
            sq_norms = sq_norms + g.pow(2).sum(1) * (a_sq + 1.0 if bias else a_sq)
        layers.append((module, a, g, weight, bias))
    if not layers:
        return {}
    # Opacus's clipping factor, to the same epsilon: min(1, C / (|grad_i| + 1e-6))
    coef = (max_grad_norm / (torch.as_tensor(sq_norms).sqrt() + 1e-6)).clamp(max=1.0)
    sums: dict[int, torch.Tensor] = {}
    for module, a, g, weight, bias in layers:
        if g.dim() == 2:  # scale the narrower of the two by the factors: the product is the same
            if weight:
                narrow_a = a.shape[1] < g.shape[1]
                sums[id(module.weight)] = g.t() @ (a * coef[:, None]) if narrow_a else (g * coef[:, None]).t() @ a
            if bias:
                sums[id(module.bias)] = coef @ g
        else:
            gc = (g * coef.reshape(-1, *([1] * (g.dim() - 1)))).reshape(-1, g.shape[-1])
            if weight:
                sums[id(module.weight)] = gc.t() @ a.reshape(-1, a.shape[-1])
            if bias:
                sums[id(module.bias)] = gc.sum(0)
    return sums


def train_bookkeeping(
    work: nn.Module,
    optimizer: torch.optim.Optimizer,
    loader: DataLoader,
    plan: DPParams,
    noise_gen: torch.Generator,
    dev: torch.device,
) -> tuple[dict[str, float], int, list[float]]:
    """DP-SGD with book-keeping clipping (Bu et al., 2023) for models whose parameters are all in nn.Linear.

    The same mechanism as Opacus's modes, step for step: Opacus's Poisson ``DPDataLoader`` (built from `loader`
    as ``make_private`` builds it), each per-sample gradient clipped to ``max_grad_norm`` with Opacus's factor,
    Gaussian noise of std ``noise_multiplier * max_grad_norm`` drawn from `noise_gen` for each parameter in
    the optimizer's order (as ``DPOptimizer.add_noise``), the sum divided by the expected batch size, then the
    wrapped optimizer's step; an empty batch still takes a noisy step. Only the clipped sum is computed
    differently: one backward pass instead of ghost clipping's two, and no per-parameter Python in a wrapper
    optimizer (tests/fl/test_training.py checks the update against Opacus's for the same seed).
    """
    from opacus.data_loader import DPDataLoader

    dp_loader = DPDataLoader.from_data_loader(loader)
    sample_rate = dp_loader.sample_rate
    expected_batch_size = int(len(dp_loader.dataset) * sample_rate)  # type: ignore[arg-type]  # as make_private
    std = plan.noise_multiplier * plan.max_grad_norm
    params = [p for group in optimizer.param_groups for p in group["params"] if p.requires_grad]
    recorder = _LinearRecorder(work)
    loss_sum, correct, seen, steps = 0.0, 0, 0, 0
    try:
        for _ in range(plan.epochs):
            for xb, yb in dp_loader:
                xb, yb = xb.to(dev), yb.to(dev)
                recorder.records.clear()
                out = work(xb)
                loss = nn.functional.cross_entropy(out, yb, reduction="sum")  # per-sample losses, not their mean
                sums = _clipped_grad_sums(recorder.records, loss, plan.max_grad_norm)
                for p in params:
                    noise = torch.normal(mean=0, std=std, size=p.shape, device=p.device, generator=noise_gen)
                    # (clipped + noise) / expected batch size, Opacus's figures, in the noise's own memory
                    clipped = sums.get(id(p))
                    noisy = noise.add_(clipped) if clipped is not None else noise.add_(0.0)
                    p.grad = noisy.div_(expected_batch_size).view_as(p)
                optimizer.step()
                steps += 1
                loss_sum += float(loss.detach())
                correct += int((out.detach().argmax(dim=1) == yb).sum())
                seen += len(yb)
    finally:
        recorder.remove()
        recorder.records.clear()
    metrics = {"loss": loss_sum / max(1, seen), "train_accuracy": correct / max(1, seen)}
    return metrics, steps, [sample_rate] * (1 if steps else 0)
