"""Readiness probes: how the supervisor knows a process it started is ready to serve."""

from __future__ import annotations

import os
import random
import socket
from dataclasses import dataclass
from pathlib import Path
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


# Where chosen ports come from: below the kernel's ephemeral range, from this port up.
_CHOSEN_PORTS_FROM = 10_000
_EPHEMERAL_RANGE = Path("/proc/sys/net/ipv4/ip_local_port_range")
# A slice of that range of this process's own (`LOW-HIGH`): processes choosing ports side by side (the test
# suite's workers) then never hand out the same one.
PORT_RANGE_VARIABLE = "RECOVERY_PORT_RANGE"
# Every port this process handed out, never handed out again (until half the range went): a port chosen for a
# process that is down for a moment (a restart) is not given to another.
_HANDED_OUT: set[int] = set()


def _ephemeral_start() -> int:
    """The first port the kernel hands out for a bind to port 0 (Linux's default range starts at 32768)."""
    try:
        return int(_EPHEMERAL_RANGE.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32_768


def port_range() -> tuple[int, int]:
    """Where `free_ports` chooses: below the kernel's ephemeral range, within `RECOVERY_PORT_RANGE` when set."""
    low, high = _CHOSEN_PORTS_FROM, _ephemeral_start() - 1
    given = os.environ.get(PORT_RANGE_VARIABLE, "")
    if given:
        try:
            first, last = (int(part) for part in given.split("-", 1))
        except ValueError as error:
            raise ValueError(f"{PORT_RANGE_VARIABLE}={given!r}: expected LOW-HIGH, e.g. 10000-20999") from error
        low, high = max(low, first), min(high, last)
        if low > high:
            raise ValueError(f"{PORT_RANGE_VARIABLE}={given!r} leaves no port below the ephemeral range")
    return low, high


def free_ports(count: int, host: str = "127.0.0.1") -> list[int]:
    """`count` distinct ports nothing listens on right now, for processes that bind them later.

    Chosen at random below the kernel's ephemeral range (within `RECOVERY_PORT_RANGE` when set), each checked by
    binding it (every socket stays open until all are chosen): a port handed out by bind-to-0 (a test's in-process
    server, a client's source port) can then never be the one chosen, and taken by it before our process binds. A
    port this process handed out before is not chosen again, and processes given ranges of their own (the test
    suite's workers, tests/support/ports.py) never choose each other's.
    """
    low, high = port_range()
    if len(_HANDED_OUT) > (high - low + 1) // 2:
        _HANDED_OUT.clear()
    sockets: list[socket.socket] = []
    ports: list[int] = []
    try:
        for port in random.sample(range(low, high + 1), min(high - low + 1, max(64, count * 8))):
            if len(ports) == count:
                break
            if port in _HANDED_OUT:
                continue
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            try:
                sock.bind((host, port))
            except OSError:
                sock.close()
                continue
            sockets.append(sock)
            ports.append(port)
        if len(ports) < count:
            raise OSError(f"no {count} free ports found on {host} between {low} and {high}")
        _HANDED_OUT.update(ports)
        return ports
    finally:
        for sock in sockets:
            sock.close()


def free_port(host: str = "127.0.0.1") -> int:
    return free_ports(1, host)[0]
