"""A payment's story across the four services' collections, read-only, for an operator.

The services never read each other's collections; this operator tool does, read-only, because answering
"what happened to this payment?" needs all four owners' records side by side. The record back to the billing
system and its tries come from the executor's internal endpoint instead (recovery_cli.record_backs).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from recovery_cli.record_backs import RecordBackUnread
from recovery_dispatcher.adapters.event_queries import attempts_range
from recovery_dispatcher.adapters.event_repository import payment_claims
from recovery_dispatcher.domain.ids import record_key

# (merchant id, payment id) -> the payment's record back and its tries, or None when it has none.
RecordBackSource = Callable[[str, str], dict[str, Any] | None]

# Large or binary fields an operator does not read here (message bodies are in the outbox and the broker).
_OMITTED = frozenset({"body", "message", "emitted", "request", "response_body"})


@dataclass(frozen=True)
class Entry:
    at: datetime
    source: str
    what: str


@dataclass
class PaymentTimeline:
    payment_id: str
    intent: dict[str, Any] | None = None
    recovery: dict[str, Any] | None = None
    timers: list[dict[str, Any]] = field(default_factory=list)
    attempts: list[dict[str, Any]] = field(default_factory=list)
    webhook_events: list[dict[str, Any]] = field(default_factory=list)
    record_back: dict[str, Any] | None = None
    # Why the record back could not be read (the executor unreachable...); None when it was read.
    record_back_unread: str | None = None

    @property
    def found(self) -> bool:
        return any((self.intent, self.recovery, self.timers, self.attempts, self.webhook_events, self.record_back))

    def entries(self) -> list[Entry]:
        """Everything that happened, in time order."""
        entries: list[Entry] = []
        if self.intent and (created := _time((self.intent.get("snapshot") or {}).get("created_at"))):
            entries.append(Entry(created, "intake", f"recovery requested, intent {self.intent.get('status')}"))
        for note in (self.recovery or {}).get("history", []):
            if at := _time(note.get("at")):
                # A monitoring line's shadow plans are in its reason; the recovery section shows them whole.
                shown = ("at", "what", "shadows", "active")
                detail = ", ".join(f"{k}={_text(v)}" for k, v in note.items() if k not in shown)
                entries.append(
                    Entry(at, "scheduler", f"{note.get('what')}: {detail}" if detail else str(note.get("what")))
                )
        for timer in self.timers:
            if at := _time(timer.get("fired_at")):
                entries.append(Entry(at, "scheduler", f"timer {timer.get('_id')} fired ({timer.get('purpose')})"))
        for attempt in self.attempts:
            number = attempt.get("attempt_number")
            if at := _time(attempt.get("started_at")):
                entries.append(Entry(at, "executor", f"attempt {number} started with {attempt.get('token')}"))
            if at := _time(attempt.get("settled_at")):
                entries.append(Entry(at, "executor", f"attempt {number} {attempt.get('status')}{_decline(attempt)}"))
        for event in self.webhook_events:
            if at := _time(event.get("created_at")):
                entries.append(
                    Entry(
                        at,
                        "webhook-dispatcher",
                        f"{event.get('event_type')} {event.get('event_id')} ({event.get('delivery_attempt')}): "
                        f"{event.get('status')}{_http_status(event)}",
                    )
                )
        record_back = self.record_back or {}
        for tried in record_back.get("attempts", []):
            if at := _time(tried.get("at")):
                entries.append(
                    Entry(
                        at,
                        "executor",
                        f"record back to {record_back.get('billing_connector')} try {tried.get('attempt')}: "
                        f"{_try_result(tried)}",
                    )
                )
        return sorted(entries, key=lambda entry: entry.at)

    def to_dict(self) -> dict[str, Any]:
        return {
            "payment_id": self.payment_id,
            "intent": _plain(self.intent),
            "recovery": _plain(self.recovery),
            "timers": _plain(self.timers),
            "attempts": _plain(self.attempts),
            "webhook_events": _plain(self.webhook_events),
            "record_back": self.record_back,
            "record_back_unread": self.record_back_unread,
            "timeline": [{"at": _iso(e.at), "source": e.source, "what": e.what} for e in self.entries()],
        }


def load_timeline(db: Any, payment_id: str, record_backs: RecordBackSource | None = None) -> PaymentTimeline:
    """Reads (never writes) the payment's records from `db`, a pymongo Database, and its record back from
    `record_backs` (the executor's, asked for the intent's merchant)."""
    by_payment = {"payment_id": payment_id}
    timeline = PaymentTimeline(
        payment_id=payment_id,
        intent=db["payment_intents"].find_one({"_id": payment_id}),
        recovery=db["recoveries"].find_one({"_id": payment_id}),
        timers=list(db["timers"].find(by_payment).sort("due_at", 1)),
        attempts=list(db["attempts"].find(by_payment).sort("attempt_number", 1)),
    )
    merchant_id = (timeline.intent or {}).get("merchant_id")
    timeline.webhook_events = _webhook_events(db, payment_id, merchant_id)
    if record_backs is not None and merchant_id:
        try:
            timeline.record_back = record_backs(merchant_id, payment_id)
        except RecordBackUnread as unread:
            timeline.record_back_unread = str(unread)
    return timeline


def _webhook_events(db: Any, payment_id: str, merchant_id: str | None) -> list[dict[str, Any]]:
    """Every record (one per delivery attempt) of the payment's webhook events, by `_id` only: the dispatcher's
    collections have no secondary index (recovery_dispatcher.adapters.event_repository). The payment's claims,
    one `_id` range (`<payment_id>#<n>`), name its initial events; an event's records, its initial one and those
    of its later attempts, are one `_id` range from `<merchant_id>/<event_id>`. The merchant is the one in the
    event's body (the claim keeps it), else the intent's."""
    ranges = []
    for claim in db["webhook_claims"].find({"_id": payment_claims(payment_id)}, {"event_id": 1, "body": 1}):
        try:
            key = record_key(_merchant_in(claim.get("body")) or merchant_id or "", claim["event_id"])
        except ValueError:  # no merchant known, or not one that keys records: the event has no record to read
            continue
        ranges.append({"_id": attempts_range(key)})
    if not ranges:
        return []
    return list(db["webhook_events"].find({"$or": ranges}).sort([("created_at", 1), ("_id", 1)]))


def _merchant_in(body: Any) -> str | None:
    """The `merchant_id` of a webhook body (JSON bytes), or None."""
    try:
        merchant_id = json.loads(body).get("merchant_id")
    except (TypeError, ValueError, AttributeError):
        return None
    return merchant_id if isinstance(merchant_id, str) else None


def render_text(timeline: PaymentTimeline) -> str:
    if not timeline.found:
        return f"no records of payment {timeline.payment_id}"
    lines = [f"payment {timeline.payment_id}"]
    intent = timeline.intent
    if intent:
        snapshot = intent.get("snapshot") or {}
        lines += [
            "",
            "intent (intake)",
            f"  status {intent.get('status')}   merchant {intent.get('merchant_id')}   "
            f"profile {intent.get('profile_id')}",
            f"  reference {intent.get('merchant_reference_id')}   amount {snapshot.get('amount')} "
            f"{snapshot.get('currency')}   connector {snapshot.get('connector')}",
        ]
    recovery = timeline.recovery
    if recovery:
        lines += [
            "",
            "recovery (scheduler)",
            f"  status {recovery.get('status')} ({recovery.get('business_status')})   algorithm "
            f"{recovery.get('algorithm')}   paused {recovery.get('paused')}   version {recovery.get('version')}",
        ]
        plan = recovery.get("plan")
        lines.append(f"  plan: {_describe_plan(plan)}")
        shadows = plan.get("shadows") if isinstance(plan, dict) else None
        for algorithm, shadow in (shadows or {}).items():
            lines.append(f"    shadow {algorithm}: {_describe_shadow(shadow)}")
        for attempt in recovery.get("attempts", []):
            lines.append(
                f"  attempt {attempt.get('number')} at {_text(attempt.get('at'))}: {attempt.get('outcome')} "
                f"token {attempt.get('token')}{_decline(attempt)}"
            )
    lines += _section("timers (scheduler)", timeline.timers, _timer_line)
    lines += _section("attempts (executor)", timeline.attempts, _attempt_line)
    lines += _section(
        "webhook events (webhook-dispatcher), one record per delivery attempt", timeline.webhook_events, _event_line
    )
    record_back = timeline.record_back
    if record_back:
        lines += [
            "",
            "record back (executor)",
            f"  to {record_back.get('billing_connector')}: {record_back.get('status')} after "
            f"{record_back.get('tries')} tries, last {_text(record_back.get('updated_at'))}",
        ]
        for tried in record_back.get("attempts", []):
            lines.append(f"  try {tried.get('attempt')} at {_text(tried.get('at'))}: {_try_result(tried)}")
    elif timeline.record_back_unread:
        lines += ["", f"record back (executor): not read: {timeline.record_back_unread}"]
    lines += ["", "timeline"]
    for entry in timeline.entries():
        lines.append(f"  {_iso(entry.at)}  {entry.source:<18} {entry.what}")
    return "\n".join(lines)


def _section(title: str, records: Sequence[dict[str, Any]], line: Callable[[dict[str, Any]], str]) -> list[str]:
    """A titled block with a line per record; nothing when there are no records."""
    return ["", title, *(line(record) for record in records)] if records else []


def _timer_line(timer: dict[str, Any]) -> str:
    fired = " at " + _text(timer.get("fired_at")) if timer.get("fired_at") else ""
    return f"  {timer.get('_id')}: {timer.get('purpose')} due {_text(timer.get('due_at'))} {timer.get('status')}{fired}"


def _attempt_line(attempt: dict[str, Any]) -> str:
    return (
        f"  #{attempt.get('attempt_number')} {attempt.get('attempt_id')}: {attempt.get('status')} "
        f"token {attempt.get('token')} started {_text(attempt.get('started_at'))} settled "
        f"{_text(attempt.get('settled_at'))} txn {attempt.get('connector_transaction_id')}{_decline(attempt)}"
    )


def _event_line(event: dict[str, Any]) -> str:
    return (
        f"  {_text(event.get('created_at'))} {event.get('event_type')} {event.get('event_id')} "
        f"({event.get('delivery_attempt')}, of {event.get('initial_attempt_id')}): {event.get('status')}"
        f"{_http_status(event)} delivered {event.get('is_overall_delivery_successful')}"
    )


def render_json(timeline: PaymentTimeline) -> str:
    return json.dumps(timeline.to_dict(), indent=2, sort_keys=True)


def _describe_plan(plan: Any) -> str:
    if not plan:
        return "none (nothing planned)"
    if isinstance(plan, dict):
        keys = ("kind", "attempt_number", "token", "planned_at", "due_at", "reason")
        return ", ".join(f"{key} {_text(plan[key])}" for key in keys if plan.get(key) is not None)
    return _text(plan)


def _describe_shadow(shadow: Any) -> str:
    """What an algorithm would have done for a monitoring recovery (business time)."""
    if not isinstance(shadow, dict):
        return _text(shadow)
    keys = ("kind", "attempt_number", "token", "at", "outcome", "reason")
    return ", ".join(f"{key} {_text(shadow[key])}" for key in keys if shadow.get(key) is not None)


def _decline(record: dict[str, Any]) -> str:
    parts = [f"{key} {record[key]}" for key in ("decline_code", "error_code", "decline_class") if record.get(key)]
    return f" ({', '.join(parts)})" if parts else ""


def _http_status(event: dict[str, Any]) -> str:
    response = event.get("response")
    code = response.get("status_code") if isinstance(response, dict) else None
    return f" HTTP {code}" if code else ""


def _try_result(tried: dict[str, Any]) -> str:
    """`HTTP 500, retrying`, `ConnectError: ..., retrying`, `HTTP 200, accepted`."""
    answer = f"HTTP {tried['status_code']}" if tried.get("status_code") else str(tried.get("error") or "no answer")
    return f"{answer}, {tried['outcome']}" if tried.get("outcome") else answer


def _time(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    return None


def _iso(value: datetime) -> str:
    return value.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _text(value: Any) -> str:
    moment = _time(value) if isinstance(value, datetime) else None
    return _iso(moment) if moment else str(value)


def _plain(value: Any) -> Any:
    """JSON-ready: datetimes as ISO strings, message bodies left out, other BSON types as text."""
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items() if key not in _OMITTED}
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    if isinstance(value, datetime):
        return _iso(_time(value) or value)
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return str(value)
