"""A known history of one merchant's recoveries, as the events the services publish, for the read side's tests.

Six payments over two UTC days (2026-01-15 and 2026-01-16), whose figures are worked out by hand in
`EXPECTED_ANALYTICS` (docs/analytics.md defines each figure):

| payment | day | profile | amount | card | algorithm | what happened |
|---|---|---|---|---|---|---|
| A | 15 | pro_one | USD 2250 | Visa | cascading | declined (insufficient_funds), recovered by attempt 2 after 1 h |
| B | 15 | pro_one | USD 1000 | Mastercard | smart | recovered by attempt 1 after 10 min |
| C | 15 | pro_one | EUR 5000 | Visa | cascading | declined (do_not_honor), declined (insufficient_funds), failed |
| D | 16 | pro_two | USD 3000 | Visa | monitoring | accepted, nothing else yet (in progress) |
| E | 16 | pro_one | USD 700 | Amex | cascading | declined (expired_card), then the invoice was cancelled |
| F | 16 | pro_one | USD 1500 | Visa | cascading | declined twice (insufficient_funds), recovered by attempt 3 at 2 h |
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from recovery_contracts.envelope import Envelope, MessageType, envelope_for
from recovery_contracts.messages import (
    AttemptOutcome,
    PaymentAttemptFailed,
    PaymentFailed,
    PaymentSucceeded,
    RecordBackState,
    RecordBackUpdated,
    RecoveryScheduled,
    RecoveryShadowPlanned,
    RecoveryUpdated,
    ShadowPlan,
    WebhookDeliveryFailed,
)
from recovery_contracts.payments import ErrorDetails, IntentStatus
from recovery_contracts.recovery import (
    AttemptSummary,
    PaymentToken,
    RecoveryPayment,
    RetryAlgorithm,
    RetrySettings,
    build_payment_object,
)

MERCHANT = "merchant_history"
DAY_ONE = datetime(2026, 1, 15, 12, 0, tzinfo=UTC)
DAY_TWO = DAY_ONE + timedelta(days=1)

# Which queue of the analytics service each event reaches (the tests publish through its exchange and key).
QUEUE_OF = {
    MessageType.RECOVERY_SCHEDULED: "analytics.recovery-scheduled",
    MessageType.RECOVERY_UPDATED: "analytics.recovery-updated",
    MessageType.PAYMENT_ATTEMPT_FAILED: "analytics.attempt-failed",
    MessageType.PAYMENT_SUCCEEDED: "analytics.payment-succeeded",
    MessageType.PAYMENT_FAILED: "analytics.payment-failed",
    MessageType.WEBHOOK_DELIVERY_FAILED: "analytics.webhook-delivery-failed",
    MessageType.WEBHOOK_ENDPOINT_DISABLED: "analytics.webhook-endpoint-disabled",
    MessageType.RECORD_BACK_UPDATED: "analytics.record-back-updated",
}


def snapshot(
    payment_id: str,
    *,
    created_at: datetime,
    amount: int,
    currency: str = "USD",
    network: str = "Visa",
    algorithm: RetryAlgorithm = RetryAlgorithm.CASCADING,
    profile_id: str = "pro_one",
    merchant_id: str = MERCHANT,
) -> RecoveryPayment:
    return RecoveryPayment(
        payment_id=payment_id,
        merchant_id=merchant_id,
        profile_id=profile_id,
        merchant_reference_id=f"invoice_{payment_id}",
        amount=amount,
        currency=currency,
        created_at=created_at,
        billing_connector_id="mca_billing",
        payment_connector_id="mca_payment",
        connector="stripe",
        connector_customer_id="cus_history",
        payment_method_type="card",
        payment_method_subtype="credit",
        tokens=(PaymentToken(token=f"pm_{payment_id}", card_network=network),),
        first_error=ErrorDetails(code="110", message="Insufficient Funds"),
        retry=RetrySettings(algorithm=algorithm),
    )


@dataclass
class Story:
    """The events of one payment, in the order they happened."""

    payment: RecoveryPayment
    events: list[Envelope[Any]] = field(default_factory=list)

    def _about(self, message_type: MessageType, body: Any, at: datetime) -> Story:
        self.events.append(
            envelope_for(
                message_type,
                body,
                correlation_id=self.payment.payment_id,
                merchant_id=self.payment.merchant_id,
                profile_id=self.payment.profile_id,
                occurred_at=at,
            )
        )
        return self

    def at(self, after: timedelta) -> datetime:
        return self.payment.created_at + after

    def accepted(self) -> Story:
        return self._about(
            MessageType.RECOVERY_SCHEDULED, RecoveryScheduled(payment=self.payment), self.at(timedelta())
        )

    def declined(self, number: int, code: str, after: timedelta) -> Story:
        body = PaymentAttemptFailed(
            payment_id=self.payment.payment_id,
            attempt_id=f"att_{self.payment.payment_id}_{number}",
            attempt_number=number,
            token=self.payment.tokens[0].token,
            outcome=AttemptOutcome.DECLINED,
            error_code="card_declined",
            decline_code=code,
            message="Your card was declined.",
            advice_code="try_again_later",
            connector_transaction_id=f"pi_{self.payment.payment_id}_{number}",
            attempted_at=self.at(after),
        )
        return self._about(MessageType.PAYMENT_ATTEMPT_FAILED, body, self.at(after))

    def recovered(self, number: int, after: timedelta) -> Story:
        at, token = self.at(after), self.payment.tokens[0].token
        body = PaymentSucceeded(
            payment_id=self.payment.payment_id,
            attempt_id=f"att_{self.payment.payment_id}_{number}",
            attempt_number=number,
            token=token,
            connector_transaction_id=f"pi_{self.payment.payment_id}_{number}",
            succeeded_at=at,
            payment=build_payment_object(
                self.payment,
                status=IntentStatus.SUCCEEDED,
                modified_at=at,
                attempt=AttemptSummary(total_retry_count=number + 1, token=token),
            ),
        )
        return self._about(MessageType.PAYMENT_SUCCEEDED, body, at)

    def failed(self, number: int, after: timedelta) -> Story:
        at = self.at(after)
        body = PaymentFailed(
            payment_id=self.payment.payment_id,
            reason="every token is hard-declined",
            business_status="FAILED_DUE_TO_HARD_DECLINE_ERROR",
            attempt_id=f"att_{self.payment.payment_id}_{number}",
            payment=build_payment_object(self.payment, status=IntentStatus.FAILED, modified_at=at, attempt=None),
        )
        return self._about(MessageType.PAYMENT_FAILED, body, at)

    def cancelled(self, after: timedelta) -> Story:
        body = RecoveryUpdated(
            payment=self.payment, action="cancel_invoice", intent_status=IntentStatus.CANCELLED, version=2
        )
        return self._about(MessageType.RECOVERY_UPDATED, body, self.at(after))

    def webhook_failed(self, after: timedelta) -> Story:
        body = WebhookDeliveryFailed(
            event_id=f"evt_{self.payment.payment_id}",
            idempotent_event_id=f"{self.payment.payment_id}_payment_failed",
            event_type="payment_failed",
            payment_id=self.payment.payment_id,
            profile_id=self.payment.profile_id,
            url="https://merchant.example/webhooks",
            reason="RETRIES_EXCEEDED: 500",
            attempts=17,
            failed_at=self.at(after),
        )
        return self._about(MessageType.WEBHOOK_DELIVERY_FAILED, body, self.at(after))

    def recorded_back(
        self, attempt: int, state: RecordBackState, after: timedelta, status_code: int | None = None,
        error: str | None = None,
    ) -> Story:  # fmt: skip
        body = RecordBackUpdated(
            payment_id=self.payment.payment_id,
            merchant_id=self.payment.merchant_id,
            profile_id=self.payment.profile_id,
            billing_connector="stripebilling",
            billing_connector_id=self.payment.billing_connector_id,
            attempt=attempt,
            state=state,
            status_code=status_code,
            error=error,
            at=self.at(after),
        )
        return self._about(MessageType.RECORD_BACK_UPDATED, body, self.at(after))

    def shadow_planned(self, after: timedelta, smart_wait: timedelta) -> Story:
        """A monitoring step: cascading would retry a minute later on the ladder, smart `smart_wait` later."""
        at, token = self.at(after), self.payment.tokens[0].token
        body = RecoveryShadowPlanned(
            payment_id=self.payment.payment_id,
            active_algorithm=RetryAlgorithm.CASCADING,
            shadows=(
                ShadowPlan(algorithm=RetryAlgorithm.CASCADING, kind="attempt", reason="cascading ladder step 1/15",
                           at=at + timedelta(minutes=1), token=token, attempt_number=1),
                ShadowPlan(algorithm=RetryAlgorithm.SMART, kind="attempt", reason="smart: insufficient_funds cadence",
                           at=at + smart_wait, token=token, attempt_number=1),
            ),
            at=at,
        )  # fmt: skip
        return self._about(MessageType.RECOVERY_SHADOW_PLANNED, body, at)


def history(merchant_id: str = MERCHANT, prefix: str = "hist") -> dict[str, Story]:
    """The six payments' stories (payment ids `<prefix>_a` ... `<prefix>_f`)."""
    minutes = lambda n: timedelta(minutes=n)  # noqa: E731

    def pay(letter: str, **kwargs: Any) -> Story:
        return Story(snapshot(f"{prefix}_{letter}", merchant_id=merchant_id, **kwargs)).accepted()

    return {
        "A": pay("a", created_at=DAY_ONE, amount=2250)
        .declined(1, "insufficient_funds", minutes(5))
        .recovered(2, minutes(60)),
        "B": pay("b", created_at=DAY_ONE, amount=1000, network="Mastercard", algorithm=RetryAlgorithm.SMART).recovered(
            1, minutes(10)
        ),
        "C": pay("c", created_at=DAY_ONE, amount=5000, currency="EUR")
        .declined(1, "do_not_honor", minutes(5))
        .declined(2, "insufficient_funds", minutes(65))
        .failed(2, minutes(66))
        .webhook_failed(minutes(600)),
        "D": pay("d", created_at=DAY_TWO, amount=3000, algorithm=RetryAlgorithm.MONITORING, profile_id="pro_two"),
        "E": pay("e", created_at=DAY_TWO, amount=700, network="Amex")
        .declined(1, "expired_card", minutes(5))
        .cancelled(minutes(30)),
        "F": pay("f", created_at=DAY_TWO, amount=1500)
        .declined(1, "insufficient_funds", minutes(5))
        .declined(2, "insufficient_funds", minutes(65))
        .recovered(3, minutes(120)),
    }


