"""`lepton-ledger ipfs ...`: CIDs alone on stdout, bytes back, one-line errors with exit code 1."""

from __future__ import annotations

from pathlib import Path

import pytest
from storage_data import CHUNK, det_bytes
from storage_data import run_ipfs as _run
from typer.testing import CliRunner

from lepton_ledger.cli import app
from lepton_ledger.storage.local import LocalStore

HELLO = "QmWfVY9y3xjsixTgbd9AorQxH7VtMpzfx2HaWtsoUYecaX"


def test_add_prints_the_cid_alone(env: Path) -> None:
    path = env / "hello.txt"
    path.write_bytes(b"hello")
    result = _run("add", str(path))
    assert result.exit_code == 0 and result.stdout == HELLO + "\n"
    v1 = _run("add", "--cid-version", "1", str(path))
    assert v1.stdout == "bafkreibm6jg3ux5qumhcn2b3flc3tyu6dmlb4xa7u5bf44yegnrjhc4yeq\n"
    assert LocalStore(env / "data" / "blocks").get(HELLO) == b"hello"


def test_only_hash_stores_nothing(env: Path) -> None:
    path = env / "f"
    path.write_bytes(det_bytes(CHUNK + 1, 1))
    result = _run("add", "--only-hash", str(path))
    assert result.exit_code == 0 and result.stdout.startswith("Qm")
    assert LocalStore(env / "data" / "blocks").stat().blocks == 0


def test_cat_export_import(env: Path) -> None:
    data = det_bytes(2 * CHUNK + 3, 2)
    path = env / "f"
    path.write_bytes(data)
    cid = _run("add", str(path)).stdout.strip()
    assert _run("cat", cid).stdout_bytes == data
    car = env / "f.car"
    assert _run("export-car", cid, str(car)).exit_code == 0
    imported = CliRunner().invoke(
        app, ["ipfs", "import-car", str(car)], env={"LEPTON_BLOCKSTORE_DIR": str(env / "other")}
    )
    assert imported.exit_code == 0 and imported.stdout == cid + "\n"
    assert LocalStore(env / "other").get(cid) == data


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["add", "/nonexistent/file"], "/nonexistent/file"),
        (["add", "--cid-version", "2", "/etc/hostname"], "--cid-version"),
        (["cat", "Qmnotacid"], "Qmnotacid"),
        (["cat", HELLO], HELLO),
        (["export-car", HELLO, "OUT.car"], HELLO),
        (["export-car", "bogus", "OUT.car"], "bogus"),
        (["import-car", "/nonexistent.car"], "/nonexistent.car"),
    ],
)
def test_bad_input_is_one_line_exit_1_nothing_written(
    env: Path, monkeypatch: pytest.MonkeyPatch, args: list[str], needle: str
) -> None:
    monkeypatch.chdir(env)
    result = _run(*args)
    assert result.exit_code == 1
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and needle in lines[0]
    assert not (env / "OUT.car").exists()


def test_cat_of_a_corrupted_file_writes_nothing(env: Path) -> None:
    path = env / "f"
    path.write_bytes(det_bytes(3 * CHUNK, 3))
    cid = _run("add", str(path)).stdout.strip()
    store = LocalStore(env / "data" / "blocks")
    from lepton_ledger.storage.car import iter_dag

    last, _ = list(iter_dag(store, cid))[-1]
    block_path = store._path(last)
    block_path.write_bytes(b"\0" + block_path.read_bytes()[1:])
    result = _run("cat", cid)
    assert result.exit_code == 1 and result.stdout_bytes == b"" and str(last) in result.stderr
