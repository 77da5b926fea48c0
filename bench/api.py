"""Throughput of the service: a round's status against a route that does nothing, same app, same run.

``lepton-ledger serve --workdir`` (one uvicorn worker, as the command runs it) on a copy of a demo folder (a fresh
two-partner, one-round demo unless ``--demo DIR`` names one), on 127.0.0.1; ``wrk`` (the Debian package) loads

- **round status**: ``GET /v1/agreements/1/rounds/1``, served from the read model, which reads the chain once per
  block (the service mines an empty block every second, so the cache turns over during the run, as it does live);
- **trivial**: ``GET /v1/health/live``, an ``async def`` that reads nothing, through the same middleware
  (body cap, request counter, error handlers).

The two alternate, ``--repeats`` times each, after one warm-up request each; the figures are the best
requests/s of each (on a machine shared with other jobs the slower runs measure the neighbours). A run with any
non-2xx answer or socket error is refused, not measured. Target: ratio (status / trivial) >= 0.5.

    python bench/api.py                                  # 10 s per run, 16 connections, 1 wrk thread
    python bench/api.py --duration 20 --connections 64 --repeats 3
    python bench/api.py --demo demo-out                  # on a copy of `make demo`'s folder

Last line, JSON: ``{"rps_round_status", "rps_trivial", "ratio"}``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
ROUTES = {"round_status": "/v1/agreements/1/rounds/1", "trivial": "/v1/health/live"}
INSTALL_WRK = "wrk is missing: install the Debian package (sudo apt-get install -y wrk)"
START_TIMEOUT = 120.0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _environment(data_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEPTON_")}
    return {**env, "LEPTON_DATA_DIR": str(data_dir), "PYTHONPATH": str(ROOT)}


def _demo(folder: Path, scratch: Path) -> None:
    """A fresh two-partner, one-round demo in `folder`."""
    subprocess.run(
        [sys.executable, "-m", "lepton_ledger.cli", "demo", "--partners", "2", "--rounds", "1", "--out", str(folder)],
        env=_environment(scratch),
        check=True,
        capture_output=True,
    )


def _wait(url: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"serve exited with {process.returncode}")
        try:
            if httpx.get(url + ROUTES["round_status"], timeout=5).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)  # polling for the port to open
    raise RuntimeError("serve did not come up")


def wrk(url: str, *, duration: int, connections: int, threads: int) -> float:
    """Requests per second `wrk` measured on `url`.

    Raises:
        RuntimeError: a non-2xx answer or a socket error during the run (its figure would measure refusals).
    """
    out = subprocess.run(
        ["wrk", f"-t{threads}", f"-c{connections}", f"-d{duration}s", "--timeout", "30s", url],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    if "Non-2xx" in out or "Socket errors" in out:
        raise RuntimeError(f"wrk saw errors on {url}:\n{out}")
    found = re.search(r"Requests/sec:\s+([0-9.]+)", out)
    if found is None:
        raise RuntimeError(f"no Requests/sec in wrk's output:\n{out}")
    return float(found.group(1))


def run(*, duration: int, connections: int, threads: int, repeats: int, demo: Path | None) -> dict[str, float]:
    for name, value in (
        ("duration", duration),
        ("connections", connections),
        ("threads", threads),
        ("repeats", repeats),
    ):
        if value < 1:
            raise ValueError(f"--{name} must be at least 1, got {value}")
    if shutil.which("wrk") is None:
        raise SystemExit(INSTALL_WRK)
    with tempfile.TemporaryDirectory(prefix="bench-api-") as scratch:
        folder = Path(scratch) / "demo"
        if demo is None:
            _demo(folder, Path(scratch) / "data")
        else:
            shutil.copytree(demo, folder)
        port = _free_port()
        base = f"http://127.0.0.1:{port}"
        process = subprocess.Popen(
            [sys.executable, "-m", "lepton_ledger.cli", "serve", "--port", str(port), "--workdir", str(folder)],
            env=_environment(folder),
            stderr=subprocess.DEVNULL,
        )
        try:
            _wait(base, process)
            for path in ROUTES.values():
                httpx.get(base + path, timeout=30).raise_for_status()  # warm-up: imports, the first block's cache
            best = dict.fromkeys(ROUTES, 0.0)
            for i in range(repeats):
                for name, path in ROUTES.items():
                    rps = wrk(base + path, duration=duration, connections=connections, threads=threads)
                    print(f"  run {i + 1} {name:<13} {rps:10.1f} requests/s")
                    best[name] = max(best[name], rps)
        finally:
            process.terminate()
            process.wait(timeout=30)
    return {
        "rps_round_status": round(best["round_status"], 1),
        "rps_trivial": round(best["trivial"], 1),
        "ratio": round(best["round_status"] / best["trivial"], 3),
    }


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=10, help="seconds per wrk run (default 10)")
    parser.add_argument("--connections", type=int, default=16, help="open connections (default 16)")
    parser.add_argument("--threads", type=int, default=1, help="wrk threads (default 1)")
    parser.add_argument("--repeats", type=int, default=1, help="runs per route, alternating (default 1)")
    parser.add_argument("--demo", type=Path, default=None, help="a demo folder to copy (default: a fresh demo)")
    args = parser.parse_args(argv)
    print(
        f"bench/api.py: serve --workdir (1 worker) on 127.0.0.1; wrk -t{args.threads} -c{args.connections} "
        f"-d{args.duration}s x{args.repeats} per route; round status {ROUTES['round_status']}, "
        f"trivial {ROUTES['trivial']}"
    )
    summary = run(
        duration=args.duration,
        connections=args.connections,
        threads=args.threads,
        repeats=args.repeats,
        demo=args.demo,
    )
    print(
        f"round status {summary['rps_round_status']} requests/s, trivial {summary['rps_trivial']} requests/s, "
        f"ratio {summary['ratio']} (target >= 0.5)"
    )
    print(json.dumps(summary))
    return summary


if __name__ == "__main__":
    main()
