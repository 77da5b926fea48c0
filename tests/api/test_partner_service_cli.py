"""`lepton-ledger partner train-and-submit --service URL` on a partner's own machine (a data directory of its own,
holding its key, outbox and accountant, and no store): the update goes to the service and the submission is
relayed by it."""

from __future__ import annotations

import os
import subprocess
import sys

from service_world import PASSWORD, open_round

from lepton_ledger.keys import Keystore


def test_a_partner_trains_and_submits_through_the_service(service, tmp_path):
    w = service
    agreement_id, round_id = open_round(w, tmp_path / "coordinator")
    home = tmp_path / "alpha-machine"
    Keystore(home / "keystore", scrypt_n=2**4).import_key(
        "alpha", w.alpha.key, PASSWORD, x25519_private_key=w.keys["alpha"]
    )
    env = {
        **os.environ,
        "LEPTON_DATA_DIR": str(home),
        "LEPTON_KEYSTORE_PASSWORD": PASSWORD,
    }
    command = [
        sys.executable,
        "-m",
        "lepton_ledger.cli",
        "partner",
        "train-and-submit",
        str(agreement_id),
        "--key",
        "alpha",
        "--partition",
        "0",
        "--partitions",
        "2",
        "--service",
        str(w.api.base_url),
        "--rpc-url",
        w.w3.provider.endpoint_uri,
        "--deployment",
        str(w.data_dir / "deployment.json"),
    ]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"round {round_id}: submitted " in done.stdout
    cid = done.stdout.split("submitted ", 1)[1].split()[0]
    assert w.store.has(cid)  # in the service's store
    assert w.d.ledger.functions.hasSubmitted(agreement_id, round_id, w.alpha.address).call()
    assert not (home / "blocks").exists()  # the partner's machine kept no store of its own

    # Run again: the outbox knows the round is submitted; the command refuses, sending nothing.
    again = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert again.returncode == 1 and "has already submitted" in again.stdout + again.stderr
