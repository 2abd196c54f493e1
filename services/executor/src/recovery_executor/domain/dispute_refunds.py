"""A dispute lost on a recovered payment, recorded at the billing system as a refund of what the payment's record
back recorded: which lost disputes get a refund record and what it asks (`refund_record`), when a try of it must
wait for the payment's own record back (`refusal_before_refund`), and when it first looks at the billing system for
the refund an earlier try made (`looks_before_recording`).

The rules (the consumer of `payment.dispute-lost`, handlers.dispute_lost, applies them):
- The refund record is built from the payment's record back as stored (`progress.request`: the same billing
  system, account, site and invoice, the connector's charge), so a payment never recorded back gets none: a
  `custombilling` payment without `record_back_url`, a record back never made (its command dead-lettered), or one
  stored before 4 Dec (no request kept). There is nothing to refund there; the `dispute_lost` webhook still tells
  the merchant. But a payment whose record back is on its way (`record_back_on_its_way`: an attempt of it
  succeeded here less than FIRST_TRY_GRACE ago, and the record back its success commanded has not stored its first
  try yet) is not taken for one never recorded back: the dispute waits for it, handed back to its queue with
  growing pauses (then dead-lettered with the reason, for an operator to replay once the record back is there).
- Only a billing system in REFUNDS_RECORDED_AT gets one: Chargebee (an offline refund, `chargeback`, of the payment's
  transaction), Stripe Billing (a credit note of the invoice, its whole amount `out_of_band_amount`) and Recurly (a
  refund of the invoice settled outside Recurly, `external_refund`, which makes a credit invoice). For custombilling
  (its callback's body has no refund) no record is created at all, rather than one refused for good on its first
  try: such a record could never be taken, would stand on the timeline as `blocked` (which otherwise means an egress
  problem an operator can fix), and would invite restarts that cannot succeed. It is logged and counted instead
  (`recovery_dispute_refunds_total{outcome="not_supported"}`).
- A payment whose record back is not accepted yet (retrying, abandoned, blocked) still gets its refund record: each
  try answers "the payment is not recorded at <billing system> yet", a refusal retried on the timers like any
  other, so the refund follows the payment's record back once that is accepted (an operator who restarts an
  abandoned payment record restarts its refund after it).
- Once per dispute: the record's key (`<payment_id>:dispute:<dispute_id>`) is the store's unique id; the first
  `payment.dispute-lost` creates the record with its first try, in one transaction, and any later one for the same
  dispute finds it and starts nothing.
- Once at the billing system, even past its idempotency window: every try sends the record's idempotency key, but a
  billing system keeps a key for a while only (Chargebee 30 minutes, its API reference's "Idempotent requests";
  Stripe 24 hours; no figure was found in Recurly's API reference), while a round's 14 tries spread over 70 h 51 min
  (follow_up.RECORD_BACK_DELAYS: the 6th try comes 51 minutes after the first, past Chargebee's window; the 11th
  34 h 51 min after it, past Stripe's) and an operator's restart may come any day. A try whose answer was lost,
  followed by one past the window, would record the refund twice, or be refused as more than is left and end
  `abandoned` although it was recorded. So every try after the first looks for the refund this record made (named by
  the dispute id: Chargebee's `reference_number`, Stripe's `metadata[dispute_id]`, the customer notes of Recurly's
  credit invoice) and is accepted if it is there; the first try calls directly, the usual path reads nothing more."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from recovery_contracts.envelope import Envelope
from recovery_contracts.messages import DisputeRefund, PaymentDisputeLost, RecordBack

from .attempt import Attempt
from .billing_systems import REFUNDS_RECORDED_AT
from .messages import dispute_refund_command
from .ports import RecordBackAnswer
from .record_back import CUSTOMBILLING, RecordBackProgress, RecordBackStatus

# How long after a payment's success its record back may still be on its way to its first try: the record back is
# commanded with the settled attempt and tried at once; a backlog or an outage delays it by minutes, never by hours.
FIRST_TRY_GRACE = timedelta(hours=1)


def record_back_on_its_way(succeeded: Attempt | None, now: datetime) -> bool:
    """Whether a payment with no record back stored may still get one: `succeeded`, its attempt that succeeded
    here, settled less than FIRST_TRY_GRACE ago. (Whether its billing system is recorded back at all is not known
    here; a payment that is not lets a dispute wait that long at most, then gets no refund record, as it would.)"""
    return succeeded is not None and succeeded.settled_at is not None and now - succeeded.settled_at < FIRST_TRY_GRACE


class NoRefund(StrEnum):
    """Why a lost dispute gets no refund record (the outcome counted)."""

    NO_RECORD_BACK = "no_record_back"  # the payment was never recorded back: nothing to refund
    NOT_SUPPORTED = "not_supported"  # its billing system takes no refund record from this system


@dataclass(frozen=True)
class RefundNotRecorded:
    why: NoRefund
    billing_connector: str  # "none" when the payment has no record back
    message: str


def refund_record(
    payment: RecordBackProgress | None, consumed: Envelope[PaymentDisputeLost], now: datetime
) -> tuple[RecordBackProgress, Envelope[RecordBack]] | RefundNotRecorded:
    """The refund record of the dispute `consumed` reports lost on a payment whose record back is `payment`, and its
    first try (attempt 1 of round 1, the payment's record back's request with `dispute` set); or why none."""
    if payment is None or payment.request is None:
        billing = payment.billing_connector if payment is not None else "none"
        return RefundNotRecorded(NoRefund.NO_RECORD_BACK, billing, "the payment was never recorded back")
    if payment.billing_connector not in REFUNDS_RECORDED_AT:
        message = f"no refund record for {payment.billing_connector}"
        return RefundNotRecorded(NoRefund.NOT_SUPPORTED, payment.billing_connector, message)
    lost = consumed.payload
    refund = DisputeRefund(
        dispute_id=lost.dispute.dispute_id,
        amount=lost.amount,
        currency=lost.dispute.currency,
        reason=lost.dispute.connector_reason,
        lost_at=lost.lost_at,
    )
    request = payment.request.model_copy(update={"attempt": 1, "round_start": 1, "dispute": refund})
    record = RecordBackProgress(
        payment.payment_id,
        RecordBackStatus.RETRYING,  # its first try on its way
        request.url,
        0,
        now,
        merchant_id=payment.merchant_id,
        billing_connector=payment.billing_connector,
        request=request,
        profile_id=payment.profile_id,
        dispute_id=refund.dispute_id,
    )
    return record, dispute_refund_command(request, consumed, payment.merchant_id, payment.profile_id)


def looks_before_recording(request: RecordBack) -> bool:
    """Whether a try of the refund `request` first looks at the billing system for the refund its record made: every
    try but the first (attempt > 1; the first try of a round an operator restarted is one too). Not only the tries
    past a window: the window runs from a use the executor cannot date (a lost answer), in wall time while tries are
    timed in business time, and a read costs one or two calls on a try that follows a refusal anyway."""
    return request.attempt > 1


def refusal_before_refund(request: RecordBack, payment: RecordBackProgress | None) -> RecordBackAnswer | None:
    """What a try of the refund `request` answers without calling the billing system: refused for good where the
    billing system takes no refund record (a command no dispute-lost consumer would have made), tried again later
    while the payment's own record back (`payment`) is not accepted; None: call it."""
    billing = request.billing_connector or CUSTOMBILLING
    if billing not in REFUNDS_RECORDED_AT:
        return RecordBackAnswer(accepted=False, error=f"no refund record for {billing}", blocked=True)
    if payment is None or payment.status is not RecordBackStatus.ACCEPTED:
        return RecordBackAnswer(accepted=False, error=f"the payment is not recorded at {billing} yet")
    return None
