"""Lists and counts the docs state about the code, held against the code: the places an audit of the docs (6 Dec)
found behind it (a subcommand missing from the command's list, the read side's queue count)."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import pytest

from recovery_cli.main import build_parser
from recovery_runtime.topology import QUEUES

ROOT = Path(__file__).resolve().parents[3]
NUMBERS = {"nine": 9, "ten": 10, "eleven": 11, "twelve": 12, "thirteen": 13, "fourteen": 14, "fifteen": 15}


def _subcommands() -> set[str]:
    [action] = [a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction)]
    return set(action.choices)


def _row(path: str, first_cell: str) -> str:
    [row] = [line for line in (ROOT / path).read_text().splitlines() if line.startswith(f"| {first_cell} |")]
    return row


@pytest.mark.parametrize(("path", "first_cell"), [("README.md", "`tools/cli`"), ("docs/architecture.md", "tools/cli")])
def test_the_recovery_commands_list_names_every_subcommand(path: str, first_cell: str) -> None:
    # What follows the command's name in parentheses is its own actions (`topology` (`declare`, `check`)).
    row = re.sub(r"\([^)]*\)", "", _row(path, first_cell).split("the `recovery` command:")[1])
    listed = {name.split()[0] for name in re.findall(r"`([a-z][a-z -]*)`", row)}
    # `run` is "run a service" in architecture.md's row.
    assert _subcommands() - {"run"} <= listed <= _subcommands(), (path, sorted(_subcommands() ^ listed))


def test_the_read_side_says_how_many_queues_it_has() -> None:
    text = (ROOT / "docs/analytics.md").read_text()
    said = re.search(r"(\w+) queues of its own", text)
    assert said is not None
    own = [q for q in QUEUES.values() if q.name.startswith("analytics.")]
    assert NUMBERS[said.group(1).lower()] == len(own)
