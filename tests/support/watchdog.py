"""A last-resort limit on each test, past pytest-timeout's, that ends a hung test process and says where it hung.

pytest-timeout (signal method) arms one SIGALRM per test and raises in the test when it fires. It cannot end a
hang that begins after it fired (a teardown stuck joining the event loop's executor threads, a task that will not
be cancelled) nor one where the signal handler never runs, and such a hang stalls the whole run until CI's own limit
(it did once: CI gave up at 90 minutes with nothing to say but the dots). This plugin arms `faulthandler`'s watchdog,
a C thread that needs neither the signal nor the interpreter, for the test's whole protocol (setup, call, teardown):
at the test's limit plus `GRACE_VARIABLE` seconds (120 by default) it writes every thread's stack to a file and
ends the process. Under pytest-xdist the controller reports the test as its worker's crash, starts a new worker
for the rest of the run, and prints the stacks in the summary; without xdist the process exits 1 and the stacks
stay in the file it names at the start.

The run as a whole has a budget too (`BUDGET_VARIABLE`, 70 minutes by default): past it no further test starts and
the run ends with its report, failures and hung stacks included, while CI still waits for it. It counts from
`STARTED_VARIABLE` (a Unix time) when the caller sets it: .ci/run sets its own start, so that its installs and type
check count too (on a fresh machine they took minutes, and a run stopped at 70 minutes of tests still ran past CI's
90), else from the run's start.
"""

from __future__ import annotations

import contextlib
import faulthandler
import os
import tempfile
import time
from collections.abc import Generator
from pathlib import Path
from typing import IO

import pytest

HANGS_VARIABLE = "RECOVERY_TEST_HANGS"
GRACE_VARIABLE = "RECOVERY_TEST_HANG_GRACE"
DEFAULT_GRACE = 120.0
STARTED_VARIABLE = "RECOVERY_TEST_RUN_STARTED"
BUDGET_VARIABLE = "RECOVERY_TEST_RUN_BUDGET"
# `make test` takes about 12 minutes here; CI gives up at 90, with the installs before the tests.
DEFAULT_BUDGET = 70 * 60.0
HEADER = (
    "test process ended by the watchdog: {nodeid} ran past {limit:.0f}s (its limit {timeout:.0f}s and {grace:.0f}s)\n"
)

_DUMP: pytest.StashKey[IO[str]] = pytest.StashKey()
_DEADLINE: pytest.StashKey[float] = pytest.StashKey()
_MADE_DIRECTORY: pytest.StashKey[bool] = pytest.StashKey()


def _controller(config: pytest.Config) -> bool:
    return not hasattr(config, "workerinput")


def _test_limit(item: pytest.Item) -> float | None:
    """The test's own pytest-timeout limit (its marker, else `--timeout`, else the ini's), or None when it has none
    or a debugger may stop in it (`--pdb`: minutes at a prompt are no hang)."""
    if item.config.getoption("usepdb", False):
        return None
    marker = item.get_closest_marker("timeout")
    if marker is not None:
        value = marker.kwargs.get("timeout", marker.args[0] if marker.args else None)
    elif item.config.getoption("timeout", None) is not None:
        value = item.config.getoption("timeout")
    else:
        try:
            value = item.config.getini("timeout")
        except ValueError:  # pytest-timeout is not loaded
            return None
    try:
        limit = float(value) if value not in (None, "") else 0.0
    except (TypeError, ValueError):
        return None
    return limit if limit > 0 else None


def pytest_configure(config: pytest.Config) -> None:
    if _controller(config):
        # Set before pytest-xdist starts its workers, so that they (and those it starts again) inherit them.
        if HANGS_VARIABLE not in os.environ:
            os.environ[HANGS_VARIABLE] = tempfile.mkdtemp(prefix="recovery-test-hangs-")
            config.stash[_MADE_DIRECTORY] = True
        os.environ.setdefault(STARTED_VARIABLE, str(time.time()))
    directory = Path(os.environ[HANGS_VARIABLE])
    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    config.stash[_DUMP] = open(directory / f"{worker}-{os.getpid()}.txt", "w+", encoding="utf-8")


