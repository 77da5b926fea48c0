"""Local DP-SGD training on Opacus (its Poisson sampler, noise and accountants) behind one facade: ``train_local``.

A partner's worker calls ``train_local(model=..., data=..., ...)`` with the round's global model; it gets back
the model delta (trained state minus the base state), the DP parameters actually used, the sample count and
metrics. The base model is never modified. Accounting is separate (``accounting.py``): pass a
``PrivacyAccountant`` and the round is checked against the budget *before* anything trains, then recorded.

Sampling is Poisson (each sample joins each batch independently with probability ``sample_rate``), which is
what the RDP/PRV analyses assume. Noise is either fixed (``noise_multiplier``) or derived from a
``target_epsilon`` for this round alone with Opacus's ``get_noise_multiplier`` (the same search
``make_private_with_epsilon`` runs), before training, so the planned parameters are exactly the ones used.

Determinism: the batch sampler and the noise each draw from their own ``torch.Generator`` seeded from
``seed``; on one device and one torch build, the same seed gives a bit-identical delta.

Data path. Both sides start from ``data.batch_loader``: each batch is fetched with one tensor indexing
(``BatchedTensorDataset.__getitems__``) instead of one ``__getitem__`` per sample and a collate. The DP side
keeps Opacus's ``DPDataLoader`` and its sampler unchanged, so the Poisson batches (and the privacy analysis
that assumes them) are exactly Opacus's; only the fetch is cheaper (tests/fl/test_sampling.py). One epoch of
the loaders alone (digits, batch 256) fell from ~5.5-6 ms per item to ~0.5 ms batched. This cut both sides
but raised the ratio (ghost ~2.0x -> ~3.1x): the shared data path had been hiding the DP step's cost.

Grad-sample mode (how per-sample gradients are clipped). Default: "bk" (book-keeping, Bu et al. 2023,
"Differentially Private Optimization on Large Model at Small Cost") for models whose trainable parameters
all sit in ``nn.Linear`` layers (logreg, mlp, fusion); Opacus's "ghost" for the others (cnn). For a Linear
layer, sample i's weight gradient is ``sum_t g_t a_t^T`` (output gradients g, inputs a), so one backward pass
to the layers' outputs gives every per-sample norm (``|g| |a|`` for 2-D inputs) and the clipped sum
``(c * G)^T A`` in one matrix product. Ghost clipping needs two backward passes and Opacus's wrappers run
Python per parameter and per hook; at this model size that Python, not arithmetic, is the cost. "bk" keeps
everything else of Opacus's mechanism (its sampler, its clipping factor, its noise calls in its order, its
scaling), and tests/fl/test_training.py checks that it produces Opacus's update for the same seed, noise
included. It refuses (ConfigurationError) a Linear called twice in one forward pass or an in-place op on a
Linear's input or output, where its gradients would be wrong.

Measured on these 2-core CPUs while other jobs ran (load average 2-8: figures move by tens of percent between
runs, and a loaded run can double one side), MLP 64-128-10 on digits (1437 samples), batch 256, one epoch
through ``train_local`` vs ``train_nonprivate``, fastest of 25, ``python bench/dp_overhead.py``: "bk" 1.09-2.93x
non-private over 17 runs, median 1.48x, 12 of 17 at or under 2.0; 1.44-1.48x in the runs where the non-private
epoch took its unloaded 3.6-4.0 ms (bk 5.4-5.8 ms). "ghost" (``--mode ghost``) 2.8-3.1x in quieter runs
(~12 ms vs ~3.9 ms), 6.2x in a loaded one:
one ghost step costs ~1.75 ms (forward 0.36, two backward passes 1.04, Opacus's optimizer step 0.35) vs
~0.39 ms non-private. "hooks" is slower still (4-15x under load).
"""

from __future__ import annotations

import copy
import math
import warnings
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader

from ..errors import ConfigurationError, ToolchainError
from ..units import AccountantKind
from .accounting import Round, epsilon_from_history
from .bookkeeping import (
    supports_bookkeeping,
    train_bookkeeping,
    trainable_outside_linear,
)
from .data import TabularData, batch_loader

if TYPE_CHECKING:
    from .accounting import PrivacyAccountant

BOOKKEEPING = "bk"
DEFAULT_GRAD_SAMPLE_MODE = BOOKKEEPING  # for models whose trainable parameters are all in nn.Linear layers
FALLBACK_GRAD_SAMPLE_MODE = "ghost"  # for the others (convolutions, normalization layers)
GRAD_SAMPLE_MODES = (BOOKKEEPING, "ghost", "hooks", "ew", "functorch")


