"""The two things the services stand on: RabbitMQ (checked, started if local and absent) and MongoDB."""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Callable
from urllib.parse import quote, urlsplit, urlunsplit

from recovery_cli.stack.process import StackError
from recovery_cli.stack.readiness import port_open

DEFAULT_RABBITMQ_URL = "amqp://guest:guest@127.0.0.1:5672/"
LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1"}


def broker_address(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    default_port = 5671 if parts.scheme == "amqps" else 5672
    return parts.hostname or "127.0.0.1", parts.port or default_port


def rabbitmq_reachable(url: str) -> bool:
    host, port = broker_address(url)
    return port_open(host, port)


def with_vhost(url: str, vhost: str) -> str:
    """The same broker URL pointing at another virtual host (the URL path is the vhost, percent-encoded)."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, "/" + quote(vhost, safe=""), parts.query, parts.fragment))


def redact(url: str) -> str:
    """The URL without its password, for logs and error messages."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def ensure_rabbitmq(url: str, *, start: bool, timeout: float = 120.0, say: Callable[[str], None] = print) -> bool:
    """Make sure RabbitMQ answers at `url`; returns True when this call had to start it.

    Starts a local `rabbitmq-server -detached` only when `start` is set and the URL points at this machine.
    """
    host, port = broker_address(url)
    if port_open(host, port):
        return False
    where = f"{host}:{port} (RABBITMQ_URL={redact(url)})"
    if not start or host not in LOCAL_HOSTS:
        raise StackError(
            f"RabbitMQ is not reachable at {where}. Start it (`rabbitmq-server -detached`; on Debian "
            "`apt-get install -y rabbitmq-server` first) or point RABBITMQ_URL at a running broker."
        )
    server = shutil.which("rabbitmq-server")
    if server is None:
        raise StackError(
            f"RabbitMQ is not reachable at {where} and rabbitmq-server is not installed: "
            "`apt-get update && apt-get install -y rabbitmq-server`, or set RABBITMQ_URL."
        )
    say(f"RabbitMQ not reachable at {host}:{port}: starting `rabbitmq-server -detached`")
    subprocess.run([server, "-detached"], check=False, stdin=subprocess.DEVNULL)
    deadline = time.monotonic() + timeout
    while not port_open(host, port):
        if time.monotonic() >= deadline:
            raise StackError(
                f"started rabbitmq-server but nothing listens on {host}:{port} after {timeout:.0f}s; "
                "see /var/log/rabbitmq/"
            )
        time.sleep(0.5)
    ctl = shutil.which("rabbitmqctl")
    if ctl is not None:
        # The port opens before the broker accepts work; await_startup waits for the boot to finish.
        subprocess.run(
            [ctl, "await_startup", "--timeout", str(int(timeout))],
            check=False,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
        )
    say(f"RabbitMQ is up on {host}:{port}")
    return True


def secantus_url(port: int, host: str = "127.0.0.1") -> str:
    return f"mongodb://{host}:{port}/?directConnection=true"
