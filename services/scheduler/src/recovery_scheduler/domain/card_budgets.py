"""A merchant's budget on one card as stored: its reservations, one per attempt of its recoveries on the card,
planned or made, and the `never` declines its recoveries met on the card. A planned attempt reserves its slot in
the same transaction as the plan, by compare-and-set on the budget's version, so two recoveries (on any number of
scheduler instances) cannot both take the last slot; an attempt that will not run (the recovery stopped, paused or
planned again) gives its slot back. A recovery that meets a `never` decline (a lost, stolen or closed card) records
it on the card's budget in the same way, so that none of the merchant's other recoveries charges the card again,
and those with an attempt planned on it plan again at once (what a change writes: domain/budget_writes.py). The
merchant may mark a card hard-declined itself, or clear what is recorded, and say when the card may next be tried
(`CardBudget.status_updated`)."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from .budgets import CardUse
from .declines import DeclineClass, first_failure_codes
from .model import AttemptOutcome
from .plans import AttemptPlan

if TYPE_CHECKING:
    from .recovery import Recovery

# How long a reservation counts: the longest network-budget window (rolling 30 days) and a day's margin.
NETWORK_WINDOW = timedelta(days=30)
BUDGET_LOOKBACK = NETWORK_WINDOW + timedelta(days=1)
PLANNED = "planned"  # a reservation's outcome until its attempt is reported (then an AttemptOutcome value)
DECLINED = AttemptOutcome.DECLINED.value
# The attempt number of a reservation that stands for the billing system's own tries before the recovery (never a
# planned attempt's: those are 1 and up, so a release never takes it).
BILLING_TRIES = 0
# The payment id of a hard decline the merchant marked itself (no recovery met it; no payment has an empty id, and a
# release before the mark existed reads it as any other recovery's decline).
MERCHANT_MARK = ""
# How long the merchant's mark holds unless it is cleared: a lost or stolen card does not come back.
MERCHANT_MARK_LIFETIME = timedelta(days=365)


@dataclass(frozen=True)
class Reservation:
    """Attempt `attempt_number` of recovery `payment_id` on the card at `at` (planned business time, or the time
    it was made), its amount, and its outcome (`planned` until the recovery records the attempt). `held_until`: the
    merchant's word on the card that moved the planned attempt later (`AttemptPlan.held_until`), None if none did."""

    payment_id: str
    attempt_number: int
    at: datetime
    amount: int
    currency: str
    outcome: str = PLANNED
    held_until: datetime | None = None

    def use_for(self, amount: int, currency: str) -> CardUse:
        """This reservation as a budget counts it for a payment of `amount` `currency`."""
        same = self.amount == amount and self.currency.upper() == currency.upper()
        return CardUse(self.at, same_amount=same, declined=self.outcome != AttemptOutcome.SUCCEEDED.value)


@dataclass(frozen=True)
class HardDecline:
    """A `never` decline recovery `payment_id` met on the card: its attempt `attempt_number` (0: the billing
    system's failure the recovery started from) at `at`, and what the decline was (`source`: the code's rule)."""

    payment_id: str
    attempt_number: int
    at: datetime
    source: str

    @property
    def by_merchant(self) -> bool:
        return self.payment_id == MERCHANT_MARK

    @property
    def where(self) -> str:
        """Who met the decline, as a reason reads it."""
        return "marked by the merchant" if self.by_merchant else f"in payment {self.payment_id}"

    @property
    def lasts_until(self) -> datetime:
        """Until when it counts: a recovery's for the longest network window, the merchant's mark for a year."""
        return self.at + (MERCHANT_MARK_LIFETIME if self.by_merchant else BUDGET_LOOKBACK)


@dataclass(frozen=True)
class TokenStatusUpdate:
    """What the merchant's word on a card changes: the budget to store (None: the card stood so already), the
    answer's message, whether the card is now hard-declined for the merchant's recoveries, and those with an attempt
    planned on it, to plan again at once."""

    budget: CardBudget | None
    message: str
    hard_declined: bool
    planned_again: tuple[str, ...] = ()

    @property
    def changed(self) -> bool:
        return self.budget is not None


