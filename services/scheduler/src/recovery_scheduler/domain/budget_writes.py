"""What a change of a recovery writes to the merchant's card budgets (domain/card_budgets.py): the slot a newly
planned attempt reserves, the slot an attempt that will not run gives back, a `never` decline the change met
recorded on its card (and the merchant's other recoveries planned on that card to check), and a recovery the
merchant's word held off a card (out of retries under it, or its attempt sent to another card) noted on that card.
Pure: the budgets read before planning and the time come in."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from .card_budgets import CardBudget, hard_declines_of, planned_attempt
from .model import BusinessStatus

if TYPE_CHECKING:
    from .planning import Change


@dataclass(frozen=True)
class Release:
    """Give back the slot of attempt `attempt_number` of `payment_id` on the merchant's card `token`; with
    `timer_id`, only if the change cancels that timer (the attempt's) while it is still pending: once it fired, the
    executor may be charging the attempt, and a pause or a stop does not undo that (the slot then stays, counted as
    declined until the recovery next writes the card's budget, or given back when the executor says it sent
    nothing)."""

    merchant_id: str
    token: str
    payment_id: str
    attempt_number: int
    timer_id: str | None = None


@dataclass(frozen=True)
class BudgetWrites:
    """What a change writes to the card budgets: budgets to store by compare-and-set, slots to give back, and the
    merchant's other recoveries to plan again at once (an attempt planned on a card this change found
    hard-declined: `checks`, by payment id, with the card)."""

    reserve: tuple[CardBudget, ...] = ()
    release: tuple[Release, ...] = ()
    checks: tuple[tuple[str, str], ...] = ()


def budget_writes(change: Change, budgets: Mapping[str, CardBudget] | None, now: datetime) -> BudgetWrites:
    """A newly planned attempt reserves its slot on the budget read before planning (`budgets`, by token); an
    attempt planned before that will not run any more (stopped, paused, planned again) gives its slot back if its
    timer had not fired, and an attempt the executor refused gives it back at once."""
    recovery = change.recovery
    before, after = planned_attempt(change.before), planned_attempt(recovery)
    replaced = before is not None and after != before
    reserve: tuple[CardBudget, ...] = ()
    if after is not None and (before is None or replaced):
        if budgets is None:
            raise ValueError("a planned attempt reserves its slot on the card budget read before planning")
        read = budgets.get(after.token) or CardBudget(recovery.merchant_id, after.token)
        reserve = (read.with_recovery(recovery, now),)
    release: tuple[Release, ...] = ()
    # An attempt made keeps its slot (it was an authorization). One that will not run gives it back if its timer had
    # not fired (`Release.timer_id`), or at once if the executor refused it (`Change.refused`). The budget rewritten
    # above already drops an attempt of its own card that will not run.
    made = before is not None and any(a.number == before.attempt_number for a in recovery.attempts)
    if before is not None and replaced and not made and not (reserve and reserve[0].token == before.token):
        refused = change.refused == (before.token, before.attempt_number, before.attempt_id)
        timer = None if refused else before.timer_id
        release = (Release(recovery.merchant_id, before.token, recovery.payment_id, before.attempt_number, timer),)
    release += _refused_elsewhere(change, release)
    checks: tuple[tuple[str, str], ...] = ()
    if budgets is not None:  # a change that read none (a success, an update that does not plan) meets no decline
        reserve, checks = _hard_declines_recorded(change, budgets, reserve, now)
        reserve = _held_off_recorded(change, budgets, reserve, now)
        reserve = _outcomes_recorded(change, budgets, reserve, now)
    return BudgetWrites(reserve, release, checks)


def _outcomes_recorded(
    change: Change, budgets: Mapping[str, CardBudget], reserve: tuple[CardBudget, ...], now: datetime
) -> tuple[CardBudget, ...]:
    """An attempt the change records (its outcome reported) on a card whose budget the change does not write
    already: that budget rewritten, so that the attempt's slot holds when it was made and its outcome rather than
    its planned time, seconds earlier (the timer's lateness, the connector's pacing), which another recovery's
    rolling window would misread at its edge (the recovery ended, or planned its next attempt on another card)."""
    recovery, before = change.recovery, change.before
    known = {a.number for a in before.attempts} if before is not None else set()
    written = {b.token for b in reserve}
    for attempt in recovery.attempts:
        read = budgets.get(attempt.token)
        if attempt.number in known or attempt.token in written or read is None:
            continue
        reserve = (*reserve, read.with_recovery(recovery, now))
        written.add(attempt.token)
    return reserve


def _refused_elsewhere(change: Change, release: tuple[Release, ...]) -> tuple[Release, ...]:
    """The slot of an attempt the executor refused (nothing sent) that the recovery no longer had planned: stopped
    or paused after its timer fired, the slot kept then; given back now. Not when the recovery has made that
    attempt number, or planned it again since (its latest `attempt_planned` names another attempt id, or none: a
    slot is its payment's and number's, and it would be the later plan's, maybe being charged)."""
    if change.refused is None:
        return ()
    recovery, (token, number, attempt_id) = change.recovery, change.refused
    latest = next(
        (
            n
            for n in reversed(recovery.history)
            if n.what == "attempt_planned" and n.details.get("attempt_number") == number
        ),
        None,
    )
    if (
        any((r.token, r.attempt_number) == (token, number) for r in release)
        or any(a.number == number for a in recovery.attempts)
        or latest is None
        or latest.details.get("attempt_id") != attempt_id
    ):
        return ()
    return (Release(recovery.merchant_id, token, recovery.payment_id, number),)


def _held_off_recorded(
    change: Change, budgets: Mapping[str, CardBudget], reserve: tuple[CardBudget, ...], now: datetime
) -> tuple[CardBudget, ...]:
    """A recovery the merchant's word held off a card, noted on that card's budget (`held_off`) so that lifting the
    word, or moving it sooner, asks it again: one that ran out of retries now while the word held one of its cards
    back, and one whose newly planned attempt the word on a card sent to another (`AttemptPlan.held_card`)."""
    recovery = change.recovery
    ran_out = recovery.business_status == BusinessStatus.FAILED_DUE_TO_RETRIES_EXHAUSTED
    tokens: list[str] = []
    if (change.before is None or not change.before.ended) and recovery.ended and ran_out:
        tokens = [t.token for t in recovery.payment.tokens]
    planned = planned_attempt(recovery)
    if planned is not None and planned.held_card is not None and planned != planned_attempt(change.before):
        tokens.append(planned.held_card)
    written = {b.token: b for b in reserve}
    for token in tokens:
        read = written.get(token) or budgets.get(token)
        if read is not None and read.not_before_at(now) is not None:
            base = read if token in written else read.with_recovery(recovery, now)
            written[token] = base.holding_off(recovery.payment_id)
    return tuple(written.values())


def _hard_declines_recorded(
    change: Change, budgets: Mapping[str, CardBudget], reserve: tuple[CardBudget, ...], now: datetime
) -> tuple[tuple[CardBudget, ...], tuple[tuple[str, str], ...]]:
    """A card the change newly found hard-declined: recorded on its budget (already rewritten when the change plans
    on it), and the merchant's other recoveries planned on it checked."""
    recovery = change.recovery
    checks: list[tuple[str, str]] = []
    for token in newly_hard_declined(change):
        read = budgets.get(token) or CardBudget(recovery.merchant_id, token)
        if token not in {b.token for b in reserve}:
            reserve = (*reserve, read.with_recovery(recovery, now))
        checks.extend((other, token) for other in read.planned_elsewhere(recovery.payment_id))
    return reserve, tuple(checks)


def newly_hard_declined(change: Change) -> list[str]:
    """The change's cards on which its recovery met a `never` decline it had not met before."""
    recovery, before = change.recovery, change.before
    return [
        t.token
        for t in recovery.payment.tokens
        if hard_declines_of(recovery, t.token) != (() if before is None else hard_declines_of(before, t.token))
    ]
