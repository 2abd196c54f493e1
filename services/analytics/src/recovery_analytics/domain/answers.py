"""A payment's view in the shapes the API answers with: Hyperswitch's list item and recovery intent, and the
timeline. Stored with the view (so a read is one lookup) and rebuilt with it."""

from __future__ import annotations

from recovery_analytics.domain.after_recovery import DisputeStep, LostDispute, RecordBackTry
from recovery_analytics.domain.attempts import AttemptRecord
from recovery_analytics.domain.view import PaymentView, ShadowStep, ViewStatus
from recovery_contracts.api.analytics import (
    AmountDetailsResponse,
    RecoveryPaymentsListItem,
    RecoveryStatus,
    RevenueRecoveryGetIntentResponse,
)
from recovery_contracts.api.process_tracker import (
    BusinessStatus,
    ProcessTrackerStatus,
    RecoveryTimelineEntry,
    RecoveryTimelineResponse,
    TimelineAttempt,
    TimelineDispute,
    TimelineEntryKind,
    TimelineRecordBackTry,
    TimelineRequest,
    TimelineShadowPlan,
)
from recovery_contracts.disputes import DisputeStatus
from recovery_contracts.payments import IntentStatus, PaymentAmount, PaymentError
from recovery_contracts.recovery import RetryAlgorithm, build_payment_object


def recovery_status(view: PaymentView) -> RecoveryStatus:
    """Hyperswitch's `RecoveryStatus`: recovered, terminated (failed or ended by the billing system), else
    monitoring (a monitoring profile before any attempt of ours) or scheduled."""
    if view.status is ViewStatus.RECOVERED:
        return RecoveryStatus.RECOVERED
    if view.status in (ViewStatus.FAILED, ViewStatus.CANCELLED):
        return RecoveryStatus.TERMINATED
    payment = view.payment
    if payment is not None and payment.retry.algorithm is RetryAlgorithm.MONITORING and not view.attempts:
        return RecoveryStatus.MONITORING
    return RecoveryStatus.SCHEDULED


def _last_error(view: PaymentView) -> PaymentError | None:
    failed = [a for a in view.attempts if a.declined]
    if view.status is ViewStatus.RECOVERED or not failed:
        return None
    last = failed[-1]
    return PaymentError(
        code=last.decline_code or last.error_code or last.outcome.value,
        message=last.message or last.outcome.value,
        network_advice_code=last.network_advice_code,
        network_decline_code=last.network_decline_code,
    )


def list_item(view: PaymentView) -> RecoveryPaymentsListItem | None:
    """The payment in `GET /v2/payments/recovery-list`; None while its request is unknown."""
    payment = view.payment
    if payment is None:
        return None
    last = view.attempts[-1] if view.attempts else None
    return RecoveryPaymentsListItem(
        id=view.payment_id,
        merchant_id=payment.merchant_id,
        profile_id=payment.profile_id,
        status=recovery_status(view),
        amount=PaymentAmount(
            order_amount=payment.amount,
            currency=payment.currency,
            net_amount=payment.amount,
            amount_capturable=0,
            amount_captured=payment.amount if view.status is ViewStatus.RECOVERED else None,
        ),
        created=payment.created_at,
        payment_method_type=payment.payment_method_type,
        payment_method_subtype=payment.payment_method_subtype,
        connector=payment.connector if last is not None else None,
        merchant_connector_id=payment.payment_connector_id if last is not None else None,
        merchant_reference_id=payment.merchant_reference_id,
        attempt_count=len(view.attempts),
        error=_last_error(view),
        cancellation_reason=view.ending.reason if view.status is ViewStatus.CANCELLED and view.ending else None,
        modified_at=view.last_event_at,
        last_attempt_at=last.at if last is not None else None,
    )


def recovery_intent(view: PaymentView) -> RevenueRecoveryGetIntentResponse | None:
    """The payment in `GET /v2/payments/{id}/get-revenue-recovery-intent`; None while its request is unknown."""
    payment = view.payment
    if payment is None:
        return None
    recovered = view.recovered_attempt
    shown = build_payment_object(
        payment,
        status=IntentStatus.SUCCEEDED if view.status is ViewStatus.RECOVERED else IntentStatus.FAILED,
        modified_at=view.last_event_at,
        attempt=None,
    )
    return RevenueRecoveryGetIntentResponse(
        id=view.payment_id,
        status=recovery_status(view),
        amount_details=AmountDetailsResponse(order_amount=payment.amount, currency=payment.currency),
        profile_id=payment.profile_id,
        merchant_reference_id=payment.merchant_reference_id,
        billing=payment.billing,
        return_url=payment.return_url,
        metadata=payment.metadata,
        feature_metadata=shown.feature_metadata,
        expires_on=payment.created_at,
        card_attached=len(payment.tokens),
        description=f"recovered by attempt {recovered.number}" if recovered is not None else None,
    )