@dataclass(frozen=True)
class _Word:
    """One part of the merchant's word on a card: the budget after it (None: unchanged), what it did, and the
    recoveries it asks to plan again."""

    budget: CardBudget | None
    message: str
    planned_again: tuple[str, ...] = ()


@dataclass(frozen=True)
class CardUsage:
    """The merchant's use of a card as its budgets count it: attempts made or due in the last 30 days, those of them
    declined or not known to have succeeded (a slot keeps the outcome its budget's last write knew: an attempt
    reported later counts as declined until its recovery writes the card's budget again), and attempts planned
    later."""

    attempts: int
    declined: int
    planned: int


@dataclass(frozen=True)
class CardBudget:
    """One merchant's reservations on one card (token), and the `never` declines its recoveries met on it.
    `version`: the version read (0: none stored yet); the write is a compare-and-set on it."""

    merchant_id: str
    token: str
    version: int = 0
    reservations: tuple[Reservation, ...] = ()
    hard_declines: tuple[HardDecline, ...] = ()
    # The merchant's word on when the card may next be tried (the token status update's `scheduled_at`): no recovery
    # of the merchant plans an attempt on it before then. None: no word.
    not_before: datetime | None = None
    # The merchant's recoveries the word held off the card: those that ran out of retries while it held the card
    # back (it may have held them past their retry window), and those whose planned attempt it sent to the
    # customer's other card: asked again when the word is lifted or moved sooner.
    held_off: tuple[str, ...] = ()

    def not_before_at(self, now: datetime) -> datetime | None:
        """The merchant's `not_before` while it still holds back a try at `now`; None once it has passed."""
        return self.not_before if self.not_before is not None and self.not_before > now else None

    def holding_off(self, payment_id: str) -> CardBudget:
        """The budget noting that the merchant's word held `payment_id` off the card (`held_off`)."""
        return self if payment_id in self.held_off else replace(self, held_off=(*self.held_off, payment_id))

    def others(self, payment_id: str) -> tuple[Reservation, ...]:
        """The reservations of the merchant's other recoveries (a recovery counts its own from its attempts)."""
        return tuple(r for r in self.reservations if r.payment_id != payment_id)

    def hard_declined_elsewhere(self, payment_id: str) -> HardDecline | None:
        """The first `never` decline another recovery of the merchant met on the card, if any: then the card may
        not be charged for `payment_id` either."""
        return next((d for d in self.hard_declines if d.payment_id != payment_id), None)

    def planned_elsewhere(self, payment_id: str) -> tuple[str, ...]:
        """The merchant's other recoveries holding an attempt planned on the card, not made yet."""
        return tuple(dict.fromkeys(r.payment_id for r in self.others(payment_id) if r.outcome == PLANNED))

    def usage(self, now: datetime) -> CardUsage:
        since = now - NETWORK_WINDOW
        past = [r for r in self.reservations if since <= r.at <= now]
        declined = sum(r.outcome != AttemptOutcome.SUCCEEDED.value for r in past)
        return CardUsage(len(past), declined, sum(r.at > now for r in self.reservations))

    def uses_for(self, recovery: Recovery, since: datetime) -> tuple[CardUse, ...]:
        payment = recovery.payment
        others = self.others(recovery.payment_id)
        return tuple(r.use_for(payment.amount, payment.currency) for r in others if r.at >= since)

    def with_recovery(self, recovery: Recovery, now: datetime) -> CardBudget:
        """The budget with `recovery`'s reservations on this card as they now are: its attempts on the card (their
        times and outcomes as recorded) and its planned attempt if it is on this card; reservations older than
        the lookback dropped. The version stays the one read (the write's compare-and-set)."""
        payment, since = recovery.payment, now - BUDGET_LOOKBACK
        own: list[Reservation] = []
        if payment.tokens and payment.tokens[0].token == self.token:
            # The billing system's own tries on the invoice's card (at its last failure, as the recovery counts them
            # itself, `standing.token_standings`): the merchant's other recoveries on the card count them too.
            failed_at = payment.transaction_created_at or payment.created_at
            tried = Reservation(
                recovery.payment_id, BILLING_TRIES, failed_at, payment.amount, payment.currency, DECLINED
            )
            own += [tried] * max(payment.billing_retry_count, 1)
        own += [
            Reservation(recovery.payment_id, a.number, a.at, payment.amount, payment.currency, a.outcome.value)
            for a in recovery.attempts
            if a.token == self.token
        ]
        planned = planned_attempt(recovery)
        if planned is not None and planned.token == self.token:
            own.append(
                Reservation(
                    recovery.payment_id,
                    planned.attempt_number,
                    planned.planned_at,
                    payment.amount,
                    payment.currency,
                    # The word on this card, not on the other card that sent the attempt here (its budget notes it).
                    held_until=planned.held_until if planned.held_card is None else None,
                )
            )
        kept = [*self.others(recovery.payment_id), *own]
        declines = [
            *(d for d in self.hard_declines if d.payment_id != recovery.payment_id),
            *hard_declines_of(recovery, self.token),
        ]
        return replace(
            self,
            reservations=tuple(r for r in kept if r.at >= since),
            hard_declines=tuple(d for d in declines if d.lasts_until >= now),
        )

    def status_updated(
        self, hard_declined: bool | None, error_code: str | None, now: datetime, scheduled_at: datetime | None = None
    ) -> TokenStatusUpdate:
        """The merchant's word on the card (`PUT /v2/recovery/data-backfill/update-token`): whether it is
        hard-declined (`_hard_decline_said`; None: not said), then when it may next be tried (`_schedule_said`;
        None: not said). The parts' messages are joined; a recovery either part asks to plan again is asked once."""
        parts = []
        budget = self
        if hard_declined is not None:
            part = self._hard_decline_said(hard_declined, error_code, now)
            parts.append(part)
            budget = part.budget or budget
        if scheduled_at is not None:
            part = budget._schedule_said(scheduled_at, now)
            parts.append(part)
            budget = part.budget or budget
        changed = budget if any(p.budget is not None for p in parts) else None
        again = tuple(dict.fromkeys(p for part in parts for p in part.planned_again))
        declined = hard_declined if hard_declined is not None else bool(budget.hard_declines)
        return TokenStatusUpdate(changed, "; ".join(p.message for p in parts), declined, again)

    def _hard_decline_said(self, hard_declined: bool, error_code: str | None, now: datetime) -> _Word:
        """Hard-declined: marked so for every recovery of the merchant, those with an attempt planned on it planning
        again at once (a mark standing already is kept as it is). Not: every hard decline recorded on the card
        forgotten, the merchant's mark and those its recoveries met; a recovery whose own attempt met one keeps it
        (the issuer said so for that invoice), the others may charge the card again."""
        card = f"card {self.token}"
        if hard_declined:
            marked = next((d for d in self.hard_declines if d.by_merchant), None)
            if marked is not None:
                return _Word(None, f"{card} is marked hard-declined already (since {marked.at.isoformat()})")
            code = f"error_code={error_code}" if error_code else "no code given"
            mark = HardDecline(MERCHANT_MARK, 0, now, code)
            again = self.planned_elsewhere(MERCHANT_MARK)
            told = f"{card} marked hard-declined: none of the merchant's recoveries charges it again"
            if again:
                told += f"; {len(again)} with an attempt planned on it plan again now (one already due stands)"
            return _Word(replace(self, hard_declines=(*self.hard_declines, mark)), told, again)
        if not self.hard_declines:
            return _Word(None, f"{card} has no hard decline recorded")
        told = (
            f"{card} cleared ({len(self.hard_declines)} hard decline(s) forgotten): the merchant's recoveries may "
            "charge it again, except one whose own attempt met the decline"
        )
        return _Word(replace(self, hard_declines=()), told)

    def _schedule_said(self, scheduled_at: datetime, now: datetime) -> _Word:
        """When the card may next be tried (Hyperswitch's `scheduled_at`, the token's next retry): in the future, no
        recovery of the merchant plans an attempt on it before then, and those holding one planned sooner plan again
        now; now or past, the word is lifted. Lifted or moved sooner, the recoveries whose planned attempt the word
        held back plan again now, so that they may try the card sooner (the others' attempts stand: the word did not
        move them), and those it held off the card (`held_off`: out of retries, or an attempt sent to another card)
        are asked again."""
        card = f"card {self.token}"
        held = self.not_before_at(now)
        if scheduled_at > now and scheduled_at == held:
            return _Word(None, f"{card} is not tried before {scheduled_at.isoformat()} already")
        if scheduled_at <= now and held is None:
            return _Word(None, f"{card} is not held back")
        eased = held is not None and (scheduled_at <= now or scheduled_at < held)
        floor = max(scheduled_at, now)
        freed = (*self._held_past(floor), *self.held_off) if eased else ()
        # Recoveries held off by a word that lapsed since are past their retry window: not kept.
        held_off = () if eased or held is None else self.held_off
        if scheduled_at > now:
            sooner = self._planned_between(now, scheduled_at)
            told = f"{card}: none of the merchant's recoveries tries it before {scheduled_at.isoformat()}"
            if sooner:
                told += f"; {len(sooner)} with an attempt planned on it sooner plan again now (one already due stands)"
            budget = replace(self, not_before=scheduled_at, held_off=held_off)
        else:
            assert held is not None  # lifting no word returned above
            sooner = ()
            told = f"{card} is no longer held back until {held.isoformat()}: recoveries plan on it as usual from now"
            budget = replace(self, not_before=None, held_off=held_off)
        if freed:
            told += (
                f"; {len(freed)} that it held back (an attempt planned later or on another card, or its retries run"
                " out) plan again now"
                " (one already due stands)"
            )
        return _Word(budget, told, tuple(dict.fromkeys((*sooner, *freed))))

    def _planned_between(self, start: datetime, end: datetime) -> tuple[str, ...]:
        """The merchant's recoveries holding an attempt planned on the card from `start` and before `end`."""
        return tuple(
            dict.fromkeys(r.payment_id for r in self.reservations if r.outcome == PLANNED and start <= r.at < end)
        )

    def _held_past(self, floor: datetime) -> tuple[str, ...]:
        """The merchant's recoveries holding an attempt planned on the card that its word held back past `floor`."""
        return tuple(
            dict.fromkeys(
                r.payment_id
                for r in self.reservations
                if r.outcome == PLANNED and r.held_until is not None and r.held_until > floor
            )
        )

    @property
    def expires_at(self) -> datetime | None:
        """When no reservation, no hard decline and no word on the card's next try counts any more (the stored
        budget may go)."""
        ends = [*(r.at + BUDGET_LOOKBACK for r in self.reservations), *(d.lasts_until for d in self.hard_declines)]
        if self.not_before is not None:
            ends.append(self.not_before)
        return max(ends, default=None)


