"""The UnixFS importer against the official JavaScript one (npm ipfs-unixfs-importer, configured as kubo).

ipfs_cid (Debian) judges CIDv0 only: its "CIDv1" is the v0 DAG relabelled, not `ipfs add --cid-version=1`,
which has raw leaves. So multi-chunk CIDv1 roots get their independent reference here: js_unixfs_cid.mjs runs
the JS importer with kubo's settings spelled out (256 KiB fixed chunks, balanced layout of 174 links, a
single chunk reduced to its leaf; dag-pb File leaves in v0, raw leaves in v1). The JS v0 roots are checked
against ipfs_cid too, which proves that configuration kubo-equivalent wherever ipfs_cid can tell, so a v1
disagreement would point at one importer, not at the harness.

node and the npm packages are installed by `make test` (npm ci): their absence is a failure, not a skip.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
from storage_data import CHUNK, det_bytes

from lepton_ledger.storage.local import LocalStore
from lepton_ledger.storage.unixfs import file_cid

SCRIPT = Path(__file__).with_name("js_unixfs_cid.mjs")

SIZES = {
    "empty": 0,
    "one-byte": 1,
    "chunk-minus-1": CHUNK - 1,
    "chunk": CHUNK,
    "chunk-plus-1": CHUNK + 1,
    "174-chunks": 174 * CHUNK,  # one full node of 174 leaves, no extra root above it
    "175-chunks": 175 * CHUNK,  # depth 2: a full node and a node of one leaf
    "349-chunks": (174 * 2 + 1) * CHUNK,  # depth 2: two full nodes and a third of one leaf
    "about-20-mb": 20 * 1024 * 1024 + 12345,  # 81 chunks, the last one short
}
# LocalStore.put writes every block: keep it to the sizes where that is cheap but covers each tree shape.
PUT_SIZES = ["empty", "one-byte", "chunk", "chunk-plus-1", "175-chunks"]


def _tool(name: str, hint: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} is not installed: {hint}")
    return path


def _js_cids(node: str, mode: str, paths: list[Path]) -> list[str]:
    result = subprocess.run(
        [node, str(SCRIPT), mode, *map(str, paths)], check=False, capture_output=True, text=True, timeout=120
    )
    if result.returncode != 0:
        pytest.fail(
            f"the JS importer failed ({mode}, exit {result.returncode}); if a package is missing, run "
            f"`npm install` (devDependencies ipfs-unixfs-importer, blockstore-core):\n{result.stderr}"
        )
    cids = result.stdout.split()
    assert len(cids) == len(paths), result.stdout
    return cids


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, object]]:
    """Each size's file, the JS importer's v0 and v1 roots and ipfs_cid's verdict (computed once per run)."""
    node = _tool("node", "install Node.js 20 (the npm toolchain of `make setup` needs it)")
    ipfs_cid = _tool("ipfs_cid", "run `make system-deps` (Debian package ipfs-cid)")
    folder = tmp_path_factory.mktemp("js-crosscheck")
    paths = []
    for name, size in SIZES.items():
        path = folder / name
        path.write_bytes(det_bytes(size, seed=size))
        paths.append(path)
    v0 = _js_cids(node, "v0", paths)
    v1 = _js_cids(node, "v1", paths)
    out: dict[str, dict[str, object]] = {}
    for name, path, c0, c1 in zip(SIZES, paths, v0, v1):
        kubo = json.loads(subprocess.run([ipfs_cid, str(path)], capture_output=True, text=True, check=True).stdout)
        out[name] = {"path": path, "v0": c0, "v1": c1, "ipfs_cid_v0": kubo["CIDv0"]}
    return out


@pytest.mark.parametrize("name", list(SIZES))
def test_js_v0_configuration_matches_ipfs_cid(reference: dict[str, dict[str, object]], name: str) -> None:
    ref = reference[name]
    assert ref["v0"] == ref["ipfs_cid_v0"]


@pytest.mark.parametrize("version", [0, 1])
@pytest.mark.parametrize("name", list(SIZES))
def test_file_cid_matches_js_importer(reference: dict[str, dict[str, object]], name: str, version: int) -> None:
    ref = reference[name]
    with open(ref["path"], "rb") as f:  # type: ignore[call-overload]
        got = file_cid(f, cid_version=version)
    assert got == ref[f"v{version}"]
    expected_prefix = "Qm" if version == 0 else ("bafkrei" if SIZES[name] <= CHUNK else "bafybei")
    assert got.startswith(expected_prefix)  # v1: a raw leaf alone, else a dag-pb root over raw leaves


@pytest.mark.parametrize("version", [0, 1])
@pytest.mark.parametrize("name", PUT_SIZES)
def test_local_store_put_matches_js_importer(
    reference: dict[str, dict[str, object]],
    make_store,
    name: str,
    version: int,  # type: ignore[no-untyped-def]
) -> None:
    ref = reference[name]
    store: LocalStore = make_store()
    with open(ref["path"], "rb") as f:  # type: ignore[call-overload]
        assert store.put(f, cid_version=version) == ref[f"v{version}"]