def all_events(stories: dict[str, Story]) -> list[Envelope[Any]]:
    return [event for story in stories.values() for event in story.events]


# Worked out by hand from the table above (docs/analytics.md defines each figure), for 2026-01-15..2026-01-16.
EXPECTED_ANALYTICS: dict[str, Any] = {
    "merchant_id": MERCHANT,
    "profile_id": None,
    "from_date": "2026-01-15",
    "to_date": "2026-01-16",
    "payments_total": 6,
    "payments_recovered": 3,  # A, B, F
    "payments_failed": 1,  # C
    "payments_in_progress": 1,  # D
    "payments_cancelled": 1,  # E
    "recovery_rate": 0.75,  # 3 recovered of the 4 finished (E, cancelled, is neither)
    "recovered_amount": {"USD": 4750},  # 2250 + 1000 + 1500; C's EUR failed
    "payments_disputed_lost": 0,  # no dispute lost, nor open, in this history
    "disputed_lost_amount": {},
    "payments_disputed_open": 0,
    "disputed_open_amount": {},
    "attempts_per_recovered_payment": 2.0,  # (2 + 1 + 3) / 3
    "time_to_recover": {"p50": 3600.0, "p90": 7200.0},  # of 600, 3600, 7200 s (nearest rank)
    "by_decline_class": {"do_not_honor": 1, "expired_card": 1, "insufficient_funds": 4},  # A1, C2, F1, F2
    "by_card_network": {
        "Amex": {"payments": 1, "recovered": 0, "declines": 1},
        "Mastercard": {"payments": 1, "recovered": 1, "declines": 0},
        "Visa": {"payments": 4, "recovered": 2, "declines": 5},  # A, C, D, F; A1, C1, C2, F1, F2
    },
    "by_attempt_number": {"1": 1, "2": 1, "3": 1},  # B, A, F
    "by_algorithm": {
        "cascading": {"payments": 4, "recovered": 2, "declines": 6},  # A, C, E, F; A1, C1, C2, E1, F1, F2
        "monitoring": {"payments": 1, "recovered": 0, "declines": 0},
        "smart": {"payments": 1, "recovered": 1, "declines": 0},
    },
    "daily": [
        {
            "date": "2026-01-15",
            "payments_total": 3,
            "payments_recovered": 2,
            "payments_failed": 1,
            "payments_in_progress": 0,
            "recovered_amount": {"USD": 3250},
            "payments_disputed_lost": 0,
            "disputed_lost_amount": {},
            "payments_disputed_open": 0,
            "disputed_open_amount": {},
        },
        {
            "date": "2026-01-16",
            "payments_total": 3,
            "payments_recovered": 1,
            "payments_failed": 0,
            "payments_in_progress": 1,
            "recovered_amount": {"USD": 1500},
            "payments_disputed_lost": 0,
            "disputed_lost_amount": {},
            "payments_disputed_open": 0,
            "disputed_open_amount": {},
        },
    ],
}