def _tracker_status(view: PaymentView) -> tuple[ProcessTrackerStatus, BusinessStatus]:
    if view.status is ViewStatus.IN_PROGRESS:
        return ProcessTrackerStatus.PENDING, BusinessStatus.PENDING
    if view.status is ViewStatus.RECOVERED:
        return ProcessTrackerStatus.FINISH, BusinessStatus.COMPLETED_EXECUTE_TASK
    stated = view.ending.business_status if view.ending is not None else None
    known = {status.value for status in BusinessStatus}
    if view.status is ViewStatus.CANCELLED:
        otherwise = BusinessStatus.CANCELLED_BY_BILLING_CONNECTOR
    else:
        otherwise = BusinessStatus.FAILED_EXECUTE_TASK
    return ProcessTrackerStatus.FINISH, BusinessStatus(stated) if stated in known else otherwise


def _attempt_entry(attempt: AttemptRecord) -> RecoveryTimelineEntry:
    if attempt.declined:
        detail = f"{attempt.outcome.value}: {attempt.decline_class}"
        if attempt.message:
            detail += f" ({attempt.message})"
        kind = TimelineEntryKind.ATTEMPT_FAILED
    else:
        detail, kind = f"charged: {attempt.connector_transaction_id}", TimelineEntryKind.ATTEMPT_SUCCEEDED
    return RecoveryTimelineEntry(
        at=attempt.at, kind=kind, attempt_number=attempt.number, token=attempt.token, detail=detail[:1024]
    )


def timeline(view: PaymentView) -> RecoveryTimelineResponse:
    """The payment's story from the read model: the request, each attempt, updates, webhook failures, the end, and
    disputes on it afterwards (each step of their course, the loss with its refund record's tries)."""
    status, business = _tracker_status(view)
    entries: list[RecoveryTimelineEntry] = []
    payment = view.payment
    request: TimelineRequest | None = None
    if payment is not None:
        first = payment.first_error
        request = TimelineRequest(
            merchant_reference_id=payment.merchant_reference_id,
            amount=payment.amount,
            currency=payment.currency,
            created_at=payment.created_at,
            algorithm=payment.retry.algorithm.value,
            billing_connector_id=payment.billing_connector_id,
            payment_connector_id=payment.payment_connector_id,
            tokens=[t.token for t in payment.tokens],
            first_error_code=first.code if first else None,
            first_error_message=first.message if first else None,
        )
        entries.append(
            RecoveryTimelineEntry(
                at=payment.created_at,
                kind=TimelineEntryKind.RECOVERY_ACCEPTED,
                detail=f"{payment.amount} {payment.currency} for invoice {payment.merchant_reference_id}"[:1024],
            )
        )
    entries.extend(_attempt_entry(a) for a in view.attempts)
    for at, action in view.updates:
        entries.append(RecoveryTimelineEntry(at=at, kind=TimelineEntryKind.RECOVERY_UPDATED, detail=action))
    for failure in view.webhook_failures:
        entries.append(
            RecoveryTimelineEntry(
                at=failure.at,
                kind=TimelineEntryKind.WEBHOOK_FAILED,
                event_id=failure.event_id,
                detail=f"{failure.event_type} after {failure.attempts} attempts: {failure.reason}"[:1024],
            )
        )
    entries.extend(_record_back_entry(t) for t in view.record_back)
    for dispute in view.disputes:
        entries.append(_dispute_entry(dispute))
        entries.extend(_refund_record_entry(dispute.dispute_id, t) for t in dispute.refund_record)
    entries.extend(_refund_record_entry(dispute_id, t) for dispute_id, t in view.unmatched_refund_records)
    entries.extend(_dispute_step_entry(step) for step in view.dispute_steps if step.status in _STEP_KINDS)
    shadow_plans = [plan for step in view.shadow_steps for plan in _shadow_plans(step)]
    entries.extend(_shadow_entry(plan) for plan in shadow_plans)
    if view.ending is not None:
        entries.append(
            RecoveryTimelineEntry(
                at=view.ending.at, kind=TimelineEntryKind.RECOVERY_FINISHED, detail=view.ending.reason[:1024]
            )
        )
    entries.sort(key=lambda entry: entry.at)
    return RecoveryTimelineResponse(
        payment_id=view.payment_id,
        status=status,
        business_status=business,
        recovery_status=recovery_status(view),
        entries=entries,
        request=request,
        attempts=[
            TimelineAttempt(
                attempt_number=a.number,
                attempt_id=a.attempt_id,
                token=a.token,
                card_network=a.card_network,
                outcome=a.outcome.value,
                at=a.at,
                decline_code=a.decline_code,
                error_code=a.error_code,
                decline_class=a.decline_class,
                advice_code=a.advice_code,
                network_advice_code=a.network_advice_code,
                network_decline_code=a.network_decline_code,
                message=a.message,
                connector_transaction_id=a.connector_transaction_id,
            )
            for a in view.attempts
        ],
        record_back=[_record_back_try(t) for t in view.record_back],
        shadow_plans=shadow_plans,
        disputes=[
            TimelineDispute(
                dispute_id=d.dispute_id,
                connector=d.connector,
                connector_dispute_id=d.connector_dispute_id,
                amount=d.amount,
                currency=d.currency,
                reason=d.reason,
                lost_at=d.lost_at,
                refund_record=[_record_back_try(t) for t in d.refund_record],
            )
            for d in view.disputes
        ],
    )