def hard_declines_of(recovery: Recovery, token: str) -> tuple[HardDecline, ...]:
    """The `never` declines `recovery` met on `token`: the billing system's failure it started from (on the
    primary card) and its own declined attempts."""
    payment = recovery.payment
    network = next((t.card_network for t in payment.tokens if t.token == token), None)
    found: list[HardDecline] = []
    if payment.first_error is not None and payment.tokens and payment.tokens[0].token == token:
        first = first_failure_codes(payment.first_error).assessment(network)
        if first.decline_class is DeclineClass.NEVER:
            failed_at = payment.transaction_created_at or payment.created_at
            found.append(HardDecline(recovery.payment_id, 0, failed_at, first.source))
    for attempt in recovery.attempts:
        if attempt.token != token or attempt.outcome is not AttemptOutcome.DECLINED:
            continue
        assessment = attempt.codes.assessment(network)
        if assessment.decline_class is DeclineClass.NEVER:
            found.append(HardDecline(recovery.payment_id, attempt.number, attempt.at, assessment.source))
    return tuple(found)


def planned_attempt(recovery: Recovery | None) -> AttemptPlan | None:
    """The recovery's planned attempt not made yet (it holds a reservation), if any."""
    if recovery is None or not isinstance(recovery.plan, AttemptPlan):
        return None
    plan = recovery.plan
    return None if any(a.number == plan.attempt_number for a in recovery.attempts) else plan
