"""The merchant's answer to a dispute on a recovered payment (`POST /v2/payments/{payment_id}/disputes/{dispute_id}/
accept` and `.../evidence`, and the console's Payment page): sent to the payment connector (Stripe) with the payment
connector account's key, and what the connector answers applied on the intent as its webhook would be
(`PaymentEvents.apply_dispute`: once, forward only), so that the answer and the merchant's webhook
(`dispute_challenged`, `dispute_lost`) do not wait for Stripe's event, and that event changes nothing more."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any, Protocol

import structlog

from recovery_contracts.api.connector_accounts import ConnectorName, ConnectorType
from recovery_contracts.api.disputes import DisputeAnswerResponse, DisputeEvidenceRequest, DisputeFileResponse
from recovery_contracts.api.errors import ApiError
from recovery_intake import metrics
from recovery_intake.dependencies import IntakeAdapters
from recovery_intake.domain.deliveries import EventRefused, ProviderApiError, sealed_api_key
from recovery_intake.domain.intent import Intent, IntentDispute
from recovery_intake.domain.payment_disputes import (
    DisputeAnswerRefused,
    dispute_event,
    evidence_file_kind,
    evidence_file_refusal,
)
from recovery_intake.domain.rejection import Rejection
from recovery_intake.domain.stripe_events import StripeEvent
from recovery_intake.handlers.payment_events import PaymentEvents
from recovery_runtime.secrets import SecretBox

log = structlog.get_logger(__name__)


class DisputeDesk(Protocol):
    async def close_dispute(self, api_key: str, dispute_id: str, idempotency_key: str) -> dict[str, Any]: ...

    async def submit_dispute_evidence(
        self, api_key: str, dispute_id: str, evidence: dict[str, str], idempotency_key: str
    ) -> dict[str, Any]: ...

    async def upload_dispute_file(
        self, api_key: str, file: tuple[str, bytes, str], idempotency_key: str
    ) -> dict[str, Any]: ...


Call = Callable[[str, str], Awaitable[dict[str, Any]]]
# A file given as evidence: its name, its bytes and its MIME type (None: not said).
EvidenceFile = tuple[str, bytes, str | None]


class DisputeAnswers:
    def __init__(self, adapters: IntakeAdapters, box: SecretBox, desk: DisputeDesk, events: PaymentEvents) -> None:
        self._stored, self._box, self._desk, self._events = adapters, box, desk, events

    async def accept(
        self, merchant_id: str, profile_id: str | None, payment_id: str, dispute_id: str
    ) -> DisputeAnswerResponse:
        """The dispute accepted at the connector: the money stays with the customer (an inquiry is closed). Open
        disputes only, challenged or not."""
        intent, kept = await self._dispute(merchant_id, profile_id, payment_id, dispute_id, with_evidence=False)

        async def close(api_key: str, key: str) -> dict[str, Any]:
            return await self._desk.close_dispute(api_key, kept.connector_dispute_id, key)

        return await self._answer(intent, kept, "accept", close)

    async def submit_evidence(
        self,
        merchant_id: str,
        profile_id: str | None,
        payment_id: str,
        dispute_id: str,
        evidence: DisputeEvidenceRequest,
    ) -> DisputeAnswerResponse:
        """The evidence submitted to the bank: the dispute is challenged (under review). A dispute challenged
        already takes no more (Stripe takes one submission)."""
        intent, kept = await self._dispute(merchant_id, profile_id, payment_id, dispute_id, with_evidence=True)
        given = evidence.given()
        digest = hashlib.sha256(json.dumps(given, sort_keys=True).encode()).hexdigest()[:24]

        async def submit(api_key: str, key: str) -> dict[str, Any]:
            return await self._desk.submit_dispute_evidence(
                api_key, kept.connector_dispute_id, given, f"{key}:{digest}"
            )

        return await self._answer(intent, kept, "evidence", submit)

    async def upload_file(
        self,
        merchant_id: str,
        profile_id: str | None,
        payment_id: str,
        dispute_id: str,
        read_file: Callable[[], Awaitable[EvidenceFile]],
    ) -> DisputeFileResponse:
        """The file `read_file` gives (its name, bytes and MIME type), read once the dispute is found taking
        evidence, uploaded to the payment connector as evidence for it, to be named in the evidence (`receipt`,
        ...): only what Stripe takes (`evidence_file_refusal`). The same file sent again is the same upload (its
        idempotency key)."""
        intent, kept = await self._dispute(merchant_id, profile_id, payment_id, dispute_id, with_evidence=True)
        name, content, content_type = await read_file()
        refused = evidence_file_refusal(content_type, len(content))
        if refused is not None:
            raise Rejection(ApiError.INVALID_REQUEST_DATA, message=refused)
        kind = evidence_file_kind(content_type)
        digest = hashlib.sha256(content).hexdigest()[:24]
        outcome = "error"
        try:
            api_key = self._box.open(_api_key(await self._payment_account(intent)))
            stored = await self._desk.upload_dispute_file(
                api_key, (name, content, kind), f"{kept.dispute_id}:file:{digest}"
            )
            outcome = "answered"
        except DisputeAnswerRefused as refusal:
            outcome = "refused"
            raise Rejection(ApiError.PRECONDITION_FAILED, message=f"Stripe refused: {refusal}") from refusal
        except ProviderApiError as error:
            outcome = "unavailable"
            raise Rejection(ApiError.PAYMENT_CONNECTOR_UNAVAILABLE, message=str(error)) from error
        finally:
            metrics.DISPUTE_ANSWERS.labels("file", outcome).inc()
        file_id = stored.get("id")
        if not isinstance(file_id, str) or not file_id.startswith("file_"):
            raise Rejection(ApiError.PAYMENT_CONNECTOR_UNAVAILABLE, message="Stripe's answer names no file")
        log.info("dispute.file_uploaded", payment_id=payment_id, dispute=kept.connector_dispute_id, file=file_id)
        size = stored.get("size")
        return DisputeFileResponse(
            file_id=file_id,
            file_name=stored.get("filename") if isinstance(stored.get("filename"), str) else name,
            file_size=size if isinstance(size, int) else len(content),
            file_type=kind,
        )

    async def _dispute(
        self, merchant_id: str, profile_id: str | None, payment_id: str, dispute_id: str, *, with_evidence: bool
    ) -> tuple[Intent, IntentDispute]:
        """The payment's intent and its dispute, if the answer can be sent (Rejection with the reason if not)."""
        intent = await self._stored.intents.get(merchant_id, payment_id, profile_id)
        if intent is None:
            raise Rejection(ApiError.PAYMENT_NOT_FOUND)
        kept = next((d for d in intent.disputes if d.dispute_id == dispute_id), None)
        if kept is None:
            raise Rejection(ApiError.GENERIC_NOT_FOUND, message=f"no dispute {dispute_id} on payment {payment_id}")
        refused = kept.why_not_answered(with_evidence=with_evidence)
        if refused is not None:
            raise Rejection(ApiError.PRECONDITION_FAILED, message=refused)
        return intent, kept

    async def _answer(self, intent: Intent, kept: IntentDispute, action: str, call: Call) -> DisputeAnswerResponse:
        """`call` made with the account's key and an idempotency key of the dispute and the action, its answer
        applied; the outcome counted (`recovery_dispute_answers_total`)."""
        outcome = "error"
        try:
            account = await self._payment_account(intent)
            api_key = self._box.open(_api_key(account))
            answered = await call(api_key, f"{kept.dispute_id}:{action}")
            now = self._stored.clock.now()
            told = dispute_event(_as_event(answered, kept, action, now)).dispute
            if told is None or told.connector_dispute_id != kept.connector_dispute_id:
                raise ProviderApiError(f"Stripe's answer for dispute {kept.connector_dispute_id} is not that dispute")
            applied, _ = await self._events.apply_dispute(
                intent.merchant_id,
                intent.profile_id,
                account,
                f"answer:{action}:{told.connector_dispute_id}:{told.connector_status}",
                told,
            )
            outcome = "answered"
        except DisputeAnswerRefused as refused:
            outcome = "refused"
            raise Rejection(ApiError.PRECONDITION_FAILED, message=f"Stripe refused: {refused}") from refused
        except (ProviderApiError, EventRefused) as error:
            outcome = "unavailable"
            raise Rejection(ApiError.PAYMENT_CONNECTOR_UNAVAILABLE, message=str(error)) from error
        finally:
            metrics.DISPUTE_ANSWERS.labels(action, outcome).inc()
        log.info(
            "dispute.answered",
            payment_id=intent.payment_id,
            dispute=kept.connector_dispute_id,
            action=action,
            dispute_status=told.status.value,
            updated=applied == "applied",
        )
        return DisputeAnswerResponse(
            dispute_id=kept.dispute_id,
            payment_id=intent.payment_id,
            connector=told.connector,
            connector_dispute_id=told.connector_dispute_id,
            dispute_stage=told.stage,
            dispute_status=told.status,
            connector_status=told.connector_status,
            challenge_required_by=told.challenge_required_by,
            updated=applied == "applied",
        )

    async def _payment_account(self, intent: Intent) -> dict[str, Any]:
        """The payment's Stripe payment connector account (it charged the payment, and the dispute is on it)."""
        account_id = intent.snapshot.payment_connector_id
        account = await self._stored.connector_accounts.get(intent.merchant_id, account_id)
        if (
            account is None
            or account.get("connector_type") != ConnectorType.PAYMENT_PROCESSOR.value
            or account.get("connector_name") != ConnectorName.STRIPE.value
        ):
            raise Rejection(
                ApiError.PRECONDITION_FAILED,
                message=f"the payment's connector account {account_id} is not a Stripe payment processor account",
            )
        return account


def _api_key(account: dict[str, Any]) -> str:
    """The account's sealed Stripe key (Rejection when it has none: nothing can be sent)."""
    try:
        return sealed_api_key(account)
    except EventRefused as missing:
        raise Rejection(
            ApiError.PRECONDITION_FAILED, message=f"connector account {account['_id']}: {missing}"
        ) from missing


def _as_event(answered: dict[str, Any], kept: IntentDispute, action: str, now: datetime) -> StripeEvent:
    """Stripe's answer read as the event that tells of it (`charge.dispute.updated` or `.closed`), dated as Stripe
    dates that event (its `created`, whole seconds), so that the steps of the dispute keep their order wherever they
    are sorted by when they were told."""
    kind = "charge.dispute.closed" if action == "accept" else "charge.dispute.updated"
    return StripeEvent(f"answer:{action}:{kept.connector_dispute_id}", kind, answered, now.replace(microsecond=0))
