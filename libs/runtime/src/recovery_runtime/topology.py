"""The broker topology: exchanges, every consumer queue, its binding and its dead-letter queue.

Every service declares the whole topology at start-up, so an event published before its consumer first ran
is queued rather than dropped as unroutable.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

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

    def rabbit_queue(self) -> RabbitQueue:
        return RabbitQueue(
            self.name,
            queue_type=QueueType.QUORUM,
            durable=True,
            arguments=self.arguments(),
            routing_key=self.routing_key,
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
        _q("scheduler.payment-succeeded", T.PAYMENT_SUCCEEDED),
        _q("scheduler.timer-schedule", T.SCHEDULE_TIMER),
        _q("scheduler.recovery-updated", T.RECOVERY_UPDATED),
        _q("executor.execute-retry", T.EXECUTE_RETRY),
        _q("executor.payment-sync", T.PAYMENT_SYNC),
        _q("executor.record-back", T.RECORD_BACK),
        _q("executor.recovery-updated", T.RECOVERY_UPDATED),
        _q("executor.connector-account-updated", T.CONNECTOR_ACCOUNT_UPDATED),
        _q("dispatcher.payment-succeeded", T.PAYMENT_SUCCEEDED),
        _q("dispatcher.payment-failed", T.PAYMENT_FAILED),
        _q("dispatcher.deliver-webhook", T.DELIVER_WEBHOOK),
        _q("dispatcher.profile-updated", T.PROFILE_UPDATED),
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
    )
}


def queues_of(service: str) -> list[ConsumerQueue]:
    return [q for q in QUEUES.values() if q.service == service]


def deployed_queues(absent: Iterable[str] = ()) -> list[ConsumerQueue]:
    """Every consumer queue but those of the `absent` services (UNDEPLOYED_SERVICES): the queues a deployment
    declares, and so the only ones there are to read."""
    left_out = frozenset(absent)
    return [q for q in QUEUES.values() if q.service not in left_out]


async def declare_topology(broker: RabbitBroker, absent: frozenset[str] = frozenset()) -> None:
    """The exchanges, and every consumer queue with its dead-letter queue, except those of the `absent` services
    (a deployment without them: their queues would only fill)."""
    for exchange in (EVENTS, COMMANDS, DEAD_LETTER):
        await broker.declare_exchange(exchange)
    events = await broker.declare_exchange(EVENTS)
    commands = await broker.declare_exchange(COMMANDS)
    dead_letter = await broker.declare_exchange(DEAD_LETTER)
    for queue in deployed_queues(absent):
        declared = await broker.declare_queue(queue.rabbit_queue())
        await declared.bind(commands if queue.exchange is COMMANDS else events, routing_key=queue.routing_key)
        dlq = await broker.declare_queue(queue.rabbit_dead_letter_queue())
        await dlq.bind(dead_letter, routing_key=queue.name)
