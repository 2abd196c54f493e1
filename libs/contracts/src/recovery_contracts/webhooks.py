"""The outgoing webhook body, for receivers to parse: keys in Hyperswitch's order (webhook-sample.json).

Verify the signature over the raw bytes before parsing; never re-serialise a body to check it.
"""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, ConfigDict

from recovery_contracts.api.events import EventType
from recovery_contracts.payments import PaymentObject
from recovery_contracts.timestamps import UtcMillis


class WebhookContentType(StrEnum):
    PAYMENT_DETAILS = "payment_details"


class OutgoingWebhookContent(BaseModel):
    model_config = ConfigDict(extra="forbid")

    type: WebhookContentType
    object: PaymentObject


class OutgoingWebhook(BaseModel):
    """`{merchant_id, event_id, event_type, content: {type, object}, timestamp}`, in wire order."""

    model_config = ConfigDict(extra="forbid")

    merchant_id: str
    event_id: str
    event_type: EventType
    content: OutgoingWebhookContent
    timestamp: UtcMillis
