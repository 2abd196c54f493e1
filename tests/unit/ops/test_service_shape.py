"""The shape issue 14 set for every service, held by a test so that a change cannot undo it unnoticed: no module
over 400 lines, no handler importing pymongo, every status enum in a domain."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
MODULES = sorted((ROOT / "services").glob("*/src/*/**/*.py"))
MAX_LINES = 400


def test_there_are_modules_to_look_at() -> None:
    assert len(MODULES) > 100


def test_no_service_module_is_over_400_lines() -> None:
    long = {str(m.relative_to(ROOT)): n for m in MODULES if (n := len(m.read_text().splitlines())) > MAX_LINES}
    assert long == {}, "split by idea, or move a rule to the domain module it belongs to"


def _imports(module: Path) -> set[str]:
    tree = ast.parse(module.read_text())
    names = {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    return names | {node.module or "" for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}


def test_no_handler_imports_pymongo() -> None:
    handlers = [m for m in MODULES if "handlers" in m.relative_to(ROOT).parts or m.stem == "handlers"]
    assert handlers
    offending = [str(m.relative_to(ROOT)) for m in handlers if any(n.split(".")[0] == "pymongo" for n in _imports(m))]
    assert offending == [], "a repository in adapters/ owns the MongoDB shape"


def test_every_status_enum_lives_in_a_domain() -> None:
    found = {
        (str(m.relative_to(ROOT)), node.name)
        for m in MODULES
        for node in ast.walk(ast.parse(m.read_text()))
        if isinstance(node, ast.ClassDef) and node.name.endswith("Status")
        and any(isinstance(b, ast.Name) and b.id == "StrEnum" for b in node.bases)
    }  # fmt: skip
    assert found
    assert {(path, name) for path, name in found if "/domain/" not in path} == set()
