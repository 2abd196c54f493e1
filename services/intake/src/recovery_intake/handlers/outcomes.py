"""Payment outcomes projected onto the intent: `payment.succeeded` and `payment.failed` (its status and the v2
payment object `GET /v2/payments/{id}` answers with)."""

from __future__ import annotations

from typing import Any

from recovery_contracts.envelope import Envelope
from recovery_contracts.messages import PaymentFailed, PaymentSucceeded
from recovery_contracts.payments import IntentStatus
from recovery_intake.dependencies import IntakeAdapters, OutcomeRecorded
from recovery_runtime.bus import AlreadyApplied
from recovery_runtime.topology import ConsumerQueue
from recovery_runtime.unit_of_work import applied_key


class PaymentOutcomes:
    def __init__(self, adapters: IntakeAdapters) -> None:
        self._intents = adapters.intents
        self._clock = adapters.clock

    async def payment_succeeded(self, envelope: Envelope[PaymentSucceeded], queue: ConsumerQueue) -> None:
        await self._record(envelope, queue, IntentStatus.SUCCEEDED)

    async def payment_failed(self, envelope: Envelope[PaymentFailed], queue: ConsumerQueue) -> None:
        await self._record(envelope, queue, IntentStatus.FAILED)

    async def _record(self, envelope: Envelope[Any], queue: ConsumerQueue, status: IntentStatus) -> None:
        event = envelope.payload
        recorded = await self._intents.record_outcome(
            event.payment_id,
            status,
            event.payment.model_dump(mode="json"),
            self._clock.now(),
            applied_key(envelope, queue.name),
        )
        if recorded is OutcomeRecorded.DUPLICATE:
            raise AlreadyApplied(envelope.message_id)