def _record_back_try(tried: RecordBackTry) -> TimelineRecordBackTry:
    return TimelineRecordBackTry(
        attempt=tried.attempt,
        at=tried.at,
        billing_connector=tried.billing_connector,
        state=tried.state,
        status_code=tried.status_code,
        error=tried.error,
    )


def _shadow_plans(step: ShadowStep) -> list[TimelineShadowPlan]:
    return [
        TimelineShadowPlan(
            planned_at=step.at,
            algorithm=plan.algorithm.value,
            takes_over=plan.algorithm.value == step.active_algorithm,
            kind=plan.kind,
            reason=plan.reason[:1024],
            at=plan.at,
            token=plan.token,
            attempt_number=plan.attempt_number,
            outcome=plan.outcome,
        )
        for plan in step.shadows
    ]


def _shadow_entry(plan: TimelineShadowPlan) -> RecoveryTimelineEntry:
    """`smart (takes over) would attempt at 2026-...: smart: insufficient_funds decline ...`."""
    when = f" at {plan.at.isoformat()}" if plan.at is not None else ""
    would = {"replan": "plan again", "end": f"end ({plan.outcome})", "AwaitBillingSystem": "wait for billing"}
    detail = f"{plan.algorithm}{' (takes over)' if plan.takes_over else ''} would "
    detail += f"{would.get(plan.kind, plan.kind)}{when}: {plan.reason}"
    return RecoveryTimelineEntry(
        at=plan.planned_at,
        kind=TimelineEntryKind.SHADOW_PLANNED,
        attempt_number=plan.attempt_number,
        token=plan.token,
        detail=detail[:1024],
    )


def _record_back_entry(tried: RecordBackTry) -> RecoveryTimelineEntry:
    return RecoveryTimelineEntry(at=tried.at, kind=TimelineEntryKind.RECORD_BACK, detail=_try_detail(tried)[:1024])


def _refund_record_entry(dispute_id: str, tried: RecordBackTry) -> RecoveryTimelineEntry:
    """`refund of dispute dsp_...: try 1 at chargebee: accepted (HTTP 200)`."""
    detail = f"refund of dispute {dispute_id}: {_try_detail(tried)}"
    return RecoveryTimelineEntry(at=tried.at, kind=TimelineEntryKind.REFUND_RECORD, detail=detail[:1024])


def _try_detail(tried: RecordBackTry) -> str:
    answer = f"HTTP {tried.status_code}" if tried.status_code is not None else tried.error or "no answer"
    return f"try {tried.attempt} at {tried.billing_connector}: {tried.state} ({answer})"


def _dispute_entry(dispute: LostDispute) -> RecoveryTimelineEntry:
    """`dispute dsp_... lost at stripe (dp_...): 2250 USD taken back, reason fraudulent`."""
    detail = (
        f"dispute {dispute.dispute_id} lost at {dispute.connector} ({dispute.connector_dispute_id}): "
        f"{dispute.amount} {dispute.currency} taken back, reason {dispute.reason or 'not given'}"
    )
    return RecoveryTimelineEntry(at=dispute.lost_at, kind=TimelineEntryKind.DISPUTE_LOST, detail=detail[:1024])


# The timeline's kind of each step of a dispute's course intake tells of.
_STEP_KINDS = {
    DisputeStatus.DISPUTE_OPENED: TimelineEntryKind.DISPUTE_OPENED,
    DisputeStatus.DISPUTE_CHALLENGED: TimelineEntryKind.DISPUTE_CHALLENGED,
    DisputeStatus.DISPUTE_WON: TimelineEntryKind.DISPUTE_WON,
    DisputeStatus.DISPUTE_CANCELLED: TimelineEntryKind.DISPUTE_CANCELLED,
}


def _dispute_step_entry(step: DisputeStep) -> RecoveryTimelineEntry:
    """`dispute dsp_... opened at stripe (dp_..., dispute stage): 2250 USD disputed, reason fraudulent, answer by
    2026-03-03T12:00:00+00:00`."""
    detail = (
        f"dispute {step.dispute_id} {step.status.value.removeprefix('dispute_')} at {step.connector} "
        f"({step.connector_dispute_id}, {step.stage.replace('_', ' ')} stage): {step.amount} {step.currency} "
        f"disputed, reason {step.reason or 'not given'}"
    )
    if step.open and step.challenge_required_by is not None:
        detail += f", answer by {step.challenge_required_by.isoformat()}"
    return RecoveryTimelineEntry(at=step.at, kind=_STEP_KINDS[step.status], detail=detail[:1024])
