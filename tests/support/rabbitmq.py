"""RabbitMQ for tests: reachability, and one virtual host per test (see recovery_cli.stack.vhosts for why)."""

from __future__ import annotations

from recovery_cli.stack import rabbitmq_reachable
from recovery_cli.stack.infrastructure import broker_address, redact
from recovery_cli.stack.vhosts import VhostUnavailable, VirtualHosts, open_files_problem, vhost_name

TEST_VHOST_PREFIX = "test-"


def unreachable_message(url: str) -> str:
    host, port = broker_address(url)
    return (
        f"RabbitMQ is not reachable at {host}:{port} (RABBITMQ_URL={redact(url)}). The integration, e2e and "
        "fault tests need a real broker: start one (`tools/local-rabbitmq ensure`, which `make test` runs; "
        "`.ci/run` installs and starts it) or point RABBITMQ_URL at one."
    )


def vhost_name_for(test_name: str) -> str:
    return vhost_name(TEST_VHOST_PREFIX, test_name)


__all__ = [
    "TEST_VHOST_PREFIX",
    "VhostUnavailable",
    "VirtualHosts",
    "open_files_problem",
    "rabbitmq_reachable",
    "unreachable_message",
    "vhost_name_for",
]
