"""Puts a demo folder's coordinator and auditor keys in the folder's keystore, so that ``lepton-ledger serve
--workdir DEMO`` holds them (``LEPTON_API_COORDINATOR_KEY=coordinator``, ``LEPTON_API_AUDITOR_KEY=auditor``).

The demo leaves its development keys in plain text (``DEMO/keys/dev-keys.json``); the service unlocks its keys
from the encrypted keystore of its data directory (``DEMO/keystore`` under ``--workdir``), under the password of
``$LEPTON_KEYSTORE_PASSWORD``. Each identity keeps its registered X25519 key: updates are sealed to it. An
identity already there is left as it is.

Usage: ``LEPTON_KEYSTORE_PASSWORD=... python examples/demo_keystore.py demo-out``
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from lepton_ledger.errors import LeptonError
from lepton_ledger.keys import Keystore
from lepton_ledger.settings import current

ROLES = ("coordinator", "auditor")


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python examples/demo_keystore.py DEMO_FOLDER", file=sys.stderr)
        return 2
    folder = Path(argv[0])
    try:
        password = current().keystore_password
        if password is None:
            raise LeptonError("set LEPTON_KEYSTORE_PASSWORD: the keystore's password")
        document = json.loads((folder / "deployment.json").read_text())
        parties = json.loads((folder / str(document.get("keys", "keys")) / "dev-keys.json").read_text())["parties"]
        keystore = Keystore(folder / "keystore")
        for role in ROLES:
            if keystore.path_of(role).exists():
                print(f"{role}: already in {keystore.path_of(role).parent}")
                continue
            entry = parties[role]
            identity = keystore.import_key(
                role,
                bytes.fromhex(entry["ethereum_private_key"].removeprefix("0x")),
                password,
                x25519_private_key=bytes.fromhex(entry["x25519_private_key"]),
            )
            print(f"{role}: {identity.address} in {identity.path}")
    except (LeptonError, OSError, ValueError, KeyError, TypeError) as exc:
        line = f"{type(exc).__name__}: {exc}" if isinstance(exc, KeyError) else str(exc)
        print(f"error: {' '.join(line.split())}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
