"""The audit opens an update as it reads it from the store (issue 15): the envelope's blocks are hashed and
decrypted as they come, so a large update is audited holding its plaintext once, never the envelope whole
beside it (measured with tracemalloc on a real block store and real encryption); and what it finds is what
opening the whole envelope finds."""

from __future__ import annotations

import tracemalloc
from types import SimpleNamespace

import torch

from lepton_ledger.audit.chain_view import Commitment
from lepton_ledger.audit.workers import open_updates
from lepton_ledger.envelope import DPRecord, generate_x25519_keypair, open, seal
from lepton_ledger.protocol.addressing import publish
from lepton_ledger.storage.local import LocalStore

PARTNER_KEY = bytes.fromhex("ac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80")  # anvil's first
PARTNER = "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266"
LEDGER = "0x5FbDB2315678afecb367f032d93F642f64180aa3"
BASE_MODEL = bytes.fromhex("11" * 32)
DP = DPRecord(noise_multiplier=1.1, clipping_norm=1.0, sample_rate=0.01, steps=100, delta=1e-5, accountant="rdp")


def test_a_large_update_is_audited_holding_it_once(tmp_path):
    auditor_private, auditor_public = generate_x25519_keypair()
    update = {"weight": torch.randn(2048, 1024)}  # 8 MiB: 33 blocks of 256 KiB
    sealed = seal(
        update,
        signer_key=PARTNER_KEY,
        recipients=[auditor_public],
        chain_id=31337,
        ledger=LEDGER,
        agreement_id=1,
        round=1,
        base_model_digest=BASE_MODEL,
        dp=DP,
        cumulative_epsilon=0.5,
        sample_count=100,
    )
    store = LocalStore(tmp_path / "store", durable=False)
    _, digest = publish(store, sealed.data)
    size = len(sealed.data)
    whole = open(sealed.data, auditor_private)
    del sealed
    commitment = Commitment(
        1, 1, PARTNER, digest, whole.manifest_digest, whole.manifest.cumulative_epsilon, 100, "0x", 1
    )
    # ECDSA signatures recover their partner: opening reads nothing from a chain.
    view = SimpleNamespace(w3=None, chain_id=31337, ledger_address=LEDGER, block=1)
    record = SimpleNamespace(agreement_id=1, round=1, model_digest=BASE_MODEL)

    tracemalloc.start()
    try:
        (opened,) = open_updates(view, store, auditor_private, record, [commitment])
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert [r.ok for r in (opened.fetch_check, *opened.results)] == [True, True, True] and opened.code is None
    assert opened.opened.envelope_digest == whole.envelope_digest
    assert torch.equal(opened.opened.tensors["weight"], update["weight"])
    # The plaintext (grown as blocks come: up to an eighth more), a block in hand and bookkeeping.
    assert peak < 1.5 * size, (peak, size)  # 1.28 measured; reading it whole first: 2.0