@dataclass(frozen=True)
class DPParams:
    """The DP parameters a round actually used; what the manifest records and auditors recompute from."""

    noise_multiplier: float
    max_grad_norm: float
    sample_rate: float
    steps: int
    delta: float
    accountant: str  # "rdp" or "prv"
    epochs: int
    batch_size: int  # expected batch size: sample_rate * sample_count
    grad_sample_mode: str

    def as_round(self) -> Round:
        return Round(self.noise_multiplier, self.sample_rate, self.steps)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class TrainResult:
    """What one local round produced. `delta` is on the CPU, keyed like the base model's ``state_dict``."""

    delta: dict[str, torch.Tensor]
    dp: DPParams | None  # None for non-private training
    sample_count: int
    metrics: dict[str, float]
    epsilon: float  # this round alone at dp.delta (inf for non-private); composition is the accountant's job
    device: str = field(default="cpu")

    def __reduce__(self) -> tuple[Any, ...]:
        # Out of a worker process as arrays, not as torch tensors: a pickled tensor travels as a shared-memory
        # file descriptor, fetched from the worker over a socket with an authentication handshake per tensor,
        # a round trip that waits on both processes (each delta waited several ms behind a busy parent).
        arrays = {name: _as_array(tensor) for name, tensor in self.delta.items()}
        return (_train_result, (arrays, self.dp, self.sample_count, self.metrics, self.epsilon, self.device))


def _as_array(tensor: torch.Tensor) -> np.ndarray | torch.Tensor:
    try:
        return tensor.detach().cpu().numpy()
    except TypeError:  # a dtype numpy lacks (bfloat16): the tensor itself
        return tensor


def _train_result(
    arrays: dict[str, np.ndarray | torch.Tensor],
    dp: DPParams | None,
    sample_count: int,
    metrics: dict[str, float],
    epsilon: float,
    device: str,
) -> TrainResult:
    delta = {name: torch.from_numpy(a) if isinstance(a, np.ndarray) else a for name, a in arrays.items()}
    return TrainResult(delta, dp, sample_count, metrics, epsilon, device)


