"""Smart: class and advice decide whether and when; tokens are scored, the earliest good slot wins.

Each kind of decline has its cadence (`smart_cadence`): technical trouble is retried within hours, soft declines
front-loaded then spread over the retry window, insufficient funds early then on payday mornings, in the customer's
daytime; `switch_payment_method_config` opens the customer's other saved tokens; network budgets are a ceiling no
slot passes.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timedelta

from .config import RetryConfig
from .customer_time import in_daytime, utc_offset
from .decisions import Decision, EndOutcome, Recheck, ScheduleAttempt, end_recovery
from .model import RecoveryView
from .smart_cadence import PAYDAY_GAP, Cadence, cadence_for
from .standing import TokenStanding, current_token_index
from .timing import draw_jitter, next_payday_slot, window_end


@dataclass(frozen=True)
class _Slot:
    at: datetime
    standing: TokenStanding
    budget_bound: bool  # the budget, not the policy, set the time
    why: str
    why_full: str = ""  # the limits that moved the slot, with their editions

    @property
    def rank(self) -> tuple[datetime, int, int]:
        # Earliest slot first; on a tie the token with fewer declines, then the customer's order.
        return (self.at, len(self.standing.declines), self.standing.index)


def _switch_gate(view: RecoveryView, current: TokenStanding, now: datetime, config: RetryConfig) -> datetime | None:
    """When the customer's other tokens may be tried while the current one is still usable."""
    if not current.usable:
        return now
    gates = []
    if config.switch_retry_threshold is not None and current.retries >= config.switch_retry_threshold:
        gates.append(now)
    if config.switch_time_threshold_after_creation is not None:
        gates.append(view.created_at + config.switch_time_threshold_after_creation)
    return min(gates) if gates else None


def _span(wait: timedelta) -> str:
    days, hours = divmod(wait.total_seconds() / 3600, 24)
    return f"{days:g} d" if not hours else f"{wait.total_seconds() / 3600:g} h"


def _kind_declines(standing: TokenStanding, cadence: Cadence) -> int:
    """The token's declines of the last decline's kind (the billing system's first failure included)."""
    return sum(1 for d in standing.declines if cadence_for(d.assessment) is cadence)


def _cadence_spent(standing: TokenStanding) -> Cadence | None:
    """The cadence whose retries the token has used up, or None."""
    last = standing.last_decline
    if last is None or last.assessment.earliest_wait is None:
        return None
    cadence = cadence_for(last.assessment)
    return cadence if _kind_declines(standing, cadence) > cadence.max_retries else None


def _policy_time(
    standing: TokenStanding, floor: datetime, view: RecoveryView, config: RetryConfig
) -> tuple[datetime, str]:
    """When the token's cadence would retry, ignoring budgets, and why."""
    last = standing.last_decline
    if last is None:
        return floor, "no decline on this token yet"
    wait = last.assessment.earliest_wait
    if wait is None:
        # A usable token whose last decline has no wait: its cause was cleared since (an expired card the
        # account updater refreshed), so only the floor holds the retry back.
        return floor, f"{last.assessment.decline_class.value} decline cleared since (the card was updated)"
    cadence = cadence_for(last.assessment)
    declines = _kind_declines(standing, cadence)
    offset = utc_offset(view.customer_country)
    why = f"{last.assessment.decline_class.value} decline ({last.assessment.source}); {cadence.name} cadence"
    if cadence.payday and declines > len(cadence.waits):
        earliest = max(floor, last.at + wait)
        if offset is None:
            payday, window = next_payday_slot(earliest, config.payday_hour_utc), "payday window"
        else:
            payday, window = (
                next_payday_slot(earliest + offset, config.smart_payday_local_hour) - offset,
                "payday morning",
            )
        # Paydays far apart: a retry `PAYDAY_GAP` after the last one, in the customer's daytime, unless the payday
        # comes within a day of it.
        between = max(earliest, last.at + PAYDAY_GAP)
        if offset is not None:
            between = in_daytime(between, offset, *config.smart_daytime_local_hours)
        if payday <= between + timedelta(days=1):
            return payday, f"{why}, {window}"
        return between, f"{why}, {_span(PAYDAY_GAP)} on (next {window} {payday.date().isoformat()})"
    at = max(floor, last.at + max(wait, cadence.wait_after(declines)))
    why += f", retry {declines} after {_span(cadence.wait_after(declines))}"
    if cadence.daytime and offset is not None:
        start, end = config.smart_daytime_local_hours
        daytime = in_daytime(at, offset, start, end)
        if daytime != at:
            why += "; the customer's daytime"
        at = daytime
    return at, why


def _slot_for(standing: TokenStanding, floor: datetime, view: RecoveryView, config: RetryConfig) -> _Slot:
    at, why = _policy_time(standing, floor, view, config)
    budget_bound, why_full = False, ""
    # The budget only moves the slot forward; a policy aimed at a window (a payday, the daytime) is not re-aimed: the
    # budget is a ceiling, and a re-plan at its release time plans again.
    allowed = standing.budget.earliest_allowed(standing.budget_uses, at)
    if allowed != at:
        why_full = standing.budget.why_full(standing.budget_uses, at)
        at, budget_bound = allowed, True
    return _Slot(at, standing, budget_bound, why, why_full)


def plan_smart(
    view: RecoveryView,
    standings: tuple[TokenStanding, ...],
    now: datetime,
    config: RetryConfig,
    rng: random.Random,
) -> Decision:
    made = len(view.attempts)
    if made >= config.smart_max_attempts:
        return end_recovery(EndOutcome.RETRIES_EXHAUSTED, f"smart used its {made} attempts", made)
    floor = now
    if view.attempts:
        floor = max(floor, view.attempts[-1].at + config.smart_min_interval)
    current = standings[current_token_index(view)]
    gate = _switch_gate(view, current, now, config)
    end = window_end(view, config)
    slots = []
    spent = []
    for standing in standings:
        if not standing.usable:
            continue
        cadence = _cadence_spent(standing)
        if cadence is not None:
            spent.append(f"token {standing.token.token} used its {cadence.max_retries} {cadence.name} retries")
            continue
        token_floor = floor
        if standing is not current:
            if gate is None:
                continue
            token_floor = max(floor, gate)
        slot = _slot_for(standing, token_floor, view, config)
        if slot.at <= end:
            slots.append(slot)
    if not slots:
        why = "; ".join(spent) if spent else "no slot within the retry window on any token"
        return end_recovery(EndOutcome.RETRIES_EXHAUSTED, why, made)
    best = min(slots, key=lambda s: s.rank)
    token = best.standing.token.token
    if best.budget_bound:
        return Recheck(best.at, f"network budget used up ({best.why_full}); token {token} has budget again then")
    at = best.at + draw_jitter(config, rng)
    if at > end:
        return end_recovery(EndOutcome.RETRIES_EXHAUSTED, "next slot falls past the retry window", made)
    switched = "" if best.standing is current else f"; switched from token {current.token.token}"
    return ScheduleAttempt(at, token, made + 1, f"smart: {best.why}{switched}")
