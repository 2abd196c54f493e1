"""Prometheus series shared by every service; service-specific series live with their service."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

MESSAGES_PUBLISHED = Counter(
    "recovery_messages_published_total", "Messages published with a broker confirm", ["message_type"]
)
MESSAGES_CONSUMED = Counter(
    "recovery_messages_consumed_total",
    "Messages handled, by queue and result (applied, duplicate, rejected, failed)",
    ["queue", "result"],
)
MESSAGES_DEAD_LETTERED = Counter(
    "recovery_messages_dead_lettered_total", "Messages sent to a dead-letter queue with a reason", ["queue"]
)
HANDLER_SECONDS = Histogram("recovery_handler_seconds", "Time to apply one message", ["queue"])
OUTBOX_RELAYED = Counter(
    "recovery_outbox_relayed_total", "Outbox messages published by the relay after a delay (crash recovery)"
)
