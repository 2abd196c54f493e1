"""Session services (MongoDB, RabbitMQ), per-test isolation, the running stack, markers by folder.

Fixtures:
- `mongodb_url` (session): MONGODB_URL when set, else a SecantusDB process on a free port, in memory.
- `rabbitmq_url` (session): RABBITMQ_URL or the local default; fails (never skips) when unreachable.
- `mongodb_database`: a database name of the test's own (dropped afterwards).
- `rabbitmq_vhost_url`: the broker URL of a virtual host of the test's own (deleted afterwards).
- `isolation`: both of the above with the MongoDB URL, as `support.stack.Isolation`.
- `start_stack`: a factory that starts the system (or some of it) in that isolation at TIME_SCALE 1000 on
  free ports; everything it started stops after the test, and a failing test's report shows the logs.
- `stack`: the whole system, started with `start_stack()`; in a module with `SHARE_STACK = True`, the module's one
  stack (`module_stacks`), for modules whose tests each use merchants and payments of their own.
"""

from __future__ import annotations

import os
from collections.abc import Generator, Iterator
from pathlib import Path

import pytest
from hypothesis import settings as hypothesis_settings

from recovery_cli.stack import DEFAULT_RABBITMQ_URL, Stack
from support.mongodb import SecantusServer, database_name_for, drop_database
from support.rabbitmq import (
    TEST_VHOST_PREFIX,
    VhostUnavailable,
    VirtualHosts,
    open_files_problem,
    rabbitmq_reachable,
    unreachable_message,
    vhost_name_for,
)
from support.stack import Isolation, StackFactory, own_isolation

TESTS_DIR = Path(__file__).parent

# A hung test ends its process and prints its stacks instead of stalling the run (support/watchdog.py); each
# pytest-xdist worker chooses ports from a slice of its own, a worker started again included (support/ports.py).
pytest_plugins = ["support.watchdog", "support.ports"]

# Property tests check behaviour, not speed: hypothesis' 200 ms deadline per example fails them at random on a loaded
# 2-core machine (two pytest-xdist workers beside running stacks). Speed targets live in bench/.
hypothesis_settings.register_profile("recovery", deadline=None)
hypothesis_settings.load_profile("recovery")
MARKERS_BY_FOLDER = {"unit": "unit", "integration": "integration", "e2e": "e2e", "faults": "faults"}
STACKS = pytest.StashKey[StackFactory]()


# The longest files first: under pytest-xdist (`make test`) the fault suite starts at once on one worker while the
# other works through the rest, and the short unit tests fill in at the end.
RUN_ORDER = ("faults", "e2e", "integration", "unit")


def _folder(item: pytest.Item) -> str | None:
    try:
        return item.path.relative_to(TESTS_DIR).parts[0]
    except ValueError:
        return None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        marker = MARKERS_BY_FOLDER.get(_folder(item) or "")
        if marker is not None:
            item.add_marker(getattr(pytest.mark, marker))
    rank = {folder: i for i, folder in enumerate(RUN_ORDER)}
    items.sort(key=lambda item: rank.get(_folder(item) or "", len(rank)))


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    factory = item.stash.get(STACKS, None)
    if factory is not None and report.failed and report.when in ("setup", "call"):
        report.sections.append(("stack logs (last lines of each process)", factory.log_tails()))
    return report


# ---- reports of pytest-xdist workers ----------------------------------------------------------------------
# `make test` runs the suite on two workers (pytest-xdist, a file per worker at a time). A worker's terminal output
# is not shown, so the fault suite's figures travel to the controller in the worker's output and are printed here.


def pytest_sessionstart(session: pytest.Session) -> None:
    """Once per run (not in each pytest-xdist worker): remove the vhosts killed runs left on this broker."""
    if hasattr(session.config, "workerinput"):
        return
    url = os.environ.get("RABBITMQ_URL") or DEFAULT_RABBITMQ_URL
    if not rabbitmq_reachable(url):
        return  # the `rabbitmq_url` fixture says so, in the tests that need it
    try:
        left = VirtualHosts(url).remove_abandoned(TEST_VHOST_PREFIX)
    except VhostUnavailable as error:
        note = f"RabbitMQ vhosts left by killed test runs not looked for: {error}"
    else:
        note = f"removed {len(left)} RabbitMQ vhosts left by killed test runs" if left else ""
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if note and reporter is not None:
        reporter.write_line(note)


