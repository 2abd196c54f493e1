"""Smart: class and advice decide whether and when; tokens are scored, the earliest good slot wins.

Insufficient funds aims at a payday window at a good hour; `switch_payment_method_config` opens the
customer's other saved tokens; network budgets are a ceiling no slot passes.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime

from .config import RetryConfig
from .decisions import Decision, EndOutcome, Recheck, ScheduleAttempt, end_recovery
from .model import RecoveryView
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


def _slot_for(standing: TokenStanding, floor: datetime, config: RetryConfig) -> _Slot:
    last = standing.last_decline
    times = [floor]
    why = "no decline on this token yet"
    payday = False
    wait = last.assessment.earliest_wait if last is not None else None
    if last is not None and wait is None:
        # A usable token whose last decline has no wait: its cause was cleared since (an expired card the
        # account updater refreshed), so only the floor holds the retry back.
        why = f"{last.assessment.decline_class.value} decline cleared since (the card was updated)"
    elif last is not None and wait is not None:
        times.append(last.at + wait)
        payday = last.assessment.payday
        why = f"{last.assessment.decline_class.value} decline ({last.assessment.source}), wait {wait}"
    at = max(times)
    budget_bound, why_full = False, ""
    # Alternate payday snapping and budget release until both agree (each only moves forward).
    for _ in range(64):
        if payday:
            at = next_payday_slot(at, config.payday_hour_utc)
        allowed = standing.budget.earliest_allowed(standing.budget_uses, at)
        if allowed == at:
            break
        if not budget_bound:
            why_full = standing.budget.why_full(standing.budget_uses, at)
        at, budget_bound = allowed, True
    if payday:
        why += "; payday window"
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
    for standing in standings:
        if not standing.usable:
            continue
        token_floor = floor
        if standing is not current:
            if gate is None:
                continue
            token_floor = max(floor, gate)
        slot = _slot_for(standing, token_floor, config)
        if slot.at <= end:
            slots.append(slot)
    if not slots:
        return end_recovery(EndOutcome.RETRIES_EXHAUSTED, "no slot within the retry window on any token", made)
    best = min(slots, key=lambda s: s.rank)
    token = best.standing.token.token
    if best.budget_bound:
        return Recheck(best.at, f"network budget used up ({best.why_full}); token {token} has budget again then")
    at = best.at + draw_jitter(config, rng)
    if at > end:
        return end_recovery(EndOutcome.RETRIES_EXHAUSTED, "next slot falls past the retry window", made)
    switched = "" if best.standing is current else f"; switched from token {current.token.token}"
    return ScheduleAttempt(at, token, made + 1, f"smart: {best.why}{switched}")
