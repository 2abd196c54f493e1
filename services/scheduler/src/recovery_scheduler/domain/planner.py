"""The retry planner's entry point: from a recovery's history and the time now, the next decision."""

from __future__ import annotations

import random
from dataclasses import replace
from datetime import datetime

from .cascading import plan_cascading
from .config import RetryConfig
from .decisions import AwaitBillingSystem, Decision, EndOutcome, Observe, Recheck, end_recovery
from .model import Algorithm, AttemptOutcome, RecoveryView
from .smart import plan_smart
from .standing import token_standings


def decide_next(view: RecoveryView, now: datetime, config: RetryConfig, rng: random.Random) -> Decision:
    """What to do next for a recovery. Pure: the clock and the randomness come in as arguments."""
    if now.tzinfo is None or view.created_at.tzinfo is None:
        raise ValueError("times must be timezone-aware (UTC)")
    if view.algorithm is Algorithm.MONITORING:
        active = config.active_algorithm
        if active is Algorithm.MONITORING:
            active = Algorithm.CASCADING
        shadow = _decide_active(replace(view, algorithm=active), now, config, rng)
        assert not isinstance(shadow, Observe)
        # Hyperswitch: the threshold counts from when the profile chose monitoring, not from each payment.
        started = view.monitoring_started_at or view.created_at
        switch_at = None if config.monitoring_threshold is None else started + config.monitoring_threshold
        return Observe(shadow, switch_at)
    return _decide_active(view, now, config, rng)


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
