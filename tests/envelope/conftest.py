"""Shared setup for the envelope tests: partners (anvil's first two keys), recipients (X25519), and a
factory that seals a small update."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from envelope_data import (
    BASE_MODEL,
    CHAIN_ID,
    DP,
    LEDGER,
    PARTNER_A_KEY,
    update_tensors,
)

from lepton_ledger.envelope import SealedEnvelope, generate_x25519_keypair, seal


@pytest.fixture(scope="session")
def coordinator() -> tuple[bytes, bytes]:
    return generate_x25519_keypair()


@pytest.fixture(scope="session")
def auditor() -> tuple[bytes, bytes]:
    return generate_x25519_keypair()


@pytest.fixture(scope="session")
def rando() -> tuple[bytes, bytes]:
    return generate_x25519_keypair()


@pytest.fixture
def make_envelope(coordinator: tuple[bytes, bytes], auditor: tuple[bytes, bytes]) -> Callable[..., SealedEnvelope]:
    """seal() with defaults for everything; keyword arguments override them."""

    def make(**overrides: Any) -> SealedEnvelope:
        args: dict[str, Any] = {
            "signer_key": PARTNER_A_KEY,
            "recipients": [coordinator[1], auditor[1]],
            "chain_id": CHAIN_ID,
            "ledger": LEDGER,
            "agreement_id": 7,
            "round": 1,
            "base_model_digest": BASE_MODEL,
            "dp": DP,
            "cumulative_epsilon": 0.75,
            "sample_count": 120,
            "metrics": {"accuracy": 0.875, "loss": 0.3125},
        }
        tensors = overrides.pop("tensors", None)
        args.update(overrides)
        return seal(update_tensors() if tensors is None else tensors, **args)

    return make
