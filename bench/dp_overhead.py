"""Cost of differential privacy: one epoch of DP-SGD in the default grad-sample mode vs the same model trained
without privacy, on the same data, in the same run.

The default mode is the one ``train_local`` picks for the model: "bk" (book-keeping clipping) for models made
of ``nn.Linear`` layers such as the MLP here, Opacus's "ghost" for the others; ``--mode`` picks another.

Both sides go through the public facades (``train_local`` vs ``train_nonprivate``), so the figure includes
everything a partner pays per round (model copy, Poisson sampling, clipping, noise, accounting, and Opacus's
wrapping in its modes), not only the inner loop. The two are timed alternately, `--repeats` times each after one warm-up
of each, and compared by their fastest runs (as ``timeit`` does: on a machine shared with other jobs, slower
runs measure the neighbours, and a median of ~20 ms runs still moved the ratio between 1.6 and 2.4). Also
prints the same ratio for each batch size in `--sweep` (fewer repeats) for context, and how much of each side
is the data path alone (one epoch of each side's loader, iterated without training: both fetch each batch with
one tensor indexing, see ``lepton_ledger.fl.data.batch_loader``), so the ratio of the rest (the training steps
and the per-round setup) can be read off. Last line, JSON: {"ratio": ...} for `--batch-size`.

    python bench/dp_overhead.py                      # MLP on digits (1437 training samples), batch 256
    python bench/dp_overhead.py --batch-size 64 --mode ghost
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch

from lepton_ledger.fl.data import batch_loader, make_federated
from lepton_ledger.fl.models import build_model
from lepton_ledger.fl.training import (
    DEFAULT_GRAD_SAMPLE_MODE,
    FALLBACK_GRAD_SAMPLE_MODE,
    supports_bookkeeping,
    train_local,
    train_nonprivate,
)


def timed_pair(model: torch.nn.Module, data, batch_size: int, mode: str, repeats: int) -> tuple[float, float, float]:
    """Fastest seconds of (one DP epoch, one non-private epoch), interleaved, and the median ratio of each
    back-to-back pair (a second estimate, less sensitive to one side alone catching a quiet moment)."""
    private, plain = [], []
    for i in range(repeats + 1):
        t = time.perf_counter()
        train_local(model=model, data=data, batch_size=batch_size, noise_multiplier=1.0, grad_sample_mode=mode, seed=i)
        dp_s = time.perf_counter() - t
        t = time.perf_counter()
        train_nonprivate(model=model, data=data, batch_size=batch_size, seed=i)
        plain_s = time.perf_counter() - t
        if i:  # the first pair warms up imports, allocator and caches
            private.append(dp_s)
            plain.append(plain_s)
    return min(private), min(plain), statistics.median(d / p for d, p in zip(private, plain))


def fetch_times(data, batch_size: int, repeats: int) -> tuple[float, float]:
    """Fastest seconds to iterate one epoch of (the DP side's Poisson loader, the non-private side's shuffled
    loader), built as ``train_local`` (``batch_loader`` rebuilt by Opacus as a ``DPDataLoader``) and
    ``train_nonprivate`` (``batch_loader`` as it is) build them."""
    from opacus.data_loader import DPDataLoader

    private, plain = [], []
    for i in range(repeats + 1):
        shuffled = batch_loader(data, batch_size=batch_size, seed=i)
        t = time.perf_counter()
        for _ in DPDataLoader.from_data_loader(shuffled):
            pass
        dp_s = time.perf_counter() - t
        t = time.perf_counter()
        for _ in shuffled:
            pass
        plain_s = time.perf_counter() - t
        if i:
            private.append(dp_s)
            plain.append(plain_s)
    return min(private), min(plain)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="mlp")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--mode", default=None, help="grad-sample mode; default: train_local's choice for the model")
    parser.add_argument("--repeats", type=int, default=25)
    parser.add_argument("--sweep", type=int, nargs="*", default=[64, 128, 256])
    args = parser.parse_args()

    data = make_federated("digits", num_partners=1, seed=0).partners[0]
    model = build_model(args.model, data.input_dim, data.num_classes, seed=0)
    if args.mode is None:
        args.mode = DEFAULT_GRAD_SAMPLE_MODE if supports_bookkeeping(model) else FALLBACK_GRAD_SAMPLE_MODE
    device = "cuda" if torch.cuda.is_available() else "cpu"
    print(
        f"{args.model} on digits ({len(data)} samples), one epoch, {device}, torch threads {torch.get_num_threads()}, "
        f"fastest of {args.repeats}"
    )
    for batch in args.sweep:
        dp_s, plain_s, _ = timed_pair(model, data, batch, args.mode, max(5, args.repeats // 2))
        print(
            f"  batch {batch:4d}: {args.mode} {dp_s * 1e3:7.1f} ms  non-private {plain_s * 1e3:6.1f} ms  "
            f"ratio {dp_s / plain_s:.2f}"
        )
    dp_s, plain_s, paired = timed_pair(model, data, args.batch_size, args.mode, args.repeats)
    print(
        f"batch {args.batch_size}, mode {args.mode}: DP {dp_s * 1e3:.1f} ms, non-private {plain_s * 1e3:.1f} ms; "
        f"median ratio of back-to-back pairs {paired:.2f}"
    )
    dp_fetch, plain_fetch = fetch_times(data, args.batch_size, args.repeats)
    print(
        f"  of which data path (loader alone): DP {dp_fetch * 1e3:.1f} ms, non-private {plain_fetch * 1e3:.1f} ms; "
        f"the rest: DP {(dp_s - dp_fetch) * 1e3:.1f} ms, non-private {(plain_s - plain_fetch) * 1e3:.1f} ms, "
        f"ratio {(dp_s - dp_fetch) / (plain_s - plain_fetch):.2f} (approximate: minima of separate runs)"
    )
    print(json.dumps({"ratio": round(dp_s / plain_s, 3)}))


if __name__ == "__main__":
    main()
