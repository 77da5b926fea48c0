"""Compiled contract artifacts, read from the build folder that ``brownie compile`` writes.

brownie, forge and this package compile with the same solc (``.toolchain/solc-v0.8.28``); the package reads
brownie's output so that there is one compile path, not two that could drift apart.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from eth_utils import function_abi_to_4byte_selector

from ..errors import ToolchainError
from ..settings import PROJECT_ROOT, artifacts_dir


@dataclass(frozen=True)
class Artifact:
    """One contract's ABI and creation bytecode."""

    name: str
    abi: list[dict[str, Any]]
    bytecode: str


def load_artifact(name: str, directory: Path | None = None) -> Artifact:
    """Loads the artifact of contract `name`.

    Raises:
        ToolchainError: the artifact is missing (run ``make build``) or has no bytecode.
    """
    path = (directory or artifacts_dir()) / f"{name}.json"
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise ToolchainError(f"no compiled artifact for {name} at {path}; run `make build` first") from None
    if not data.get("bytecode"):
        raise ToolchainError(f"artifact {path} has no bytecode (an interface or abstract contract?)")
    return Artifact(name=name, abi=data["abi"], bytecode=data["bytecode"])


def stale_artifacts(directory: Path | None = None, project_root: Path = PROJECT_ROOT) -> list[str]:
    """The project sources whose compiled artifacts no longer match them (empty when the build is fresh).

    brownie stores each compiled source's text in its artifacts (contracts and interfaces alike); a source
    file of this project whose text differs, or that has no artifact at all, means `make build` is due.
    Sources outside the project (node_modules) are pinned by package-lock.json and not compared.
    """
    folder = directory or artifacts_dir()
    compiled: dict[str, str] = {}
    for path in sorted(folder.parent.glob("*/*.json")):
        try:
            data = json.loads(path.read_text())
        except json.JSONDecodeError:
            continue
        source_path = data.get("sourcePath") if isinstance(data, dict) else None
        if source_path is None and isinstance(data, dict) and data.get("type") == "interface":
            source_path = f"interfaces/{data.get('contractName')}.sol"
        if source_path and "source" in data:
            compiled[source_path] = data["source"]
    stale = []
    for folder_name in ("contracts", "interfaces"):
        for source in sorted((project_root / folder_name).rglob("*.sol")):
            relative = source.relative_to(project_root).as_posix()
            if compiled.get(relative) != source.read_text():
                stale.append(relative)
    return stale


@cache
def error_abis(directory: Path | None = None) -> dict[bytes, dict[str, Any]]:
    """Every custom error of every compiled contract and interface, by its 4-byte selector."""
    folder = directory or artifacts_dir()
    errors: dict[bytes, dict[str, Any]] = {}
    for path in sorted(folder.rglob("*.json")):
        try:
            abi = json.loads(path.read_text()).get("abi", [])
        except (json.JSONDecodeError, AttributeError):
            continue
        for entry in abi if isinstance(abi, list) else []:
            if entry.get("type") == "error":
                # An error's selector is computed exactly like a function's.
                errors[function_abi_to_4byte_selector(entry)] = entry
    return errors
