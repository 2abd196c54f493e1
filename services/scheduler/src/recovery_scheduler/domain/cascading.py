"""Cascading: a fixed ladder (Hyperswitch's by default); same token until hard-declined or out of budget.

Filtered through the decline class (never / customer / fix take the token out; Mastercard advice waits are
floors) and through the network budgets (a ceiling: an out-of-budget token switches or waits).
"""

from __future__ import annotations

import random
from datetime import datetime

from .config import RetryConfig
from .decisions import Decision, EndOutcome, Recheck, ScheduleAttempt, end_recovery
from .model import RecoveryView
from .standing import TokenStanding, current_token_index
from .timing import draw_jitter, window_end


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
    usable = [s for s in order if s.usable]
    jitter = draw_jitter(config, rng)
    end = window_end(view, config)
    out_of_budget: list[str] = []
    for standing in usable:
        floor = max([nominal, now, *filter(None, [standing.network_floor])])
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
        why = "" if standing.network_floor is None or standing.network_floor <= nominal else "; network advice wait"
        skipped = "".join(f"; {reason}" for reason in out_of_budget)
        return ScheduleAttempt(at, standing.token.token, made + 1, f"cascading {step}{why}{switched}{skipped}")
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
    return Recheck(release, f"network budget used up ({why_full}); token {standing.token.token} has budget again then")
