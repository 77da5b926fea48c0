"""Models addressed by name, so that a round's terms can name the architecture every partner trains.

Every model here is Opacus-compatible: only layers with per-sample gradient support (Linear, Conv2d,
GroupNorm), no BatchNorm (it mixes samples in a batch, which breaks per-sample clipping), and no bare
``nn.Parameter`` outside such a layer. Every model takes flat float features of shape (batch, input_dim).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import nn

from ..errors import ConfigurationError

ModelBuilder = Callable[..., nn.Module]
_REGISTRY: dict[str, ModelBuilder] = {}


def register_model(name: str) -> Callable[[ModelBuilder], ModelBuilder]:
    """Registers `builder(input_dim, num_classes, **kw) -> nn.Module` under `name`.

    Raises:
        ConfigurationError: `name` is already registered.
    """

    def decorate(builder: ModelBuilder) -> ModelBuilder:
        if name in _REGISTRY:
            raise ConfigurationError(f"model {name!r} is already registered")
        _REGISTRY[name] = builder
        return builder

    return decorate


def model_names() -> tuple[str, ...]:
    """The names ``build_model`` accepts."""
    return tuple(sorted(_REGISTRY))


def build_model(name: str, input_dim: int, num_classes: int, *, seed: int | None = None, **kw: object) -> nn.Module:
    """Builds the model registered as `name`; with `seed`, its initial weights depend on the seed only.

    Raises:
        ConfigurationError: unknown `name`, non-positive dimensions, or options the model refuses.
    """
    if name not in _REGISTRY:
        raise ConfigurationError(f"unknown model {name!r}; known: {', '.join(model_names())}")
    if input_dim < 1 or num_classes < 2:
        raise ConfigurationError(f"need input_dim >= 1 and num_classes >= 2, got {input_dim} and {num_classes}")
    if seed is None:
        return _REGISTRY[name](input_dim, num_classes, **kw)
    # fork_rng: seeding for one model must not reset the caller's global random stream
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return _REGISTRY[name](input_dim, num_classes, **kw)


@register_model("logreg")
def _logreg(input_dim: int, num_classes: int) -> nn.Module:
    return nn.Linear(input_dim, num_classes)


@register_model("mlp")
def _mlp(input_dim: int, num_classes: int, hidden: Sequence[int] = (512, 512)) -> nn.Module:
    # Terms name a model by name alone, so the name fixes the size: two 512 layers (~300k parameters on
    # digits, 1.2 MB of float32) make every artifact of a round span several 256 KiB blocks.
    layers: list[nn.Module] = []
    width = input_dim
    for h in hidden:
        layers += [nn.Linear(width, h), nn.ReLU()]
        width = h
    layers.append(nn.Linear(width, num_classes))
    return nn.Sequential(*layers)


class SmallCNN(nn.Module):
    """Two 3x3 convolutions with GroupNorm (not BatchNorm: per-sample gradients) for square images."""

    def __init__(self, input_dim: int, num_classes: int, channels: int = 16, groups: int = 4) -> None:
        super().__init__()
        side = round(input_dim**0.5)
        if side * side != input_dim or side < 2:
            raise ConfigurationError(f"cnn needs a square image flattened to input_dim, got {input_dim}")
        self.side = side
        self.features = nn.Sequential(
            nn.Conv2d(1, channels, 3, padding=1),
            nn.GroupNorm(groups, channels),
            nn.ReLU(),
            nn.Conv2d(channels, 2 * channels, 3, padding=1),
            nn.GroupNorm(groups, 2 * channels),
            nn.ReLU(),
            nn.AvgPool2d(2),
        )
        self.head = nn.Linear(2 * channels * (side // 2) ** 2, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.features(x.reshape(-1, 1, self.side, self.side))
        return self.head(h.flatten(1))


@register_model("cnn")
def _cnn(input_dim: int, num_classes: int, channels: int = 16, groups: int = 4) -> nn.Module:
    return SmallCNN(input_dim, num_classes, channels, groups)


class LateFusion(nn.Module):
    """Late fusion of modalities: ``alpha f1(x1) + beta f2(x2) + gamma f3(x3) (+ ...)``.

    The input's columns are cut into modalities (``modality_dims``, in order); each has its own encoder
    producing class logits, and the logits are combined with learned weights. The weights live in a
    bias-free ``nn.Linear(M, 1)`` applied over the stacked logits rather than in a bare parameter, because
    Opacus computes per-sample gradients only for the layers it knows.
    """

    def __init__(self, modality_dims: Sequence[int], num_classes: int, hidden: int = 32) -> None:
        super().__init__()
        if len(modality_dims) < 1 or min(modality_dims) < 1:
            raise ConfigurationError(f"modality_dims must be positive, got {tuple(modality_dims)}")
        self.modality_dims = tuple(int(d) for d in modality_dims)
        self.encoders = nn.ModuleList(
            nn.Sequential(nn.Linear(d, hidden), nn.ReLU(), nn.Linear(hidden, num_classes)) for d in self.modality_dims
        )
        self.fusion = nn.Linear(len(self.modality_dims), 1, bias=False)
        nn.init.constant_(self.fusion.weight, 1.0 / len(self.modality_dims))

    @property
    def fusion_weights(self) -> torch.Tensor:
        """The learned (alpha, beta, gamma, ...) as a detached vector."""
        return self.fusion.weight.detach().reshape(-1).clone()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        parts = torch.split(x, self.modality_dims, dim=1)
        logits = torch.stack([enc(p) for enc, p in zip(self.encoders, parts)], dim=-1)  # (B, C, M)
        return self.fusion(logits).squeeze(-1)


@register_model("fusion")
def _fusion(
    input_dim: int, num_classes: int, modality_dims: Sequence[int] | None = None, hidden: int = 32
) -> nn.Module:
    from .data import split_modalities

    dims = tuple(modality_dims) if modality_dims else split_modalities(input_dim, 3)
    if sum(dims) != input_dim:
        raise ConfigurationError(f"modality_dims {dims} do not add up to input_dim {input_dim}")
    return LateFusion(dims, num_classes, hidden)
