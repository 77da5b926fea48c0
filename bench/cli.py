"""Wall time of each command of the README's manual round, run as a user runs them: one `lepton-ledger` process
per command, on the data directory's running local node.

Everything happens in a temporary data directory (removed at the end): anvil's public development keys are
imported under role names, then the round runs command by command — node start, keys list, deploy, register x4,
approve x2, propose, sign x2, stake x2, fund, bond, open, train-and-submit x2 (one after the other, then --parallel
also times two partners at once on a second round), close, node time, claim x2, partner status, audit, node stop.
Each command's wall time is measured from process start to exit (imports included), so the figures are what a
user waits. Prints a table and a last JSON line ``{"commands": {name: seconds}, "total_s", ...}``.

    .venv/bin/python bench/cli.py [--epochs 1] [--parallel]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# The command lines that start the round are the command tests' (tests/commands/cli_lines.py, plain data).
sys.path[:0] = [str(ROOT), str(ROOT / "tests" / "commands")]

import cli_lines  # noqa: E402
from cli_lines import DATA, KEYS  # noqa: E402

from lepton_ledger.chain.anvil import dev_account  # noqa: E402
from lepton_ledger.keys import Keystore  # noqa: E402


class Bench:
    """Runs `lepton-ledger` commands in the bench's data directory and records each one's wall time."""

    def __init__(self, env: dict[str, str]) -> None:
        self.env = env
        self.times: dict[str, float] = {}

    def __call__(self, label: str, *argv: str) -> None:
        self.at_once(label, [list(argv)])

    def at_once(self, label: str, commands: list[list[str]]) -> None:
        """Starts every command at once; records the wall time until the last one exits."""
        start = time.perf_counter()
        procs = [
            subprocess.Popen(
                [sys.executable, "-m", "lepton_ledger.cli", *argv],
                env=self.env,
                text=True,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
            )
            for argv in commands
        ]
        for argv, proc in zip(commands, procs):
            out, err = proc.communicate()
            if proc.returncode != 0:
                raise SystemExit(f"`lepton-ledger {' '.join(argv)}` failed ({proc.returncode}): {err or out}")
        self.times[label] = time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=1, help="local epochs of train-and-submit")
    parser.add_argument("--parallel", action="store_true", help="also time a round with both partners at once")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="lepton-bench-cli-") as home:
        env = {**os.environ, "LEPTON_DATA_DIR": home, "LEPTON_KEYSTORE_PASSWORD": "bench", "PYTHONPATH": str(ROOT)}
        for name in (
            "LEPTON_RPC_URL",
            "LEPTON_KEYSTORE_DIR",
            "LEPTON_BLOCKSTORE_DIR",
            "LEPTON_KUBO_API",
            "LEPTON_RAY_ADDRESS",
        ):
            env.pop(name, None)
        keystore = Keystore(Path(home) / "keystore", scrypt_n=2**14)
        for name, index in KEYS.items():
            keystore.import_key(name, dev_account(index).key, "bench")
        bench = Bench(env)
        try:
            _round(bench, epochs=["--epochs", str(args.epochs)], parallel=args.parallel)
        finally:
            subprocess.run(
                [sys.executable, "-m", "lepton_ledger.cli", "node", "stop"], env=env, capture_output=True, check=False
            )
    times = bench.times
    width = max(len(k) for k in times)
    for label, seconds in times.items():
        print(f"{label:<{width}}  {seconds:6.2f} s")
    total = sum(times.values())
    print(f"{'total':<{width}}  {total:6.2f} s  ({len(times)} commands, epochs {args.epochs})")
    print(
        json.dumps(
            {
                "commands": {k: round(v, 3) for k, v in times.items()},
                "total_s": round(total, 2),
                "epochs": args.epochs,
                "parallel": args.parallel,
            }
        )
    )


def _round(cli: Bench, *, epochs: list[str], parallel: bool) -> None:
    cli("node start", "node", "start")
    cli("keys list", "keys", "list")
    cli("deploy", *cli_lines.deploy())
    for name in cli_lines.PARTIES:
        cli(f"partner register ({name})", *cli_lines.register(name))
    for name in cli_lines.PARTNERS:
        cli(f"coordinator approve ({name})", *cli_lines.approve(name))
    cli("coordinator propose", *cli_lines.propose())
    for name in ("partner-a", "partner-b"):
        cli(f"partner sign ({name})", "partner", "sign", "1", "--key", name)
    for name in ("partner-a", "partner-b"):
        cli(f"partner stake ({name})", "partner", "stake", "1", "--key", name)
    cli("coordinator fund", "coordinator", "fund", "1", "600", "--key", "coordinator")
    cli("coordinator bond", "coordinator", "bond", "1", "100", "--key", "coordinator")  # rounds open only bonded
    cli("coordinator open", "coordinator", "open", "1", "--key", "coordinator", *DATA)
    for i, name in enumerate(("partner-a", "partner-b")):
        cli(
            f"partner train-and-submit ({name})",
            "partner",
            "train-and-submit",
            "1",
            "--key",
            name,
            *DATA,
            "--partition",
            str(i),
            *epochs,
        )
    cli("coordinator close", "coordinator", "close", "1", "1", "--key", "coordinator", *DATA)
    cli("node time --advance 2h", "node", "time", "--advance", "2h")
    for name in ("partner-a", "partner-b"):
        cli(f"partner claim ({name})", "partner", "claim", "1", "1", "--key", name)
    cli("partner status", "partner", "status", "1", "--key", "partner-a")
    cli("audit", "audit", "--key", "auditor")
    if parallel:
        cli("coordinator open (round 2)", "coordinator", "open", "1", "--key", "coordinator", *DATA)
        cli.at_once(
            "partner train-and-submit x2 at once (round 2)",
            [
                ["partner", "train-and-submit", "1", "--key", name, *DATA, "--partition", str(i), *epochs]
                for i, name in enumerate(("partner-a", "partner-b"))
            ],
        )
    cli("node stop", "node", "stop")


if __name__ == "__main__":
    main()
