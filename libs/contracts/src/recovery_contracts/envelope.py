"""The one envelope every message travels in, and the registry of message types."""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Generic, Protocol, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from recovery_contracts.ids import new_message_id


class MessageKind(StrEnum):
    EVENT = "event"
    COMMAND = "command"


class MessageType(StrEnum):
    """Every message on the broker; the value is also its routing key."""

    RECOVERY_REQUESTED = "recovery.requested"
    RECOVERY_CANCEL_REQUESTED = "recovery.cancel-requested"
    BILLING_EVENT = "billing.event"
    RECOVERY_SCHEDULED = "recovery.scheduled"
    EXECUTE_RETRY = "payment.execute-retry"
    PAYMENT_ATTEMPT_FAILED = "payment.attempt-failed"
    PAYMENT_ATTEMPT_REFUSED = "payment.attempt-refused"
    PAYMENT_SUCCEEDED = "payment.succeeded"
    PAYMENT_FAILED = "payment.failed"
    PAYMENT_CANCELLED = "payment.cancelled"
    PROFILE_UPDATED = "profile.updated"
    CONNECTOR_ACCOUNT_UPDATED = "connector-account.updated"
    DELIVER_WEBHOOK = "webhook.deliver"
    SCHEDULE_TIMER = "timer.schedule"
    RECOVERY_UPDATED = "recovery.updated"
    PAYMENT_SYNC = "payment.sync"
    RECORD_BACK = "billing.record-back"
    WEBHOOK_DELIVERY_FAILED = "webhook.delivery-failed"
    WEBHOOK_ENDPOINT_DISABLED = "webhook.endpoint-disabled"
    RECORD_BACK_UPDATED = "record-back.updated"
    RECOVERY_SHADOW_PLANNED = "recovery.shadow-planned"
    PAYMENT_DISPUTE_LOST = "payment.dispute-lost"
    PAYMENT_DISPUTE_UPDATED = "payment.dispute-updated"


COMMANDS = frozenset(
    {
        MessageType.RECOVERY_REQUESTED,
        MessageType.RECOVERY_CANCEL_REQUESTED,
        MessageType.BILLING_EVENT,
        MessageType.EXECUTE_RETRY,
        MessageType.DELIVER_WEBHOOK,
        MessageType.SCHEDULE_TIMER,
        MessageType.PAYMENT_SYNC,
        MessageType.RECORD_BACK,
    }
)


def kind_of(message_type: MessageType) -> MessageKind:
    return MessageKind.COMMAND if message_type in COMMANDS else MessageKind.EVENT


PayloadT = TypeVar("PayloadT", bound=BaseModel)


def utcnow() -> datetime:
    return datetime.now(UTC)


class Envelope(BaseModel, Generic[PayloadT]):
    """Metadata first, then the typed payload. `correlation_id` is the payment id where there is one."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    message_id: str = Field(default_factory=new_message_id, min_length=1, max_length=64)
    type: MessageType
    version: int = Field(default=1, ge=1)
    occurred_at: datetime = Field(default_factory=utcnow)
    correlation_id: str | None = Field(default=None, max_length=128)
    causation_id: str | None = Field(default=None, max_length=64)
    merchant_id: str | None = Field(default=None, max_length=64)
    profile_id: str | None = Field(default=None, max_length=64)
    payload: PayloadT


def envelope_json_schema(payload_model: type[BaseModel]) -> dict[str, Any]:
    return Envelope[payload_model].model_json_schema()  # type: ignore[valid-type]


class AboutPayment(Protocol):
    """Whatever names one payment and its owners (a recovery snapshot, a webhook event)."""

    @property
    def payment_id(self) -> str: ...

    @property
    def merchant_id(self) -> str: ...

    @property
    def profile_id(self) -> str: ...


def envelope_for(
    message_type: MessageType,
    payload: PayloadT,
    *,
    about: AboutPayment | None = None,
    caused_by: Envelope[Any] | None = None,
    causation_id: str | None = None,
    correlation_id: str | None = None,
    merchant_id: str | None = None,
    profile_id: str | None = None,
    message_id: str | None = None,
    occurred_at: datetime | None = None,
) -> Envelope[PayloadT]:
    """A message of `message_type` around `payload`, typed by the payload's model.

    With `about`, a message about that payment: correlated by its payment id, with its merchant and profile.
    With `caused_by`, the payment, merchant and profile default to the cause's and `causation_id` is the cause's
    message id: a follow-up message carries the trail of the one that caused it. `causation_id` alone names a cause
    whose envelope is not at hand. Explicit values win over `about`'s, and `about`'s over the cause's."""
    if about is not None:
        correlation_id = correlation_id if correlation_id is not None else about.payment_id
        merchant_id = merchant_id if merchant_id is not None else about.merchant_id
        profile_id = profile_id if profile_id is not None else about.profile_id
    if caused_by is not None:
        correlation_id = correlation_id if correlation_id is not None else caused_by.correlation_id
        merchant_id = merchant_id if merchant_id is not None else caused_by.merchant_id
        profile_id = profile_id if profile_id is not None else caused_by.profile_id
    metadata: dict[str, Any] = {
        "type": message_type,
        "correlation_id": correlation_id,
        "causation_id": causation_id if causation_id is not None else caused_by.message_id if caused_by else None,
        "merchant_id": merchant_id,
        "profile_id": profile_id,
        "payload": payload,
    }
    if message_id is not None:
        metadata["message_id"] = message_id
    if occurred_at is not None:
        metadata["occurred_at"] = occurred_at
    typed: type[Envelope[PayloadT]] = Envelope[type(payload)]  # type: ignore[misc,assignment]
    return typed(**metadata)
