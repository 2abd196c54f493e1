"""How a service process serves and how it ends: uvicorn's server, whose SIGTERM stops the consumers at once, and
a deadline past which the process ends whatever its stop still waits for."""

from __future__ import annotations

import asyncio
import os
import socket
import sys
import threading
from pathlib import Path
from typing import Protocol

import structlog
import uvicorn

log = structlog.get_logger(__name__)

# What `Service.stop` does after the drain (cancel its loops, stop the broker, close MongoDB) takes well under a
# second when the broker and the database answer. Below compose's margin (stop_grace_period is the grace + 5 s).
STOP_MARGIN_SECONDS = 3.0
OVERRAN_EXIT_CODE = 1


class Drains(Protocol):
    async def stop_consuming(self) -> None: ...


class StopDeadline:
    """Ends the process `seconds` after `arm()`, from a thread of its own, when it is still there.

    A stop waits for the drain (bounded by the grace period) and then for the broker and the database, which a
    network fault can keep waiting on long after: a task stuck in a driver's lock ignores its cancellation, and
    `asyncio.run` waits for every task it cancels. A supervisor sends SIGKILL after its own grace period, but a
    process nobody supervises any more (its parent killed: the PDEATHSIG the stack's processes ask for is SIGTERM)
    would stay forever. Past the deadline it logs `service.stop_overran` with the tasks still waiting and where,
    and exits with status 1."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._timer: threading.Timer | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def arm(self) -> None:
        """Start counting (once; a second call changes nothing). Called from the event loop's thread."""
        if self._timer is not None:
            return
        self._loop = asyncio.get_running_loop()
        self._timer = threading.Timer(self.seconds, self._overran)
        self._timer.daemon = True
        self._timer.start()

    def _overran(self) -> None:
        log.error("service.stop_overran", seconds=self.seconds, waiting=self._waiting())
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except (OSError, ValueError):
                pass
        os._exit(OVERRAN_EXIT_CODE)

    def _waiting(self) -> list[str]:
        """The loop's unfinished tasks, each with its coroutine and the line it waits at. Read from another thread
        as the process is given up on: a set changed meanwhile is reported as such, not waited for."""
        if self._loop is None:
            return []
        try:
            tasks = list(asyncio.all_tasks(self._loop))
        except RuntimeError:
            return ["(the loop's tasks changed while being read)"]
        return sorted(f"{task.get_name()}: {awaiting(task.get_coro())}" for task in tasks)


def awaiting(coroutine: object) -> str:
    """A suspended coroutine and those it awaits, outermost first, each with the line it waits at."""
    chain: list[str] = []
    while coroutine is not None and len(chain) < 12:
        frame = getattr(coroutine, "cr_frame", None) or getattr(coroutine, "gi_frame", None)
        if frame is None:
            chain.append(getattr(coroutine, "__qualname__", type(coroutine).__qualname__))
            break
        chain.append(f"{frame.f_code.co_qualname} ({Path(frame.f_code.co_filename).name}:{frame.f_lineno})")
        coroutine = getattr(coroutine, "cr_await", None) or getattr(coroutine, "gi_yieldfrom", None)
    return " > ".join(chain)


class DrainingServer(uvicorn.Server):
    """uvicorn's server, whose shutdown (SIGTERM) also stops consuming at once instead of after the open HTTP
    requests: uvicorn waits up to the grace period for those before its lifespan calls `Service.stop`, so the
    consumers would keep taking messages meanwhile and a drain could last two grace periods, past compose's
    `stop_grace_period` and Kubernetes' `terminationGracePeriodSeconds`. The two waits now overlap. With a
    `deadline` (a service process's own server, not one a test runs in its process), the shutdown arms it."""

    def __init__(self, config: uvicorn.Config, service: Drains, deadline: StopDeadline | None = None) -> None:
        super().__init__(config)
        self._service = service
        self._deadline = deadline

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        if self._deadline is not None:
            self._deadline.arm()
        consuming = asyncio.ensure_future(self._service.stop_consuming())
        try:
            await super().shutdown(sockets)
        finally:
            await consuming
