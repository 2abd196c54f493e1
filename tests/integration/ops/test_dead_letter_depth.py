"""The dead-letter depth probe reads each DLQ's backlog from the broker without changing anything."""

from __future__ import annotations

from faststream.rabbit import RabbitBroker
from prometheus_client import REGISTRY

from recovery_runtime.metrics import DeadLetterDepthProbe
from recovery_runtime.topology import DEAD_LETTER, QUEUES, declare_topology, queues_of


async def test_probe_sets_the_gauge_per_dead_letter_queue(rabbitmq_vhost_url: str) -> None:
    broker = RabbitBroker(rabbitmq_vhost_url)
    await broker.connect()
    try:
        await declare_topology(broker)
        queue = QUEUES["executor.execute-retry"]
        for _ in range(2):
            await broker.publish(b"{}", exchange=DEAD_LETTER, routing_key=queue.name, persist=True)
        probe = DeadLetterDepthProbe(broker, [q.dead_letter_queue for q in queues_of("executor")])
        depths = await probe.read_once()
        assert depths[queue.dead_letter_queue] == 2
        assert all(depth == 0 for name, depth in depths.items() if name != queue.dead_letter_queue)
        value = REGISTRY.get_sample_value("recovery_dead_letter_depth", {"queue": queue.dead_letter_queue})
        assert value == 2
    finally:
        await broker.stop()
