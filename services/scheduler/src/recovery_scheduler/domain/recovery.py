"""The recovery of one failed invoice payment: its state, and each transition as the new state, the timers to
store and the messages to send. Pure: the time, randomness, ids and the other recoveries' budgets come in."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from recovery_contracts.api.recovery import RecoveryAction
from recovery_contracts.envelope import Envelope, MessageType
from recovery_contracts.messages import PaymentAttemptFailed, PaymentAttemptRefused, PaymentSucceeded, RecoveryUpdated
from recovery_contracts.recovery import RecoveryPayment

from .card_budgets import planned_attempt
from .declines import DeclineClass, DeclineCodes
from .messages import payment_cancelled
from .model import Algorithm, Attempt, AttemptOutcome, BusinessStatus, ScheduleAttempt
from .planning import Change, Planning
from .plans import AttemptPlan, Note, Plan
from .refusals import refused_attempt
from .resume import ResumeRefused, resume_decision, resumed_attempt
from .status import TERMINAL, RecoveryStatus
from .steps import attempt_planned, awaiting_billing, next_step
from .updates import (
    PRIOR_RETRIES_IMPORTED,
    card_changed,
    may_plan,
    plan_misses_prior_retries,
    plans_on,
    stopping,
    waits_for_a_card,
)


@dataclass(frozen=True)
class Recovery:
    """`version` is the version stored (compare-and-set); `payment` the latest snapshot intake sent."""

    payment: RecoveryPayment
    algorithm: Algorithm
    status: RecoveryStatus
    version: int
    created_at: datetime
    updated_at: datetime
    business_status: str | None = None
    attempts: tuple[Attempt, ...] = ()
    hard_declined_tokens: tuple[str, ...] = ()
    plan: Plan | None = None
    history: tuple[Note, ...] = ()
    ended_at: datetime | None = None
    # The billing system reported a payment in progress (pending_payment): nothing is planned until it reports
    # again (a failure resumes, a success or a cancellation ends).
    paused: bool = False
    # The newest `recovery.updated` version applied (intake's intent version).
    intake_version: int = 0
    # The billing system's word that closed the invoice after the recovery ended (`cancel_invoice`,
    # `success_payment_external`): nothing left to collect, never reopened (a lifted hold, a card, a resume).
    closed_by: str | None = None
    # When each token's card data last changed.
    card_updated_at: Mapping[str, datetime] = field(default_factory=dict)
    # When a monitoring recovery hands over to the profile's active algorithm.
    monitoring_switch_at: datetime | None = None
    # Ids of the messages applied to this recovery by compare-and-set (`<queue>:<message id>`), the latest last.
    applied_messages: tuple[str, ...] = ()

    @property
    def payment_id(self) -> str:
        return self.payment.payment_id

    @property
    def merchant_id(self) -> str:
        return self.payment.merchant_id

    @property
    def ended(self) -> bool:
        return self.status in TERMINAL

    def has_applied(self, key: str) -> bool:
        return key in self.applied_messages

    def noted(self, at: datetime, what: str, reason: str, **details: object) -> Recovery:
        """The recovery with a line added to its timeline."""
        return replace(self, history=(*self.history, Note(at, what, reason, details)))

    def decline_class(self, attempt: Attempt) -> DeclineClass:
        """As the planner reads the attempt: a decline by its codes, a connector's refusal as `error_assessment`."""
        if attempt.outcome is AttemptOutcome.ERROR:
            return attempt.codes.error_assessment().decline_class
        card_network = next((t.card_network for t in self.payment.tokens if t.token == attempt.token), None)
        return attempt.codes.assessment(card_network).decline_class

    # -- starting -----------------------------------------------------------------------------------------------

    @classmethod
    def new(cls, payment: RecoveryPayment, now: datetime, intake_version: int = 0) -> Recovery:
        return cls(
            payment=payment,
            algorithm=Algorithm(payment.retry.algorithm.value),
            status=RecoveryStatus.SCHEDULED,
            version=0,
            created_at=now,
            updated_at=now,
            intake_version=intake_version,
        )

    @classmethod
    def start(cls, payment: RecoveryPayment, planning: Planning, intake_version: int = 0) -> Change:
        """A new recovery with its first plan. Stored at version 1, as insert-then-save gave: this plan's timer
        ids were derived from version 0 (`version + 1`), the next plan's from version 1, so they never collide."""
        change = next_step(cls.new(payment, planning.now, intake_version), planning, new=True)
        return replace(change, recovery=replace(change.recovery, version=1))

    @classmethod
    def first_seen(cls, update: RecoveryUpdated, planning: Planning) -> Change | None:
        """A `recovery.updated` for a recovery not stored yet. A stop or a pause seen before the recovery itself
        leaves a tombstone, so that a late `recovery.scheduled` finds the recovery and cannot start charging a
        cancelled or paid invoice. None: nothing to store."""
        if plans_on(update):
            return cls.start(update.payment, planning, intake_version=update.version)
        recovery = cls.new(update.payment, planning.now, intake_version=update.version)
        by = " by the merchant" if update.by_merchant else ""
        reason = f"{update.action}{by} before any retry was planned"
        messages: tuple[Envelope[Any], ...] = ()
        if (stop := stopping(update)) is not None:
            status, business_status, why = stop
            recovery = replace(recovery, status=status, business_status=business_status)
            messages = recovery._cancelled_messages(business_status, why, planning)
        elif update.action == RecoveryAction.PENDING_PAYMENT:
            # Waiting, with a re-plan at the horizon; stored at version 1 as a started recovery is (its timer id
            # follows version 0, the next plan's version 1).
            waiting = recovery._paused("the billing system reports a payment in progress: waiting", planning)
            noted = waiting.recovery.noted(planning.now, "billing_system_action", reason)
            return Change(None, replace(noted, version=1), waiting.timers)
        else:
            return None
        return Change(None, recovery.noted(planning.now, "billing_system_action", reason), messages=messages)

    # -- what the executor reports ------------------------------------------------------------------------------

    def attempt_failed(self, failure: PaymentAttemptFailed, planning: Planning) -> Change:
        """Record the failed attempt (a hard decline rules its token out) and plan the next step."""
        if any(a.number == failure.attempt_number for a in self.attempts):
            return Change(self, self)
        outcome = AttemptOutcome.DECLINED if failure.outcome.value == "declined" else AttemptOutcome.ERROR
        attempt = Attempt(
            number=failure.attempt_number,
            attempt_id=failure.attempt_id,
            token=failure.token,
            at=failure.attempted_at,
            outcome=outcome,
            codes=DeclineCodes.of(failure),
            message=failure.message,
            connector_transaction_id=failure.connector_transaction_id,
        )
        decline_class = self.decline_class(attempt)
        hard = self.hard_declined_tokens
        if decline_class is DeclineClass.NEVER and failure.token not in hard:
            hard = (*hard, failure.token)
        recovery = replace(self, attempts=(*self.attempts, attempt), hard_declined_tokens=hard).noted(
            planning.now,
            "attempt_failed",
            f"attempt {failure.attempt_number} {failure.outcome.value}: {failure.decline_code or failure.error_code}",
            decline_class=decline_class.value,
            attempt_number=failure.attempt_number,
        )
        change = Change(None, recovery) if recovery.ended else next_step(recovery, planning)
        return replace(change, before=self)

    def attempt_refused(self, refusal: PaymentAttemptRefused, planning: Planning) -> Change:
        """The executor refused an attempt without sending it (`refusals.refused_attempt`)."""
        return refused_attempt(self, refusal, planning)

    def payment_succeeded(self, success: PaymentSucceeded, now: datetime) -> Change:
        """The recovery ends as succeeded, whatever it was doing: money moved."""
        recovery = self
        if not any(a.number == success.attempt_number for a in self.attempts):
            succeeded = Attempt(
                number=success.attempt_number,
                attempt_id=success.attempt_id,
                token=success.token,
                at=success.succeeded_at,
                outcome=AttemptOutcome.SUCCEEDED,
                connector_transaction_id=success.connector_transaction_id,
            )
            recovery = replace(recovery, attempts=(*self.attempts, succeeded))
        if self.status in (RecoveryStatus.CANCELLED, RecoveryStatus.SUCCEEDED):
            # An attempt in flight when the invoice was cancelled or paid elsewhere: money moved, so the recovery
            # is recorded as ours, and the conflict is visible to operators (a refund decision).
            recovery = recovery.noted(
                now,
                "conflict",
                f"attempt {success.attempt_number} succeeded after the recovery ended ({self.business_status}): "
                "the invoice may have been paid twice",
            )
        recovery = replace(
            recovery,
            status=RecoveryStatus.SUCCEEDED,
            business_status="COMPLETED_EXECUTE_TASK",
            paused=False,
            plan=None,
            ended_at=now,
            updated_at=now,
        ).noted(now, "ended", f"attempt {success.attempt_number} succeeded", outcome="succeeded")
        # The plan was this very attempt: its timer has fired, and a plan has one timer, so nothing is pending (a
        # copy of a fired timer only replays the attempt, which the executor has settled). Otherwise cancel.
        this_attempt = isinstance(self.plan, AttemptPlan) and self.plan.attempt_number == success.attempt_number
        return Change(self, recovery, cancels_planned_timers=not this_attempt)

    # -- what intake reports ------------------------------------------------------------------------------------

    def is_stale(self, update: RecoveryUpdated) -> bool:
        return update.version <= self.intake_version

    def updated(self, update: RecoveryUpdated, planning: Planning) -> Change:
        """The intent changed at intake: another token or failure for the invoice, or an action that stops it."""
        if self.is_stale(update):
            return Change(self, self)
        now, action = planning.now, update.action
        recovery = replace(self, intake_version=update.version)._with_snapshot(update.payment, now)
        if update.tokens_added:
            added = ", ".join(update.tokens_added)
            recovery = recovery.noted(now, "tokens_added", f"the customer's saved tokens now include {added}")
        failed_open = self.status is RecoveryStatus.FAILED and not self.closed_by
        reopens = plans_on(update) and failed_open and bool(update.tokens_added)
        if may_plan(update) and waits_for_a_card(self) and recovery.card_updated_at != self.card_updated_at:
            # The card the customer had to fix was updated (the account updater, the merchant's backfill): plan
            # again, if the planner now finds a token it may charge.
            again = recovery._reopened("a card of the customer was updated", planning)
            if again is not None:
                return replace(again, before=self)
        if self.ended and not reopens:
            reason = f"{action} after the recovery ended ({self.status.value}): recorded"
            if stopping(update) is not None:
                recovery = replace(recovery, closed_by=str(action))
            change = Change(None, recovery.noted(now, "billing_system_action", reason))
        elif (stop := stopping(update)) is not None:
            change = recovery._stopped(*stop, planning)
        elif action == RecoveryAction.PENDING_PAYMENT:
            change = recovery._paused("the billing system reports a payment in progress: waiting", planning)
        elif may_plan(update) and plan_misses_prior_retries(self, update.payment, now):
            if plans_on(update):
                recovery = recovery.noted(now, "billing_system_failure", "the billing system reports another failure")
            change = recovery._planned_again(PRIOR_RETRIES_IMPORTED, planning)
        elif plans_on(update):
            change = recovery._failure_reported(planning)
        else:
            change = Change(None, recovery.noted(now, "billing_system_action", f"{action}: recorded"))
        return replace(change, before=self)

    def _planned_again(self, why: str, planning: Planning, resumed_at: datetime | None = None) -> Change:
        """The running recovery planned again at once: the planned timers cancelled, the replaced attempt's budget
        slot given back (`budget_writes.budget_writes`); an operator's resume asked at `resumed_at` by its rules."""
        noted = self.noted(planning.now, "planned_again", why)
        try:
            decision = resumed_attempt(noted, resumed_at, planning) if resumed_at is not None else None
        except ResumeRefused:
            decision = None  # every card hard-declined since: the planner ends it
        change = self._attempt(noted, decision, planning) if decision is not None else next_step(noted, planning)
        return replace(change, cancels_planned_timers=True)

    def _attempt(self, recovery: Recovery, decision: ScheduleAttempt, planning: Planning) -> Change:
        """This recovery, become `recovery`, with the attempt `decision` planned on its timer."""
        planned, timer = attempt_planned(recovery, decision, planning)
        return Change(self, replace(planned, updated_at=planning.now), (timer,))

    def _reopened(self, why: str, planning: Planning) -> Change | None:
        """This failed recovery planned again; None when the planner would end it the same way (nothing changes),
        or when the billing system closed its invoice since (`closed_by`)."""
        if self.closed_by is not None:
            return None
        reopened = replace(self, status=RecoveryStatus.SCHEDULED, business_status=None, ended_at=None)
        change = next_step(reopened.noted(planning.now, "reopened", why), planning)
        if change.recovery.ended:
            return None
        return replace(change, cancels_planned_timers=True)

    def _with_snapshot(self, payment: RecoveryPayment, now: datetime) -> Recovery:
        """Take intake's newer snapshot; a token whose card data changed lifts an earlier `fix` block (its earlier
        retries, `prior_retries`, are not card data)."""
        before = {t.token: t for t in self.payment.tokens}
        card_updated_at = dict(self.card_updated_at)
        for token in payment.tokens:
            old = before.get(token.token)
            if old is not None and card_changed(old, token):
                card_updated_at[token.token] = now
        return replace(self, payment=payment, card_updated_at=card_updated_at)

    def _stopped(self, status: RecoveryStatus, business_status: str, reason: str, planning: Planning) -> Change:
        """Ended for a reason outside the planner (cancelled by the merchant or the billing system, or paid)."""
        now = planning.now
        recovery = replace(
            self, status=status, business_status=business_status, plan=None, paused=False, ended_at=now, updated_at=now
        )
        return Change(
            None,
            recovery.noted(now, "ended", reason, outcome=status.value),
            cancels_planned_timers=True,
            messages=recovery._cancelled_messages(business_status, reason, planning),
        )

    def _cancelled_messages(self, business_status: str, reason: str, planning: Planning) -> tuple[Envelope[Any], ...]:
        """`payment.cancelled` (the merchant's `payment_cancelled` webhook) when this ended recovery was cancelled."""
        if self.status is not RecoveryStatus.CANCELLED:
            return ()
        cancelled = payment_cancelled(self.payment, business_status, reason, self.attempts, planning.now)
        return (planning.message(MessageType.PAYMENT_CANCELLED, cancelled, self.payment),)

    def _paused(self, reason: str, planning: Planning) -> Change:
        """Nothing planned until the billing system reports again (or the horizon: its re-plan timer)."""
        now = planning.now
        waiting = awaiting_billing(replace(self, paused=True, updated_at=now), reason, planning)
        recovery = waiting.recovery.noted(now, "paused", reason)
        return replace(waiting, recovery=recovery, cancels_planned_timers=True)

    def _failure_reported(self, planning: Planning) -> Change:
        """Another failure reported for the invoice: resume a paused recovery, reopen one that failed for want of
        a usable token now that there is a new one, or let the running plan pick the news up at its next step."""
        now = planning.now
        if self.status is RecoveryStatus.FAILED:
            recovery = replace(self, status=RecoveryStatus.SCHEDULED, business_status=None, ended_at=None).noted(
                now, "reopened", "a new token arrived for a recovery that had failed"
            )
        elif self.status is RecoveryStatus.SCHEDULED and isinstance(self.plan, AttemptPlan) and not self.paused:
            return Change(None, self.noted(now, "billing_system_failure", "recorded; the planned attempt stands"))
        else:
            recovery = self.noted(
                now, "billing_system_failure", "the billing system reports another failure: planning again"
            )
        change = next_step(replace(recovery, paused=False), planning)
        return replace(change, cancels_planned_timers=True)

    # -- timers and operators -----------------------------------------------------------------------------------

    def replanned(self, planning: Planning) -> Change:
        """A re-plan timer fired: ask the planner again on the current state. With an attempt planned (the timer
        another recovery of the merchant left: it met a `never` decline on a card; or the merchant's word on the
        card), planned again at once when that attempt's card may no longer be charged, or not as soon as planned
        (the merchant's `not_before`), or sooner than planned (the word that held the attempt back is lifted or
        moved sooner), and its timer is not due yet (an operator's resumed attempt by the resume's rules, which the
        operator chose over the planner's); else it stands."""
        if self.ended:
            return self._asked_again(planning)
        planned = planned_attempt(self)
        if planned is None:
            return replace(next_step(self, planning), before=self)
        budget = planning.budgets().get(planned.token)
        if budget is None or planned.due_at <= planning.now:
            return Change(self, self)
        declined = budget.hard_declined_elsewhere(self.payment_id)
        held = budget.not_before_at(planning.now)
        if declined is not None:
            why = f"card {planned.token} hard-declined {declined.where} ({declined.source})"
        elif held is not None and planned.planned_at < held:
            why = f"card {planned.token} held back by the merchant until {held.isoformat()}"
        elif planned.held_until is not None and (
            (word := self._word_on(planned, planning)) is None or word < planned.held_until
        ):
            holder = planned.held_card or planned.token
            moved = "lifted" if word is None else f"moved to {word.isoformat()}"
            why = f"the merchant's hold on card {holder} until {planned.held_until.isoformat()} {moved}"
        else:
            return Change(self, self)
        return replace(self._planned_again(why, planning, planned.resumed_at), before=self)

    @staticmethod
    def _word_on(planned: AttemptPlan, planning: Planning) -> datetime | None:
        """The merchant's word now on the card whose word moved the planned attempt (its own, or the other card
        that sent it here), while it holds back a try."""
        holder = planning.budgets().get(planned.held_card or planned.token)
        return holder.not_before_at(planning.now) if holder is not None else None

    def _asked_again(self, planning: Planning) -> Change:
        """An ended recovery's re-plan: the merchant lifted (or moved sooner) its word on a card while this recovery
        had run out of retries under it (`CardBudget.held_off`). Reopened when the planner now finds an attempt
        within its rules (the word had held every card past its retry window); else, or for any other end, it stands."""
        if (
            self.status is not RecoveryStatus.FAILED
            or self.business_status != BusinessStatus.FAILED_DUE_TO_RETRIES_EXHAUSTED
        ):
            return Change(self, self)
        reopened = self._reopened("the merchant's hold on a card of this payment was lifted or moved sooner", planning)
        return Change(self, self) if reopened is None else replace(reopened, before=self)

    def resumed(self, at: datetime, planning: Planning) -> Change:
        """An operator re-triggers EXECUTE for a failed recovery at `at` (business time): the attempt
        `resume.resume_decision` plans (ResumeRefused if it may not), on its timer."""
        decision = resume_decision(self, at, planning)
        recovery = replace(
            self, status=RecoveryStatus.SCHEDULED, business_status=None, ended_at=None, paused=False
        ).noted(planning.now, "resume_requested", "an operator re-triggered EXECUTE")
        return self._attempt(recovery, decision, planning)
