"""The generated reference documents: the HTTP API (OpenAPI), the messages (AsyncAPI), the configuration.

Each is rendered from the code (intake's FastAPI app, every service's FastStream broker, the settings classes),
deterministically, so `recovery catalogues --check` can tell when a checked-in copy has drifted.
"""

from __future__ import annotations

import functools
import inspect
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic.json_schema import models_json_schema
from pydantic_core import PydanticUndefined

from recovery_cli.locations import repository_root
from recovery_contracts.envelope import MessageType, kind_of
from recovery_contracts.messages import envelope_model
from recovery_contracts.schemas import changed_files, write_files
from recovery_runtime.settings import ServiceSettings
from recovery_runtime.topology import DEAD_LETTER, QUEUES, ConsumerQueue, exchange_for

VERSION = "0.1.0"
# The broker address printed in the AsyncAPI document: a name, never the environment's URL (it may hold
# credentials, and the document must not change with the machine that generates it).
DOCUMENTED_BROKER_URL = "amqp://rabbitmq:5672/"
AMQP_BINDING_VERSION = "0.3.0"
REJECTION_HEADERS = "x-rejection-reason (why it was rejected) and x-original-queue"


@dataclass(frozen=True)
class ServiceEntry:
    """A service as the catalogues see it: its name, its settings class, how to build it."""

    name: str
    settings: type[ServiceSettings]
    build: Callable[[Any], Any]


def services() -> list[ServiceEntry]:
    from recovery_analytics.app import build_service as build_analytics
    from recovery_analytics.settings import AnalyticsSettings
    from recovery_dispatcher.app import build_service as build_dispatcher
    from recovery_dispatcher.settings import DispatcherSettings
    from recovery_executor.app import build_service as build_executor
    from recovery_executor.settings import ExecutorSettings
    from recovery_intake.app import build_service as build_intake
    from recovery_intake.settings import IntakeSettings
    from recovery_scheduler.app import build_service as build_scheduler
    from recovery_scheduler.settings import SchedulerSettings

    return [
        ServiceEntry("intake", IntakeSettings, build_intake),
        ServiceEntry("scheduler", SchedulerSettings, build_scheduler),
        ServiceEntry("executor", ExecutorSettings, build_executor),
        ServiceEntry("webhook-dispatcher", DispatcherSettings, build_dispatcher),
        ServiceEntry("analytics", AnalyticsSettings, build_analytics),
    ]


def _build(entry: ServiceEntry) -> Any:
    # model_construct: the defaults only, whatever the environment says; building connects to nothing.
    return entry.build(entry.settings.model_construct(rabbitmq_url=DOCUMENTED_BROKER_URL))


def _dump(document: Any) -> str:
    return json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


# ---- OpenAPI ------------------------------------------------------------------------------------------


def openapi_document() -> dict[str, Any]:
    intake = next(entry for entry in services() if entry.name == "intake")
    return _build(intake).app.openapi()


# ---- AsyncAPI -----------------------------------------------------------------------------------------


def _message_schemas() -> tuple[dict[MessageType, dict[str, Any]], dict[str, Any]]:
    """Each message type's envelope schema as a $ref, and every definition under #/components/schemas."""
    refs, definitions = models_json_schema(
        [(envelope_model(message_type), "validation") for message_type in MessageType],
        ref_template="#/components/schemas/{model}",
    )
    by_type = {message_type: refs[(envelope_model(message_type), "validation")] for message_type in MessageType}
    return by_type, definitions.get("$defs", {})


def _exchange_binding(exchange: Any) -> dict[str, Any]:
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

    built = [(entry.name, _build(entry)) for entry in services()]
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


def _subscribed_queues(service: Any) -> list[str]:
    names = []
    for subscriber in service.broker.subscribers:
        queue = getattr(subscriber, "queue", None)
        if queue is not None and queue.name in QUEUES:
            names.append(queue.name)
    return names


# ---- configuration reference --------------------------------------------------------------------------

_FIELD_LINE = re.compile(r"^    (\w+)\s*:")


# Settings whose class says nothing about them (a comment above a field is where this codebase says why; these
# are the self-explanatory ones). A setting with neither fails tests/unit/ops/test_catalogues.py.
_PLAIN_DESCRIPTIONS = {
    "rabbitmq_url": "The broker (its path is the virtual host).",
    "mongodb_url": "MongoDB; transactions need a replica set (a single node will do).",
    "mongodb_database": "The one logical database all services share (each owns its collections).",
    "http_host": "Address the HTTP server binds (`/healthz`, `/readyz`, `/metrics`, and intake's API).",
    "http_port": "Port of the HTTP server.",
    "service_instance_id": "This instance's name in logs and timer or delivery leases (default: the host name).",
    "log_level": "Level of the JSON logs on stdout.",
    "prefetch_count": "Unacknowledged messages the broker hands one consumer at a time.",
    "inbox_retention_days": "How long applied message ids are remembered for de-duplication (TTL index).",
    "cell_id": "Prefix of generated payment and attempt ids (Hyperswitch's cell id).",
    "secrets_master_key_id": "Id recorded with values sealed under SECRETS_MASTER_KEY.",
    "secrets_master_keys": "Several master keys while rotating: `id:key,id:key` (base64 of 32 bytes each).",
    "secrets_active_key_id": "Which of SECRETS_MASTER_KEYS seals new values.",
    "stripe_api_base": "The Stripe API the executor charges through (the CLI points it at its sandbox).",
    "timer_poll_seconds": "How often the timer loop looks for due timers (wall-clock seconds).",
    "timer_batch_size": "Timers claimed per poll.",
    "webhook_connect_timeout_seconds": "Connect timeout of one webhook delivery.",
    "webhook_total_timeout_seconds": "Total timeout of one webhook delivery (connect, send, answer).",
    "webhook_user_agent": "User-Agent header of webhook deliveries.",
}


