"""Accepting a recovery request, from `POST /v2/payments/recovery` or a `recovery.requested` message."""

from __future__ import annotations

from typing import Any

import structlog

from recovery_contracts.api.connector_accounts import ConnectorType
from recovery_contracts.api.errors import ApiError
from recovery_contracts.api.recovery import RecoveryAction, RecoveryPaymentsCreate
from recovery_contracts.envelope import Envelope
from recovery_contracts.ids import new_payment_id
from recovery_contracts.messages import RecoveryCancelRequested, RecoveryRequested
from recovery_contracts.recovery import RecoveryPayment
from recovery_intake import metrics
from recovery_intake.dependencies import Document, IntakeAdapters, IntentExists
from recovery_intake.domain.intent import Intent, IntentChange
from recovery_intake.domain.recovery import build_snapshot, check_acceptable, check_connector_account
from recovery_intake.domain.rejection import Rejection
from recovery_runtime.bus import MAX_RETRY_PAUSE_SECONDS, MessageRejected, RetryLater, lease_wait
from recovery_runtime.payment_fence import FenceVerdict
from recovery_runtime.topology import ConsumerQueue
from recovery_runtime.unit_of_work import Transaction, applied_key

log = structlog.get_logger(__name__)

# Why a cancel (or a payment elsewhere) is refused for now, by what the payment's fence answered: the state passes
# within seconds.
CANCEL_DEFERRED = {
    FenceVerdict.CHARGING: (
        "processing",
        "an attempt of this payment is being charged; send the request again once it settles (seconds)",
    ),
    FenceVerdict.PAID: (
        "succeeded",
        "an attempt of this payment has just succeeded; send the request again in a moment to read its outcome",
    ),
}


# The flow a deferred request names (Hyperswitch's IR_14 wording: "could not be <flow>"), by the action closing the
# invoice.
CLOSING_FLOWS = {RecoveryAction.CANCEL_INVOICE: "cancelled", RecoveryAction.SUCCESS_PAYMENT_EXTERNAL: "marked paid"}


class CancelDeferred(Rejection):
    """The cancel (or the payment elsewhere) cannot be accepted yet (an attempt is being charged or has just
    succeeded): nothing is stored; the HTTP caller gets a 409, a message (`recovery.requested`, `billing.event`)
    waits as `CancelWaiting`. `wait_seconds`: how long until the lease held runs out at the latest (None: not known,
    PAID)."""

    def __init__(self, verdict: FenceVerdict, wait_seconds: float | None = None, flow: str = "cancelled") -> None:
        current, reason = CANCEL_DEFERRED[verdict]
        params = {"current_flow": flow, "field_name": "status", "current_value": current, "states": "failed"}
        super().__init__(ApiError.PAYMENT_UNEXPECTED_STATE, reason, **params)
        self.wait_seconds = wait_seconds


class CancelWaiting(RetryLater):
    """A deferred cancel that came as a message: not a failure but a wait for the attempt to settle, so the
    pipeline logs `message.retry_later` (no traceback), counts `retry_later`, and hands the message back.

    Back after the growing pause, cut short at the end of the charge lease held (`lease_wait`): at once when the
    attempt settles early, right at the lease's end when an executor was killed mid-charge (CHARGE_LEASE_SECONDS,
    60 s by default, at most 120, within the 155 s the growing pauses of the queue's 20 deliveries add up to).
    A payment just paid names no moment: its outcome reaches intake within moments, the growing pause covers it."""

    def __init__(self, deferred: CancelDeferred) -> None:
        wait = deferred.wait_seconds
        super().__init__(deferred.describe(), MAX_RETRY_PAUSE_SECONDS if wait is None else wait)


class InvoiceUnknown(Rejection):
    """No intent for the merchant's invoice at all (a payment not found): over HTTP the answer; a message waits for
    it instead (`InvoiceNotYetKnown`), since its `recovery.requested` may still be on its way on another queue."""

    def __init__(self) -> None:
        super().__init__(ApiError.PAYMENT_NOT_FOUND)


class InvoiceNotYetKnown(RetryLater):
    """A `recovery.cancel-requested` for an invoice intake has no intent for yet: handed back after the growing
    pause, so that a cancel overtaking its invoice's `recovery.requested` still applies once the invoice arrives;
    an invoice that never comes is dead-lettered by RabbitMQ at the queue's delivery limit (`x-death`, reason
    `delivery_limit`), about two and a half minutes later."""


