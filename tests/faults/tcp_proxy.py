"""A TCP proxy on loopback that slows a connection down or cuts it off: the fault suite puts one between each
service and the database, and one between each service and the broker.

`latency` (seconds, each way, plus up to `jitter`) delays every chunk of bytes without reordering them;
`cut()` closes every open connection at once and closes each new one as soon as it is accepted, until
`restore()`. It runs its own asyncio loop in a thread, so a test drives it from plain code.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import socket
import threading
import time
from dataclasses import dataclass


@dataclass
class ProxyFigures:
    connections: int = 0
    refused_while_cut: int = 0
    cut_connections: int = 0
    bytes_forwarded: int = 0


class TcpProxy:
    def __init__(self, target_port: int, *, target_host: str = "127.0.0.1", name: str = "") -> None:
        self.name = name or f"proxy-to-{target_port}"
        self.target = (target_host, target_port)
        self.latency = 0.0
        self.jitter = 0.0
        self.figures = ProxyFigures()
        self._cut = False
        self._open: set[asyncio.StreamWriter] = set()
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._socket.bind(("127.0.0.1", 0))
        self.port: int = self._socket.getsockname()[1]
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name=self.name, daemon=True)
        self._server: asyncio.Server | None = None

    def start(self) -> TcpProxy:
        self._thread.start()
        self._call(self._serve())
        return self

    def stop(self) -> None:
        if not self._thread.is_alive():
            return
        with contextlib.suppress(Exception):
            self._call(self._close_all(stop_serving=True), timeout=10.0)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10.0)

    def slow(self, latency: float, jitter: float = 0.0) -> None:
        """Every chunk from now on waits `latency` (+ up to `jitter`) seconds in each direction."""
        self.latency, self.jitter = latency, jitter

    def cut(self) -> None:
        """Close every connection now and refuse new ones (accepted, then closed at once) until `restore`."""
        self._cut = True
        self._call(self._close_all(stop_serving=False))

    def restore(self) -> None:
        self._cut = False

    # ---- inside the proxy's loop ---------------------------------------------------------------------

    def _call(self, coroutine: object, timeout: float = 30.0) -> object:
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(timeout)  # type: ignore[arg-type]

    async def _serve(self) -> None:
        self._server = await asyncio.start_server(self._accept, sock=self._socket)

    async def _close_all(self, *, stop_serving: bool) -> None:
        if stop_serving and self._server is not None:
            self._server.close()
        for writer in list(self._open):
            self.figures.cut_connections += 1
            _abort(writer)
        self._open.clear()

    async def _accept(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        if self._cut:
            self.figures.refused_while_cut += 1
            _abort(client_writer)
            return
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection(*self.target)
        except OSError:
            _abort(client_writer)
            return
        self.figures.connections += 1
        pair = {client_writer, upstream_writer}
        self._open |= pair
        try:
            await asyncio.gather(
                self._pipe(client_reader, upstream_writer),
                self._pipe(upstream_reader, client_writer),
            )
        finally:
            self._open -= pair
            for writer in pair:
                _abort(writer)

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Forward `reader` to `writer`, each chunk at its due time; due times never go backwards (no reordering)."""
        chunks: asyncio.Queue[tuple[float, bytes] | None] = asyncio.Queue()

        async def read() -> None:
            last_due = 0.0
            try:
                while chunk := await reader.read(65536):
                    delay = self.latency + (random.uniform(0.0, self.jitter) if self.jitter else 0.0)
                    last_due = max(last_due, time.monotonic() + delay)
                    chunks.put_nowait((last_due, chunk))
            except (ConnectionError, OSError):
                pass
            finally:
                chunks.put_nowait(None)

        async def write() -> None:
            while (item := await chunks.get()) is not None:
                due, chunk = item
                if (wait := due - time.monotonic()) > 0:
                    await asyncio.sleep(wait)
                writer.write(chunk)
                await writer.drain()
                self.figures.bytes_forwarded += len(chunk)
            if writer.can_write_eof():
                writer.write_eof()

        reading = asyncio.ensure_future(read())
        try:
            await write()
        except (ConnectionError, OSError):
            pass
        finally:
            reading.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await reading


def _abort(writer: asyncio.StreamWriter) -> None:
    """Close with a reset (RST), as a dropped network path or a killed peer would look."""
    with contextlib.suppress(Exception):
        transport = writer.transport
        if not transport.is_closing():
            transport.abort()
