"""RabbitMQ virtual hosts of their own for a demo or a test, so fixed queue names never meet twice.

Queue names are fixed by the architecture (`executor.execute-retry`, ...): two stacks on one vhost share
queues, and each steals the other's messages. A vhost per stack isolates exchanges, queues and dead letters
with no purging. Created through the management HTTP API ($RABBITMQ_MANAGEMENT_URL, default port 15672 of the
broker's host) when it answers: one HTTP call, where each `rabbitmqctl` call boots an Erlang VM (seconds of
CPU, and under load its distribution ports run out). `rabbitmqctl` is the fallback on the broker's machine.

A run that is killed (kill -9, a closed terminal) leaves its vhosts behind, with their queues and messages; a few
dozen of those slow a small broker down until the next run times out. So a name carries the second it was made
(`<prefix>t<unix seconds>-<random>-<label>`), and `remove_abandoned` deletes those of a prefix that are older
than a grace period and have no open connection: the vhost of a run still going always has one (its services or
its test's client), the vhost of a killed run has none.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterable
from typing import Any
from urllib.parse import quote, urlsplit

import httpx

from recovery_cli.stack.infrastructure import LOCAL_HOSTS, broker_address, with_vhost

MANAGEMENT_URL_VARIABLE = "RABBITMQ_MANAGEMENT_URL"


# A user's (configure, write, read) regular expressions on one vhost, as RabbitMQ takes them.
Permissions = tuple[str, str, str]


class VhostUnavailable(RuntimeError):
    """Neither rabbitmqctl nor the management API can create a virtual host here."""


# The benchmarks' vhosts (bench/): a killed run's are removed by the next run.
BENCH_VHOST_PREFIX = "recovery-bench-"
# How old a vhost without connections must be before `remove_abandoned` takes it for a killed run's: longer than
# any run takes between making its vhost and connecting to it.
ABANDONED_AFTER_SECONDS = 600.0
# The open files a broker must be allowed for the test suite: RabbitMQ 3.x's file handle cache gives each quorum
# queue three, a vhost of the full topology has 68 queues, and at 1024 the sixth vhost's creation (and every queue
# declaration and connection after it) waits for ever instead of failing (tools/local-rabbitmq says more).
OPEN_FILES_FLOOR = 4096


def open_files_problem(limit: int | None, broker_url: str) -> str | None:
    """What is wrong with a broker allowed `limit` open files (None: not known), or None when nothing is."""
    if limit is None or limit >= OPEN_FILES_FLOOR:
        return None
    return (
        f"the RabbitMQ at {broker_address(broker_url)[0]} may keep only {limit} files open (under "
        f"{OPEN_FILES_FLOOR}): with a few tests' vhosts alive at once it stops creating vhosts, queues and "
        "connections, and tests hang. Start it with a higher open-files limit: `tools/local-rabbitmq ensure` "
        "restarts a local one so (`make test` runs it); for another broker, raise its `ulimit -n` (about 50,000)"
    )


def vhost_name(prefix: str, label: str = "", *, now: float | None = None) -> str:
    readable = re.sub(r"[^A-Za-z0-9_.-]+", "-", label).strip("-")[:48]
    made = int(time.time() if now is None else now)
    return f"{prefix}t{made}-{uuid.uuid4().hex[:8]}" + (f"-{readable}" if readable else "")


def made_at(vhost: str, prefix: str) -> int | None:
    """The second a vhost named by `vhost_name(prefix, ...)` was made; None for any other name."""
    found = re.match(rf"{re.escape(prefix)}t(\d{{10}})-[0-9a-f]{{8}}(-|$)", vhost)
    return int(found.group(1)) if found else None


def abandoned(
    vhosts: Iterable[str], connected: set[str], prefix: str, now: float, grace: float = ABANDONED_AFTER_SECONDS
) -> list[str]:
    """The vhosts of `prefix` made more than `grace` seconds ago that no connection uses (a killed run's)."""
    old = []
    for vhost in vhosts:
        made = made_at(vhost, prefix)
        if made is not None and now - made > grace and vhost not in connected:
            old.append(vhost)
    return old


class VirtualHosts:
    """Creates and deletes virtual hosts on the broker of `broker_url`, granting its user full rights."""

    def __init__(self, broker_url: str) -> None:
        self.broker_url = broker_url
        parts = urlsplit(broker_url)
        self.user = parts.username or "guest"
        self.password = parts.password or "guest"
        host, _ = broker_address(broker_url)
        self._management = os.environ.get(MANAGEMENT_URL_VARIABLE) or f"http://{host}:15672"
        ctl = shutil.which("rabbitmqctl")
        use_ctl = ctl is not None and host in LOCAL_HOSTS and not self._management_answers()
        self._ctl = ctl if use_ctl else None
        self._pending_deletes: list[subprocess.Popen[bytes]] = []

    def _management_answers(self) -> bool:
        try:
            answer = httpx.get(f"{self._management}/api/overview", auth=(self.user, self.password), timeout=3)
        except httpx.HTTPError:
            return False
        return answer.status_code == 200

    def create(self, vhost: str) -> str:
        """Create `vhost` and return the broker URL that points at it."""
        if self._ctl is not None:
            self._rabbitmqctl("add_vhost", vhost)
            self._rabbitmqctl("set_permissions", "-p", vhost, self.user, ".*", ".*", ".*")
        else:
            self._management_call("PUT", f"/api/vhosts/{quote(vhost, safe='')}", None)
            self._management_call(
                "PUT",
                f"/api/permissions/{quote(vhost, safe='')}/{quote(self.user, safe='')}",
                {"configure": ".*", "write": ".*", "read": ".*"},
            )
        return with_vhost(self.broker_url, vhost)

    def delete(self, vhost: str, *, wait: bool = True) -> None:
        """Delete `vhost`; with `wait=False` in the background (`wait_for_deletes` collects those)."""
        if self._ctl is None:
            self._management_call("DELETE", f"/api/vhosts/{quote(vhost, safe='')}", None, missing_ok=True)
            return
        process = subprocess.Popen(
            [self._ctl, "delete_vhost", vhost],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self._pending_deletes.append(process)
        if wait:
            self.wait_for_deletes()

    def add_user(self, vhost: str, user: str, password: str, permissions: Permissions) -> str:
        """Create `user` with only `permissions` on `vhost` (no tags: no management access); the broker URL with
        the user's credentials on that vhost. For proving what a service's own broker user needs."""
        if self._ctl is not None:
            self._rabbitmqctl("add_user", user, password)
            self._rabbitmqctl("set_permissions", "-p", vhost, user, *permissions)
        else:
            self._management_call("PUT", f"/api/users/{quote(user, safe='')}", {"password": password, "tags": ""})
            configure, write, read = permissions
            self._management_call(
                "PUT",
                f"/api/permissions/{quote(vhost, safe='')}/{quote(user, safe='')}",
                {"configure": configure, "write": write, "read": read},
            )
        parts = urlsplit(with_vhost(self.broker_url, vhost))
        host = parts.netloc.rpartition("@")[2]
        return parts._replace(netloc=f"{quote(user, safe='')}:{quote(password, safe='')}@{host}").geturl()

    def delete_user(self, user: str) -> None:
        if self._ctl is not None:
            self._rabbitmqctl("delete_user", user)
        else:
            self._management_call("DELETE", f"/api/users/{quote(user, safe='')}", None, missing_ok=True)

    def open_files_limit(self) -> int | None:
        """How many files the broker's file handle cache may keep open, or None when the broker does not say or has
        no such cache (RabbitMQ 4.x took it out, rabbitmq-server#11436, and its management API may report 1024 there
        whatever the limit, #12968)."""
        if self._ctl is None:
            nodes = self._management_get("/api/nodes?columns=fd_total")
            version, total = (
                self.management_overview().get("rabbitmq_version"),
                nodes[0].get("fd_total") if nodes else None,
            )
        else:
            diagnostics = shutil.which("rabbitmq-diagnostics")
            if diagnostics is None:
                return None
            done = subprocess.run(
                [diagnostics, "status", "--formatter", "json"],
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                timeout=60,
            )
            try:
                status = json.loads(done.stdout)
                version, total = status.get("rabbitmq_version"), status["file_descriptors"]["total_limit"]
            except (ValueError, KeyError, TypeError, AttributeError):
                return None
        if total is None or not str(version or "").startswith("3."):
            return None
        return int(total)

    def management_overview(self) -> dict[str, Any]:
        """The management API's overview: the broker's version (`rabbitmq_version`) among others."""
        overview: dict[str, Any] = self._management_call("GET", "/api/overview", None).json()
        return overview

    def remove_abandoned(self, prefix: str, grace: float = ABANDONED_AFTER_SECONDS) -> list[str]:
        """Delete the vhosts of `prefix` that killed runs left (`abandoned`); the names deleted."""
        vhosts, connected = self.listed()
        old = abandoned(vhosts, connected, prefix, time.time(), grace)
        for vhost in old:
            self.delete(vhost, wait=False)
        self.wait_for_deletes()
        return old

    def listed(self) -> tuple[list[str], set[str]]:
        """The broker's vhosts, and those with an open connection (the management API's view lags by seconds)."""
        if self._ctl is not None:
            vhosts = self._rabbitmqctl("list_vhosts", "--no-table-headers", "--silent", "name").split()
            connected = set(self._rabbitmqctl("list_connections", "--no-table-headers", "--silent", "vhost").split())
            return vhosts, connected
        vhosts = [v["name"] for v in self._management_get("/api/vhosts?columns=name")]
        return vhosts, {c["vhost"] for c in self._management_get("/api/connections?columns=vhost")}

    def wait_for_deletes(self, timeout: float = 60.0) -> None:
        for process in self._pending_deletes:
            try:
                process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                process.kill()
        self._pending_deletes.clear()

    def _rabbitmqctl(self, *args: str) -> str:
        assert self._ctl is not None
        done = subprocess.run([self._ctl, *args], stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60)
        if done.returncode != 0:
            raise VhostUnavailable(
                f"`rabbitmqctl {' '.join(args)}` failed ({done.returncode}): {done.stderr.strip() or done.stdout}"
            )
        return done.stdout

    def _management_get(self, path: str) -> list[dict[str, str]]:
        response = self._management_call("GET", path, None)
        answer: list[dict[str, str]] = response.json()
        return answer

    def _management_call(self, method: str, path: str, body: object, missing_ok: bool = False) -> httpx.Response:
        try:
            response = httpx.request(
                method, f"{self._management}{path}", json=body, auth=(self.user, self.password), timeout=10
            )
        except httpx.HTTPError as error:
            raise VhostUnavailable(
                f"no rabbitmqctl for this broker and the management API at {self._management} does not "
                f"answer ({error}); set {MANAGEMENT_URL_VARIABLE} or run where rabbitmqctl reaches the broker"
            ) from error
        if response.status_code >= 300 and not (missing_ok and response.status_code == 404):
            raise VhostUnavailable(f"{method} {path}: {response.status_code} {response.text[:300]}")
        return response
