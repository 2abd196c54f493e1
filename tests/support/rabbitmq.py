"""RabbitMQ for tests: reachability, and one virtual host per test so fixed queue names never collide.

Queue names are fixed by the architecture (`executor.execute-retry`, ...), so two tests that start services
against one vhost would share queues and steal each other's messages. A vhost per test isolates them fully
(exchanges, queues, dead letters) and needs no purging. It is created with `rabbitmqctl` when the broker is
on this machine (CI and development machines), else through the management HTTP API when it answers.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import uuid
from urllib.parse import urlsplit

import httpx
from recovery_cli.stack import rabbitmq_reachable, with_vhost
from recovery_cli.stack.infrastructure import LOCAL_HOSTS, broker_address, redact

VHOST_PREFIX = "test-"
MANAGEMENT_URL_VARIABLE = "RABBITMQ_MANAGEMENT_URL"


class VhostUnavailable(RuntimeError):
    """Neither rabbitmqctl nor the management API can create a virtual host here."""


def unreachable_message(url: str) -> str:
    host, port = broker_address(url)
    return (
        f"RabbitMQ is not reachable at {host}:{port} (RABBITMQ_URL={redact(url)}). The integration, e2e and "
        "fault tests need a real broker: start one (`rabbitmq-server -detached`; `.ci/run` installs and "
        "starts it) or point RABBITMQ_URL at one."
    )


def vhost_name_for(test_name: str) -> str:
    readable = re.sub(r"[^A-Za-z0-9_.-]+", "-", test_name).strip("-")[:48]
    return f"{VHOST_PREFIX}{uuid.uuid4().hex[:8]}-{readable}"


class VirtualHosts:
    """Creates and deletes virtual hosts on the broker of `broker_url`, granting its user full rights."""

    def __init__(self, broker_url: str) -> None:
        self.broker_url = broker_url
        parts = urlsplit(broker_url)
        self.user = parts.username or "guest"
        self.password = parts.password or "guest"
        host, _ = broker_address(broker_url)
        ctl = shutil.which("rabbitmqctl")
        self._ctl = ctl if ctl is not None and host in LOCAL_HOSTS else None
        self._management = os.environ.get(MANAGEMENT_URL_VARIABLE) or f"http://{host}:15672"
        self._pending_deletes: list[subprocess.Popen[bytes]] = []

    def create(self, vhost: str) -> str:
        """Create `vhost` and return the broker URL that points at it."""
        if self._ctl is not None:
            self._rabbitmqctl("add_vhost", vhost)
            self._rabbitmqctl("set_permissions", "-p", vhost, self.user, ".*", ".*", ".*")
        else:
            self._management_call("PUT", f"/api/vhosts/{_quoted(vhost)}", None)
            self._management_call(
                "PUT",
                f"/api/permissions/{_quoted(vhost)}/{_quoted(self.user)}",
                {"configure": ".*", "write": ".*", "read": ".*"},
            )
        return with_vhost(self.broker_url, vhost)

    def delete(self, vhost: str) -> None:
        """Delete in the background: nothing waits for it, and `wait_for_deletes` collects the stragglers."""
        if self._ctl is not None:
            self._pending_deletes.append(
                subprocess.Popen(
                    [self._ctl, "delete_vhost", vhost],
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            )
        else:
            self._management_call("DELETE", f"/api/vhosts/{_quoted(vhost)}", None, missing_ok=True)

    def wait_for_deletes(self, timeout: float = 60.0) -> None:
        for process in self._pending_deletes:
            try:
                process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                process.kill()
        self._pending_deletes.clear()

    def _rabbitmqctl(self, *args: str) -> None:
        assert self._ctl is not None
        done = subprocess.run(
            [self._ctl, *args], stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60
        )
        if done.returncode != 0:
            raise VhostUnavailable(
                f"`rabbitmqctl {' '.join(args)}` failed ({done.returncode}): "
                f"{done.stderr.strip() or done.stdout}"
            )

    def _management_call(self, method: str, path: str, body: object, missing_ok: bool = False) -> None:
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


def _quoted(text: str) -> str:
    from urllib.parse import quote

    return quote(text, safe="")


__all__ = ["VhostUnavailable", "VirtualHosts", "rabbitmq_reachable", "unreachable_message", "vhost_name_for"]
