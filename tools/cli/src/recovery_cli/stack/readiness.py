"""Readiness probes: how the supervisor knows a process it started is ready to serve."""

from __future__ import annotations

import socket
from dataclasses import dataclass
from typing import Protocol

import httpx


@dataclass(frozen=True)
class ProbeResult:
    ready: bool
    detail: str


class Probe(Protocol):
    def check(self) -> ProbeResult: ...

    def describe(self) -> str: ...


@dataclass(frozen=True)
class HttpProbe:
    """Ready when GET `url` answers `expect_status`; `expect_status=None` accepts any HTTP answer."""

    url: str
    expect_status: int | None = 200
    timeout: float = 2.0

    def check(self) -> ProbeResult:
        try:
            response = httpx.get(self.url, timeout=self.timeout)
        except httpx.HTTPError as error:
            return ProbeResult(False, f"GET {self.url}: {type(error).__name__}: {error}")
        if self.expect_status is None or response.status_code == self.expect_status:
            return ProbeResult(True, f"GET {self.url}: {response.status_code}")
        return ProbeResult(False, f"GET {self.url}: {response.status_code} {response.text[:300]}")

    def describe(self) -> str:
        wanted = "any answer" if self.expect_status is None else str(self.expect_status)
        return f"GET {self.url} -> {wanted}"


@dataclass(frozen=True)
class PortProbe:
    """Ready when a TCP connection to host:port succeeds."""

    host: str
    port: int
    timeout: float = 1.0

    def check(self) -> ProbeResult:
        if port_open(self.host, self.port, self.timeout):
            return ProbeResult(True, f"tcp {self.host}:{self.port} open")
        return ProbeResult(False, f"tcp {self.host}:{self.port} refused")

    def describe(self) -> str:
        return f"tcp {self.host}:{self.port} accepts connections"


def port_open(host: str, port: int, timeout: float = 1.0) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def free_ports(count: int, host: str = "127.0.0.1") -> list[int]:
    """`count` distinct ports nothing listens on right now.

    The usual bind-to-0 trick; every socket stays open until all are chosen so the kernel cannot hand out
    the same port twice. Another program may still take one before our process binds it: a small race
    accepted in tests.
    """
    sockets = []
    try:
        for _ in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sockets.append(sock)
            sock.bind((host, 0))
        return [int(sock.getsockname()[1]) for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def free_port(host: str = "127.0.0.1") -> int:
    return free_ports(1, host)[0]
