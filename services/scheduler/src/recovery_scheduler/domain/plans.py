"""A recovery's current plan (what it waits for next) and the lines of its timeline."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from datetime import datetime
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

from .model import AwaitBillingSystem, EndRecovery, Recheck, ScheduleAttempt

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

R = TypeVar("R", bound="DataclassInstance")

# A plan's details as the recovery shows them (stored and served as they are).
Described = dict[str, object]


@dataclass(frozen=True)
class AttemptPlan:
    """Attempt `attempt_number` with `token`, planned for `planned_at` (business time), due on its timer.
    `held_until`: the merchant's word on the card that moved it later (`ScheduleAttempt.held_until`), or on the
    customer's other card `held_card` that sent it to this one; None if none did. `resumed_at`: the time an
    operator's resume asked for it (`ScheduleAttempt.resumed_at`)."""

    kind: ClassVar[str] = "attempt"
    attempt_number: int
    attempt_id: str
    token: str
    planned_at: datetime
    due_at: datetime
    timer_id: str
    reason: str
    held_until: datetime | None = None
    held_card: str | None = None
    resumed_at: datetime | None = None


@dataclass(frozen=True)
class ReplanPlan:
    """Ask the planner again at `at` (business time), due on its timer."""

    kind: ClassVar[str] = "replan"
    at: datetime
    due_at: datetime
    timer_id: str
    reason: str


@dataclass(frozen=True)
class AwaitBillingPlan:
    """Nothing planned until the billing system reports again; the re-plan timer `timer_id` at `due_at` (the
    recovery's horizon) ends the recovery if it does not."""

    kind: ClassVar[str] = "await_billing_system"
    reason: str
    due_at: datetime | None = None
    timer_id: str | None = None


@dataclass(frozen=True)
class MonitoringPlan:
    """Monitoring: `shadows` describes what each compared algorithm (cascading, smart) would do now, by name;
    `shadow` is the active algorithm's, the one that takes over when the profile's monitoring period ends at
    `switch_at` (None: no threshold). The re-plan timer `timer_id` at `due_at` (the switch, or the horizon if that
    comes first) asks again. (`shadows` is empty in a plan stored before the comparison; the next step fills it.)"""

    kind: ClassVar[str] = "monitoring"
    shadow: Described
    switch_at: datetime | None
    due_at: datetime | None = None
    timer_id: str | None = None
    shadows: Mapping[str, Described] = field(default_factory=dict)


Plan = AttemptPlan | ReplanPlan | AwaitBillingPlan | MonitoringPlan
PLAN_KINDS: Mapping[str, type[Plan]] = {p.kind: p for p in (AttemptPlan, ReplanPlan, AwaitBillingPlan, MonitoringPlan)}


# Fields added after records were first stored (a plan's, a card budget's reservation's): left out while None, so
# that a scheduler of the release before them (which refuses a field it does not know) reads every record that does
# not use them (docs/deployment.md, "Upgrading").
ADDED_LATER = frozenset({"held_until", "held_card", "resumed_at"})


def stored_fields(record: DataclassInstance) -> dict[str, Any]:
    """A stored record's fields by name, in order; those added later left out while None."""
    named = ((f.name, getattr(record, f.name)) for f in fields(record))
    return {k: v for k, v in named if v is not None or k not in ADDED_LATER}


def record_from(record_type: type[R], stored: Mapping[str, Any]) -> R:
    """The record `stored_fields` gave; a field this release does not know (a later release's) is ignored."""
    known = {f.name for f in fields(record_type)}
    return record_type(**{k: v for k, v in stored.items() if k in known})


def describe_plan(plan: Plan) -> Described:
    """`{"kind": ..., <its fields in order>}`: the plan as the recovery stores it and operators see it."""
    return {"kind": plan.kind, **stored_fields(plan)}


def plan_from(described: Mapping[str, object]) -> Plan:
    """The plan `describe_plan` gave."""
    details = dict(described)
    return record_from(PLAN_KINDS[str(details.pop("kind"))], details)


def describe_decision(decision: ScheduleAttempt | Recheck | EndRecovery | AwaitBillingSystem) -> Described:
    """What the active algorithm would do, as a monitoring recovery records it."""
    if isinstance(decision, ScheduleAttempt):
        return {
            "kind": "attempt",
            "at": decision.at,
            "token": decision.token,
            "attempt_number": decision.attempt_number,
            "reason": decision.reason,
        }
    if isinstance(decision, Recheck):
        return {"kind": "replan", "at": decision.at, "reason": decision.reason}
    if isinstance(decision, EndRecovery):
        return {"kind": "end", "outcome": decision.outcome.value, "reason": decision.reason}
    return {"kind": type(decision).__name__, "reason": decision.reason}


def shadow_summary(algorithm: str, shadow: Mapping[str, object]) -> str:
    """`smart would attempt 1 with pm_x at 2026-12-03T18:00:00+00:00`: a shadow decision in a few words."""
    at = shadow.get("at")
    when = f" at {at.isoformat()}" if isinstance(at, datetime) else ""
    kind = shadow.get("kind")
    if kind == "attempt":
        return f"{algorithm} would attempt {shadow.get('attempt_number')} with {shadow.get('token')}{when}"
    if kind == "replan":
        return f"{algorithm} would plan again{when}"
    if kind == "end":
        return f"{algorithm} would end the recovery ({shadow.get('outcome')})"
    return f"{algorithm} would wait for the billing system"


@dataclass(frozen=True)
class Note:
    """A line of the recovery's timeline: what happened or was planned, and why."""

    at: datetime
    what: str
    reason: str
    details: Mapping[str, object] = field(default_factory=dict)

    def describe(self) -> Described:
        return {"at": self.at, "what": self.what, "reason": self.reason, **self.details}


def note_from(described: Mapping[str, object]) -> Note:
    details = dict(described)
    at, what, reason = details.pop("at"), details.pop("what"), details.pop("reason")
    if not isinstance(at, datetime):
        raise ValueError(f"a timeline entry's time is {at!r}")
    return Note(at, str(what), str(reason), details)
