"""Runs an ASGI app under uvicorn in a background thread on a loopback port: for tests and the demo."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import sys
import threading
import time
from types import TracebackType
from typing import Any

import uvicorn


class BackgroundServer:
    """`with BackgroundServer(app) as server: httpx.get(server.url + "/healthz")`.

    The socket is bound before uvicorn starts (port 0: the kernel picks a free port), so there is no race
    between finding a free port and using it.
    """

    def __init__(self, app: Any, host: str = "127.0.0.1", port: int = 0, graceful_seconds: int = 1) -> None:
        # IPPROTO_TCP explicitly: asyncio sets TCP_NODELAY only on sockets whose proto says TCP, and without it
        # every answer waits ~40 ms on Nagle and delayed ACKs.
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._socket.bind((host, port))
        self.host, self.port = self._socket.getsockname()[:2]
        config = uvicorn.Config(
            app,
            log_level="warning",
            lifespan="on",
            # A fault that holds an answer back must not hold the test run's shutdown back with it.
            timeout_graceful_shutdown=graceful_seconds,
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._run, daemon=True)
        # The server's loop and its main task, once it runs: what `stop` cancels when the server does not stop.
        self._loop: asyncio.AbstractEventLoop | None = None
        self._serving: asyncio.Task[None] | None = None
        self._cancelled = False

    def _run(self) -> None:
        # As uvicorn's `Server.run`, keeping the loop and the task; leaving the runner cancels every task left.
        with asyncio.Runner(loop_factory=self._server.config.get_loop_factory()) as runner:
            try:
                runner.run(self._serve())
            except asyncio.CancelledError:
                if not self._cancelled:
                    raise

    async def _serve(self) -> None:
        self._loop, self._serving = asyncio.get_running_loop(), asyncio.current_task()
        await self._server.serve(sockets=[self._socket])

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self, timeout: float = 10.0) -> BackgroundServer:
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive():
                raise RuntimeError("the server thread ended before it started serving")
            if time.monotonic() > deadline:
                # Told to stop as soon as its start-up ends: left running, an app still connecting (a service's
                # broker) would go on in this process after its caller gave up, and reconnect to a virtual host
                # deleted meanwhile, logging into later tests' output, as it once did.
                self.stop()
                raise TimeoutError(f"the server on {self.url} did not start within {timeout} s")
            time.sleep(0.01)
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the server, waiting up to `timeout` for its shutdown (the app's lifespan: a service's drain). One
        that outlives it is cancelled whole: left, a service waiting on a connection would go on in this process
        after its test, reconnecting to a virtual host deleted meanwhile and logging into later tests' output.
        RuntimeError if even that does not end its thread (a call that blocks the loop)."""
        self._server.should_exit = True
        self._thread.join(timeout)
        loop, serving = self._loop, self._serving
        if self._thread.is_alive() and loop is not None and serving is not None:
            print(
                f"the server on {self.url} did not stop within {timeout} s: its tasks were cancelled",
                file=sys.stderr,
            )
            self._cancelled = True
            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile: it stopped after all
                loop.call_soon_threadsafe(serving.cancel)
            self._thread.join(timeout)
        self._socket.close()
        if self._thread.is_alive():
            raise RuntimeError(f"the server on {self.url} did not stop, even cancelled, within {2 * timeout} s")

    def __enter__(self) -> BackgroundServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
