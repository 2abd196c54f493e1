"""A payment connector's webhook delivery (Stripe): verified against the payment connector account, and a dispute
on a payment a recovery collected applied once on the payment's intent (`payment.dispute-lost` when lost,
`payment.dispute-updated` when opened, challenged, won or cancelled).

The door is `POST /v2/webhooks/{merchant_id}/{profile_id}/{connector_account_id}` (http/payment_webhooks.py). A
delivery is applied once by two keys: Stripe's event id (recorded among the intent's applied ids) and our dispute
id (kept on the intent), so neither a redelivery nor another event about the same dispute changes anything."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

import structlog

from recovery_contracts.api.connector_accounts import ConnectorName, ConnectorType
from recovery_intake import metrics
from recovery_intake.dependencies import Document, IntakeAdapters
from recovery_intake.domain.deliveries import (
    EventRefused,
    ProviderApiError,
    RefusalKind,
    check_webhook_account,
    sealed_api_key,
    sealed_webhook_secret,
)
from recovery_intake.domain.payment_disputes import DisputeReport, charged_attempt, dispute_event
from recovery_intake.domain.stripe_events import verified_stripe_event
from recovery_runtime.bus import AlreadyApplied
from recovery_runtime.secrets import SecretBox
from recovery_runtime.unit_of_work import Transaction

log = structlog.get_logger(__name__)

# The consumer name a delivery's event id is recorded under, among the intent's applied ids.
CONSUMER = "intake.payment-webhook"
PAYMENT_PROCESSOR = ConnectorType.PAYMENT_PROCESSOR


class PaymentIntentReader(Protocol):
    async def payment_intent(self, api_key: str, intent_id: str) -> dict[str, Any] | None:
        """The PaymentIntent; None when the connector has none of that id; ProviderApiError when it did not answer."""
        ...


class PaymentEvents:
    def __init__(self, adapters: IntakeAdapters, box: SecretBox, stripe: PaymentIntentReader) -> None:
        self._profiles = adapters.profiles
        self._accounts = adapters.connector_accounts
        self._intents = adapters.intents
        self._unit_of_work = adapters.unit_of_work
        self._clock = adapters.clock
        self._box = box
        self._stripe = stripe

    async def delivery(
        self, merchant_id: str, profile_id: str, account_id: str, payload: bytes, headers: Mapping[str, str]
    ) -> tuple[str, str | None]:
        """What became of the delivery (`applied`, `duplicate` or `ignored`) and the payment it is about;
        EventRefused when refused, ProviderApiError when Stripe's API did not answer (nothing stored either way: Stripe
        delivers it again). Counted by connector and outcome (`recovery_payment_connector_events_total`)."""
        outcome = "error"
        try:
            account = await self._payment_account(merchant_id, profile_id, account_id)
            secret = self._box.open(sealed_webhook_secret(account))
            event = dispute_event(
                verified_stripe_event(headers.get("stripe-signature"), payload, secret, self._clock.now())
            )
            if event.dispute is None:
                log.info("payment_event.ignored", event_type=event.event_type, event_id=event.event_id)
                outcome = "ignored"
                return outcome, None
            outcome, payment_id = await self.apply_dispute(
                merchant_id, profile_id, account, event.event_id, event.dispute
            )
            return outcome, payment_id
        except EventRefused as refused:
            outcome = f"refused_{refused.kind.value}"
            raise
        except ProviderApiError as error:
            outcome = "unavailable"
            log.warning("payment_event.unavailable", connector=ConnectorName.STRIPE.value, error=str(error))
            raise
        finally:
            metrics.PAYMENT_CONNECTOR_EVENTS.labels(ConnectorName.STRIPE.value, outcome).inc()

    async def _payment_account(self, merchant_id: str, profile_id: str, account_id: str) -> Document:
        """The merchant's profile's enabled Stripe payment connector account the URL names; EventRefused (404 for
        an account or profile that is not the merchant's, 400 for an account that cannot take the webhook)."""
        if await self._profiles.get(merchant_id, profile_id) is None:
            raise EventRefused(RefusalKind.NOT_FOUND, f"no profile {profile_id} of merchant {merchant_id}")
        found = await self._accounts.get(merchant_id, account_id)
        return check_webhook_account(found, account_id, profile_id, ConnectorName.STRIPE.value, PAYMENT_PROCESSOR)

    async def apply_dispute(
        self, merchant_id: str, profile_id: str, account: Document, event_id: str, told: DisputeReport
    ) -> tuple[str, str | None]:
        """The dispute applied on the payment its PaymentIntent was charged for (read at Stripe with the account's
        key: the event's object is not trusted for whose payment it is). Ignored, as not ours: a PaymentIntent Stripe
        does not have, one the executor did not make (no `payment_id` in its metadata), a payment this merchant's
        profile does not have, or one this recovery did not collect with that PaymentIntent (`Intent.collected_by`:
        our succeeded payment is what counts, not the PaymentIntent's status, which a dispute leaves `succeeded`)."""
        api_key = self._box.open(sealed_api_key(account))
        payment_intent = await self._stripe.payment_intent(api_key, told.connector_transaction_id)
        charged = charged_attempt(payment_intent) if payment_intent is not None else None
        found = await self._intents.get(merchant_id, charged.payment_id, profile_id) if charged else None
        if charged is None or found is None or not found.collected_by(told.connector_transaction_id):
            log.info(
                "payment_event.dispute_not_ours",
                dispute=told.connector_dispute_id,
                payment_intent=told.connector_transaction_id,
                payment_id=charged.payment_id if charged else None,
            )
            return "ignored", None
        attempt_id, reference = charged.attempt_id, found.merchant_reference_id
        applied = f"{CONSUMER}:{account['_id']}:{event_id}"

        async def apply(tx: Transaction) -> bool:
            # Read again inside the transaction: the one that changes it, the applied ids checked.
            intent = await self._intents.by_reference(merchant_id, reference, tx, applying=applied)
            if intent is None:
                raise RuntimeError(f"intent {reference!r} vanished")  # intents are never removed
            change = intent.dispute_told(
                told, attempt_id=attempt_id, merchant_connector_id=account["_id"], now=self._clock.now()
            )
            if change.intent is intent:
                return False  # nothing further than the intent keeps: told again, or by an older event
            await self._intents.save(change, tx, applied=applied)
            return True

        try:
            changed = await self._unit_of_work.apply(apply)
        except AlreadyApplied:
            changed = False
        outcome = "applied" if changed else "duplicate"
        log.info(
            f"payment_event.dispute_{outcome}",
            payment_id=found.payment_id,
            dispute=told.connector_dispute_id,
            dispute_status=told.status.value,
        )
        return outcome, found.payment_id
