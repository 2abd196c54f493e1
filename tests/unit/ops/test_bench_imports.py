"""The benchmarks import much of the product lazily, inside the functions that run a step (after the stack or the
virtual host exists), so a module or name that moves breaks `make bench` only when that step runs. Every
`from X import Y` of the project's packages in bench/ must resolve today, and so must every `module.name` read
off a project module a benchmark imported (`from recovery_scheduler import domain` then `domain.decide_next`)."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[3] / "bench"
PROJECT = ("recovery_",)


def project_imports() -> list[tuple[str, str, str]]:
    found = []
    for script in sorted(BENCH.rglob("*.py")):
        for node in ast.walk(ast.parse(script.read_text(), filename=str(script))):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith(PROJECT):
                found += [(script.name, node.module, alias.name) for alias in node.names]
            elif isinstance(node, ast.Import):
                found += [
                    (script.name, parent, child)
                    for alias in node.names
                    if alias.name.startswith(PROJECT) and "." in alias.name
                    for parent, child in [alias.name.rsplit(".", 1)]
                ]
    return found


def _is_module(name: str) -> bool:
    try:
        importlib.import_module(name)
    except ImportError:  # a class or function, or a module that does not exist (the test above says so)
        return False
    return True


def module_attributes() -> list[tuple[str, str, str]]:
    """(script, module, name) for each `alias.name` read off a project module bound to `alias` in a script."""
    found = set()
    for script in sorted(BENCH.rglob("*.py")):
        tree = ast.parse(script.read_text(), filename=str(script))
        modules = {}
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith(PROJECT):
                for alias in node.names:
                    if _is_module(f"{node.module}.{alias.name}"):
                        modules[alias.asname or alias.name] = f"{node.module}.{alias.name}"
            elif isinstance(node, ast.Import):
                modules |= {a.asname: a.name for a in node.names if a.asname and a.name.startswith(PROJECT)}
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in modules:
                found.add((script.name, modules[node.value.id], node.attr))
    return sorted(found)


def test_the_benchmarks_import_the_product() -> None:
    assert len(project_imports()) > 20  # the scan sees the lazy imports too


@pytest.mark.parametrize(("script", "module", "name"), project_imports())
def test_every_name_a_benchmark_imports_exists(script: str, module: str, name: str) -> None:
    imported = importlib.import_module(module)
    assert hasattr(imported, name) or importlib.util.find_spec(f"{module}.{name}") is not None, (
        f"bench/{script} imports {name} from {module}, which has no such name"
    )


@pytest.mark.parametrize(("script", "module", "name"), module_attributes())
def test_every_name_a_benchmark_reads_off_a_project_module_exists(script: str, module: str, name: str) -> None:
    assert hasattr(importlib.import_module(module), name), f"bench/{script} reads {module}.{name}, which does not exist"
