"""One Settings read in one place: docs/configuration.md lists exactly its fields, and no module outside
settings.py reads a ``LEPTON_*`` variable."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from lepton_ledger import settings
from lepton_ledger.errors import ConfigurationError
from lepton_ledger.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
ROW = re.compile(r"^\| `(LEPTON_[A-Z_]+)` \| `([a-z_]+)` \| (.+) \|$")


def test_the_documented_table_is_the_settings_fields():
    rows = [ROW.match(line) for line in (ROOT / "docs" / "configuration.md").read_text().splitlines()]
    documented = {m[1]: (m[2], m[3]) for m in rows if m}
    expected = {
        variable: (field, Settings.model_fields[field].description) for variable, field in Settings.variables().items()
    }
    assert documented == expected


def test_each_documented_default_is_the_fields():
    for field in Settings.variables().values():
        info = Settings.model_fields[field]
        if info.default is not None and not isinstance(info.default, Path):
            assert f"default {info.default}" in str(info.description), field


def _reads_of_the_environment(tree: ast.Module) -> list[ast.expr]:
    """The first argument of each ``os.environ.get(X)``, ``os.environ[X]`` and ``os.getenv(X)`` in `tree`."""
    found = []
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Call)
            and node.args
            and isinstance(node.func, ast.Attribute)
            and (node.func.attr == "getenv" or (node.func.attr == "get" and "environ" in ast.unparse(node.func)))
        ):
            found.append(node.args[0])
        elif (
            isinstance(node, ast.Subscript)
            and ast.unparse(node.value).endswith("environ")
            and isinstance(node.ctx, ast.Load)
        ):
            found.append(node.slice)
    return found


def test_no_module_but_settings_reads_a_lepton_variable():
    offenders = []
    for path in sorted((ROOT / "lepton_ledger").rglob("*.py")):
        if path.name == "settings.py" and path.parent.name == "lepton_ledger":
            continue
        tree = ast.parse(path.read_text())
        constants = {
            t.id: n.value.value
            for n in tree.body
            if isinstance(n, ast.Assign) and isinstance(n.value, ast.Constant) and isinstance(n.value.value, str)
            for t in n.targets
            if isinstance(t, ast.Name)
        }
        for arg in _reads_of_the_environment(tree):
            name = arg.value if isinstance(arg, ast.Constant) else constants.get(getattr(arg, "id", ""), "?")
            if not isinstance(name, str) or name.startswith("LEPTON_") or name == "?":
                offenders.append(f"{path.relative_to(ROOT)}:{arg.lineno}: {ast.unparse(arg)}")
    assert offenders == []


def test_settings_are_read_once_per_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("LEPTON_DATA_DIR", str(tmp_path / "a"))
    first = settings.current()
    assert settings.current() is first and settings.data_dir() == tmp_path / "a"
    monkeypatch.setenv("LEPTON_DATA_DIR", str(tmp_path / "b"))
    assert settings.current() is not first and settings.data_dir() == tmp_path / "b"


def test_an_empty_password_is_a_password_and_an_empty_url_is_none(tmp_path, monkeypatch):
    monkeypatch.setenv("LEPTON_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("LEPTON_KEYSTORE_PASSWORD", "")
    monkeypatch.setenv("LEPTON_KUBO_API", "")
    assert settings.keystore_password() == "" and settings.kubo_api() is None
    monkeypatch.delenv("LEPTON_KEYSTORE_PASSWORD")
    assert settings.keystore_password() is None


def test_a_malformed_variable_fails_every_reader_with_its_name(tmp_path, monkeypatch):
    monkeypatch.setenv("LEPTON_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("LEPTON_API_BLOCK_POLL", "often")
    with pytest.raises(ConfigurationError, match="setting block_poll"):
        settings.data_dir()
