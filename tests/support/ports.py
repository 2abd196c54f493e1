"""Each pytest-xdist worker chooses the ports of what it starts from a slice of its own (`RECOVERY_PORT_RANGE`).

Two workers' choosers must never hand out the same port: each checks a port is free by binding it, but a port chosen
and not yet bound by the service starting on it is free to the other worker's chooser too.

The slices are slots, one per worker (`PYTEST_XDIST_WORKER_COUNT`), that a worker claims by locking the slot's file
for as long as it lives. A worker's id cannot be the slot: pytest-xdist starts a worker again under a new id
(`gw2` after `gw0` and `gw1`) when one crashes (the watchdog ends a hung one, support/watchdog.py), and a slice
counted from that id lies past the range, so that every test of the new worker that needs a port failed (a CI run
erred some 540 tests that way and ran out of its time). The kernel releases a dead worker's lock: the worker started
in its place claims its slot.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import tempfile
from pathlib import Path
from typing import IO

import pytest

from recovery_cli.stack.readiness import PORT_RANGE_VARIABLE, port_range

SLOTS_VARIABLE = "RECOVERY_TEST_PORT_SLOTS"

_MADE_DIRECTORY: pytest.StashKey[bool] = pytest.StashKey()
# The claimed slot's open file: its lock lasts as long as this process.
_CLAIM: list[IO[str]] = []


def pytest_configure(config: pytest.Config) -> None:
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    if not worker:
        # The controller (or a run without workers): the directory of the slots' files, set before pytest-xdist
        # starts its workers so that they, and those it starts again, inherit it.
        if SLOTS_VARIABLE not in os.environ:
            os.environ[SLOTS_VARIABLE] = tempfile.mkdtemp(prefix="recovery-test-ports-")
            config.stash[_MADE_DIRECTORY] = True
        return
    if PORT_RANGE_VARIABLE in os.environ or not worker.startswith("gw"):
        return
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    slot = claim_slot(Path(os.environ[SLOTS_VARIABLE]), workers)
    low, high = port_range()
    size = (high - low + 1) // workers
    first = low + slot * size
    os.environ[PORT_RANGE_VARIABLE] = f"{first}-{first + size - 1}"


def claim_slot(directory: Path, slots: int) -> int:
    """The first of `slots` no living process holds, held by this process from now on."""
    for slot in range(slots):
        claim = open(directory / f"slot-{slot}.lock", "w", encoding="utf-8")  # held for life when locked
        try:
            fcntl.flock(claim, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            claim.close()
            continue
        _CLAIM.append(claim)
        return slot
    raise RuntimeError(f"all {slots} port slots in {directory} are held: more workers than PYTEST_XDIST_WORKER_COUNT")


def pytest_unconfigure(config: pytest.Config) -> None:
    if config.stash.get(_MADE_DIRECTORY, False):
        directory = Path(os.environ[SLOTS_VARIABLE])
        for path in directory.glob("slot-*.lock"):
            path.unlink(missing_ok=True)
        with contextlib.suppress(OSError):
            directory.rmdir()