def pytest_report_header(config: pytest.Config) -> str:
    return f"hung tests' stacks go to: {os.environ[HANGS_VARIABLE]}"


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> Generator[None, object, object]:
    try:
        return (yield from _watched(item))
    finally:
        _stop_past_the_budget(item.session)


def _watched(item: pytest.Item) -> Generator[None, object, object]:
    timeout = _test_limit(item)
    dump = item.config.stash.get(_DUMP, None)
    if timeout is None or dump is None:
        return (yield)
    if _ended_before(item.nodeid):
        # pytest-xdist (--dist loadfile) gives a crashed worker's unfinished file, the hung test with it, to the
        # worker it starts next: run again, the test would hang again, as many times as workers may crash.
        item.add_marker(pytest.mark.skip(reason="the watchdog ended it in an earlier worker (its stacks: summary)"))
        return (yield)
    grace = float(os.environ.get(GRACE_VARIABLE, DEFAULT_GRACE))
    dump.seek(0)
    dump.truncate()
    dump.write(HEADER.format(nodeid=item.nodeid, limit=timeout + grace, timeout=timeout, grace=grace))
    dump.flush()
    item.config.stash[_DEADLINE] = time.monotonic() + timeout + grace
    faulthandler.dump_traceback_later(timeout + grace, exit=True, file=dump)
    try:
        return (yield)
    finally:
        del item.config.stash[_DEADLINE]
        faulthandler.cancel_dump_traceback_later()
        dump.seek(0)
        dump.truncate()
        dump.flush()


def _stop_past_the_budget(session: pytest.Session) -> None:
    """Past the run's budget no further test starts: the run ends with its report (and the stacks of what hung)
    while CI still waits for it, instead of being cut off with nothing said. A pytest-xdist worker stops taking
    tests and hands the reason to the controller, which stops the others."""
    budget = float(os.environ.get(BUDGET_VARIABLE, DEFAULT_BUDGET))
    elapsed = time.time() - float(os.environ.get(STARTED_VARIABLE, time.time()))
    if elapsed > budget and not session.shouldstop:
        session.shouldstop = (
            f"the run passed its budget of {budget:.0f}s ({BUDGET_VARIABLE}) after {elapsed:.0f}s: tests stopped"
        )


@pytest.hookimpl(trylast=True)
def pytest_exception_interact(node: pytest.Item | pytest.Collector) -> None:
    """pytest's own faulthandler plugin cancels the watchdog when a test phase fails (for the debugger), and a
    timed-out test fails before its hanging teardown: armed again for what is left of the test's time."""
    deadline = node.config.stash.get(_DEADLINE, None)
    dump = node.config.stash.get(_DUMP, None)
    if deadline is not None and dump is not None:
        faulthandler.dump_traceback_later(max(deadline - time.monotonic(), 1.0), exit=True, file=dump)


def pytest_unconfigure(config: pytest.Config) -> None:
    dump = config.stash.get(_DUMP, None)
    if dump is not None:
        dump.close()
        Path(dump.name).unlink(missing_ok=True)
    if _controller(config) and config.stash.get(_MADE_DIRECTORY, False):
        # Every worker has removed its empty file by now: only a hung test's stacks keep the directory.
        with contextlib.suppress(OSError):
            Path(os.environ[HANGS_VARIABLE]).rmdir()


def _ended_before(nodeid: str) -> bool:
    first_line = HEADER.split("{nodeid}")[0] + nodeid + " "
    return any(report.startswith(first_line) for report in hung_tests(Path(os.environ[HANGS_VARIABLE])))


def hung_tests(directory: Path) -> list[str]:
    """The watchdog's reports left in `directory`, one text per test process it ended."""
    reports = []
    for path in sorted(directory.glob("*.txt")):
        text = path.read_text(encoding="utf-8", errors="replace")
        if text.strip():
            reports.append(text)
    return reports


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter, config: pytest.Config) -> None:
    if not _controller(config):
        return
    for report in hung_tests(Path(os.environ[HANGS_VARIABLE])):
        terminalreporter.section("a hung test's stacks (the watchdog ended its process)", red=True)
        terminalreporter.write_line(report.rstrip())