def default_device() -> torch.device:
    """CUDA when available, CPU otherwise."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def plan_dp(
    *,
    sample_count: int,
    batch_size: int,
    epochs: int,
    delta: float,
    max_grad_norm: float,
    noise_multiplier: float | None = None,
    target_epsilon: float | None = None,
    accountant: str = "rdp",
    grad_sample_mode: str = DEFAULT_GRAD_SAMPLE_MODE,
) -> DPParams:
    """The DP parameters a round with these settings will use, computed before training.

    Opacus's Poisson loader uses ``sample_rate = 1 / ceil(n / batch_size)`` and takes that many steps per epoch.

    Raises:
        ConfigurationError: not exactly one of `noise_multiplier` / `target_epsilon`, or a value out of range.
    """
    if (noise_multiplier is None) == (target_epsilon is None):
        raise ConfigurationError("give exactly one of noise_multiplier and target_epsilon")
    if sample_count < 1 or batch_size < 1 or epochs < 1:
        raise ConfigurationError(
            f"need sample_count, batch_size, epochs >= 1, got {sample_count}, {batch_size}, {epochs}"
        )
    if not 0 < delta < 1:
        raise ConfigurationError(f"delta must be in (0, 1), got {delta}")
    if not max_grad_norm > 0:
        raise ConfigurationError(f"max_grad_norm must be > 0, got {max_grad_norm}")
    if grad_sample_mode not in GRAD_SAMPLE_MODES:
        raise ConfigurationError(f"grad_sample_mode must be one of {GRAD_SAMPLE_MODES}, got {grad_sample_mode!r}")
    kind = AccountantKind.parse(accountant)
    steps_per_epoch = math.ceil(sample_count / batch_size)
    sample_rate = 1.0 / steps_per_epoch
    if target_epsilon is not None:
        if not target_epsilon > 0:
            raise ConfigurationError(f"target_epsilon must be > 0, got {target_epsilon}")
        from opacus.accountants.utils import get_noise_multiplier

        noise_multiplier = float(
            get_noise_multiplier(
                target_epsilon=target_epsilon,
                target_delta=delta,
                sample_rate=sample_rate,
                steps=epochs * steps_per_epoch,
                accountant=kind.value,
            )
        )
    assert noise_multiplier is not None
    if not noise_multiplier > 0:
        raise ConfigurationError(f"noise_multiplier must be > 0, got {noise_multiplier}")
    return DPParams(
        noise_multiplier=float(noise_multiplier),
        max_grad_norm=float(max_grad_norm),
        sample_rate=sample_rate,
        steps=epochs * steps_per_epoch,
        delta=float(delta),
        accountant=kind.value,
        epochs=epochs,
        batch_size=batch_size,
        grad_sample_mode=grad_sample_mode,
    )


def train_local(
    *,
    model: nn.Module,
    data: TabularData,
    epochs: int = 1,
    batch_size: int = 64,
    lr: float = 0.5,
    momentum: float = 0.0,
    max_grad_norm: float = 1.0,
    noise_multiplier: float | None = None,
    target_epsilon: float | None = None,
    delta: float = 1e-5,
    accountant: str = "rdp",
    grad_sample_mode: str | None = None,
    seed: int = 0,
    device: str | torch.device | None = None,
    privacy_accountant: PrivacyAccountant | None = None,
) -> TrainResult:
    """Trains a copy of `model` on `data` with DP-SGD and returns the delta and the DP parameters used.

    Exactly one of `noise_multiplier` and `target_epsilon` must be given (a target is for this round alone,
    as in Opacus's ``make_private_with_epsilon``). With `privacy_accountant`, the agreement's delta and
    accountant kind (held by the accountant) replace `delta` and `accountant`; the round is refused before
    training if it would take the partner over its cap, and recorded after training. `grad_sample_mode` None
    picks ``DEFAULT_GRAD_SAMPLE_MODE`` ("bk") when ``supports_bookkeeping(model)``, else
    ``FALLBACK_GRAD_SAMPLE_MODE`` ("ghost").

    Raises:
        ConfigurationError: bad settings (see ``plan_dp``), or "bk" asked for a model it does not cover.
        BudgetExceeded: the linked accountant refuses the round; the model is untouched and nothing ran.
        ToolchainError: training took other steps or another sample rate than planned (never seen; checked
            because the planned figures are what gets committed on-chain).
    """
    if privacy_accountant is not None:
        delta, accountant = privacy_accountant.delta, privacy_accountant.kind.value
    bk_supported = supports_bookkeeping(model)
    if grad_sample_mode is None:
        grad_sample_mode = DEFAULT_GRAD_SAMPLE_MODE if bk_supported else FALLBACK_GRAD_SAMPLE_MODE
    plan = plan_dp(
        sample_count=len(data),
        batch_size=batch_size,
        epochs=epochs,
        delta=delta,
        max_grad_norm=max_grad_norm,
        noise_multiplier=noise_multiplier,
        target_epsilon=target_epsilon,
        accountant=accountant,
        grad_sample_mode=grad_sample_mode,
    )
    if grad_sample_mode == BOOKKEEPING and not bk_supported:
        outside = ", ".join(trainable_outside_linear(model)) or "none is trainable"
        raise ConfigurationError(
            f"grad_sample_mode 'bk' needs every trainable parameter in an nn.Linear; not in one: {outside}"
        )
    if privacy_accountant is not None:
        privacy_accountant.check_budget(plan.as_round())

    dev = torch.device(device) if device is not None else default_device()
    base_state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
    work = copy.deepcopy(model).to(dev).train()
    optimizer = torch.optim.SGD(work.parameters(), lr=lr, momentum=momentum)
    loader = batch_loader(data, batch_size=batch_size, seed=seed)
    noise_gen = torch.Generator(device=dev).manual_seed(seed + 1)
    if grad_sample_mode == BOOKKEEPING:
        metrics, steps_taken, rates = train_bookkeeping(work, optimizer, loader, plan, noise_gen, dev)
    else:
        metrics, steps_taken, rates = _train_opacus(work, optimizer, loader, plan, noise_gen, dev)
    if steps_taken != plan.steps or any(abs(rate - plan.sample_rate) > 1e-12 for rate in rates):
        # The planned parameters are what the budget check approved and what gets committed: a mismatch
        # would make the on-chain epsilon wrong, so it is an error, not a warning.
        raise ToolchainError(
            f"took {steps_taken} steps at sample rates {rates}, planned {plan.steps} at {plan.sample_rate}"
        )
    delta_state = {k: (v.detach().cpu() - base_state[k]) for k, v in work.state_dict().items() if v.is_floating_point()}
    epsilon = epsilon_from_history([plan.as_round()], plan.delta, plan.accountant)
    if privacy_accountant is not None:
        privacy_accountant.record(plan.as_round())
    return TrainResult(delta_state, plan, len(data), metrics, epsilon, str(dev))


def _train_opacus(
    work: nn.Module,
    optimizer: torch.optim.Optimizer,
    loader: DataLoader,
    plan: DPParams,
    noise_gen: torch.Generator,
    dev: torch.device,
) -> tuple[dict[str, float], int, list[float]]:
    """DP-SGD through Opacus's ``make_private`` in one of its grad-sample modes; `work` is trained in place."""
    from opacus import PrivacyEngine

    with warnings.catch_warnings():
        # Opacus warns that secure_mode is off: seeded noise is what reproducibility needs here.
        warnings.filterwarnings("ignore", message="Secure RNG turned off")
        engine = PrivacyEngine(accountant=plan.accountant)
        wrapped = engine.make_private(
            module=work,
            optimizer=optimizer,
            data_loader=loader,
            criterion=nn.CrossEntropyLoss(),
            noise_multiplier=plan.noise_multiplier,
            max_grad_norm=plan.max_grad_norm,
            poisson_sampling=True,
            noise_generator=noise_gen,
            grad_sample_mode=plan.grad_sample_mode,
        )
    if len(wrapped) == 4:
        module, dp_optimizer, criterion, dp_loader = wrapped
    else:
        module, dp_optimizer, dp_loader = wrapped
        criterion = nn.CrossEntropyLoss()
    with warnings.catch_warnings():
        # Opacus's backward hooks fire on the first layer, whose input needs no gradient: expected, harmless.
        warnings.filterwarnings("ignore", message="Full backward hook is firing")
        metrics = _run_epochs(module, dp_optimizer, criterion, dp_loader, plan.epochs, dev)
    history = engine.accountant.history
    return metrics, sum(h[2] for h in history), [h[1] for h in history]


def train_nonprivate(
    *,
    model: nn.Module,
    data: TabularData,
    epochs: int = 1,
    batch_size: int = 64,
    lr: float = 0.5,
    momentum: float = 0.0,
    seed: int = 0,
    device: str | torch.device | None = None,
) -> TrainResult:
    """Plain SGD on a copy of `model` (shuffled batches): a baseline, never for a partner's private data.

    Raises:
        ConfigurationError: `epochs` or `batch_size` below 1.
    """
    if epochs < 1 or batch_size < 1:
        raise ConfigurationError(f"need epochs, batch_size >= 1, got {epochs}, {batch_size}")
    dev = torch.device(device) if device is not None else default_device()
    base_state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
    work = copy.deepcopy(model).to(dev).train()
    optimizer = torch.optim.SGD(work.parameters(), lr=lr, momentum=momentum)
    loader = batch_loader(data, batch_size=batch_size, seed=seed)
    metrics = _run_epochs(work, optimizer, nn.CrossEntropyLoss(), loader, epochs, dev)
    delta_state = {k: (v.detach().cpu() - base_state[k]) for k, v in work.state_dict().items() if v.is_floating_point()}
    return TrainResult(delta_state, None, len(data), metrics, math.inf, str(dev))


# --- book-keeping clipping ("bk") -------------------------------------------------------------------


def _run_epochs(
    module: nn.Module,
    optimizer: torch.optim.Optimizer,
    criterion: nn.Module,
    loader: DataLoader,
    epochs: int,
    dev: torch.device,
) -> dict[str, float]:
    loss_sum, correct, seen = 0.0, 0, 0
    for _ in range(epochs):
        for xb, yb in loader:
            xb, yb = xb.to(dev), yb.to(dev)
            optimizer.zero_grad(set_to_none=True)
            out = module(xb)
            loss = criterion(out, yb)
            loss.backward()
            optimizer.step()
            if not len(yb):
                continue  # an empty Poisson batch: its mean loss is NaN, and it has nothing to count
            loss_sum += float(loss.item()) * len(yb)
            correct += int((out.detach().argmax(dim=1) == yb).sum())
            seen += len(yb)
    return {"loss": loss_sum / max(1, seen), "train_accuracy": correct / max(1, seen)}


def apply_delta_to_model(model: nn.Module, delta: dict[str, torch.Tensor]) -> nn.Module:
    """A copy of `model` with `delta` added to its floating-point state (the base is not modified).

    Raises:
        ConfigurationError: a key of `delta` is not in the model or has another shape.
    """
    out = copy.deepcopy(model)
    state = out.state_dict()
    for key, value in delta.items():
        if key not in state or state[key].shape != value.shape:
            raise ConfigurationError(f"delta entry {key!r} does not match the model")
        state[key] = state[key] + value.to(state[key].device, state[key].dtype)
    out.load_state_dict(state)
    return out


@torch.no_grad()
def evaluate(model: nn.Module, data: TabularData, *, device: str | torch.device | None = None) -> dict[str, float]:
    """Loss and accuracy of `model` on `data` (eval mode, no gradients; `model` is moved to `device` when given)."""
    dev = torch.device(device) if device is not None else next(model.parameters()).device
    was_training = model.training
    model.eval()
    x = torch.from_numpy(data.features).to(dev)
    y = torch.from_numpy(data.labels).to(dev)
    out = model.to(dev)(x)
    metrics = {
        "loss": float(nn.functional.cross_entropy(out, y)),
        "accuracy": float((out.argmax(dim=1) == y).float().mean()),
    }
    model.train(was_training)
    return metrics
