"""The evaluation the audit re-derives accuracies and scores with: the coordinator's own
(``rounds.outcome.Evaluation``), remembering what it found for the last models it evaluated, by their content.

A round's aggregate is evaluated up to three times (everyone's utility in the scores, the settlement's accuracy
after, the round's summary) and the next round starts from it (the settlement's accuracy before): each was a pass
over the whole evaluation set. The same bytes give the same accuracy, so each distinct model is evaluated once.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field

import torch

from ..rounds.outcome import Evaluation

__all__ = ["RememberingEvaluation", "state_digest"]

REMEMBERED = 4096  # models whose accuracy is kept (16-byte keys): far more than a round evaluates under LOO


def state_digest(state: Mapping[str, torch.Tensor]) -> bytes:
    """A digest of a ``state_dict``'s names, dtypes, shapes and bytes: equal digests, equal models."""
    h = hashlib.blake2b(digest_size=16)
    for name in sorted(state):
        tensor = state[name].detach().to("cpu").contiguous()
        h.update(f"{name}\0{tensor.dtype}\0{tuple(tensor.shape)}\0".encode())
        h.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.digest()


@dataclass
class RememberingEvaluation(Evaluation):
    """``Evaluation`` whose :meth:`accuracy` answers a model it evaluated already from memory (the last
    :data:`REMEMBERED` models). `evaluated` counts the passes over the evaluation set."""

    evaluated: int = field(default=0, init=False)
    _known: OrderedDict[bytes, float] = field(default_factory=OrderedDict, init=False, repr=False, compare=False)

    def accuracy(self, state: Mapping[str, torch.Tensor]) -> float:
        key = state_digest(state)
        if key in self._known:
            self._known.move_to_end(key)
            return self._known[key]
        value = super().accuracy(state)  # raises for a state that is not a model of this shape: nothing kept
        self.evaluated += 1
        self._known[key] = value
        if len(self._known) > REMEMBERED:
            self._known.popitem(last=False)
        return value
