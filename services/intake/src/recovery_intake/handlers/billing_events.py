"""A billing system's webhook delivery: verified against the account, then applied once as the recovery request,
paid-elsewhere or cancel it stands for (through `RecoveryIntake.accept`, the path of `POST /v2/payments/recovery`).

Two doors, one handler: `POST /v2/webhooks/recovery/...` (http/billing_webhooks.py) and the `billing.event`
message a deployment's own ingress publishes (`BillingEvents.billing_event`); both verify the billing system's
signature or credentials and apply an event once under the same key, whichever door it came through."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import replace
from datetime import datetime
from typing import Any, Protocol

import structlog

from recovery_contracts.api.connector_accounts import ConnectorType
from recovery_contracts.api.recovery import RecoveryAction, RecoveryPaymentsCreate
from recovery_contracts.envelope import Envelope, MessageType, envelope_for
from recovery_contracts.messages import BillingEventReceived, RecoveryRequested
from recovery_intake import metrics
from recovery_intake.dependencies import Document, IntakeAdapters
from recovery_intake.domain.billing_events import (
    STRIPEBILLING_REFERENCE,
    WEBHOOK_CONNECTORS,
    BillingEvent,
    payment_account_for,
    stop_request,
    stripe_billing_event,
    stripe_invoice_owed,
    stripe_recovery_request,
)
from recovery_intake.domain.chargebee_events import (
    chargebee_invoice_owed,
    chargebee_recovery_request,
    chargebee_site,
    parse_chargebee_event,
    verify_basic_auth,
)
from recovery_intake.domain.deliveries import (
    EventRefused,
    ProviderApiError,
    RefusalKind,
    check_handed_on,
    check_webhook_account,
    sealed_api_key,
    sealed_basic_auth,
    sealed_webhook_secret,
)
from recovery_intake.domain.intent import Intent
from recovery_intake.domain.recurly_events import (
    declined_invoice_id,
    parse_recurly_event,
    recurly_api_base,
    recurly_recovery_request,
    verify_recurly_signature,
)
from recovery_intake.domain.rejection import Rejection
from recovery_intake.domain.stripe_events import verified_stripe_event
from recovery_intake.handlers.recovery import CancelDeferred, CancelWaiting, RecoveryIntake
from recovery_runtime.bus import AlreadyApplied, MessageRejected
from recovery_runtime.secrets import SecretBox
from recovery_runtime.topology import ConsumerQueue

log = structlog.get_logger(__name__)

# The consumer name deliveries are recorded under (the inbox and the intents' applied ids).
CONSUMER = "intake.billing-webhook"


class InvoiceReader(Protocol):
    async def invoice(self, api_key: str, invoice_id: str) -> dict[str, Any]: ...


class ChargebeeInvoiceReader(Protocol):
    async def invoice(self, site: str, api_key: str, invoice_id: str) -> dict[str, Any] | None: ...


class TransactionReader(Protocol):
    async def transaction(self, base_url: str, api_key: str, transaction_id: str) -> dict[str, Any]: ...


# How one billing system's delivery is read: the verified event, and the recovery request a payment failure makes.
ReadEvent = Callable[
    [Document, str, bytes, Mapping[str, str], datetime], Awaitable[tuple[BillingEvent, RecoveryPaymentsCreate | None]]
]


class BillingEvents:
    def __init__(
        self,
        adapters: IntakeAdapters,
        box: SecretBox,
        recovery: RecoveryIntake,
        stripe: InvoiceReader,
        recurly: TransactionReader,
        chargebee: ChargebeeInvoiceReader,
    ) -> None:
        self._profiles = adapters.profiles
        self._accounts = adapters.connector_accounts
        self._intents = adapters.intents
        self._unit_of_work = adapters.unit_of_work
        self._clock = adapters.clock
        self._box = box
        self._recovery = recovery
        self._stripe = stripe
        self._recurly = recurly
        self._chargebee_api = chargebee
        self._readers: dict[str, ReadEvent] = {
            "stripebilling": self._stripe_event,
            "chargebee": self._chargebee,
            "recurly": self._recurly_event,
        }

    async def billing_event(self, envelope: Envelope[BillingEventReceived], queue: ConsumerQueue) -> None:
        """The broker's door: a refusal is dead-lettered with its reason, a duplicate acknowledged as one; an
        unreadable billing system API raises, so the message is tried again after a pause, and a cancel the
        payment's fence defers waits (`CancelWaiting`) until the attempt has settled."""
        handed_on = envelope.payload
        if not envelope.merchant_id or not envelope.profile_id:
            raise MessageRejected("billing.event needs merchant_id and profile_id in the envelope")
        try:
            outcome, _ = await self.delivery(
                envelope.merchant_id,
                envelope.profile_id,
                handed_on.connector_account_id,
                handed_on.body.encode(),
                {name.lower(): value for name, value in handed_on.headers.items()},
                received_at=handed_on.received_at,
                connector=handed_on.connector.value,
            )
        except EventRefused as refused:
            raise MessageRejected(f"{refused.kind.value}: {refused.reason}") from refused
        except CancelDeferred as deferred:
            raise CancelWaiting(deferred) from deferred  # the HTTP door's 409: here a wait for the attempt
        if outcome == "duplicate":
            raise AlreadyApplied(envelope.message_id)

    async def delivery(
        self,
        merchant_id: str,
        profile_id: str,
        account_id: str,
        payload: bytes,
        headers: Mapping[str, str],
        *,
        received_at: datetime | None = None,
        connector: str | None = None,
    ) -> tuple[str, str | None]:
        """What became of the delivery (`applied`, `duplicate` or `ignored`) and the payment it applied to;
        EventRefused when refused, ProviderApiError when the billing system's API did not answer (nothing stored
        either way). `received_at`: when an ingress received it (it came through the broker's door, and is refused
        when handed on too late; else it is the HTTP door's, received now); `connector`: the billing system the
        deliverer says it is from (else the account's). Every delivery is counted by billing system, door and
        outcome (`recovery_billing_events_total`)."""
        door = "http" if received_at is None else "broker"
        system, outcome = connector or "unknown", "error"
        try:
            if received_at is not None:
                check_handed_on(received_at, self._clock.now())
            profile, account = await self._billing_account(merchant_id, profile_id, account_id, connector)
            system = account["connector_name"]
            read = self._readers[system]
            event, request = await read(account, account_id, payload, headers, received_at or self._clock.now())
            outcome, payment_id = await self._settle(merchant_id, profile, account_id, event, request)
            return outcome, payment_id
        except EventRefused as refused:
            outcome = f"refused_{refused.kind.value}"
            raise
        except ProviderApiError as error:
            outcome = "unavailable"
            log.warning("billing_event.unavailable", billing_system=system, door=door, error=str(error))
            raise
        except CancelDeferred:
            outcome = "deferred"
            raise
        finally:
            metrics.BILLING_EVENTS.labels(system, door, outcome).inc()

    async def _billing_account(
        self, merchant_id: str, profile_id: str, account_id: str, connector: str | None
    ) -> tuple[Document, Document]:
        """The profile and the billing account a delivery is addressed to; EventRefused when either is not one."""
        profile = await self._profiles.get(merchant_id, profile_id)
        if profile is None:
            raise EventRefused(RefusalKind.NOT_FOUND, f"no profile {profile_id} of merchant {merchant_id}")
        found = await self._accounts.get(merchant_id, account_id)
        named = (found or {}).get("connector_name")
        expected = connector or (named if named in WEBHOOK_CONNECTORS else " or ".join(sorted(WEBHOOK_CONNECTORS)))
        billing = ConnectorType.BILLING_PROCESSOR
        return profile, check_webhook_account(found, account_id, profile_id, str(expected), billing)

    async def _settle(
        self,
        merchant_id: str,
        profile: Document,
        account_id: str,
        event: BillingEvent,
        request: RecoveryPaymentsCreate | None,
    ) -> tuple[str, str | None]:
        """Applies a verified event: a payment failure's recovery request, or the stop (paid elsewhere, voided) of
        the recovery its invoice has; an event about nothing this system handles is ignored."""
        if event.action is None or event.invoice_id is None:
            log.info("billing_event.ignored", event_type=event.event_type, event_id=event.event_id)
            return "ignored", None
        if request is None:
            existing = await self._intent_of(merchant_id, event.invoice_id)
            if existing is None:
                log.info("billing_event.no_recovery", event_type=event.event_type, invoice_id=event.invoice_id)
                return "ignored", None
            request = stop_request(existing.snapshot, event.action)
        return await self._apply(merchant_id, profile, account_id, event, request)

    async def _stripe_event(
        self, account: Document, account_id: str, payload: bytes, headers: Mapping[str, str], received_at: datetime
    ) -> tuple[BillingEvent, RecoveryPaymentsCreate | None]:
        """The verified event, and the recovery request a payment failure makes (the invoice re-read)."""
        secret = self._box.open(sealed_webhook_secret(account))
        event = stripe_billing_event(
            verified_stripe_event(headers.get("stripe-signature"), payload, secret, received_at)
        )
        if event.action is not RecoveryAction.SCHEDULE_FAILED_PAYMENT or event.invoice_id is None:
            return event, None
        invoice = await self._stripe.invoice(self._box.open(sealed_api_key(account)), event.invoice_id)
        if not stripe_invoice_owed(invoice):
            log.info("billing_event.invoice_not_owed", invoice_id=event.invoice_id, status=invoice.get("status"))
            return replace(event, action=None), None
        payment_account = payment_account_for(account, STRIPEBILLING_REFERENCE)
        request = stripe_recovery_request(invoice, billing_account_id=account_id, payment_account_id=payment_account)
        return event, request

    async def _chargebee(
        self, account: Document, account_id: str, payload: bytes, headers: Mapping[str, str], received_at: datetime
    ) -> tuple[BillingEvent, RecoveryPaymentsCreate | None]:
        """The authenticated event, and the recovery request a payment failure makes (from its content, with the
        invoice as read at the account's site: an invoice no longer owed leaves the event ignored)."""
        username, password = sealed_basic_auth(account)
        verify_basic_auth(headers.get("authorization"), self._box.open(username), self._box.open(password))
        event, content = parse_chargebee_event(payload)
        if event.action is not RecoveryAction.SCHEDULE_FAILED_PAYMENT or event.invoice_id is None:
            return event, None
        invoice = await self._chargebee_invoice(account, event.invoice_id, content)
        if not chargebee_invoice_owed(invoice):
            status = None if invoice is None else invoice.get("status")
            log.info("billing_event.invoice_not_owed", invoice_id=event.invoice_id, status=status)
            return replace(event, action=None), None
        content = {**content, "invoice": invoice}
        reference = (content.get("transaction") or {}).get("gateway_account_id")
        payment_account = payment_account_for(account, reference)
        request = chargebee_recovery_request(content, billing_account_id=account_id, payment_account_id=payment_account)
        return event, request

    async def _chargebee_invoice(
        self, account: Document, invoice_id: str, content: dict[str, Any]
    ) -> dict[str, Any] | None:
        """The invoice as Chargebee has it now, read with the account's API key at its site; an account without
        a site (`record_back_url`) is checked on the event's own copy of the invoice only (as it was when the
        payment failed), logged as unchecked."""
        site = chargebee_site(account)
        if site is None:
            log.warning("billing_event.invoice_unchecked", invoice_id=invoice_id, reason="the account has no site")
            copy = content.get("invoice")
            # An event naming its invoice only by the transaction's `linked_invoices` has no copy to check.
            return copy if isinstance(copy, dict) else {"id": invoice_id, "status": "payment_due"}
        api_key = self._box.open(sealed_api_key(account))
        return await self._chargebee_api.invoice(site, api_key, invoice_id)

    async def _recurly_event(
        self, account: Document, account_id: str, payload: bytes, headers: Mapping[str, str], received_at: datetime
    ) -> tuple[BillingEvent, RecoveryPaymentsCreate | None]:
        """The verified event, and the recovery request a payment failure makes (its transaction read at the
        account's Recurly API base); a transaction that is not a declined invoice payment leaves it ignored."""
        secret = self._box.open(sealed_webhook_secret(account))
        verify_recurly_signature(headers.get("recurly-signature"), payload, secret, received_at)
        event = parse_recurly_event(payload)
        if event.action is not RecoveryAction.SCHEDULE_FAILED_PAYMENT or event.transaction_id is None:
            return event, None
        api_key = self._box.open(sealed_api_key(account))
        transaction = await self._recurly.transaction(recurly_api_base(account), api_key, event.transaction_id)
        invoice_id = declined_invoice_id(transaction)
        if invoice_id is None:
            return event, None  # no invoice: ignored
        payment_account = payment_account_for(account, (transaction.get("payment_gateway") or {}).get("id"))
        request = recurly_recovery_request(
            transaction, billing_account_id=account_id, payment_account_id=payment_account
        )
        return replace(event, invoice_id=invoice_id), request

    async def _apply(
        self, merchant_id: str, profile: Document, account_id: str, event: BillingEvent, request: RecoveryPaymentsCreate
    ) -> tuple[str, str | None]:
        consumed = envelope_for(
            MessageType.RECOVERY_REQUESTED,
            RecoveryRequested(request=request),
            correlation_id=request.merchant_reference_id,
            merchant_id=merchant_id,
            profile_id=profile["_id"],
            message_id=event.message_id(account_id),
        )
        try:
            intent = await self._recovery.accept(merchant_id, profile, request, consumed=consumed, consumer=CONSUMER)
        except AlreadyApplied:
            log.info("billing_event.duplicate", event_id=event.event_id)
            return "duplicate", None
        except CancelDeferred:
            raise  # not a refusal: 409 over HTTP (the billing system delivers it again), a wait over the broker
        except Rejection as rejection:
            raise EventRefused(RefusalKind.INVALID, rejection.describe()) from rejection
        log.info("billing_event.applied", event_type=event.event_type, payment_id=intent.payment_id)
        return "applied", intent.payment_id

    async def _intent_of(self, merchant_id: str, invoice_id: str) -> Intent | None:
        return await self._unit_of_work.apply(lambda tx: self._intents.by_reference(merchant_id, invoice_id, tx))
