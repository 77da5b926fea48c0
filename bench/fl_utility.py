"""Utility of DP federated averaging on digits, beside a non-private centralized baseline.

Three partners (IID split of scikit-learn's digits, 20% held out for evaluation) train an MLP locally with
DP-SGD (default grad-sample mode) for `--rounds` rounds; the coordinator averages their deltas weighted by
sample count (FedAvg) and applies the average to the global model. The noise multiplier is chosen once, before
round 1, so that the whole schedule (rounds x local steps) stays within `--epsilon` at `--delta` for every
partner; each partner's ``PrivacyAccountant`` checks every round against that cap before training. Prints the
accuracy per round and the epsilon per partner; the baseline is the same MLP trained without privacy on the
pooled training data for the same number of epochs. Last line, JSON:
{"accuracy": ..., "epsilon_max": ..., "baseline_accuracy": ...}

    python bench/fl_utility.py            # defaults: 3 partners, 10 rounds, epsilon 8, delta 1e-5
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch
from opacus.accountants.utils import get_noise_multiplier

from lepton_ledger.fl.accounting import PrivacyAccountant
from lepton_ledger.fl.data import make_federated
from lepton_ledger.fl.models import build_model
from lepton_ledger.fl.training import (
    apply_delta_to_model,
    evaluate,
    train_local,
    train_nonprivate,
)

try:
    from lepton_ledger.fl.aggregation import fedavg
except ImportError:  # the aggregation module ships separately; the bench must run without it

    def fedavg(updates):  # type: ignore[no-redef]
        """Sample-weighted average of deltas."""
        updates = list(updates)
        total = sum(w for _, w in updates)
        return {k: sum(d[k] * (w / total) for d, w in updates) for k in updates[0][0]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--partners", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--epsilon", type=float, default=8.0, help="cap per partner over all rounds")
    parser.add_argument("--delta", type=float, default=1e-5)
    parser.add_argument("--model", default="mlp")
    parser.add_argument("--local-epochs", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=1.0)
    parser.add_argument("--max-grad-norm", type=float, default=1.0)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    split = make_federated("digits", num_partners=args.partners, seed=args.seed)
    model = build_model(args.model, split.input_dim, split.num_classes, seed=args.seed)
    # The smallest partner has the largest sample rate, hence the largest epsilon per step: plan for it, with
    # a 3% margin so the schedule's epsilon lands below the cap rather than on it.
    smallest = min(len(p) for p in split.partners)
    steps_per_round = args.local_epochs * math.ceil(smallest / args.batch_size)
    noise = get_noise_multiplier(
        target_epsilon=args.epsilon * 0.97,
        target_delta=args.delta,
        sample_rate=1 / math.ceil(smallest / args.batch_size),
        steps=args.rounds * steps_per_round,
    )
    accountants = [
        PrivacyAccountant(partner=f"partner-{i}", agreement="bench", delta=args.delta, epsilon_cap=args.epsilon)
        for i in range(args.partners)
    ]
    print(
        f"digits: {args.partners} partners ({', '.join(str(len(p)) for p in split.partners)} samples), "
        f"eval {len(split.eval_set)}; {args.model}, {args.rounds} rounds x {args.local_epochs} local epoch(s), "
        f"batch {args.batch_size}, lr {args.lr}, clip {args.max_grad_norm}, noise {noise:.3f}, delta {args.delta}"
    )
    started = time.perf_counter()
    accuracy = 0.0
    for rnd in range(1, args.rounds + 1):
        results = [
            train_local(
                model=model,
                data=data,
                epochs=args.local_epochs,
                batch_size=args.batch_size,
                lr=args.lr,
                max_grad_norm=args.max_grad_norm,
                noise_multiplier=noise,
                privacy_accountant=acct,
                seed=args.seed * 1000 + rnd * 10 + i,
            )
            for i, (data, acct) in enumerate(zip(split.partners, accountants))
        ]
        model = apply_delta_to_model(model, fedavg((r.delta, float(r.sample_count)) for r in results))
        accuracy = evaluate(model, split.eval_set)["accuracy"]
        eps = ", ".join(f"{a.epsilon():.2f}" for a in accountants)
        print(f"round {rnd:2d}: accuracy {accuracy:.4f}  epsilon per partner [{eps}]")
    elapsed = time.perf_counter() - started

    baseline_model = build_model(args.model, split.input_dim, split.num_classes, seed=args.seed)
    base = train_nonprivate(
        model=baseline_model,
        data=split.pooled(),
        epochs=args.rounds * args.local_epochs,
        batch_size=args.batch_size,
        lr=0.1,
        seed=args.seed,
    )
    baseline = evaluate(apply_delta_to_model(baseline_model, base.delta), split.eval_set)["accuracy"]
    epsilon_max = max(a.epsilon() for a in accountants)
    print(f"federated DP: {elapsed:.1f} s on {'cuda' if torch.cuda.is_available() else 'cpu'}; "
          f"non-private centralized baseline ({args.rounds * args.local_epochs} epochs, lr 0.1): {baseline:.4f}")
    print(json.dumps({"accuracy": round(accuracy, 4), "epsilon_max": round(epsilon_max, 4), "baseline_accuracy": round(baseline, 4)}))


if __name__ == "__main__":
    main()
