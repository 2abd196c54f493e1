"""A planned attempt the executor refused without sending it (`payment.attempt-refused`): as far as the executor
knew, the invoice could not be charged (cancelled, paid elsewhere, a payment in progress at the billing system,
another attempt of it succeeded), including an attempt whose outcome was unknown and that the connector turned out
never to have seen. No card network saw it.

The scheduler and the executor each follow the intent's status on a queue of their own, so one may be ahead of the
other for a moment. Ahead of the scheduler: the cancel or the success is on its way here and ends the recovery.
Behind it: the billing system reported a failure again after a payment in progress, the scheduler resumed at once,
and the executor had not read that report yet. Either way the recovery asks the planner again a little later (its
refused attempt's slot given back meanwhile): by then a stop has ended it, or the executor has caught up and the
attempt is planned again under a new attempt id. Before this message the recovery waited for ever for an outcome
that would never come. Each refusal of the same attempt number waits twice as long as the one before, so an
executor that keeps refusing costs a few messages a day, until the recovery's horizon."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from typing import TYPE_CHECKING

from recovery_contracts.messages import PaymentAttemptRefused

from .card_budgets import planned_attempt
from .planning import Change, Planning
from .steps import replan_planned

if TYPE_CHECKING:
    from .recovery import Recovery

# How long (business time) a recovery waits after its attempt was refused before asking the planner again; doubled
# for each earlier refusal of the same attempt number, up to REFUSED_RECHECK_LONGEST.
REFUSED_RECHECK = timedelta(minutes=10)
REFUSED_RECHECK_LONGEST = timedelta(days=1)
REFUSED = "attempt_refused"


def refused_attempt(recovery: Recovery, refusal: PaymentAttemptRefused, planning: Planning) -> Change:
    """While `recovery` still has the refused attempt planned (the same attempt id): a re-plan after the wait. An
    ended recovery, or one planned otherwise since (paused, stopped, planned again), records it. Either way the
    attempt's budget slot is given back (`Change.refused`, `budget_writes`): no card network saw it."""
    now, number = planning.now, refusal.attempt_number
    said = f"attempt {number} refused by the executor, nothing charged: {refusal.reason}"
    planned = planned_attempt(recovery)
    refused = (refusal.token, number, refusal.attempt_id)
    if recovery.ended or planned is None or planned.attempt_id != refusal.attempt_id:
        recorded = recovery.noted(now, REFUSED, f"{said}; recorded", attempt_number=number)
        return Change(recovery, recorded, refused=refused)
    earlier = sum(1 for n in recovery.history if n.what == REFUSED and n.details.get("attempt_number") == number)
    wait = min(REFUSED_RECHECK * 2 ** min(earlier, 10), REFUSED_RECHECK_LONGEST)
    noted = recovery.noted(now, REFUSED, said, attempt_number=number)
    why = f"attempt {number} was refused by the executor: asking again in {wait.total_seconds() / 60:g} minutes"
    replanned, timer = replan_planned(noted, now + wait, why, planning)
    return Change(recovery, replace(replanned, updated_at=now), (timer,), cancels_planned_timers=True, refused=refused)
