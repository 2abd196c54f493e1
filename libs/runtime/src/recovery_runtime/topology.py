"""The broker topology: exchanges, every consumer queue, its binding and its dead-letter queue.

The whole topology is declared before anything is consumed or published, so an event published before its
consumer first ran is queued rather than dropped as unroutable. Either every service declares it at start-up
(DECLARE_TOPOLOGY=true, the default: one broker user with configure rights) or a deploy step does, once per
release (`recovery topology declare`), and the services only check that their part is there (passive declares,
which need no permission), so their own broker users need no configure permission (docs/security.md).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import aio_pika
from aiormq.exceptions import ChannelNotFoundEntity
from faststream.rabbit import ExchangeType, QueueType, RabbitBroker, RabbitExchange, RabbitQueue
from faststream.rabbit.schemas.queue import QuorumQueueArgs

from recovery_contracts.envelope import MessageKind, MessageType, kind_of

EVENTS = RabbitExchange("recovery.events", type=ExchangeType.TOPIC, durable=True)
COMMANDS = RabbitExchange("recovery.commands", type=ExchangeType.DIRECT, durable=True)
DEAD_LETTER = RabbitExchange("recovery.dead-letter", type=ExchangeType.DIRECT, durable=True)

# RabbitMQ 4.x defaults to 20; set it so 3.10 (no default) behaves the same and a poison message cannot loop.
DELIVERY_LIMIT = 20


def exchange_for(message_type: MessageType) -> RabbitExchange:
    return COMMANDS if kind_of(message_type) is MessageKind.COMMAND else EVENTS


@dataclass(frozen=True)
class ConsumerQueue:
    name: str
    message_type: MessageType

    @property
    def exchange(self) -> RabbitExchange:
        return exchange_for(self.message_type)

    @property
    def routing_key(self) -> str:
        return self.message_type.value

    @property
    def service(self) -> str:
        """The consuming service: the name's first part."""
        return self.name.split(".", 1)[0]

    @property
    def dead_letter_queue(self) -> str:
        return f"{self.name}.dlq"

    def arguments(self) -> QuorumQueueArgs:
        return {
            "x-delivery-limit": DELIVERY_LIMIT,
            "x-dead-letter-exchange": DEAD_LETTER.name,
            "x-dead-letter-routing-key": self.name,
            # Lossless dead-lettering (quorum queues, 3.10+): needs reject-publish overflow.
            "x-dead-letter-strategy": "at-least-once",
            "x-overflow": "reject-publish",
        }

    def rabbit_queue(self, *, declare: bool = True) -> RabbitQueue:
        """The queue as FastStream declares it; with `declare=False` a subscriber only looks it up (a passive
        declare) and binds nothing: the deploy step declared and bound it."""
        return RabbitQueue(
            self.name,
            queue_type=QueueType.QUORUM,
            durable=True,
            arguments=self.arguments(),
            routing_key=self.routing_key,
            declare=declare,
        )

    def rabbit_dead_letter_queue(self) -> RabbitQueue:
        return RabbitQueue(self.dead_letter_queue, queue_type=QueueType.QUORUM, durable=True, routing_key=self.name)


def _q(name: str, message_type: MessageType) -> ConsumerQueue:
    return ConsumerQueue(name, message_type)


