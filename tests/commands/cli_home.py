"""What the command tests share: a data directory of their own, with development keys in its keystore."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from cli_lines import ADDRESS, KEYS

from lepton_ledger.chain.anvil import dev_account
from lepton_ledger.keys import Keystore

__all__ = ["ADDRESS", "KEYS", "PASSWORD", "lepton_home"]

PASSWORD = "correct horse battery staple"


@contextmanager
def lepton_home(home: Path) -> Iterator[Path]:
    """`home` as the data directory (no other chain, store or keystore configured), holding anvil's funded
    development keys under the names of KEYS, so that every role can pay gas."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("LEPTON_DATA_DIR", str(home))
        mp.setenv("LEPTON_KEYSTORE_PASSWORD", PASSWORD)
        for name in (
            "LEPTON_RPC_URL",
            "LEPTON_KEYSTORE_DIR",
            "LEPTON_BLOCKSTORE_DIR",
            "LEPTON_KUBO_API",
            "LEPTON_RAY_ADDRESS",
        ):
            mp.delenv(name, raising=False)
        keystore = Keystore(scrypt_n=2**4)  # cheap scrypt: tests only; the CLI reads each file's own parameters
        for name, index in KEYS.items():
            keystore.import_key(name, dev_account(index).key, PASSWORD)
        yield home
