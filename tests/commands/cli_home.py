"""What the command tests share: a data directory of their own, with development keys in its keystore."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from lepton_ledger.chain.anvil import dev_account
from lepton_ledger.keys import Keystore

PASSWORD = "correct horse battery staple"
KEYS = {"admin": 0, "coordinator": 1, "auditor": 2, "partner-a": 3, "partner-b": 4}
ADDRESS = {name: dev_account(i).address for name, i in KEYS.items()}


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
