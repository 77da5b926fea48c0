"""The checks a GPU machine runs as is: what CPU-only CI cannot see.

1. Book-keeping clipping ("bk", the default for Linear-only models) computes the same noisy update as Opacus's
   per-sample hooks on CUDA, for the same seed (same Poisson batches, same noise draws), for mlp, logreg and
   fusion. TF32 is switched off so both sides do the same float32 arithmetic.
2. The cost of DP on CUDA: one DP epoch against one non-private epoch of the same model, fastest of
   `--repeats`, for the cnn (Opacus ghost clipping) and a wider mlp (bk).
3. The local executor hands every visible GPU to a worker: with as many workers as GPUs, each worker's task
   runs on a different device.

Without CUDA it prints why and exits 0 with ``{"skipped": true, ...}``; with CUDA it exits 1 on any mismatch.
Last line, JSON: {"skipped": false, "equal": {...}, "dp_ratio": {...}, "gpus_used": n, "gpus_visible": n, "ok": ...}

    python bench/gpu_check.py
    python bench/gpu_check.py --repeats 20
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402

from lepton_ledger.fl.data import make_federated  # noqa: E402
from lepton_ledger.fl.models import build_model  # noqa: E402
from lepton_ledger.fl.training import train_local, train_nonprivate  # noqa: E402
from lepton_ledger.workers.local import LocalExecutor, visible_gpus  # noqa: E402

DEVICE = "cuda"  # what the checks run on (a variable so the logic can be smoke-run on CPU)
EQUALITY_ATOL = 1e-5  # float32 on a GPU: reductions may be ordered differently between the two paths


def bk_equals_hooks(split, name: str) -> tuple[bool, float]:
    """Whether bk's and hooks' noisy updates agree on CUDA for `name`, and their largest difference."""
    model = build_model(name, split.input_dim, split.num_classes, seed=0)
    kw = {
        "model": model,
        "data": split.partners[0],
        "noise_multiplier": 1.0,
        "max_grad_norm": 0.5,
        "seed": 3,
        "device": DEVICE,
    }
    bk = train_local(**kw)
    hooks = train_local(**kw, grad_sample_mode="hooks")
    if bk.dp.grad_sample_mode != "bk":
        return False, float("inf")
    worst = max(float((bk.delta[k].cpu() - hooks.delta[k].cpu()).abs().max()) for k in hooks.delta)
    return worst <= EQUALITY_ATOL, worst


def dp_ratio(split, name: str, repeats: int, **model_kw) -> tuple[float, float, float]:
    """Fastest seconds of one DP epoch and one non-private epoch on CUDA, and their ratio."""
    model = build_model(name, split.input_dim, split.num_classes, seed=0, **model_kw)
    data = split.partners[0]
    private, plain = [], []
    for i in range(repeats + 1):
        torch.cuda.synchronize()
        t = time.perf_counter()
        train_local(model=model, data=data, batch_size=256, noise_multiplier=1.0, seed=i, device=DEVICE)
        torch.cuda.synchronize()
        dp_s = time.perf_counter() - t
        t = time.perf_counter()
        train_nonprivate(model=model, data=data, batch_size=256, seed=i, device=DEVICE)
        torch.cuda.synchronize()
        plain_s = time.perf_counter() - t
        if i:  # the first pair warms up kernels and the allocator
            private.append(dp_s)
            plain.append(plain_s)
    return min(private), min(plain), min(private) / min(plain)


def _device_of_worker() -> str:
    """Runs in a worker: which physical GPU it was given, and that CUDA works there."""
    import torch as worker_torch

    worker_torch.ones(1, device="cuda").sum().item()
    return os.environ.get("CUDA_VISIBLE_DEVICES", "")


def gpus_used_by_workers() -> tuple[int, int]:
    """(distinct GPUs the executor's workers ran on, GPUs visible), with one worker per GPU."""
    gpus = visible_gpus()
    with LocalExecutor() as executor:
        # more tasks than workers, so that every worker process starts and takes its GPU
        futures = [executor.submit(_device_of_worker) for _ in range(4 * len(gpus))]
        used = {f.result() for f in futures}
    return len(used), len(gpus)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=10, help="timed epochs per side (fastest counts)")
    args = parser.parse_args()
    if not torch.cuda.is_available():
        print("no CUDA device: the GPU checks are skipped (run this script on a machine with a GPU)")
        print(json.dumps({"skipped": True, "reason": "torch.cuda.is_available() is False"}))
        return 0
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    print(f"device: {torch.cuda.get_device_name(0)}, torch {torch.__version__}, {torch.cuda.device_count()} GPU(s)")
    split = make_federated("digits", num_partners=3, seed=0)

    equal: dict[str, float] = {}
    ok = True
    for name in ("mlp", "logreg", "fusion"):
        same, worst = bk_equals_hooks(split, name)
        equal[name] = worst
        ok &= same
        print(
            f"bk == hooks on CUDA, {name:<7} max |diff| {worst:.2e} (atol {EQUALITY_ATOL:g}): {'ok' if same else 'MISMATCH'}"
        )

    ratios: dict[str, float] = {}
    for label, name, kw in (("cnn", "cnn", {}), ("mlp_512x512", "mlp", {"hidden": (512, 512)})):
        dp_s, plain_s, ratio = dp_ratio(split, name, args.repeats, **kw)
        ratios[label] = round(ratio, 3)
        print(
            f"DP overhead on CUDA, {label:<12} DP {dp_s * 1e3:8.2f} ms  non-private {plain_s * 1e3:8.2f} ms  ratio {ratio:.2f}"
        )

    used, visible = gpus_used_by_workers()
    placed = used == visible
    ok &= placed
    print(f"local executor: workers ran on {used} of {visible} visible GPU(s): {'ok' if placed else 'MISSED SOME'}")

    print(
        json.dumps(
            {"skipped": False, "equal": equal, "dp_ratio": ratios, "gpus_used": used, "gpus_visible": visible, "ok": ok}
        )
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
