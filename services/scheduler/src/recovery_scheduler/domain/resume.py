"""An operator's resume of a failed recovery (Hyperswitch's `EXECUTE_WORKFLOW` resume): which card is charged
when. The operator may go past the ladder and `max_retry_count`, never past a hard decline, a network's advice to
wait, the merchant's word on the card or a network budget: those are the card networks' and the merchant's rules,
not this system's policy; a resumed attempt the word held back comes sooner when the word is lifted or moved. Pure:
the time and the budgets come in."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from .model import ScheduleAttempt
from .standing import token_standings
from .status import RecoveryStatus
from .steps import planner_view, retry_config

if TYPE_CHECKING:
    from .planning import Planning
    from .recovery import Recovery


class ResumeRefused(Exception):
    """An operator's resume that cannot be done; the message says why."""


def resume_decision(recovery: Recovery, at: datetime, planning: Planning) -> ScheduleAttempt:
    """The attempt an operator's resume at `at` (business time) plans; ResumeRefused if the recovery may not be
    resumed."""
    if recovery.status is not RecoveryStatus.FAILED:
        raise ResumeRefused(f"only a failed recovery can be resumed; this one is {recovery.status.value}")
    if recovery.closed_by is not None:
        raise ResumeRefused(
            f"the billing system closed the invoice ({recovery.closed_by}) after the recovery failed: "
            "nothing is left to collect"
        )
    return resumed_attempt(recovery, at, planning)


def resumed_attempt(recovery: Recovery, at: datetime, planning: Planning) -> ScheduleAttempt:
    """The resume's attempt, asked for at `at`: also what a resumed attempt the merchant's word held back becomes
    when the word is lifted or moved sooner (the resume's rules again, not the planner's, which the operator went
    past)."""
    now = planning.now
    # Where each token stands as the planner sees it: declines from the billing system's first failure as well
    # as this system's attempts, and every use the networks count (the billing system's tries on the primary
    # card, the merchant's other recoveries' reservations).
    standings = token_standings(planner_view(recovery, planning), retry_config(recovery.payment))
    allowed = [s for s in standings if not s.hard_declined]
    if not allowed:
        raise ResumeRefused("every token of this payment is hard-declined: no further charge is allowed")
    last_token = recovery.attempts[-1].token if recovery.attempts else None
    standing = next((s for s in allowed if s.token.token == last_token), allowed[0])
    # A network's advice to wait after the last decline (Mastercard's MAC) is its rule too.
    wanted, floor = max(at, now), standing.network_floor
    reason = "resumed by an operator"
    if floor is not None and floor > wanted:
        wanted = floor
        reason += f"; not before {floor.isoformat()}, as the card network advised after the last decline"
    # Marked `held_until` when the merchant's word moved it: lifting the word, or moving it sooner, plans it again
    # by these rules (Recovery.replanned).
    held = standing.merchant_floor
    held_until = None
    if held is not None and held > wanted:
        wanted = held_until = held
        reason += standing.merchant_note(held)
    earliest = standing.budget.earliest_allowed(standing.budget_uses, wanted)
    if earliest > wanted:
        why_full = standing.budget.why_full(standing.budget_uses, wanted)
        reason += f"; moved to {earliest.isoformat()} by the card network's budget ({why_full})"
    attempt_number = len(recovery.attempts) + 1
    return ScheduleAttempt(earliest, standing.token.token, attempt_number, reason, held_until, resumed_at=at)
