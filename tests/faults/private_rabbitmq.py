"""A RabbitMQ node of the fault suite's own, which it may stop and start (never the machine's shared broker)."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
import uuid
from pathlib import Path

from recovery_cli.stack import free_ports

RABBIT_BIN = Path("/usr/lib/rabbitmq/bin")
COOKIE_SOURCES = (Path("/var/lib/rabbitmq/.erlang.cookie"), Path.home() / ".erlang.cookie")


def available() -> str | None:
    """None when a private node can be started here, else why not."""
    if not (RABBIT_BIN / "rabbitmq-server").exists():
        return f"no {RABBIT_BIN}/rabbitmq-server"
    if not any(p.exists() for p in COOKIE_SOURCES):
        return "no Erlang cookie to share with rabbitmqctl"
    return None


class PrivateRabbitMQ:
    """`rabbitmq-server` with its own node name, ports, data, logs and an empty plugin list.

    Started as the current user with HOME pointing at a copy of the Erlang cookie, so rabbitmqctl can reach it;
    its data directory persists across `stop()`/`start()` (durable queues and persistent messages survive).
    """

    def __init__(self, base: Path) -> None:
        self.base = base
        self.node = f"faults-{uuid.uuid4().hex[:8]}@localhost"
        self.port, self.dist_port = free_ports(2)
        self.url = f"amqp://guest:guest@127.0.0.1:{self.port}/"
        home = base / "home"
        home.mkdir(parents=True, exist_ok=True)
        cookie = home / ".erlang.cookie"
        if not cookie.exists():
            source = next(p for p in COOKIE_SOURCES if p.exists())
            shutil.copyfile(source, cookie)
            cookie.chmod(0o400)
        (base / "enabled_plugins").write_text("[].\n")
        (base / "rabbitmq.conf").write_text(f"listeners.tcp.default = 127.0.0.1:{self.port}\n")
        (base / "rabbitmq-env.conf").write_text("")
        self.env = {
            **os.environ,
            "HOME": str(home),
            "RABBITMQ_NODENAME": self.node,
            "RABBITMQ_NODE_PORT": str(self.port),
            "RABBITMQ_DIST_PORT": str(self.dist_port),
            "RABBITMQ_MNESIA_BASE": str(base / "mnesia"),
            "RABBITMQ_LOG_BASE": str(base / "log"),
            "RABBITMQ_CONFIG_FILE": str(base / "rabbitmq.conf"),
            "RABBITMQ_CONF_ENV_FILE": str(base / "rabbitmq-env.conf"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(base / "enabled_plugins"),
            "RABBITMQ_PID_FILE": str(base / "rabbitmq.pid"),
            "ERL_EPMD_ADDRESS": "127.0.0.1",
        }

    def _ctl(self, *args: str, timeout: float = 90.0) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(RABBIT_BIN / "rabbitmqctl"), "-n", self.node, *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def start(self, timeout: float = 90.0) -> PrivateRabbitMQ:
        subprocess.run([str(RABBIT_BIN / "rabbitmq-server"), "-detached"], env=self.env, check=True, timeout=60)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._ctl("await_startup", "--timeout", "30").returncode == 0 and self._port_open():
                return self
            time.sleep(0.5)
        raise RuntimeError(f"private RabbitMQ {self.node} did not start; logs in {self.base / 'log'}")

    def vhost_url(self, vhost: str) -> str:
        """A fresh virtual host on this node (one per scenario), with guest allowed in."""
        for args in (("add_vhost", vhost), ("set_permissions", "-p", vhost, "guest", ".*", ".*", ".*")):
            done = self._ctl(*args)
            if done.returncode != 0:
                raise RuntimeError(f"rabbitmqctl {' '.join(args)} failed: {done.stdout} {done.stderr}")
        return f"{self.url}{vhost}"

    def stop(self) -> None:
        self._ctl("stop")
        deadline = time.monotonic() + 30
        while self._port_open() and time.monotonic() < deadline:
            time.sleep(0.2)
        # rabbitmqctl can fail when the machine's CLI distribution ports are all taken: end our own node by pid.
        pid_file = Path(self.env["RABBITMQ_PID_FILE"])
        if self._port_open() and pid_file.exists():
            with contextlib.suppress(ProcessLookupError, ValueError):
                os.kill(int(pid_file.read_text().strip()), signal.SIGTERM)
            deadline = time.monotonic() + 30
            while self._port_open() and time.monotonic() < deadline:
                time.sleep(0.2)

    def _port_open(self) -> bool:
        with socket.socket() as s:
            s.settimeout(0.5)
            return s.connect_ex(("127.0.0.1", self.port)) == 0