@functools.cache
def _field_comments(cls: type) -> tuple[dict[str, str], dict[str, str]]:
    """The comment right above each field in the class body, and, for the fields under it up to a blank line
    or the next comment, the same comment as a fallback (one comment often covers a group of fields). Once per
    class: reading and tokenising a class's source is most of what rendering the catalogues costs."""
    direct: dict[str, str] = {}
    grouped: dict[str, str] = {}
    pending: list[str] = []
    current: str | None = None
    for line in inspect.getsource(cls).splitlines():
        stripped = line.strip()
        if stripped.startswith("#"):
            if current is not None:
                pending, current = [], None
            pending.append(stripped.lstrip("#").strip())
            continue
        match = _FIELD_LINE.match(line)
        if match and pending:
            current = " ".join(pending)
            pending = []
            direct[match.group(1)] = current
        elif match and current:
            grouped[match.group(1)] = current
        else:
            pending, current = [], None
    return direct, grouped


def _description(settings: type[BaseModel], name: str, field: FieldInfo) -> str:
    if field.description:
        return field.description
    models = [c for c in settings.__mro__ if isinstance(c, type) and issubclass(c, BaseModel) and c is not BaseModel]
    comments = [_field_comments(c) for c in models]
    for direct, _ in comments:
        if name in direct:
            return direct[name]
    if name in _PLAIN_DESCRIPTIONS:
        return _PLAIN_DESCRIPTIONS[name]
    for _, grouped in comments:
        if name in grouped:
            return grouped[name]
    return ""


def _default(field: FieldInfo) -> str:
    if field.default_factory is not None:
        return f"`{getattr(field.default_factory, '__name__', 'computed')}()`"
    if field.default is PydanticUndefined:
        return "required"
    if field.default is None:
        return "unset"
    if field.repr is False and field.default:
        return f"`{field.default}` (development only)"
    if field.default == "":
        return "empty"
    return f"`{field.default}`"


def _constraints(field: FieldInfo) -> str:
    parts = []
    for item in field.metadata:
        for attribute, symbol in (("gt", ">"), ("ge", ">="), ("lt", "<"), ("le", "<="), ("min_length", "length >=")):
            value = getattr(item, attribute, None)
            if value is not None:
                parts.append(f"{symbol} {value}")
        pattern = getattr(item, "pattern", None)
        if pattern:
            parts.append(f"matches `{pattern}`")
    return ", ".join(parts)


def _escape(text: str) -> str:
    return text.replace("|", "\\|")


def _rows(settings: type[ServiceSettings], names: list[str]) -> list[str]:
    rows = ["| variable | default | constraint | what |", "|---|---|---|---|"]
    for name in names:
        field = settings.model_fields[name]
        rows.append(
            f"| `{name.upper()}` | {_escape(_default(field))} | {_escape(_constraints(field))} "
            f"| {_escape(_description(settings, name, field))} |"
        )
    return rows


def configuration_document() -> str:
    common = list(ServiceSettings.model_fields)
    lines = [
        "# Configuration reference",
        "",
        "<!-- Generated by `recovery catalogues --write` from the settings classes; do not edit by hand. -->",
        "",
        "Every service reads its settings from environment variables: one variable per setting, its name in",
        "upper case, no prefix (pydantic-settings, case-insensitive). `recovery up` and `recovery demo` pass the",
        "same variables on; compose.yaml and the Kubernetes ConfigMap and Secrets set them in deployments",
        "(docs/deployment.md). Values marked *development only* must be replaced in production: with",
        "`API_KEY_ENVIRONMENT=prd` a service refuses to start while one is left at its default.",
        "",
        "## Every service",
        "",
        f"`{ServiceSettings.__module__}.{ServiceSettings.__qualname__}`",
        "",
        *_rows(ServiceSettings, common),
    ]
    for entry in services():
        own = [name for name in entry.settings.model_fields if name not in common]
        overridden = [
            name
            for name in common
            if _default(entry.settings.model_fields[name]) != _default(ServiceSettings.model_fields[name])
        ]
        lines += [
            "",
            f"## {entry.name}",
            "",
            f"`{entry.settings.__module__}.{entry.settings.__qualname__}`: the settings above, and",
            "",
            *_rows(entry.settings, overridden + own),
        ]
    return "\n".join(lines) + "\n"


# ---- files --------------------------------------------------------------------------------------------


def render() -> dict[str, str]:
    """Path relative to the repository root -> the file's text."""
    return {
        "docs/catalogue/openapi.json": _dump(openapi_document()),
        "docs/catalogue/asyncapi.json": _dump(asyncapi_document()),
        "docs/configuration.md": configuration_document(),
    }


def write(root: Path | None = None) -> list[Path]:
    return write_files(root or repository_root(), render())


def drifted(root: Path | None = None) -> list[str]:
    """The files whose checked-in text differs from what the code renders now."""
    return changed_files(root or repository_root(), render())
