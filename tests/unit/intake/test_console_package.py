"""The console package as it is laid out: its docstring names every module it has (and only those), and no
module leaves code after a `return` or `raise` that can never run."""

from __future__ import annotations

import ast
import itertools
import pkgutil
import re
from pathlib import Path

import recovery_intake.console as console

HERE = Path(console.__file__).parent


def test_the_package_docstring_names_each_module() -> None:
    modules = {info.name for info in pkgutil.iter_modules([str(HERE)])}
    named = set(re.findall(r"`(\w+)`", console.__doc__ or ""))
    assert named == modules


def unreachable(tree: ast.AST) -> list[int]:
    """Lines of statements that follow a `return`, `raise`, `break` or `continue` in the same block."""
    lines = []
    for node in ast.walk(tree):
        for field in ("body", "orelse", "finalbody"):
            block = getattr(node, field, None)
            if not isinstance(block, list):
                continue
            for before, after in itertools.pairwise(block):
                if isinstance(before, ast.Return | ast.Raise | ast.Break | ast.Continue):
                    lines.append(after.lineno)
    return lines


def test_no_console_module_has_unreachable_statements() -> None:
    found = {path.name: unreachable(ast.parse(path.read_text())) for path in sorted(HERE.glob("*.py"))}
    assert {name: lines for name, lines in found.items() if lines} == {}
