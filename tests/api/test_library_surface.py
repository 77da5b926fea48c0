"""The service calls the library through its public names only: a private helper of another module may change
or go with no notice to the service."""

from __future__ import annotations

import ast
from pathlib import Path

import lepton_ledger.api

API = Path(lepton_ledger.api.__file__).parent


def test_the_service_imports_no_private_name_from_outside_it():
    found = []
    for path in sorted(API.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and not _inside_api(path, node):
                found += [
                    f"{path.relative_to(API)}: {alias.name} from {'.' * node.level}{node.module}"
                    for alias in node.names
                    if alias.name.startswith("_") and alias.name != "__future__"
                ]
    assert found == []


def _inside_api(path: Path, node: ast.ImportFrom) -> bool:
    """Whether a relative import stays within lepton_ledger/api."""
    if node.level == 0:
        return (node.module or "").startswith("lepton_ledger.api")
    depth = len(path.parent.relative_to(API).parts)  # 0 for api/, 1 for api/routes/
    return node.level <= depth + 1
