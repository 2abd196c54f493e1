"""Turns the planner's decision into durable effects: timers, the recovery's status, terminal events."""

from __future__ import annotations

import functools
import random
from collections.abc import Callable
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

import structlog

from recovery_contracts.envelope import Envelope, MessageType
from recovery_contracts.ids import new_attempt_id
from recovery_contracts.messages import ExecuteRetry, PaymentFailed
from recovery_contracts.payments import ConnectorTransmission, IntentStatus, PaymentError
from recovery_contracts.recovery import AttemptSummary, RecoveryPayment, build_payment_object
from recovery_runtime.bus import OutgoingMessage
from recovery_runtime.clock import Clock, TimeScale
from recovery_runtime.unit_of_work import Transaction
from recovery_scheduler.adapters.recoveries import RecoveryRepository
from recovery_scheduler.adapters.timers import TimerKind, TimerRepository, timer_document
from recovery_scheduler.domain import (
    Algorithm,
    AttemptOutcome,
    AttemptRecord,
    AwaitBillingSystem,
    EndOutcome,
    EndRecovery,
    Observe,
    Recheck,
    RecoveryView,
    RetryConfig,
    ScheduleAttempt,
    TokenState,
    budget_for,
    decide_next,
)

log = structlog.get_logger(__name__)


class RecoveryStatus(StrEnum):
    SCHEDULED = "scheduled"  # an attempt or a re-plan is on a timer
    MONITORING = "monitoring"  # nothing is charged; the shadow plan is recorded
    AWAITING_BILLING = "awaiting_billing"  # the billing system still makes its own retries
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"


TERMINAL = frozenset({RecoveryStatus.SUCCEEDED, RecoveryStatus.FAILED, RecoveryStatus.CANCELLED})
# The longest network-budget window (rolling 30 days) and a day's margin.
BUDGET_LOOKBACK = timedelta(days=31)


def retry_config(payment: RecoveryPayment) -> RetryConfig:
    settings = payment.retry
    kwargs: dict[str, Any] = {
        "min_jitter": timedelta(seconds=settings.min_jitter_seconds),
        "max_jitter": timedelta(seconds=settings.max_jitter_seconds),
        "max_retry_count": settings.max_retry_count,
        "billing_connector_retry_threshold": settings.billing_connector_retry_threshold,
        "switch_retry_threshold": settings.switch_retry_threshold or None,
        "switch_time_threshold_after_creation": (
            timedelta(seconds=settings.switch_time_threshold_after_creation_seconds)
            if settings.switch_time_threshold_after_creation_seconds
            else None
        ),
        "monitoring_threshold": (
            timedelta(seconds=settings.monitoring_threshold_seconds) if settings.monitoring_threshold_seconds else None
        ),
        "active_algorithm": Algorithm(settings.active_algorithm.value),
    }
    if settings.ladder_seconds:
        kwargs["ladder"] = tuple(timedelta(seconds=s) for s in settings.ladder_seconds)
    return RetryConfig(**kwargs)


def recovery_view(
    doc: dict[str, Any],
    payment: RecoveryPayment,
    other_attempts_at: dict[str, list[datetime]] | None = None,
) -> RecoveryView:
    hard = set(doc.get("hard_declined_tokens", []))
    card_updated = doc.get("card_updated_at") or {}
    others = other_attempts_at or {}
    first = payment.first_error
    return RecoveryView(
        algorithm=Algorithm(doc["algorithm"]),
        tokens=tuple(
            TokenState(
                token=t.token,
                card_network=t.card_network,
                card_issuer=t.card_issuer,
                hard_declined=t.token in hard,
                card_updated_at=card_updated.get(t.token),
                other_attempts_at=tuple(sorted(others.get(t.token, ()))),
            )
            for t in payment.tokens
        ),
        created_at=payment.created_at,
        attempts=tuple(
            AttemptRecord(
                number=a["number"],
                token=a["token"],
                at=a["at"],
                outcome=AttemptOutcome(a["outcome"]),
                decline_code=a.get("decline_code"),
                error_code=a.get("error_code"),
                advice_code=a.get("advice_code"),
                network_advice_code=a.get("network_advice_code"),
                network_decline_code=a.get("network_decline_code"),
            )
            for a in doc.get("attempts", [])
        ),
        billing_retry_count=payment.billing_retry_count,
        billing_last_attempt_at=payment.transaction_created_at,
        first_error_code=first.code if first else None,
        first_decline_code=first.code if first else None,
        first_network_advice_code=first.network_advice_code if first else None,
        first_network_decline_code=first.network_decline_code if first else None,
    )


def note(doc: dict[str, Any], at: datetime, what: str, reason: str, **details: Any) -> None:
    """Append to the recovery's timeline: what happened or was planned, and why."""
    doc.setdefault("history", []).append({"at": at, "what": what, "reason": reason, **details})