class RecoveryIntake:
    def __init__(
        self, adapters: IntakeAdapters, *, cell_id: str, monitoring_threshold_seconds: int, requests_kept: int
    ) -> None:
        self._intents = adapters.intents
        self._accounts = adapters.connector_accounts
        self._profiles = adapters.profiles
        self._unit_of_work = adapters.unit_of_work
        self._clock = adapters.clock
        self._fences = adapters.payment_fences
        self._saved_cards = adapters.saved_cards
        self._cell = cell_id
        self._monitoring_threshold = monitoring_threshold_seconds
        self._requests_kept = requests_kept

    async def accept(
        self,
        merchant_id: str,
        profile: Document,
        request: RecoveryPaymentsCreate,
        *,
        consumed: Envelope[Any] | None = None,
        consumer: str | None = None,
    ) -> Intent:
        """The invoice's intent: created with its recovery scheduled, or the existing one with the request
        folded in. Rejection when the request cannot be applied (nothing is stored then)."""
        check_acceptable(request)
        if request.action in CLOSING_FLOWS:
            # Closing an invoice that has an intent needs nothing of the request but its reference: the accounts it
            # names are not looked at again (a billing account disabled since must not keep a cancel out).
            found = await self._intents.by_reference(
                merchant_id, request.merchant_reference_id, Transaction.one_document()
            )
            if found is not None:
                found.check_same_profile(profile["_id"])
                closing = request.action, request.connector_transaction_id
                return await self._close(found, *closing, by_merchant=False, consumed=consumed, consumer=consumer)
        snapshot = await self._snapshot(merchant_id, profile, request)
        new = Intent.requested(snapshot, request.action, snapshot.created_at, cause=consumed)
        applied = applied_key(consumed, str(consumer)) if consumed is not None else None

        async def add(tx: Transaction) -> Intent:
            # The common case, a new invoice: one insert (no transaction).
            await self._intents.add(new, tx, applied=applied)
            return new.intent

        try:
            intent = await self._unit_of_work.write(add)
        except IntentExists:
            # The invoice has an intent (an earlier or a concurrent request): fold this one in.
            await self._fence_if_closing(snapshot, request)
            intent = await self._unit_of_work.apply(
                lambda tx: self._fold_in(tx, new, request, applied, consumed), consumed=consumed, consumer=consumer
            )
        is_new = intent.payment_id == snapshot.payment_id
        log.info("recovery.accepted", payment_id=intent.payment_id, new=is_new)
        metrics.RECOVERY_REQUESTS.labels("broker" if consumed else "http", "new" if is_new else "existing").inc()
        return intent

    async def _fold_in(
        self,
        tx: Transaction,
        new: IntentChange,
        request: RecoveryPaymentsCreate,
        applied: str | None,
        consumed: Envelope[Any] | None,
    ) -> Intent:
        snapshot = new.intent.snapshot
        existing = await self._intents.by_reference(
            snapshot.merchant_id, snapshot.merchant_reference_id, tx, applying=applied
        )
        if existing is None:
            await self._intents.add(new, tx)
            return new.intent
        existing.check_same_profile(snapshot.profile_id)
        change = existing.rerequested(
            request.action,
            request.connector_transaction_id,
            snapshot,
            snapshot.created_at,
            cause=consumed,
            keep=self._requests_kept,
        )
        await self._intents.save(change, tx)
        emitted = [m.type.value for m in change.messages]
        log.info("recovery.updated", action=request.action.value, status=change.intent.status, emitted=emitted)
        return change.intent

    async def _fence_if_closing(self, snapshot: RecoveryPayment, request: RecoveryPaymentsCreate) -> None:
        """A cancel of an open invoice, or its payment elsewhere, leaves the tombstone on its payment's fence before
        the intent's transaction (no other write while one is open): refused while an attempt is being charged, so
        that no charge can follow an accepted cancel, nor charge an invoice already paid. Granted again when
        repeated; left behind by a transaction that then failed, it only stops charges the caller wanted stopped
        (and sends again)."""
        if request.action not in CLOSING_FLOWS:
            return
        reference = snapshot.merchant_id, snapshot.merchant_reference_id
        existing = await self._intents.by_reference(*reference, Transaction.one_document())
        if existing is not None:
            existing.check_same_profile(snapshot.profile_id)
            await self._fence_cancel(existing, request.action)

    async def _fence_cancel(self, existing: Intent, action: RecoveryAction = RecoveryAction.CANCEL_INVOICE) -> None:
        if not existing.closed_by(action):
            return
        now = self._clock.now()
        answer = await self._fences.cancel(existing.payment_id, now)
        if answer.verdict is not FenceVerdict.GRANTED:
            log.info("recovery.cancel_deferred", payment_id=existing.payment_id, fence=answer.verdict.value)
            wait = lease_wait(answer.lease_until, now) if answer.lease_until is not None else None
            raise CancelDeferred(answer.verdict, wait, CLOSING_FLOWS[action])

    async def cancel(
        self,
        merchant_id: str,
        profile_id: str,
        merchant_reference_id: str,
        *,
        consumed: Envelope[Any] | None = None,
        consumer: str | None = None,
    ) -> Intent:
        """`POST /v2/revenue-recovery/{merchant_reference_id}/cancel` (or `recovery.cancel-requested`): the
        invoice's recovery cancelled as a `cancel_invoice` request cancels it, without the invoice sent again. An
        invoice the merchant does not have on this profile is a payment not found; a paid or cancelled one answers
        as it is (the request recorded)."""
        found = await self._intents.by_reference(merchant_id, merchant_reference_id, Transaction.one_document())
        if found is None:
            raise InvoiceUnknown()
        if found.profile_id != profile_id:
            raise Rejection(ApiError.PAYMENT_NOT_FOUND)
        cancel = RecoveryAction.CANCEL_INVOICE
        return await self._close(found, cancel, None, by_merchant=True, consumed=consumed, consumer=consumer)

    async def _close(
        self,
        found: Intent,
        action: RecoveryAction,
        connector_transaction_id: str | None,
        *,
        by_merchant: bool,
        consumed: Envelope[Any] | None,
        consumer: str | None,
    ) -> Intent:
        """The invoice's intent closed by `action` (cancelled, or paid elsewhere), its fence first; once (the
        consumed message's id, or the intent's own record of it)."""
        await self._fence_cancel(found, action)
        now = self._clock.now()
        applied = applied_key(consumed, str(consumer)) if consumed is not None else None

        async def close(tx: Transaction) -> Intent:
            reference = found.merchant_id, found.merchant_reference_id
            existing = await self._intents.by_reference(*reference, tx, applying=applied)
            if existing is None:
                raise Rejection(ApiError.PAYMENT_NOT_FOUND)
            change = existing.rerequested(
                action,
                connector_transaction_id,
                existing.snapshot,
                now,
                cause=consumed,
                keep=self._requests_kept,
                by_merchant=by_merchant,
            )
            await self._intents.save(change, tx)
            return change.intent

        intent = await self._unit_of_work.apply(close, consumed=consumed, consumer=consumer)
        log.info("recovery.closed", action=action.value, payment_id=intent.payment_id, status=intent.status)
        metrics.RECOVERY_REQUESTS.labels("broker" if consumed else "http", "existing").inc()
        return intent

    async def cancel_requested(self, envelope: Envelope[RecoveryCancelRequested], queue: ConsumerQueue) -> None:
        if not envelope.merchant_id or not envelope.profile_id:
            raise MessageRejected("recovery.cancel-requested needs merchant_id and profile_id in the envelope")
        reference = envelope.payload.merchant_reference_id
        try:
            await self.cancel(
                envelope.merchant_id, envelope.profile_id, reference, consumed=envelope, consumer=queue.name
            )
        except CancelDeferred as deferred:
            raise CancelWaiting(deferred) from deferred  # applies once the attempt settled
        except InvoiceUnknown as unknown:
            raise InvoiceNotYetKnown(
                f"invoice {reference[:64]!r} is not known yet: waiting for its request"
            ) from unknown
        except Rejection as rejection:
            raise MessageRejected(f"invoice {reference[:64]!r}: {rejection.describe()}") from rejection

    async def recovery_requested(self, envelope: Envelope[RecoveryRequested], queue: ConsumerQueue) -> None:
        if not envelope.merchant_id or not envelope.profile_id:
            raise MessageRejected("recovery.requested needs merchant_id and profile_id in the envelope")
        profile = await self._profiles.get(envelope.merchant_id, envelope.profile_id)
        if profile is None:
            raise MessageRejected(f"profile {envelope.profile_id} of merchant {envelope.merchant_id} not found")
        try:
            await self.accept(
                envelope.merchant_id, profile, envelope.payload.request, consumed=envelope, consumer=queue.name
            )
        except CancelDeferred as deferred:
            raise CancelWaiting(deferred) from deferred  # not a bad message: it applies once the attempt settled
        except Rejection as rejection:
            raise MessageRejected(rejection.describe()) from rejection

    async def _snapshot(self, merchant_id: str, profile: Document, request: RecoveryPaymentsCreate) -> RecoveryPayment:
        """The request as a new recovery's snapshot, with the connector accounts it names checked and what the
        merchant's card-data uploads said of its card."""
        billing = await self._account(merchant_id, profile, request.billing_merchant_connector_id, BILLING)
        payment_account = await self._account(merchant_id, profile, request.payment_merchant_connector_id, PAYMENT)
        token = request.payment_method_data.primary_processor_payment_method_token
        saved = await self._saved_cards.get(merchant_id, request.connector_customer_id, token)
        return build_snapshot(
            request,
            payment_id=new_payment_id(self._cell),
            merchant_id=merchant_id,
            profile=profile,
            billing_account=billing,
            payment_account=payment_account,
            now=self._clock.now(),
            monitoring_threshold_seconds=self._monitoring_threshold,
            saved_card=saved,
        )

    async def _account(self, merchant_id: str, profile: Document, account_id: str, kind: ConnectorType) -> Document:
        found = await self._accounts.get(merchant_id, account_id)
        return check_connector_account(found, account_id, profile["_id"], kind)


BILLING, PAYMENT = ConnectorType.BILLING_PROCESSOR, ConnectorType.PAYMENT_PROCESSOR
