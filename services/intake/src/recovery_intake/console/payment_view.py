"""What the Payment page shows, computed from the internal APIs' answers: the request, each attempt, the plans with
their reasons, the record back, each dispute lost on the payment with its refund record, each other dispute on it
where it stands (intake's own intent), the story in order and every webhook delivery.

Pure functions (no I/O): the template only lays these out, and unit tests check them against known answers.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from recovery_contracts.disputes import ENDED_STATUSES as DISPUTE_ENDED
from recovery_contracts.disputes import DisputeStatus
from recovery_intake.console.formatting import major_units, text_of, timestamp
from recovery_intake.console.ports import Document
from recovery_intake.console.views import Figure
from recovery_intake.domain.intent import Intent

# Timeline entry kinds (recovery_contracts.api.process_tracker.TimelineEntryKind) as the payment page groups them.
PLAN_KINDS = frozenset({"retry_scheduled", "psync_scheduled", "shadow_planned"})
END_KINDS = frozenset({"recovery_finished"})
# A monitoring recovery's shadow decisions (the scheduler's plan kinds) in words.
SHADOW_KINDS = {"attempt": "attempt", "replan": "plan again", "end": "end", "AwaitBillingSystem": "wait for billing"}
# The statuses of a recovery that has ended: nothing is charged any more.
ENDED_STATUSES = frozenset({"recovered", "partially_recovered", "terminated"})

# What the Payment page says once an action of its own is done (its redirect's `done`): fixed words, never the
# query's own text. A cancel needs none: intake's intent says it (the page's "Cancelled" notice).
DONE_NOTICES = {
    "record-back": "Started again: the record back to the billing system makes a new round of tries. Nothing is "
    "charged; its state below follows.",
    "refund-record": "Started again: the dispute's refund record makes a new round of tries; its state below follows.",
    "evidence": "Submitted: the evidence went to Stripe for the bank. The dispute's status changes when the bank "
    "decides.",
    "accept": "Accepted: the dispute is closed as lost, and the disputed amount stays with the customer.",
    "webhook-retry": "Asked: the webhook is delivered again within moments; its attempts are below.",
}


def done_notice(query: Mapping[str, str]) -> str | None:
    """What the page says after one of its actions (its redirect's query), None otherwise."""
    return DONE_NOTICES.get(query.get("done", ""))


@dataclass(frozen=True)
class AttemptRow:
    number: int
    token: str
    network: str
    outcome: str
    decline_code: str
    decline_class: str
    advice: str
    message: str
    at: str


@dataclass(frozen=True)
class TimelineLine:
    at: str
    what: str
    detail: str


@dataclass(frozen=True)
class DeliveryAttemptRow:
    kind: str
    at: str
    status_code: str
    delivered: bool
    error: str


@dataclass(frozen=True)
class Delivery:
    event_id: str
    event_type: str
    profile_id: str
    created: str
    delivered: bool
    attempts: list[DeliveryAttemptRow]


@dataclass(frozen=True)
class RecordBackRow:
    """One try of recording the payment back at the billing system, and where the record back stood after it."""

    attempt: int
    at: str
    billing_connector: str
    state: str
    answer: str


@dataclass(frozen=True)
class DisputeRow:
    """A dispute lost on the recovered payment: what it took back, and the tries of recording it at the billing
    system as a refund (`refund_record`, oldest first; empty where nothing records refunds)."""

    dispute_id: str
    connector_dispute_id: str
    amount: str
    reason: str
    lost_at: str
    refund_record: list[RecordBackRow]


@dataclass(frozen=True)
class OtherDispute:
    """A dispute on the recovered payment that was not lost: open (the merchant may still answer it, from the page
    or at the payment connector), won, or an inquiry cancelled. A lost one is a `DisputeRow`."""

    dispute_id: str
    connector_dispute_id: str
    amount: str
    reason: str
    # Hyperswitch's words, spaced: `pre dispute` for an inquiry; `opened`, `challenged`, `won`, `cancelled`.
    stage: str
    status: str
    since: str
    open: bool
    # By when the merchant must answer an open one (empty when the connector gave no deadline, or once it ended).
    answer_by: str


def other_disputes(intent: Intent | None) -> list[OtherDispute]:
    """The intent's disputes that were not lost, latest news first."""
    if intent is None:
        return []
    kept = [d for d in intent.disputes if d.status is not DisputeStatus.DISPUTE_LOST]
    return [
        OtherDispute(
            dispute_id=d.dispute_id,
            connector_dispute_id=d.connector_dispute_id,
            amount=major_units(d.amount, d.currency),
            reason=text_of(d.reason),
            stage=d.stage.value.replace("_", " "),
            status=d.status.value.removeprefix("dispute_"),
            since=timestamp(d.told_at),
            open=d.status not in DISPUTE_ENDED,
            answer_by=timestamp(d.challenge_required_by)
            if d.challenge_required_by is not None and d.status not in DISPUTE_ENDED
            else "",
        )
        for d in sorted(kept, key=lambda d: (d.told_at, d.dispute_id), reverse=True)
    ]


@dataclass(frozen=True)
class PaymentPage:
    payment_id: str
    status: str
    business_status: str
    request: list[Figure]
    attempts: list[AttemptRow]
    plans: list[TimelineLine]
    record_back: list[RecordBackRow]
    ending: list[TimelineLine]
    story: list[TimelineLine]
    deliveries: list[Delivery] = field(default_factory=list)
    disputes: list[DisputeRow] = field(default_factory=list)
    other_disputes: list[OtherDispute] = field(default_factory=list)

    @property
    def open(self) -> bool:
        """Whether the recovery has not ended (the page offers its cancel)."""
        return self.status not in ENDED_STATUSES


def _line(entry: Document) -> TimelineLine:
    number = entry.get("attempt_number")
    what = str(entry.get("kind") or "").replace("_", " ")
    if number is not None:
        what = f"{what} (attempt {number})"
    detail = " · ".join(part for part in (text_of(entry.get("detail")), text_of(entry.get("token"))) if part)
    return TimelineLine(timestamp(entry.get("at")), what, detail)


def _advice(attempt: Document) -> str:
    parts = []
    if attempt.get("advice_code"):
        parts.append(f"advice {attempt['advice_code']}")
    if attempt.get("network_advice_code"):
        parts.append(f"network advice {attempt['network_advice_code']}")
    if attempt.get("network_decline_code"):
        parts.append(f"network decline {attempt['network_decline_code']}")
    return ", ".join(parts)


def _decision(note: Document) -> list[TimelineLine]:
    """One of the scheduler's decisions (`at`, `what`, `reason`, then its details) as a line; a monitoring
    decision's shadow plans (what cascading and smart would do) each on a line of its own after it."""
    shown = ("at", "what", "reason", "shadows", "active")
    details = ", ".join(f"{name.replace('_', ' ')} {value}" for name, value in note.items() if name not in shown)
    reason = " · ".join(part for part in (text_of(note.get("reason")), details) if part)
    at = timestamp(note.get("at"))
    lines = [TimelineLine(at, text_of(note.get("what")).replace("_", " "), reason)]
    shadows = note.get("shadows")
    for algorithm, shadow in shadows.items() if isinstance(shadows, dict) else ():
        taking_over = " (takes over)" if algorithm == note.get("active") else ""
        parts = (text_of(shadow.get("reason")), f"at {timestamp(shadow['at'])}" if shadow.get("at") else "")
        kind = text_of(shadow.get("kind"))
        what = f"shadow: {algorithm}{taking_over} would {SHADOW_KINDS.get(kind, kind)}"
        lines.append(TimelineLine(at, what, " · ".join(p for p in parts if p)))
    return lines


def _plans(timeline: Document, workflow: Document | None) -> list[TimelineLine]:
    """The scheduler's decisions with their reasons when it answered, else what the read model knows of them."""
    if workflow is None:
        return [_line(e) for e in timeline.get("entries") or [] if e.get("kind") in PLAN_KINDS]
    lines = [line for note in workflow.get("timeline") or [] for line in _decision(note)]
    plan = workflow.get("plan")
    if isinstance(plan, dict):
        number = f" (attempt {plan['attempt_number']})" if plan.get("attempt_number") else ""
        detail = " · ".join(text_of(plan.get(k)) for k in ("reason", "token") if plan.get(k))
        what = f"next: {text_of(plan.get('kind')).replace('_', ' ')}{number}"
        lines.append(TimelineLine(timestamp(plan.get("due_at") or plan.get("at")), what, detail))
    return lines


def _cards(tokens: list[str], workflow: Document | None) -> str:
    """The payment's cards, each hard-declined one saying so, and where when another payment of the merchant met
    the decline (the scheduler's `hard_declined_in`) or the merchant marked the card (`hard_declined_by_merchant`):
    the card is charged for none of them again."""
    states = {t.get("token"): t for t in (workflow or {}).get("tokens") or []}
    shown = []
    for token in tokens:
        state = states.get(token) or {}
        note = (
            f"hard-declined in payment {state['hard_declined_in']}"
            if state.get("hard_declined_in")
            else "marked hard-declined by the merchant"
            if state.get("hard_declined_by_merchant")
            else "hard-declined"
            if state.get("hard_declined")
            else None
        )
        shown.append(f"{token} ({note})" if note else token)
    return ", ".join(shown)


def payment_page(
    timeline: Document, intent: Document | None, deliveries: list[Delivery], workflow: Document | None = None
) -> PaymentPage:
    """The Payment page of the read model's timeline (with the recovery's status; for a timeline stored before it
    carried one, the recovery intent's), the scheduler's workflow (its plans' reasons and decline classes, when it
    answered), and the webhook deliveries."""
    # The scheduler's decline class of each attempt (the class its planner used), by attempt number.
    classes = {
        int(a.get("number") or 0): text_of(a.get("decline_class"))
        for a in (workflow or {}).get("attempts") or []
        if a.get("decline_class")
    }
    request = timeline.get("request") or {}
    figures: list[Figure] = []
    if request:
        currency = str(request.get("currency") or "")
        figures = [
            Figure("Amount", major_units(int(request.get("amount") or 0), currency)),
            Figure("Invoice", text_of(request.get("merchant_reference_id"))),
            Figure("Accepted", timestamp(request.get("created_at"))),
            Figure("Algorithm", text_of(request.get("algorithm"))),
            Figure("Cards (tokens)", _cards(request.get("tokens") or [], workflow)),
            Figure("Billing connector", text_of(request.get("billing_connector_id"))),
            Figure("Payment connector", text_of(request.get("payment_connector_id"))),
            Figure(
                "First failure",
                " ".join(
                    p
                    for p in (text_of(request.get("first_error_code")), text_of(request.get("first_error_message")))
                    if p
                ),
            ),
        ]
    attempts = [
        AttemptRow(
            number=int(a.get("attempt_number") or 0),
            token=text_of(a.get("token")),
            network=text_of(a.get("card_network")),
            outcome=text_of(a.get("outcome")),
            decline_code=text_of(a.get("decline_code") or a.get("error_code")),
            decline_class=classes.get(int(a.get("attempt_number") or 0)) or text_of(a.get("decline_class")),
            advice=_advice(a),
            message=text_of(a.get("message")),
            at=timestamp(a.get("at")),
        )
        for a in sorted(timeline.get("attempts") or [], key=lambda a: int(a.get("attempt_number") or 0))
    ]
    entries = timeline.get("entries") or []
    status = (
        text_of(timeline.get("recovery_status"))
        or text_of((intent or {}).get("status"))
        or text_of(timeline.get("status"))
    )
    return PaymentPage(
        payment_id=text_of(timeline.get("payment_id")),
        status=status,
        business_status=text_of(timeline.get("business_status")),
        request=figures,
        attempts=attempts,
        plans=_plans(timeline, workflow),
        record_back=_tries(timeline.get("record_back")),
        disputes=[_dispute(d) for d in timeline.get("disputes") or []],
        ending=[_line(e) for e in entries if e.get("kind") in END_KINDS],
        story=[_line(e) for e in entries],
        deliveries=deliveries,
    )


def _dispute(dispute: Document) -> DisputeRow:
    return DisputeRow(
        dispute_id=text_of(dispute.get("dispute_id")),
        connector_dispute_id=text_of(dispute.get("connector_dispute_id")),
        amount=major_units(int(dispute.get("amount") or 0), str(dispute.get("currency") or "")),
        reason=text_of(dispute.get("reason")),
        lost_at=timestamp(dispute.get("lost_at")),
        refund_record=_tries(dispute.get("refund_record")),
    )


def _tries(records: list[Document] | None) -> list[RecordBackRow]:
    """Tries of a record at the billing system (the timeline's `record_back`, or a dispute's `refund_record`),
    oldest first."""
    rows = []
    for tried in sorted(records or [], key=lambda t: int(t.get("attempt") or 0)):
        code = tried.get("status_code")
        rows.append(
            RecordBackRow(
                attempt=int(tried.get("attempt") or 0),
                at=timestamp(tried.get("at")),
                billing_connector=text_of(tried.get("billing_connector")),
                state=text_of(tried.get("state")),
                answer=f"HTTP {code}" if code is not None else text_of(tried.get("error")) or "no answer",
            )
        )
    return rows


def delivery(event: Document, attempts: list[Document]) -> Delivery:
    """One webhook event and every attempt to deliver it (the dispatcher's list item and attempt records)."""
    rows = [
        DeliveryAttemptRow(
            kind=text_of(a.get("delivery_attempt")).replace("_", " "),
            at=timestamp(a.get("created")),
            status_code=text_of((a.get("response") or {}).get("status_code")) or "—",
            delivered=bool(a.get("is_delivery_successful")),
            error=text_of((a.get("response") or {}).get("error_message")),
        )
        for a in sorted(attempts, key=lambda a: str(a.get("created") or ""))
    ]
    return Delivery(
        event_id=text_of(event.get("event_id")),
        event_type=text_of(event.get("event_type")),
        profile_id=text_of(event.get("profile_id")),
        created=timestamp(event.get("created")),
        delivered=bool(event.get("is_delivery_successful")),
        attempts=rows,
    )
