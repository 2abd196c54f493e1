"""A killed run's vhosts are removed by the next run; a run still going keeps its own (real RabbitMQ)."""

from __future__ import annotations

import asyncio
import socket
import time
import uuid
from collections.abc import Iterator

import aio_pika
import pytest

from recovery_cli.stack.infrastructure import with_vhost
from recovery_cli.stack.vhosts import MANAGEMENT_URL_VARIABLE, VirtualHosts, vhost_name


@pytest.fixture
def prefix(virtual_hosts: VirtualHosts) -> Iterator[str]:
    """A prefix of this test's own, so the sweep it runs touches no other test's vhosts."""
    own = f"test-sweep{uuid.uuid4().hex[:6]}-"
    yield own
    for vhost in virtual_hosts.listed()[0]:
        if vhost.startswith(own):
            virtual_hosts.delete(vhost)


async def test_only_old_vhosts_without_connections_are_removed(virtual_hosts: VirtualHosts, prefix: str) -> None:
    hour_ago = time.time() - 3600
    killed = vhost_name(prefix, "killed", now=hour_ago)
    running = vhost_name(prefix, "still-running", now=hour_ago)
    just_made = vhost_name(prefix, "just-made")
    for vhost in (killed, running, just_made):
        virtual_hosts.create(vhost)

    connection = await aio_pika.connect(with_vhost(virtual_hosts.broker_url, running))
    try:
        deadline = time.monotonic() + 30
        while running not in virtual_hosts.listed()[1]:  # the management API lists connections seconds late
            assert time.monotonic() < deadline, "the connection never showed in the broker's list"
            await asyncio.sleep(0.5)
        removed = virtual_hosts.remove_abandoned(prefix)
    finally:
        await connection.close()

    left = {vhost for vhost in virtual_hosts.listed()[0] if vhost.startswith(prefix)}
    assert [killed] == removed
    assert left == {running, just_made}


def test_the_broker_says_how_many_files_it_may_keep_open_through_either_door(
    virtual_hosts: VirtualHosts, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The suite refuses a broker allowed too few open files (tests/conftest.py): the figure is read from the
    management API, or, where it does not answer, from `rabbitmq-diagnostics status`; both are the broker's. Only a
    3.x broker has the file handle cache that runs out; a 4.x one says nothing through either."""
    version = virtual_hosts.management_overview()["rabbitmq_version"]
    through_management = virtual_hosts.open_files_limit()
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        monkeypatch.setenv(MANAGEMENT_URL_VARIABLE, f"http://127.0.0.1:{closed.getsockname()[1]}")
        through_diagnostics = VirtualHosts(virtual_hosts.broker_url).open_files_limit()
    if not version.startswith("3."):
        assert (through_management, through_diagnostics) == (None, None)
        return
    assert through_management is not None and through_diagnostics is not None
    # The management API says the process's limit; the cache's own keeps some of it for the node (1024: 927).
    assert 0.8 * through_management <= through_diagnostics <= through_management
