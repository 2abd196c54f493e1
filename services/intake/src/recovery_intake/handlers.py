"""Intake's use cases: accept a recovery (from HTTP or the broker) and follow payment outcomes."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import structlog
from pymongo.errors import DuplicateKeyError

from recovery_contracts.api.connector_accounts import ConnectorType
from recovery_contracts.api.errors import ApiError
from recovery_contracts.api.recovery import RecoveryAction, RecoveryPaymentsCreate
from recovery_contracts.envelope import Envelope, MessageType
from recovery_contracts.ids import new_payment_id
from recovery_contracts.messages import (
    PaymentFailed,
    PaymentSucceeded,
    RecoveryRequested,
    RecoveryScheduled,
    RecoveryUpdated,
)
from recovery_contracts.payments import IntentStatus
from recovery_contracts.recovery import RecoveryPayment, build_payment_object
from recovery_intake import metrics
from recovery_intake.adapters.repository import IntakeRepository
from recovery_intake.domain.recovery import RecoveryRefused, build_snapshot, check_schedulable, merge_request
from recovery_intake.domain.rejection import Rejection
from recovery_runtime.bus import AlreadyApplied, MessageRejected
from recovery_runtime.clock import Clock
from recovery_runtime.topology import ConsumerQueue
from recovery_runtime.unit_of_work import (
    OUTBOX_FIELD,
    UnitOfWork,
    Transaction,
    applied_key,
    mark_applied,
    not_applied,
    push_applied,
    was_applied,
)

log = structlog.get_logger(__name__)


class RecoveryIntake:
    def __init__(
        self,
        repository: IntakeRepository,
        store: UnitOfWork,
        clock: Clock,
        *,
        cell_id: str,
        monitoring_threshold_seconds: int,
    ) -> None:
        self._repository = repository
        self._store = store
        self._clock = clock
        self._cell = cell_id
        self._monitoring_threshold = monitoring_threshold_seconds

    async def accept(
        self,
        merchant_id: str,
        profile: dict[str, Any],
        request: RecoveryPaymentsCreate,
        *,
        consumed: Envelope[Any] | None = None,
        consumer: str | None = None,
    ) -> dict[str, Any]:
        """Get or create the payment intent for the invoice; schedule its recovery, or apply the action to it."""
        try:
            check_schedulable(request)
        except RecoveryRefused as refused:
            raise Rejection(ApiError.INVALID_REQUEST_DATA, message=str(refused)) from refused
        if request.action is RecoveryAction.INVALID_ACTION:
            raise Rejection(
                ApiError.NOT_SUPPORTED,
                message="action invalid_action cannot be applied to an invoice (see docs/retry-engine.md)",
            )
        billing = await self._account(
            merchant_id,
            profile,
            request.billing_merchant_connector_id,
            ConnectorType.BILLING_PROCESSOR,
            "billing_merchant_connector_id",
        )
        payment_account = await self._account(
            merchant_id,
            profile,
            request.payment_merchant_connector_id,
            ConnectorType.PAYMENT_PROCESSOR,
            "payment_merchant_connector_id",
        )
        now = self._clock.now()
        payment_id = new_payment_id(self._cell)
        snapshot = build_snapshot(
            request,
            payment_id=payment_id,
            merchant_id=merchant_id,
            profile=profile,
            billing_account=billing,
            payment_account=payment_account,
            now=now,
            monitoring_threshold_seconds=self._monitoring_threshold,
        )

        cause = consumed.message_id if consumed else None
        applied = applied_key(consumed, str(consumer)) if consumed is not None else None

        async def create(tx: Transaction) -> dict[str, Any]:
            # The common case, a new invoice: one insert carrying the intent, its `recovery.scheduled` (embedded
            # outbox) and the consumed message's id. The unique (merchant, reference) index refuses it when the
            # invoice has an intent already.
            intent = _intent_document(snapshot, now, request.action)
            if request.action is RecoveryAction.SCHEDULE_FAILED_PAYMENT:
                intent["scheduled"] = True
                tx.emit(_scheduled(snapshot, cause))
                intent[OUTBOX_FIELD] = tx.embed(self._repository.intents.name, intent["_id"], now)
            if applied is not None:
                mark_applied(intent, applied)
            await self._repository.intents.insert_one(intent)
            return intent

        async def get_or_create(tx: Transaction) -> dict[str, Any]:
            existing = await self._repository.intent_by_reference(
                merchant_id, request.merchant_reference_id, tx.session
            )
            if existing is not None:
                if applied is not None and was_applied(existing, applied):
                    raise AlreadyApplied(applied)
                return await self._update(existing, request, snapshot, now, tx, cause)
            intent = _intent_document(snapshot, now, request.action)
            if request.action is RecoveryAction.SCHEDULE_FAILED_PAYMENT:
                intent["scheduled"] = True
                tx.emit(_scheduled(snapshot, cause))
            await self._repository.intents.insert_one(intent, session=tx.session)
            return intent

        try:
            intent = await self._store.write(create)
        except DuplicateKeyError:
            intent = await self._store.apply(get_or_create, consumed=consumed, consumer=consumer)
        log.info("recovery.accepted", payment_id=intent["_id"], new=intent["_id"] == payment_id)
        metrics.RECOVERY_REQUESTS.labels(
            "broker" if consumed else "http", "new" if intent["_id"] == payment_id else "existing"
        ).inc()
        return intent

    async def _update(
        self,
        intent: dict[str, Any],
        request: RecoveryPaymentsCreate,
        incoming: RecoveryPayment,
        now: datetime,
        tx: Transaction,
        cause: str | None,
    ) -> dict[str, Any]:
        """A later request for an invoice that already has an intent: fold it in and tell the scheduler and the
        executor (`recovery.updated`). A paid or cancelled invoice is never reopened: such requests are recorded."""
        action = request.action
        status = IntentStatus(intent["status"])
        intent.setdefault("requests", []).append(
            {"at": now, "action": action.value, "connector_transaction_id": request.connector_transaction_id}
        )
        intent["modified_at"] = now
        current = RecoveryPayment.model_validate(intent["snapshot"])
        added: tuple[str, ...] = ()
        if status in FINAL or action is RecoveryAction.NO_ACTION:
            pass
        elif action is RecoveryAction.SCHEDULE_FAILED_PAYMENT:
            seen = intent.setdefault("billing_transactions", _known_transactions(current))
            merged, added = merge_request(current, incoming, seen)
            if request.connector_transaction_id and request.connector_transaction_id not in seen:
                seen.append(request.connector_transaction_id)
            changed = merged != current or status is not IntentStatus.FAILED
            intent["snapshot"] = merged.model_dump(mode="json")
            intent["status"] = IntentStatus.FAILED.value
            if not intent.get("scheduled"):
                intent["scheduled"] = True
                tx.emit(_scheduled(merged, cause))
            elif changed:
                self._emit_update(intent, merged, action, added, tx, cause)
        else:
            intent["status"] = ACTION_STATUS[action].value
            if intent.get("scheduled") and status is not ACTION_STATUS[action]:
                self._emit_update(intent, current, action, added, tx, cause)
        await self._repository.intents.replace_one({"_id": intent["_id"]}, intent, session=tx.session)
        log.info("recovery.updated", action=action.value, status=intent["status"], tokens_added=list(added))
        return intent

    @staticmethod
    def _emit_update(
        intent: dict[str, Any],
        payment: RecoveryPayment,
        action: RecoveryAction,
        added: tuple[str, ...],
        tx: Transaction,
        cause: str | None,
    ) -> None:
        intent["version"] = intent.get("version", 0) + 1
        tx.emit(
            Envelope[RecoveryUpdated](
                type=MessageType.RECOVERY_UPDATED,
                correlation_id=payment.payment_id,
                causation_id=cause,
                merchant_id=payment.merchant_id,
                profile_id=payment.profile_id,
                payload=RecoveryUpdated(
                    payment=payment,
                    action=action.value,
                    intent_status=IntentStatus(intent["status"]),
                    version=intent["version"],
                    tokens_added=added,
                ),
            )
        )

    async def _account(
        self, merchant_id: str, profile: dict[str, Any], account_id: str, kind: ConnectorType, field: str
    ) -> dict[str, Any]:
        account = await self._repository.connector_account(merchant_id, account_id)
        if account is None or account["profile_id"] != profile["_id"]:
            raise Rejection(
                ApiError.CONNECTOR_ACCOUNT_NOT_FOUND,
                reason=f"{field} {account_id!r} is not a connector account of profile {profile['_id']}",
            )
        if account["connector_type"] != kind.value:
            raise Rejection(
                ApiError.INVALID_REQUEST_DATA,
                message=f"{field} {account_id!r} is a {account['connector_type']}, not a {kind.value}",
            )
        if account.get("disabled"):
            raise Rejection(ApiError.CONNECTOR_ACCOUNT_DISABLED, reason=f"{field} {account_id!r}")
        return account

    # -- broker entry and outcome projections ---------------------------------------------------------

    async def recovery_requested(self, envelope: Envelope[RecoveryRequested], queue: ConsumerQueue) -> None:
        if not envelope.merchant_id or not envelope.profile_id:
            raise MessageRejected("recovery.requested needs merchant_id and profile_id in the envelope")
        profile = await self._repository.profile(envelope.merchant_id, envelope.profile_id)
        if profile is None:
            raise MessageRejected(f"profile {envelope.profile_id} of merchant {envelope.merchant_id} not found")
        try:
            await self.accept(
                envelope.merchant_id,
                profile,
                envelope.payload.request,
                consumed=envelope,
                consumer=queue.name,
            )
        except Rejection as rejection:
            raise MessageRejected(rejection.describe()) from rejection

    async def payment_succeeded(self, envelope: Envelope[PaymentSucceeded], queue: ConsumerQueue) -> None:
        await self._project_outcome(envelope, queue, IntentStatus.SUCCEEDED)

    async def payment_failed(self, envelope: Envelope[PaymentFailed], queue: ConsumerQueue) -> None:
        await self._project_outcome(envelope, queue, IntentStatus.FAILED)

    async def _project_outcome(self, envelope: Envelope[Any], queue: ConsumerQueue, status: IntentStatus) -> None:
        event = envelope.payload

        key = applied_key(envelope, queue.name)
        intents = self._repository.intents

        async def project(tx: Transaction) -> None:
            # One update: the applied-message check (compare-and-set on the intent's applied ids) and the change.
            final = [IntentStatus.SUCCEEDED.value]
            if status is IntentStatus.FAILED:
                final.append(IntentStatus.CANCELLED.value)
            changed = await intents.update_one(
                # A success is final: a late failure event never overwrites it, nor a cancellation.
                {"_id": event.payment_id, "status": {"$nin": final}, **not_applied(key)},
                {
                    "$set": {
                        "status": status.value,
                        "payment_object": event.payment.model_dump(mode="json"),
                        "modified_at": self._clock.now(),
                    },
                    "$push": push_applied(key),
                },
            )
            if changed.matched_count:
                return
            # Applied before, or the intent is final already (or unknown): record the id without effect, so that
            # a copy of this message counts as the duplicate it is.
            recorded = await intents.update_one(
                {"_id": event.payment_id, **not_applied(key)}, {"$push": push_applied(key)}
            )
            if recorded.matched_count == 0 and await intents.count_documents({"_id": event.payment_id}, limit=1):
                raise AlreadyApplied(envelope.message_id)

        await self._store.write(project)


# What an action makes of the intent (Hyperswitch's recovery actions; cancel_invoice is this system's addition).
ACTION_STATUS = {
    RecoveryAction.CANCEL_INVOICE: IntentStatus.CANCELLED,
    RecoveryAction.SUCCESS_PAYMENT_EXTERNAL: IntentStatus.SUCCEEDED,
    RecoveryAction.PENDING_PAYMENT: IntentStatus.PROCESSING,
}
# An invoice paid or cancelled stays so: later requests for it are recorded, never acted on.
FINAL = frozenset({IntentStatus.SUCCEEDED, IntentStatus.CANCELLED})


def _known_transactions(snapshot: RecoveryPayment) -> list[str]:
    return [snapshot.failed_connector_transaction_id] if snapshot.failed_connector_transaction_id else []


def _scheduled(snapshot: RecoveryPayment, cause: str | None) -> Envelope[RecoveryScheduled]:
    return Envelope[RecoveryScheduled](
        type=MessageType.RECOVERY_SCHEDULED,
        correlation_id=snapshot.payment_id,
        causation_id=cause,
        merchant_id=snapshot.merchant_id,
        profile_id=snapshot.profile_id,
        payload=RecoveryScheduled(payment=snapshot),
    )


def _intent_document(snapshot: RecoveryPayment, now: datetime, action: RecoveryAction) -> dict[str, Any]:
    return {
        "_id": snapshot.payment_id,
        "merchant_id": snapshot.merchant_id,
        "profile_id": snapshot.profile_id,
        "merchant_reference_id": snapshot.merchant_reference_id,
        # Hyperswitch answers a new recovery intent as `failed`: the invoice's charge failed; retries follow.
        "status": ACTION_STATUS.get(action, IntentStatus.FAILED).value,
        "action": action.value,
        "scheduled": False,
        "version": 0,
        "billing_transactions": _known_transactions(snapshot),
        "snapshot": snapshot.model_dump(mode="json"),
        "payment_object": None,
        "created_at": now,
        "modified_at": now,
    }


def payment_object_of(intent: dict[str, Any]) -> dict[str, Any]:
    """The v2 payment object for `GET /v2/payments/{id}`: the latest one an event carried, else built now."""
    if intent.get("payment_object"):
        return intent["payment_object"]
    snapshot = RecoveryPayment.model_validate(intent["snapshot"])
    return build_payment_object(
        snapshot, status=IntentStatus(intent["status"]), modified_at=intent["modified_at"], attempt=None
    ).model_dump(mode="json")
