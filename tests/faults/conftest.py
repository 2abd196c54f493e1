"""The fault suite's stacks: every process real, SecantusDB on disk (it is stopped and started), and for the
broker-restart scenario a RabbitMQ node of the suite's own. `FAULTS_ITERATIONS` (default 1) scales the kills
and the batch sizes for the long run; the figures are printed at the end of the session.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fault_harness import COMMON_ENV, COMPONENT_ENV, ITERATIONS
from figures import Figures
from private_rabbitmq import PrivateRabbitMQ, available
from tcp_proxy import TcpProxy

from recovery_cli.stack import Stack, StackConfig

FIGURES = Figures()
# The key of the figures in an xdist worker's output (read by tests/conftest.py).
WORKER_FIGURES = "fault_figures"


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not FIGURES.scenarios:
        return
    terminalreporter.section(f"fault suite figures (FAULTS_ITERATIONS={ITERATIONS})")
    for line in FIGURES.lines():
        terminalreporter.write_line(line)


def pytest_sessionfinish(session: pytest.Session) -> None:
    # Under pytest-xdist this runs in a worker: hand the figures to the controller, which prints them
    # (tests/conftest.py, `pytest_testnodedown`).
    worker_output = getattr(session.config, "workeroutput", None)
    if worker_output is not None and FIGURES.scenarios:
        worker_output[WORKER_FIGURES] = {"title": f"FAULTS_ITERATIONS={ITERATIONS}", "lines": FIGURES.lines()}


@pytest.fixture(scope="session")
def figures(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Figures]:
    yield FIGURES
    out = Path(os.environ.get("FAULTS_FIGURES_FILE", tmp_path_factory.getbasetemp() / "fault-figures.json"))
    out.write_text(json.dumps({**FIGURES.__dict__, "iterations": ITERATIONS}, indent=2))


@pytest.fixture
def fault_stack(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Any]:
    """`fault_stack(rabbitmq_url, instances=..., env=...)` starts the whole system with its own on-disk SecantusDB."""
    stacks: list[Stack] = []

    def start(
        rabbitmq_url: str,
        instances: dict[str, int] | None = None,
        env: dict[str, str] | None = None,
        component_env: dict[str, dict[str, str]] | None = None,
        ports: dict[str, int] | None = None,
    ) -> Stack:
        """`component_env` is laid over the suite's per-component settings; `ports` fixes some ports (e.g. the
        database's, for a proxy in front of it)."""
        merged = {name: dict(values) for name, values in COMPONENT_ENV.items()}
        for name, values in (component_env or {}).items():
            merged[name] = {**merged.get(name, {}), **values}
        config = StackConfig(
            run_dir=tmp_path / f"run-{len(stacks) + 1}",
            rabbitmq_url=rabbitmq_url,
            mongodb_url=None,
            mongodb_storage=str(tmp_path / "secantusdb"),
            mongodb_database="faults",
            time_scale=1000.0,
            free_ports=True,
            instances=instances or {},
            extra_env={**COMMON_ENV, **(env or {})},
            component_env=merged,
            ports=ports or {},
            readiness_timeout=120.0,
            stop_grace=10.0,
            log_level="INFO",
        )
        stack = Stack(config)
        stacks.append(stack)
        stack.start()
        return stack

    yield start
    failed = getattr(request.node, "rep_call", None)
    for stack in stacks:
        if failed is not None and failed.failed:
            print(stack.log_tails(40, roles=("service",)))
        stack.stop()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    report = yield
    setattr(item, f"rep_{report.when}", report)
    return report


@pytest.fixture
def tcp_proxies() -> Iterator[list[TcpProxy]]:
    """Proxies a test starts (append them); stopped after its stack (ask for this fixture before fault_stack)."""
    proxies: list[TcpProxy] = []
    yield proxies
    for proxy in proxies:
        proxy.stop()


@pytest.fixture(scope="session")
def private_rabbitmq(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrivateRabbitMQ]:
    """The suite's own broker: stopping it harms nobody, and the scenarios do not load the shared one."""
    why_not = available()
    if why_not is not None:
        pytest.fail(f"cannot start a private RabbitMQ node for the fault suite: {why_not}")
    node = PrivateRabbitMQ(tmp_path_factory.mktemp("rabbitmq")).start()
    try:
        yield node
    finally:
        node.stop()


@pytest.fixture
def fault_broker_url(request: pytest.FixtureRequest, private_rabbitmq: PrivateRabbitMQ) -> str:
    return private_rabbitmq.vhost_url(f"faults-{request.node.name[:40]}-{os.getpid()}")
