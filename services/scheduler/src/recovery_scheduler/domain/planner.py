"""The retry planner: from a recovery's history and the time now, the next decision (`decide_next`), by the
profile's algorithm.

Cascading: a fixed ladder (Hyperswitch's by default); same token until hard-declined or out of budget. Filtered
through the decline class (never / customer / fix take the token out; Mastercard advice waits are floors) and
through the network budgets (a ceiling: an out-of-budget token switches or waits).

Smart: class and advice decide whether and when; tokens are scored, the earliest good slot wins. Each kind of
decline has its cadence (`smart_cadence`): technical trouble is retried within hours; generic soft declines and
insufficient funds densely in the first days, then sparsely (insufficient funds on payday mornings); soft declines
with a specific cause a day apart, then spread over the retry window; all in the customer's daytime
(`customer_time`); switched on, moved to a better hour the merchant's own retries like it show (`learned_hours`).
`switch_payment_method_config` opens the customer's other saved tokens; network budgets are a ceiling no slot passes.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from .config import RetryConfig
from .customer_time import in_daytime, morning_spread, next_payday_slot, utc_offset
from .learned_hours import max_shift
from .model import (
    SHADOWED_ALGORITHMS,
    Algorithm,
    AttemptOutcome,
    AwaitBillingSystem,
    Decision,
    EndOutcome,
    Observe,
    Recheck,
    RecoveryView,
    ScheduleAttempt,
    Shadowed,
    end_recovery,
)
from .smart_cadence import PAYDAY_GAP, Cadence, cadence_for
from .standing import TokenStanding, current_token_index, token_standings


def decide_next(view: RecoveryView, now: datetime, config: RetryConfig, rng: random.Random) -> Decision:
    """What to do next for a recovery. Pure: the clock and the randomness come in as arguments."""
    if now.tzinfo is None or view.created_at.tzinfo is None:
        raise ValueError("times must be timezone-aware (UTC)")
    if view.algorithm is Algorithm.MONITORING:
        active = config.active_algorithm
        if active is Algorithm.MONITORING:
            active = Algorithm.CASCADING
        shadows = {algorithm: _shadow(view, algorithm, now, config, rng) for algorithm in SHADOWED_ALGORITHMS}
        # Hyperswitch: the threshold counts from when the profile chose monitoring, not from each payment.
        started = view.monitoring_started_at or view.created_at
        switch_at = None if config.monitoring_threshold is None else started + config.monitoring_threshold
        return Observe(shadows, switch_at, active)
    return _decide_active(view, now, config, rng)


def _shadow(
    view: RecoveryView, algorithm: Algorithm, now: datetime, config: RetryConfig, rng: random.Random
) -> Shadowed:
    """What `algorithm` would decide for the monitored recovery: the same planner, nothing charged."""
    decision = _decide_active(replace(view, algorithm=algorithm), now, config, rng)
    assert not isinstance(decision, Observe)
    return decision


def _decide_active(view: RecoveryView, now: datetime, config: RetryConfig, rng: random.Random) -> Decision:
    made = len(view.attempts)
    succeeded = next((a for a in view.attempts if a.outcome is AttemptOutcome.SUCCEEDED), None)
    if succeeded is not None:
        return end_recovery(EndOutcome.SUCCEEDED, f"attempt {succeeded.number} succeeded", made)
    if view.attempts and view.attempts[-1].outcome is AttemptOutcome.UNKNOWN:
        last = view.attempts[-1]
        return Recheck(
            max(now, last.at) + config.unknown_outcome_recheck,
            f"outcome of attempt {last.number} unknown: no new charge until PSYNC settles it",
        )
    # A recovery exists because the billing system's charge failed: that charge counts even if not reported.
    if not view.attempts and max(view.billing_retry_count, 1) <= config.billing_connector_retry_threshold:
        return AwaitBillingSystem(
            f"billing system made {view.billing_retry_count} attempts; this system starts after "
            f"{config.billing_connector_retry_threshold}"
        )
    if config.max_retry_count is not None and view.billing_retry_count + made >= config.max_retry_count:
        return end_recovery(
            EndOutcome.RETRIES_EXHAUSTED,
            f"max_retry_count {config.max_retry_count} reached "
            f"({view.billing_retry_count} by the billing system, {made} by this system)",
            made,
        )
    if not view.tokens:
        return end_recovery(EndOutcome.RETRIES_EXHAUSTED, "no saved payment method to retry", made)
    standings = token_standings(view, config)
    if not any(s.usable for s in standings):
        reasons = "; ".join(s.why_unusable() for s in standings)
        if all(s.hard_declined for s in standings):
            return end_recovery(EndOutcome.FAILED_HARD_DECLINE, f"every token hard-declined: {reasons}", made)
        if any(s.blocked_by is not None for s in standings):
            return end_recovery(EndOutcome.ACTION_REQUIRED, f"no token may be charged off-session: {reasons}", made)
        return end_recovery(EndOutcome.RETRIES_EXHAUSTED, f"no token left to retry: {reasons}", made)
    now = max([now, *(a.at for a in view.attempts)])
    if view.algorithm is Algorithm.SMART:
        return plan_smart(view, standings, now, config, rng)
    return plan_cascading(view, standings, now, config, rng)


# -- cascading ----------------------------------------------------------------------------------------------------


def plan_cascading(
    view: RecoveryView,
    standings: tuple[TokenStanding, ...],
    now: datetime,
    config: RetryConfig,
    rng: random.Random,
) -> Decision:
    made = len(view.attempts)
    if made >= len(config.ladder):
        return end_recovery(EndOutcome.RETRIES_EXHAUSTED, f"cascading ladder used up ({made} retries)", made)
    base = view.attempts[-1].at if view.attempts else now
    nominal = base + config.ladder[made]
    current = current_token_index(view)
    # Same token first, then the customer's next saved tokens in order.
    order = [standings[(current + i) % len(standings)] for i in range(len(standings))]
    end = window_end(view, config)
    # A card the merchant holds back past the retry window is no card for this recovery (the next one may be).
    held = [s for s in order if s.usable and s.merchant_floor is not None and s.merchant_floor > end]
    usable = [s for s in order if s.usable and s not in held]
    if not usable:
        cards = ", ".join(f"{s.token.token} until {s.merchant_floor}" for s in held)
        return end_recovery(
            EndOutcome.RETRIES_EXHAUSTED, f"the merchant holds back every card past the retry window ({cards})", made
        )
    jitter = draw_jitter(config, rng)
    out_of_budget: list[str] = [f"token {s.token.token} held back by the merchant past the retry window" for s in held]
    for standing in usable:
        floor = max([nominal, now, *filter(None, [standing.network_floor, standing.merchant_floor])])
        at = floor + jitter
        if not standing.budget.allows(standing.budget_uses, at):
            why_full = standing.budget.why_full(standing.budget_uses, at)
            out_of_budget.append(f"token {standing.token.token} out of budget: {why_full}")
            continue
        if at > end:
            return end_recovery(
                EndOutcome.RETRIES_EXHAUSTED,
                f"next ladder step {at.isoformat()} is past the retry window",
                made,
            )
        step = f"ladder step {made + 1}/{len(config.ladder)} (+{config.ladder[made]})"
        switched = "" if standing.index == current else f"; switched from token {standings[current].token.token}"
        advised = standing.network_floor
        why = (
            ""
            if advised is None or advised <= nominal
            else f"; advised wait after the last decline ({standing.floor_source})"
        )
        skipped = "".join(f"; {reason}" for reason in out_of_budget)
        why += standing.merchant_note(floor)
        reason = f"cascading {step}{why}{switched}{skipped}"
        # A card before this one in the order that the merchant holds back past the window sent the attempt here.
        passed = [s for s in order[: order.index(standing)] if s in held]
        return _held(ScheduleAttempt(at, standing.token.token, made + 1, reason), standing, floor, passed[:1])
    # Every usable token is out of budget at its ladder time: wait for the first budget to reset.
    wanted = max(nominal, now)
    release, standing = min(
        ((s.budget.earliest_allowed(s.budget_uses, wanted), s) for s in usable),
        key=lambda pair: (pair[0], pair[1].index),
    )
    why_full = standing.budget.why_full(standing.budget_uses, wanted)
    if release > end:
        return end_recovery(
            EndOutcome.RETRIES_EXHAUSTED,
            f"network budget used up ({why_full}) until {release.isoformat()}, after the retry window",
            made,
        )
    return budget_recheck(release, why_full, standing.token.token)


# -- smart --------------------------------------------------------------------------------------------------------


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
    """When the customer's other tokens may be tried: at once when the current one may not be retried any more
    (unusable, or its last decline's kind has used its cadence's retries), else when a switch threshold opens."""
    if not current.usable or _cadence_spent(current) is not None:
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
    if not cadence.rule_wait_floor:
        # The cadence replaces the decline rule's own wait; network advice stays a floor.
        wait = last.assessment.network_wait or timedelta(0)
    declines = _kind_declines(standing, cadence)
    offset = utc_offset(view.customer_country)
    why = f"{last.assessment.decline_class.value} decline ({last.assessment.source}); {cadence.name} cadence"
    if cadence.payday and declines > len(cadence.waits):
        earliest = max(floor, last.at + max(wait, cadence.wait_after(declines)))
        if offset is None:
            payday, window = next_payday_slot(earliest, config.payday_hour_utc), "payday window"
        else:
            payday, window = (
                next_payday_slot(earliest + offset, config.smart_payday_local_hour) - offset,
                "payday morning",
            )
        payday += morning_spread(standing.token.token, config.smart_morning_spread)
        # Paydays far apart: a retry `PAYDAY_GAP` after the last one, in the customer's daytime, unless the payday
        # comes within a day of it.
        between = max(earliest, last.at + PAYDAY_GAP)
        if offset is not None:
            between = _in_daytime(between, offset, standing, config)
        if payday <= between + timedelta(days=1):
            return payday, f"{why}, {window}"
        return between, f"{why}, {_span(PAYDAY_GAP)} on (next {window} {payday.date().isoformat()})"
    at = max(floor, last.at + max(wait, cadence.wait_after(declines)))
    why += f", retry {declines} after {_span(cadence.wait_after(declines))}"
    start, end = config.smart_daytime_local_hours
    aim = offset if cadence.daytime else None
    if aim is not None:
        aimed = _in_daytime(at, aim, standing, config)
        if aimed != at:
            why += "; the customer's daytime"
        at = aimed
    rates = standing.token.hour_rates
    if rates is not None:
        # A better hour the merchant's own retries like this one found, within half the cadence's wait and the
        # retry window, and still in the customer's daytime when that is aimed at.
        def allowed(candidate: datetime) -> bool:
            return aim is None or in_daytime(candidate, aim, start, end) == candidate

        latest = min(at + max_shift(cadence.wait_after(declines)), window_end(view, config))
        moved = rates.better_time(at, latest, allowed)
        if moved is not None:
            at, why = moved[0], f"{why}; {moved[1]}"
    return at, why


def _in_daytime(at: datetime, offset: timedelta, standing: TokenStanding, config: RetryConfig) -> datetime:
    """`at`, or, when it falls in the customer's night, the next daytime's start at the card's minute of the morning
    spread."""
    aimed = in_daytime(at, offset, *config.smart_daytime_local_hours)
    if aimed == at:
        return at
    return aimed + morning_spread(standing.token.token, config.smart_morning_spread)


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
    unheld = []  # where the cards the merchant's word holds back would stand without it
    for standing in standings:
        if not standing.usable:
            continue
        cadence = _cadence_spent(standing)
        if cadence is not None:
            spent.append(f"token {standing.token.token} used its {cadence.max_retries} {cadence.name} retries")
            continue
        own_floor = floor
        if standing is not current:
            if gate is None:
                continue
            own_floor = max(floor, gate)
        token_floor = max([own_floor, *filter(None, [standing.merchant_floor])])
        slot = _slot_for(standing, token_floor, view, config)
        if token_floor > own_floor:
            unheld.append(_slot_for(standing, own_floor, view, config))
        if slot.at <= end:
            slots.append(slot)
    if not slots:
        why = "; ".join(spent) if spent else "no slot within the retry window on any token"
        return end_recovery(EndOutcome.RETRIES_EXHAUSTED, why, made)
    best = min(slots, key=lambda s: s.rank)
    token = best.standing.token.token
    if best.budget_bound:
        return budget_recheck(best.at, best.why_full, token)
    at = best.at + draw_jitter(config, rng)
    if at > end:
        return end_recovery(EndOutcome.RETRIES_EXHAUSTED, "next slot falls past the retry window", made)
    # The jitter moves the slot on, maybe into a day (or past a window's edge) the budget has filled: checked again.
    allowed = best.standing.budget.earliest_allowed(best.standing.budget_uses, at)
    if allowed != at:
        return budget_recheck(allowed, best.standing.budget.why_full(best.standing.budget_uses, at), token)
    switched = "" if best.standing is current else f"; switched from token {current.token.token}"
    held = best.standing.merchant_note(best.at)
    reason = f"smart: {best.why}{held}{switched}"
    # A card whose slot, but for the merchant's word, would have come before this one's sent the attempt here.
    passed = sorted((s for s in unheld if s.at <= end and s.rank < best.rank), key=lambda s: s.rank)
    return _held(ScheduleAttempt(at, token, made + 1, reason), best.standing, best.at, [s.standing for s in passed[:1]])


def _held(
    attempt: ScheduleAttempt, standing: TokenStanding, at: datetime, passed: list[TokenStanding]
) -> ScheduleAttempt:
    """The attempt marked with the merchant's word that moved it: its own card's, when that held it back to `at`,
    else the one on the card it `passed` over (the algorithm would have tried that card first), if any."""
    own = standing.held_to(at)
    if own is not None or not passed:
        return replace(attempt, held_until=own)
    return replace(attempt, held_until=passed[0].merchant_floor, held_card=passed[0].token.token)


def budget_recheck(at: datetime, why_full: str, token: str) -> Recheck:
    """Both algorithms, when the token they would charge has no network budget before `at`: plan again then."""
    return Recheck(at, f"network budget used up ({why_full}); token {token} has budget again then")


# -- time arithmetic both algorithms share: jitter, the retry window (paydays and the morning spread: customer_time) --


def draw_jitter(config: RetryConfig, rng: random.Random) -> timedelta:
    """A whole number of seconds in [min_jitter, max_jitter], as Hyperswitch's random schedule delay."""
    low = int(config.min_jitter.total_seconds())
    high = int(config.max_jitter.total_seconds())
    return timedelta(seconds=rng.randint(low, max(low, high)))


def window_end(view: RecoveryView, config: RetryConfig) -> datetime:
    return view.created_at + config.retry_window