T = MessageType
QUEUES: dict[str, ConsumerQueue] = {
    q.name: q
    for q in (
        _q("intake.recovery-requested", T.RECOVERY_REQUESTED),
        _q("intake.recovery-cancel-requested", T.RECOVERY_CANCEL_REQUESTED),
        _q("intake.billing-event", T.BILLING_EVENT),
        _q("intake.payment-succeeded", T.PAYMENT_SUCCEEDED),
        _q("intake.payment-failed", T.PAYMENT_FAILED),
        _q("scheduler.recovery-scheduled", T.RECOVERY_SCHEDULED),
        _q("scheduler.attempt-failed", T.PAYMENT_ATTEMPT_FAILED),
        _q("scheduler.attempt-refused", T.PAYMENT_ATTEMPT_REFUSED),
        _q("scheduler.payment-succeeded", T.PAYMENT_SUCCEEDED),
        _q("scheduler.timer-schedule", T.SCHEDULE_TIMER),
        _q("scheduler.recovery-updated", T.RECOVERY_UPDATED),
        _q("executor.execute-retry", T.EXECUTE_RETRY),
        _q("executor.payment-sync", T.PAYMENT_SYNC),
        _q("executor.record-back", T.RECORD_BACK),
        _q("executor.recovery-updated", T.RECOVERY_UPDATED),
        _q("executor.connector-account-updated", T.CONNECTOR_ACCOUNT_UPDATED),
        _q("executor.dispute-lost", T.PAYMENT_DISPUTE_LOST),
        _q("dispatcher.payment-succeeded", T.PAYMENT_SUCCEEDED),
        _q("dispatcher.payment-failed", T.PAYMENT_FAILED),
        _q("dispatcher.payment-cancelled", T.PAYMENT_CANCELLED),
        _q("dispatcher.deliver-webhook", T.DELIVER_WEBHOOK),
        _q("dispatcher.profile-updated", T.PROFILE_UPDATED),
        _q("dispatcher.dispute-lost", T.PAYMENT_DISPUTE_LOST),
        _q("dispatcher.dispute-updated", T.PAYMENT_DISPUTE_UPDATED),
        # The read side (services/analytics): a copy of every event a payment's views are folded from.
        _q("analytics.recovery-scheduled", T.RECOVERY_SCHEDULED),
        _q("analytics.recovery-updated", T.RECOVERY_UPDATED),
        _q("analytics.attempt-failed", T.PAYMENT_ATTEMPT_FAILED),
        _q("analytics.payment-succeeded", T.PAYMENT_SUCCEEDED),
        _q("analytics.payment-failed", T.PAYMENT_FAILED),
        _q("analytics.webhook-delivery-failed", T.WEBHOOK_DELIVERY_FAILED),
        _q("analytics.webhook-endpoint-disabled", T.WEBHOOK_ENDPOINT_DISABLED),
        _q("analytics.record-back-updated", T.RECORD_BACK_UPDATED),
        _q("analytics.recovery-shadow-planned", T.RECOVERY_SHADOW_PLANNED),
        _q("analytics.dispute-lost", T.PAYMENT_DISPUTE_LOST),
        _q("analytics.dispute-updated", T.PAYMENT_DISPUTE_UPDATED),
    )
}


def queues_of(service: str) -> list[ConsumerQueue]:
    return [q for q in QUEUES.values() if q.service == service]


def deployed_queues(absent: Iterable[str] = ()) -> list[ConsumerQueue]:
    """Every consumer queue but those of the `absent` services (UNDEPLOYED_SERVICES): the queues a deployment
    declares, and so the only ones there are to read."""
    left_out = frozenset(absent)
    return [q for q in QUEUES.values() if q.service not in left_out]


EXCHANGES = (EVENTS, COMMANDS, DEAD_LETTER)


async def declare_topology(broker: RabbitBroker, absent: frozenset[str] = frozenset()) -> None:
    """The exchanges, and every consumer queue with its dead-letter queue, except those of the `absent` services
    (a deployment without them: their queues would only fill)."""
    events = await broker.declare_exchange(EVENTS)
    commands = await broker.declare_exchange(COMMANDS)
    dead_letter = await broker.declare_exchange(DEAD_LETTER)
    for queue in deployed_queues(absent):
        declared = await broker.declare_queue(queue.rabbit_queue())
        await declared.bind(commands if queue.exchange is COMMANDS else events, routing_key=queue.routing_key)
        dlq = await broker.declare_queue(queue.rabbit_dead_letter_queue())
        await dlq.bind(dead_letter, routing_key=queue.name)


CHECK_CONNECT_SECONDS = 10.0


class TopologyMissing(RuntimeError):
    """Exchanges or queues a service needs are not on the broker: the deploy step has not declared them yet."""


async def missing_topology(url: str, queues: Iterable[ConsumerQueue]) -> list[str]:
    """What the broker at `url` lacks of the exchanges and of `queues` with their dead-letter queues.

    Found by passive declares, which create nothing and need no permission, on a connection of its own: a passive
    declare of something missing closes the channel it ran on, and that must never be a service's channel.
    """
    wanted = [("exchange", exchange.name) for exchange in EXCHANGES]
    for queue in queues:
        wanted += [("queue", queue.name), ("queue", queue.dead_letter_queue)]
    missing = []
    connection = await aio_pika.connect(url, timeout=CHECK_CONNECT_SECONDS)
    async with connection:
        channel = await connection.channel(publisher_confirms=False)
        for kind, name in wanted:
            try:
                if kind == "exchange":
                    await channel.get_exchange(name, ensure=True)
                else:
                    await channel.get_queue(name, ensure=True)
            except ChannelNotFoundEntity:
                missing.append(f"{kind} {name}")
                channel = await connection.channel(publisher_confirms=False)
    return missing


async def check_topology(url: str, queues: Iterable[ConsumerQueue]) -> None:
    """Raise TopologyMissing naming what is not declared yet (DECLARE_TOPOLOGY=false: the deploy step declares)."""
    missing = await missing_topology(url, queues)
    if missing:
        raise TopologyMissing(
            f"not declared on the broker: {', '.join(missing)}; the deploy step declares them "
            "(`recovery topology declare`, docs/deployment.md)"
        )