def new_recovery_document(payment: RecoveryPayment, now: datetime) -> dict[str, Any]:
    return {
        "_id": payment.payment_id,
        "merchant_id": payment.merchant_id,
        "profile_id": payment.profile_id,
        "algorithm": payment.retry.algorithm.value,
        "status": RecoveryStatus.SCHEDULED.value,
        "business_status": None,
        "snapshot": payment.model_dump(mode="json"),
        "attempts": [],
        "hard_declined_tokens": [],
        "plan": None,
        "history": [],
        "version": 0,
        "created_at": now,
        "updated_at": now,
    }


class Workflow:
    """Plans the next step of a recovery and writes it, inside the caller's transaction."""

    def __init__(
        self,
        recoveries: RecoveryRepository,
        timers: TimerRepository,
        clock: Clock,
        time_scale: TimeScale,
        cell_id: str,
        rng: random.Random | None = None,
        timer_stored: Callable[[datetime], None] | None = None,
    ) -> None:
        self._recoveries = recoveries
        self._timers = timers
        self._new_timers = recoveries.timers_collection()
        self._clock = clock
        self._scale = time_scale
        self._cell = cell_id
        self._rng = rng or random.Random()
        # Told each stored timer's due time once committed (the timer loop: a retry due now fires now).
        self._timer_stored = timer_stored

    def wall_time(self, now: datetime, business_at: datetime) -> datetime:
        """A planned business time as the wall-clock due time under the configured time scale."""
        if business_at <= now:
            return now
        return now + self._scale.wall(business_at - now)

    async def plan(self, doc: dict[str, Any], tx: Transaction, causation_id: str | None, *, new: bool = False) -> None:
        """Plan the next step and write the recovery once: `new` inserts the document (built with its first plan in
        it; no timer of it can exist yet, so its timer is inserted without looking first), else compare-and-set."""
        payment = RecoveryPayment.model_validate(doc["snapshot"])
        now = self._clock.now()
        if doc.get("paused"):
            # The billing system reported a payment in progress (pending_payment): nothing is planned until it
            # reports again (a failure resumes, a success or a cancellation ends).
            doc["status"] = RecoveryStatus.AWAITING_BILLING.value
            doc["updated_at"] = now
            await self._write(doc, tx, new)
            return
        # Other recoveries' attempts on the same cards spend the same network budget (rolling 30 days at most).
        others = await self._recoveries.other_attempts_at(
            [t.token for t in payment.tokens], payment.payment_id, now - BUDGET_LOOKBACK, tx.session
        )
        view = recovery_view(doc, payment, others)
        if (
            view.algorithm is Algorithm.MONITORING
            and doc.get("monitoring_switch_at")
            and now >= doc["monitoring_switch_at"]
        ):
            # The monitoring period is over: the profile's active algorithm takes over this recovery.
            doc["algorithm"] = payment.retry.active_algorithm.value
            note(doc, now, "algorithm_switched", f"monitoring period over: {doc['algorithm']} takes over")
            view = recovery_view(doc, payment, others)
        decision = decide_next(view, now, retry_config(payment), self._rng)
        await self._apply(doc, payment, decision, now, tx, causation_id, new)
        doc["updated_at"] = now
        await self._write(doc, tx, new)

    async def _write(self, doc: dict[str, Any], tx: Transaction, new: bool) -> None:
        if new:
            # Inserted at version 1, as insert-then-save gave: this plan's timer ids were derived from version 0
            # (`version + 1`), the next plan's from version 1, so they never collide.
            doc["version"] = 1
            await self._recoveries.insert(doc, tx.session)
        else:
            await self._recoveries.save(doc, tx.session)

    async def _add_timer(self, timer: dict[str, Any], tx: Transaction, new: bool) -> bool:
        if new:
            # The recovery's first plan: its deterministic timer ids are unused (a duplicate key aborts the
            # transaction, and the caller falls back to the general path).
            await self._new_timers.insert_one(timer, session=tx.session)
            added = True
        else:
            added = await self._timers.add(timer, tx.session)
        if added and self._timer_stored is not None:
            tx.after_commit(functools.partial(self._timer_stored, timer["due_at"]))
        return added

    async def _apply(
        self,
        doc: dict[str, Any],
        payment: RecoveryPayment,
        decision: Any,
        now: datetime,
        tx: Transaction,
        causation_id: str | None,
        new: bool = False,
    ) -> None:
        if isinstance(decision, ScheduleAttempt):
            await self._schedule_attempt(doc, payment, decision, now, tx, causation_id, new)
        elif isinstance(decision, Recheck):
            await self._schedule_replan(doc, decision.at, decision.reason, now, tx, new)
        elif isinstance(decision, AwaitBillingSystem):
            doc["status"] = RecoveryStatus.AWAITING_BILLING.value
            doc["plan"] = {"kind": "await_billing_system", "reason": decision.reason}
            note(doc, now, "await_billing_system", decision.reason)
        elif isinstance(decision, Observe):
            doc["status"] = RecoveryStatus.MONITORING.value
            doc["plan"] = {
                "kind": "monitoring",
                "shadow": _describe(decision.shadow),
                "switch_at": decision.switch_at,
            }
            note(doc, now, "monitoring", f"shadow plan: {_describe(decision.shadow)['reason']}")
            if decision.switch_at is not None:
                doc["monitoring_switch_at"] = decision.switch_at
                await self._schedule_replan(doc, decision.switch_at, "monitoring period ends", now, tx, new)
                doc["status"] = RecoveryStatus.MONITORING.value
        elif isinstance(decision, EndRecovery):
            await self._end(doc, payment, decision, now, tx, causation_id, new)

    async def _schedule_attempt(
        self,
        doc: dict[str, Any],
        payment: RecoveryPayment,
        decision: ScheduleAttempt,
        now: datetime,
        tx: Transaction,
        causation_id: str | None,
        new: bool = False,
    ) -> None:
        token = next(t for t in payment.tokens if t.token == decision.token)
        due = self.wall_time(now, decision.at)
        attempt_id = new_attempt_id(self._cell)
        command = Envelope[ExecuteRetry](
            type=MessageType.EXECUTE_RETRY,
            correlation_id=payment.payment_id,
            causation_id=causation_id,
            merchant_id=payment.merchant_id,
            profile_id=payment.profile_id,
            payload=ExecuteRetry(
                payment=payment,
                attempt_id=attempt_id,
                attempt_number=decision.attempt_number,
                token=token,
                planned_at=decision.at,
                total_retry_count=payment.billing_retry_count + decision.attempt_number,
            ),
        )
        timer_id = f"execute:{payment.payment_id}:{decision.attempt_number}"
        for candidate in (timer_id, f"{timer_id}:r{doc['version'] + 1}"):
            # The second id: this attempt number was commanded before and refused by the executor (the recovery
            # was paused meanwhile) and is planned again; the executor lets a new attempt id reuse that number.
            timer_id = candidate
            added = await self._add_timer(
                timer_document(
                    timer_id,
                    kind=TimerKind.MESSAGE,
                    due_at=due,
                    payment_id=payment.payment_id,
                    created_at=now,
                    message=OutgoingMessage.of(command),
                    purpose="execute_retry",
                ),
                tx,
                new,
            )
            if added:
                break
        doc["status"] = RecoveryStatus.SCHEDULED.value
        doc["plan"] = {
            "kind": "attempt",
            "attempt_number": decision.attempt_number,
            "attempt_id": attempt_id,
            "token": decision.token,
            "planned_at": decision.at,
            "due_at": due,
            "timer_id": timer_id,
            "reason": decision.reason,
        }
        note(
            doc,
            now,
            "attempt_planned",
            decision.reason,
            attempt_number=decision.attempt_number,
            planned_at=decision.at,
            due_at=due,
        )

    async def _schedule_replan(
        self, doc: dict[str, Any], at: datetime, reason: str, now: datetime, tx: Transaction, new: bool = False
    ) -> None:
        due = self.wall_time(now, at)
        timer_id = f"replan:{doc['_id']}:{doc['version'] + 1}"
        await self._add_timer(
            timer_document(
                timer_id,
                kind=TimerKind.REPLAN,
                due_at=due,
                payment_id=doc["_id"],
                created_at=now,
                purpose="replan",
            ),
            tx,
            new,
        )
        doc["status"] = RecoveryStatus.SCHEDULED.value
        doc["plan"] = {"kind": "replan", "at": at, "due_at": due, "timer_id": timer_id, "reason": reason}
        note(doc, now, "replan_planned", reason, planned_at=at, due_at=due)

    async def _end(
        self,
        doc: dict[str, Any],
        payment: RecoveryPayment,
        decision: EndRecovery,
        now: datetime,
        tx: Transaction,
        causation_id: str | None,
        new: bool = False,
    ) -> None:
        succeeded = decision.outcome is EndOutcome.SUCCEEDED
        doc["status"] = (RecoveryStatus.SUCCEEDED if succeeded else RecoveryStatus.FAILED).value
        doc["business_status"] = decision.business_status
        doc["plan"] = None
        doc["ended_at"] = now
        note(doc, now, "ended", decision.reason, outcome=decision.outcome.value)
        if not new:
            await self._timers.cancel_pending(payment.payment_id, tx.session)
        if decision.emits_payment_failed and doc.get("attempts"):
            last = doc["attempts"][-1]
            tx.emit(
                Envelope[PaymentFailed](
                    type=MessageType.PAYMENT_FAILED,
                    correlation_id=payment.payment_id,
                    causation_id=causation_id,
                    merchant_id=payment.merchant_id,
                    profile_id=payment.profile_id,
                    payload=PaymentFailed(
                        payment_id=payment.payment_id,
                        reason=decision.reason,
                        business_status=decision.business_status,
                        attempt_id=last["attempt_id"],
                        payment=build_payment_object(
                            payment,
                            status=IntentStatus.FAILED,
                            modified_at=now,
                            attempt=AttemptSummary(
                                total_retry_count=payment.billing_retry_count + len(doc["attempts"]),
                                token=last["token"],
                                connector_transaction_id=last.get("connector_transaction_id"),
                                transmission=ConnectorTransmission.UNSUCCESSFUL,
                                error=PaymentError(
                                    code=last.get("decline_code") or last.get("error_code") or "unknown",
                                    message=last.get("message") or decision.reason,
                                    network_advice_code=last.get("network_advice_code"),
                                    network_decline_code=last.get("network_decline_code"),
                                ),
                            ),
                        ),
                    ),
                )
            )

    async def stop(
        self,
        doc: dict[str, Any],
        tx: Transaction,
        status: RecoveryStatus,
        business_status: str,
        reason: str,
    ) -> None:
        """End the recovery for a reason outside the planner (the billing system cancelled or was paid)."""
        now = self._clock.now()
        doc["status"] = status.value
        doc["business_status"] = business_status
        doc["plan"] = None
        doc["paused"] = False
        doc["ended_at"] = now
        doc["updated_at"] = now
        note(doc, now, "ended", reason, outcome=status.value)
        await self._timers.cancel_pending(doc["_id"], tx.session)
        await self._recoveries.save(doc, tx.session)

    async def pause(self, doc: dict[str, Any], tx: Transaction, reason: str) -> None:
        now = self._clock.now()
        doc["paused"] = True
        doc["status"] = RecoveryStatus.AWAITING_BILLING.value
        doc["plan"] = {"kind": "await_billing_system", "reason": reason}
        doc["updated_at"] = now
        note(doc, now, "paused", reason)
        await self._timers.cancel_pending(doc["_id"], tx.session)
        await self._recoveries.save(doc, tx.session)

    async def resume(self, doc: dict[str, Any], tx: Transaction, at: datetime, causation_id: str | None) -> str | None:
        """An operator re-triggers EXECUTE for a failed recovery; returns why it cannot, or None.

        The operator may go past the ladder and `max_retry_count`, never past a hard decline or a network budget:
        those are the card networks' rules, not this system's policy.
        """
        payment = RecoveryPayment.model_validate(doc["snapshot"])
        now = self._clock.now()
        hard = set(doc.get("hard_declined_tokens", []))
        usable = [t for t in payment.tokens if t.token not in hard]
        if not usable:
            return "every token of this payment is hard-declined: no further charge is allowed"
        last_token = doc["attempts"][-1]["token"] if doc.get("attempts") else None
        token = next((t for t in usable if t.token == last_token), usable[0])
        others = await self._recoveries.other_attempts_at([token.token], payment.payment_id, now - BUDGET_LOOKBACK)
        spent = [a["at"] for a in doc.get("attempts", []) if a["token"] == token.token] + others[token.token]
        earliest = budget_for(token.card_network).earliest_allowed(spent, max(at, now))
        doc["status"] = RecoveryStatus.SCHEDULED.value
        doc["business_status"] = None
        doc["ended_at"] = None
        doc["paused"] = False
        reason = "resumed by an operator"
        if earliest > max(at, now):
            reason += f"; moved to {earliest.isoformat()} by the card network's budget"
        decision = ScheduleAttempt(
            at=earliest, token=token.token, attempt_number=len(doc.get("attempts", [])) + 1, reason=reason
        )
        await self._schedule_attempt(doc, payment, decision, now, tx, causation_id)
        doc["updated_at"] = now
        await self._recoveries.save(doc, tx.session)
        return None


def _describe(decision: Any) -> dict[str, Any]:
    if isinstance(decision, ScheduleAttempt):
        return {
            "kind": "attempt",
            "at": decision.at,
            "token": decision.token,
            "attempt_number": decision.attempt_number,
            "reason": decision.reason,
        }
    if isinstance(decision, Recheck):
        return {"kind": "replan", "at": decision.at, "reason": decision.reason}
    if isinstance(decision, EndRecovery):
        return {"kind": "end", "outcome": decision.outcome.value, "reason": decision.reason}
    return {"kind": type(decision).__name__, "reason": getattr(decision, "reason", "")}
