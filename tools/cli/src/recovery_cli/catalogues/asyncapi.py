"""The AsyncAPI document: every exchange, routing key, queue and message of the engine's RabbitMQ topology, from
what FastStream knows of the services' subscribers and what recovery_runtime.topology declares."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pydantic.json_schema import models_json_schema

from recovery_cli.catalogues.services import build, services
from recovery_contracts.envelope import MessageType, kind_of
from recovery_contracts.messages import envelope_model
from recovery_runtime.topology import DEAD_LETTER, QUEUES, ConsumerQueue, exchange_for

if TYPE_CHECKING:
    from faststream.rabbit import RabbitExchange

    from recovery_runtime.service import Service

VERSION = "0.1.0"
AMQP_BINDING_VERSION = "0.3.0"
REJECTION_HEADERS = "x-rejection-reason (why it was rejected) and x-original-queue"


def _message_schemas() -> tuple[dict[MessageType, dict[str, Any]], dict[str, Any]]:
    """Each message type's envelope schema as a $ref, and every definition under #/components/schemas."""
    refs, definitions = models_json_schema(
        [(envelope_model(message_type), "validation") for message_type in MessageType],
        ref_template="#/components/schemas/{model}",
    )
    by_type = {message_type: refs[(envelope_model(message_type), "validation")] for message_type in MessageType}
    return by_type, definitions.get("$defs", {})


def _exchange_binding(exchange: RabbitExchange) -> dict[str, Any]:
    return {
        "name": exchange.name,
        "type": exchange.type.value,
        "durable": exchange.durable,
        "autoDelete": False,
        "vhost": "/",
    }


def _message(message_type: MessageType, payload_ref: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": message_type.value,
        "title": f"{message_type.value} ({kind_of(message_type).value})",
        "summary": f"Envelope of a {message_type.value} {kind_of(message_type).value}",
        "contentType": "application/json",
        "correlationId": {
            "description": "The payment id, where the message concerns one",
            "location": "$message.header#/correlation_id",
        },
        "payload": payload_ref,
        "bindings": {"amqp": {"messageType": message_type.value, "bindingVersion": AMQP_BINDING_VERSION}},
    }


def _queue_extensions(queue: ConsumerQueue, owner: str) -> dict[str, Any]:
    return {
        "x-service": owner,
        "x-exchange": _exchange_binding(queue.exchange),
        "x-routing-key": queue.routing_key,
        "x-queue-type": "quorum",
        "x-queue-arguments": queue.arguments(),
        "x-dead-letter-queue": queue.dead_letter_queue,
    }


def asyncapi_document() -> dict[str, Any]:
    """One AsyncAPI 3.0 document for the four services: what FastStream knows of every subscriber, with the
    envelope schemas (our subscribers take raw bytes, so FastStream sees no payload type), the exchanges, the
    routing keys, the dead-letter queues and the publish side added from recovery_runtime.topology."""
    from faststream.specification import AsyncAPI

    built = [(entry.name, build(entry)) for entry in services()]
    spec = AsyncAPI(
        *[service.broker for _, service in built],
        title="Revenue recovery engine: messages",
        version=VERSION,
        description=(
            "Every exchange, routing key, queue and message of the engine's RabbitMQ topology. Messages are "
            "JSON envelopes (recovery_contracts.envelope.Envelope); events go to the topic exchange "
            "recovery.events, commands to the direct exchange recovery.commands, routing key = message type. "
            "Rejected messages go to <queue>.dlq through recovery.dead-letter."
        ),
        schema_version="3.0.0",
    ).to_specification()
    document: dict[str, Any] = spec.to_jsonable()
    owners = {queue: name for name, service in built for queue in _subscribed_queues(service)}
    schema_refs, definitions = _message_schemas()

    messages: dict[str, Any] = {
        message_type.value: _message(message_type, schema_refs[message_type]) for message_type in MessageType
    }
    channels: dict[str, Any] = document.get("channels", {})
    operations: dict[str, Any] = document.get("operations", {})

    for name, channel in channels.items():
        queue = QUEUES[name]
        message_type = queue.message_type
        channel["description"] = (
            f"Queue {queue.name} ({owners.get(name, '?')}): {message_type.value} messages from exchange "
            f"{queue.exchange.name}, routing key {queue.routing_key}; rejected ones go to {queue.dead_letter_queue}."
        )
        channel["messages"] = {"SubscribeMessage": {"$ref": f"#/components/messages/{message_type.value}"}}
        channel.update(_queue_extensions(queue, owners.get(name, "?")))
        operations[name]["summary"] = f"{owners.get(name, '?')} consumes {message_type.value} from {queue.name}"

    for queue in QUEUES.values():
        channels[queue.dead_letter_queue] = {
            "address": queue.name,
            "description": (
                f"Dead letters of {queue.name}: bound to exchange {DEAD_LETTER.name} with routing key "
                f"{queue.name}. Messages the consumer rejected (headers {REJECTION_HEADERS}) and those RabbitMQ "
                "dead-lettered past the delivery limit. Replayed by the operator (docs/operations.md)."
            ),
            "messages": {"DeadLetter": {"$ref": f"#/components/messages/{queue.message_type.value}"}},
            "bindings": {
                "amqp": {
                    "is": "queue",
                    "queue": {
                        "name": queue.dead_letter_queue,
                        "durable": True,
                        "exclusive": False,
                        "autoDelete": False,
                        "vhost": "/",
                    },
                    "bindingVersion": AMQP_BINDING_VERSION,
                }
            },
            "x-exchange": _exchange_binding(DEAD_LETTER),
            "x-routing-key": queue.name,
            "x-queue-type": "quorum",
        }

    for message_type in MessageType:
        exchange = exchange_for(message_type)
        channel_id = f"{exchange.name}:{message_type.value}"
        consumers = sorted(q.name for q in QUEUES.values() if q.message_type is message_type)
        channels[channel_id] = {
            "address": message_type.value,
            "description": (
                f"{message_type.value} published to exchange {exchange.name} with routing key {message_type.value}; "
                f"queued for: {', '.join(consumers) or 'no consumer queue yet'}."
            ),
            "messages": {"Envelope": {"$ref": f"#/components/messages/{message_type.value}"}},
            "bindings": {
                "amqp": {
                    "is": "routingKey",
                    "exchange": _exchange_binding(exchange),
                    "bindingVersion": AMQP_BINDING_VERSION,
                }
            },
        }
        operations[f"publish:{message_type.value}"] = {
            "action": "send",
            "channel": {"$ref": f"#/channels/{channel_id}"},
            "summary": f"Publish {message_type.value}",
            "description": (
                "Persistent, with publisher confirms, mandatory; AMQP message_id = envelope message_id, "
                "type = message type, correlation_id = payment id."
            ),
            "messages": [{"$ref": f"#/channels/{channel_id}/messages/Envelope"}],
            "bindings": {
                "amqp": {
                    "cc": [message_type.value],
                    "deliveryMode": 2,
                    "mandatory": True,
                    "bindingVersion": AMQP_BINDING_VERSION,
                }
            },
        }

    document["channels"] = channels
    document["operations"] = operations
    document["components"] = {"messages": messages, "schemas": definitions}
    return document


def _subscribed_queues(service: Service) -> list[str]:
    names = []
    for subscriber in service.broker.subscribers:
        queue = getattr(subscriber, "queue", None)
        if queue is not None and queue.name in QUEUES:
            names.append(queue.name)
    return names
