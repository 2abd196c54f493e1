"""A service process ends within its grace period and `STOP_MARGIN_SECONDS` of SIGTERM even when its database
stops answering: nothing after the drain may keep it waiting (serving.StopDeadline). A process nobody supervises
any more (its parent killed) would otherwise stay, as a scheduler once did for hours after a killed benchmark."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from recovery_runtime.serving import OVERRAN_EXIT_CODE, STOP_MARGIN_SECONDS
from support.mongodb import SecantusServer
from support.stack import Isolation, StackFactory

GRACE = 2.0
# A loaded two-core machine: the SIGTERM's delivery, logging, exiting.
SLACK = 4.0


@pytest.fixture
def frozen_database(tmp_path: Path) -> Iterator[SecantusServer]:
    """A SecantusDB of this test's own (the session's is shared), which the test stops with SIGSTOP: its
    connections stay open and nothing answers on them, the worst a network partition does."""
    server = SecantusServer(tmp_path / "secantusdb").start()
    try:
        yield server
    finally:
        server.process.kill()  # in memory and the test's own: nothing to stop cleanly


@pytest.mark.parametrize("service", ["scheduler", "webhook-dispatcher"])
def test_sigterm_ends_a_service_whose_database_stopped_answering(
    service: str, isolation: Isolation, frozen_database: SecantusServer, tmp_path: Path
) -> None:
    own = Isolation(isolation.rabbitmq_url, frozen_database.url, isolation.mongodb_database)
    factory = StackFactory(tmp_path / "run", own)
    try:
        stack = factory.start((service,), component_env={service: {"SHUTDOWN_GRACE_SECONDS": str(GRACE)}})
        assert frozen_database.process.pid is not None
        os.kill(frozen_database.process.pid, signal.SIGSTOP)
        time.sleep(1.0)  # the service's loops are now waiting on the database

        began = time.monotonic()
        code = stack.process(service).stop(grace=60.0)
        took = time.monotonic() - began

        log = stack.process(service).log_tail(200)
        assert took < GRACE + STOP_MARGIN_SECONDS + SLACK, f"{service} took {took:.1f}s to end:\n{log}"
        assert "SIGKILL" not in log, log
        if code == OVERRAN_EXIT_CODE:
            assert "service.stop_overran" in log, log
        else:
            # uvicorn raises the SIGTERM it handled again once its shutdown is done.
            assert code in (0, -signal.SIGTERM) and "service.stopped" in log, f"exit {code}:\n{log}"
    finally:
        factory.stop_all()
