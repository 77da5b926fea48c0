"""Peak memory of opening a large update envelope as the coordinator does (issue 11, item 3): fetch it from a
LocalStore by its on-chain digest (the size bound checked from the root node first), decrypt, verify and
deserialize its tensors.

    .venv/bin/python bench/envelope_rss.py [--mb 100]

A child process imports everything and reads its resident set (the constant), then fetches and opens the
envelope and reads its peak (VmHWM). Prints both and the peak over the envelope's size; last line JSON:
{"envelope_mb", "baseline_rss_mb", "peak_rss_mb", "peak_over_baseline_mb", "ratio_over_size"}. The bound the
project keeps: peak - baseline <= 2 x envelope size.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

_CHILD = """
import sys, torch
from lepton_ledger.envelope import open as open_envelope
from lepton_ledger.envelope.format import DEFAULT_MAX_ENVELOPE_BYTES
from lepton_ledger.protocol.addressing import fetch
from lepton_ledger.storage.local import LocalStore

def status(key):
    return int(next(line.split()[1] for line in open("/proc/self/status") if line.startswith(key))) // 1024

store, digest, key = LocalStore(sys.argv[1], durable=False), bytes.fromhex(sys.argv[2]), bytes.fromhex(sys.argv[3])
baseline = status("VmRSS:")
opened = open_envelope(fetch(store, digest, max_bytes=DEFAULT_MAX_ENVELOPE_BYTES), key)
print(baseline, status("VmHWM:"), sum(t.numel() for t in opened.tensors.values()))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=int, default=100, help="size of the update's tensors in MB")
    args = parser.parse_args()

    import torch

    from lepton_ledger.envelope import DPRecord, generate_x25519_keypair, seal
    from lepton_ledger.protocol.addressing import publish
    from lepton_ledger.storage.local import LocalStore

    private, public = generate_x25519_keypair()
    n = args.mb * 1_000_000 // 4
    sealed = seal(
        {"w": torch.randn(n, generator=torch.Generator().manual_seed(0))},
        signer_key=bytes.fromhex("ac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80"),
        recipients=[public],
        chain_id=31337,
        ledger="0x5FbDB2315678afecb367f032d93F642f64180aa3",
        agreement_id=1,
        round=1,
        base_model_digest=bytes(32),
        dp=DPRecord(1.0, 1.0, 0.01, 10, 1e-5, "rdp"),
        cumulative_epsilon=1.0,
        sample_count=100,
    )
    size_mb = len(sealed.data) / 1e6
    with tempfile.TemporaryDirectory() as tmp:
        _, digest = publish(LocalStore(tmp, durable=False), sealed.data)
        del sealed
        out = subprocess.run(
            [sys.executable, "-c", _CHILD, tmp, digest.hex(), private.hex()], check=True, capture_output=True, text=True
        ).stdout.split()
    baseline, peak, numel = int(out[0]), int(out[1]), int(out[2])
    assert numel == n
    print(f"envelope of {size_mb:.1f} MB (one float32 tensor of {n:,} values), fetched from a LocalStore and opened")
    print(f"  resident before opening (interpreter, torch, the package): {baseline} MB")
    print(
        f"  peak while fetching and opening: {peak} MB, {peak - baseline} MB over the baseline, "
        f"{(peak - baseline) / size_mb:.2f} x the envelope"
    )
    print(
        json.dumps(
            {
                "envelope_mb": round(size_mb, 1),
                "baseline_rss_mb": baseline,
                "peak_rss_mb": peak,
                "peak_over_baseline_mb": peak - baseline,
                "ratio_over_size": round((peak - baseline) / size_mb, 2),
            }
        )
    )


if __name__ == "__main__":
    main()
