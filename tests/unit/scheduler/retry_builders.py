"""Builders for retry-planner tests: recoveries, attempts, and a simulated clock that runs them."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime

from recovery_scheduler.domain.config import RetryConfig
from recovery_scheduler.domain.declines import DeclineCodes
from recovery_scheduler.domain.model import (
    Algorithm,
    AttemptOutcome,
    AttemptRecord,
    Decision,
    EndRecovery,
    Observe,
    Recheck,
    RecoveryView,
    ScheduleAttempt,
    TokenState,
)
from recovery_scheduler.domain.planner import decide_next

T0 = datetime(2026, 5, 4, 10, 0, tzinfo=UTC)  # a Monday


def view(
    algorithm: Algorithm = Algorithm.CASCADING,
    tokens: tuple[TokenState, ...] = (TokenState("pm_primary", "Visa"),),
    **fields: object,
) -> RecoveryView:
    return RecoveryView(algorithm, tokens, fields.pop("created_at", T0), **fields)  # type: ignore[arg-type]


def declined(number: int, token: str, at: datetime, **codes: str | None) -> AttemptRecord:
    return AttemptRecord(number, token, at, AttemptOutcome.DECLINED, DeclineCodes(**codes))


def with_attempt(recovery: RecoveryView, attempt: AttemptRecord) -> RecoveryView:
    return replace(recovery, attempts=(*recovery.attempts, attempt))


# Given the planned attempt, what the connector answers.
Answer = Callable[[ScheduleAttempt], AttemptRecord]


def run_recovery(
    recovery: RecoveryView,
    answer: Answer,
    config: RetryConfig | None = None,
    seed: int = 7,
    max_steps: int = 500,
) -> tuple[RecoveryView, list[Decision]]:
    """Drive a recovery to its end on a simulated clock: every timer fires exactly when due."""
    config = config or RetryConfig()
    rng = random.Random(seed)
    now = recovery.created_at
    decisions: list[Decision] = []
    for _ in range(max_steps):
        decision = decide_next(recovery, now, config, rng)
        decisions.append(decision)
        if isinstance(decision, ScheduleAttempt):
            now = decision.at
            recovery = with_attempt(recovery, answer(decision))
        elif isinstance(decision, Recheck):
            now = decision.at
        elif isinstance(decision, EndRecovery | Observe):
            return recovery, decisions
        else:
            return recovery, decisions
    raise AssertionError("recovery did not end")
