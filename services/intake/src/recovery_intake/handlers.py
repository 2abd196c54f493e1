"""Intake's use cases: accept a recovery (from HTTP or the broker) and follow payment outcomes."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import structlog

from recovery_contracts.api.connector_accounts import ConnectorType
from recovery_contracts.api.errors import ApiError
from recovery_contracts.api.recovery import RecoveryAction, RecoveryPaymentsCreate
from recovery_contracts.envelope import Envelope, MessageType
from recovery_contracts.ids import new_payment_id
from recovery_contracts.messages import PaymentFailed, PaymentSucceeded, RecoveryRequested, RecoveryScheduled
from recovery_contracts.payments import IntentStatus
from recovery_contracts.recovery import RecoveryPayment, build_payment_object
from recovery_intake.adapters.repository import IntakeRepository
from recovery_intake.domain.recovery import RecoveryRefused, build_snapshot, check_schedulable
from recovery_intake.domain.rejection import Rejection
from recovery_runtime.bus import MessageRejected
from recovery_runtime.clock import Clock
from recovery_runtime.topology import ConsumerQueue
from recovery_runtime.unit_of_work import MessageStore, Transaction

log = structlog.get_logger(__name__)


class RecoveryIntake:
    def __init__(
        self,
        repository: IntakeRepository,
        store: MessageStore,
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
        """Get or create the payment intent for the invoice and, when new, schedule its recovery."""
        try:
            check_schedulable(request)
        except RecoveryRefused as refused:
            raise Rejection(ApiError.INVALID_REQUEST_DATA, message=str(refused)) from refused
        if request.action not in (RecoveryAction.SCHEDULE_FAILED_PAYMENT, RecoveryAction.NO_ACTION):
            raise Rejection(
                ApiError.NOT_SUPPORTED,
                message=f"action {request.action.value} is not supported yet (see docs/contracts.md)",
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

        async def get_or_create(tx: Transaction) -> dict[str, Any]:
            existing = await self._repository.intent_by_reference(
                merchant_id, request.merchant_reference_id, tx.session
            )
            if existing is not None:
                return existing
            intent = _intent_document(snapshot, now, request.action)
            await self._repository.intents.insert_one(intent, session=tx.session)
            if request.action is RecoveryAction.SCHEDULE_FAILED_PAYMENT:
                tx.emit(
                    Envelope[RecoveryScheduled](
                        type=MessageType.RECOVERY_SCHEDULED,
                        correlation_id=payment_id,
                        causation_id=consumed.message_id if consumed else None,
                        merchant_id=merchant_id,
                        profile_id=profile["_id"],
                        payload=RecoveryScheduled(payment=snapshot),
                    )
                )
            return intent

        intent = await self._store.apply(get_or_create, consumed=consumed, consumer=consumer)
        log.info("recovery.accepted", payment_id=intent["_id"], new=intent["_id"] == payment_id)
        return intent

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

        async def project(tx: Transaction) -> None:
            await self._repository.intents.update_one(
                # A success is final: a late failure event never overwrites it.
                {"_id": event.payment_id, "status": {"$ne": IntentStatus.SUCCEEDED.value}},
                {
                    "$set": {
                        "status": status.value,
                        "payment_object": event.payment.model_dump(mode="json"),
                        "modified_at": self._clock.now(),
                    }
                },
                session=tx.session,
            )

        await self._store.apply(project, consumed=envelope, consumer=queue.name)


def _intent_document(snapshot: RecoveryPayment, now: datetime, action: RecoveryAction) -> dict[str, Any]:
    return {
        "_id": snapshot.payment_id,
        "merchant_id": snapshot.merchant_id,
        "profile_id": snapshot.profile_id,
        "merchant_reference_id": snapshot.merchant_reference_id,
        # Hyperswitch answers a new recovery intent as `failed`: the invoice's charge failed; retries follow.
        "status": IntentStatus.FAILED.value,
        "action": action.value,
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