WORKER_FIGURES: list[dict[str, object]] = []


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: object, error: object) -> None:
    figures = getattr(node, "workeroutput", {}).get("fault_figures")
    if figures:
        WORKER_FIGURES.append(figures)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    for figures in WORKER_FIGURES:
        terminalreporter.section(f"fault suite figures ({figures['title']})")
        for line in figures["lines"]:  # type: ignore[attr-defined]
            terminalreporter.write_line(str(line))


# ---- session services ------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def mongodb_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    configured = os.environ.get("MONGODB_URL")
    if configured:
        yield configured
        return
    server = SecantusServer(tmp_path_factory.mktemp("secantusdb")).start()
    try:
        yield server.url
    finally:
        server.stop()


@pytest.fixture(scope="session")
def rabbitmq_url() -> str:
    url = os.environ.get("RABBITMQ_URL") or DEFAULT_RABBITMQ_URL
    if not rabbitmq_reachable(url):
        pytest.fail(unreachable_message(url), pytrace=False)
    return url


@pytest.fixture(scope="session")
def virtual_hosts(rabbitmq_url: str) -> Iterator[VirtualHosts]:
    hosts = VirtualHosts(rabbitmq_url)
    # A broker allowed too few open files hangs the run part-way instead of failing it: said before the first test.
    try:
        limit = hosts.open_files_limit()
    except VhostUnavailable:
        limit = None  # the management API did not answer: the vhost the first test asks for says why
    problem = open_files_problem(limit, rabbitmq_url)
    if problem is not None:
        pytest.fail(problem, pytrace=False)
    yield hosts
    hosts.wait_for_deletes()


# ---- per-test isolation ----------------------------------------------------------------------------------


@pytest.fixture
def mongodb_database(request: pytest.FixtureRequest, mongodb_url: str) -> Iterator[str]:
    name = database_name_for(request.node.name)
    yield name
    drop_database(mongodb_url, name)


@pytest.fixture
def rabbitmq_vhost_url(request: pytest.FixtureRequest, virtual_hosts: VirtualHosts) -> Iterator[str]:
    vhost = vhost_name_for(request.node.name)
    try:
        url = virtual_hosts.create(vhost)
    except VhostUnavailable as error:
        pytest.fail(f"cannot create a RabbitMQ virtual host for this test: {error}", pytrace=False)
    yield url
    virtual_hosts.delete(vhost, wait=False)


@pytest.fixture
def isolation(rabbitmq_vhost_url: str, mongodb_url: str, mongodb_database: str) -> Isolation:
    return Isolation(rabbitmq_url=rabbitmq_vhost_url, mongodb_url=mongodb_url, mongodb_database=mongodb_database)


# ---- the running system ----------------------------------------------------------------------------------


@pytest.fixture
def start_stack(request: pytest.FixtureRequest, isolation: Isolation, tmp_path: Path) -> Iterator[StackFactory]:
    factory = StackFactory(tmp_path / "run", isolation)
    request.node.stash[STACKS] = factory
    yield factory
    factory.stop_all()


@pytest.fixture
def stack(request: pytest.FixtureRequest) -> Stack:
    """The whole system: the test's own, or, in a module that sets `SHARE_STACK = True`, the module's one stack
    (started for its first test, stopped after its last; a failing test's report still shows its logs)."""
    if getattr(request.module, "SHARE_STACK", False):
        factory: StackFactory = request.getfixturevalue("module_stacks")
        request.node.stash[STACKS] = factory
        return factory.stacks[0]
    return request.getfixturevalue("start_stack")()


# ---- one stack for a module ------------------------------------------------------------------------------
# Starting the system costs 10-25 s of two busy cores; a module whose tests each work with merchants, customers and
# invoices of their own shares one (`SHARE_STACK = True`): its own vhost and database, as a test's.


@pytest.fixture(scope="module")
def module_stacks(
    request: pytest.FixtureRequest,
    virtual_hosts: VirtualHosts,
    mongodb_url: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[StackFactory]:
    name = request.module.__name__.rsplit(".", 1)[-1]
    with own_isolation(name, virtual_hosts, mongodb_url) as isolation:
        factory = StackFactory(tmp_path_factory.mktemp(name) / "run", isolation)
        try:
            factory.start()
            yield factory
        finally:
            factory.stop_all()
