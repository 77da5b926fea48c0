"""What the envelope tests share: partners (anvil's first two keys), a DP record, and a small update."""

from __future__ import annotations

import torch

from lepton_ledger.envelope import DPRecord

CHAIN_ID = 31337
LEDGER = "0x5FbDB2315678afecb367f032d93F642f64180aa3"
# anvil's accounts 0 and 1 ("test test ... junk" mnemonic).
PARTNER_A_KEY = bytes.fromhex("ac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80")
PARTNER_A = "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266"
PARTNER_B_KEY = bytes.fromhex("59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d")
PARTNER_B = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"
BASE_MODEL = bytes.fromhex("11" * 32)
DP = DPRecord(
    noise_multiplier=1.1,
    clipping_norm=1.0,
    sample_rate=0.01,
    steps=100,
    delta=1e-5,
    accountant="rdp",
)


def update_tensors(seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {
        "fc1.weight": torch.randn(8, 4, generator=g),
        "fc1.bias": torch.randn(8, generator=g),
        "fc2.weight": torch.randn(2, 8, generator=g).double(),
    }
