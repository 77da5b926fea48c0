"""The local nodes a test module's commands started (chain/node.py: a command that finds no node starts one,
which outlives it) are stopped when the module is done. Here, not in tests/conftest.py: a conftest module there
would shadow the `conftest` that the storage tests' worker processes import."""

from __future__ import annotations

import pytest

from lepton_ledger.chain import node


@pytest.fixture(scope="module", autouse=True)
def _stop_local_nodes():
    before = set(node.started_here())
    yield
    for data_dir in set(node.started_here()) - before:
        node.stop(data_dir)
