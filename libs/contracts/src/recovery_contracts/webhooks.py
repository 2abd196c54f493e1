"""The outgoing webhook body, for receivers to parse: keys in Hyperswitch's order (webhook-sample.json).

Verify the signature over the raw bytes before parsing; never re-serialise a body to check it.
"""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, ConfigDict

from recovery_contracts.api.events import EventType
from recovery_contracts.disputes import DisputeObject
from recovery_contracts.payments import PaymentObject
from recovery_contracts.timestamps import UtcMillis


class WebhookContentType(StrEnum):
    PAYMENT_DETAILS = "payment_details"
    DISPUTE_DETAILS = "dispute_details"


class OutgoingWebhookContent(BaseModel):
    model_config = ConfigDict(extra="forbid")

    type: WebhookContentType
    # `payment_details`: the payment; `dispute_details`: a dispute on it (`dispute_opened`, ..., `dispute_lost`).
    object: PaymentObject | DisputeObject


class OutgoingWebhook(BaseModel):
    """`{merchant_id, event_id, event_type, content: {type, object}, timestamp}`, in wire order."""

    model_config = ConfigDict(extra="forbid")

    merchant_id: str
    event_id: str
    event_type: EventType
    content: OutgoingWebhookContent
    timestamp: UtcMillis
