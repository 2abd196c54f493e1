"""The `recoveries` collection: one document per recovery (snapshot, attempts, the plan and its timeline)."""

from __future__ import annotations

from dataclasses import asdict, fields
from typing import Any

from pymongo import ASCENDING
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from recovery_contracts.messages import read_stored
from recovery_contracts.recovery import RecoveryPayment
from recovery_runtime.mongo import IndexSpec
from recovery_runtime.unit_of_work import APPLIED_FIELD, Transaction, mark_applied, not_applied, push_applied
from recovery_scheduler.dependencies import ConcurrentUpdate, RecoveryExists
from recovery_scheduler.domain.declines import DeclineCodes
from recovery_scheduler.domain.model import Algorithm, Attempt, AttemptOutcome
from recovery_scheduler.domain.plans import describe_plan, note_from, plan_from
from recovery_scheduler.domain.recovery import Recovery
from recovery_scheduler.domain.status import RecoveryStatus

RECOVERIES = "recoveries"
INDEXES = [
    IndexSpec(RECOVERIES, [("merchant_id", ASCENDING), ("status", ASCENDING)], "recovery_merchant_status"),
    # Budgets across recoveries were read from the recoveries' attempts by token; card_budgets holds them now.
    IndexSpec(RECOVERIES, [("attempts.token", ASCENDING)], "recovery_attempt_token", retired=True),
]
ATTEMPT_FIELDS = tuple(f.name for f in fields(Attempt))
CODE_FIELDS = frozenset(f.name for f in fields(DeclineCodes))


def recovery_document(recovery: Recovery, applied: str | None = None) -> dict[str, Any]:
    payment = recovery.payment
    doc: dict[str, Any] = {
        "_id": payment.payment_id,
        "merchant_id": payment.merchant_id,
        "profile_id": payment.profile_id,
        "algorithm": recovery.algorithm.value,
        "status": recovery.status.value,
        "business_status": recovery.business_status,
        "snapshot": payment.model_dump(mode="json"),
        "attempts": [_attempt_document(a) for a in recovery.attempts],
        "hard_declined_tokens": list(recovery.hard_declined_tokens),
        "plan": describe_plan(recovery.plan) if recovery.plan is not None else None,
        "history": [note.describe() for note in recovery.history],
        "version": recovery.version,
        "created_at": recovery.created_at,
        "updated_at": recovery.updated_at,
        "ended_at": recovery.ended_at,
        "paused": recovery.paused,
        "intake_version": recovery.intake_version,
        "closed_by": recovery.closed_by,
        "card_updated_at": dict(recovery.card_updated_at),
        "monitoring_switch_at": recovery.monitoring_switch_at,
    }
    if recovery.applied_messages:
        doc[APPLIED_FIELD] = list(recovery.applied_messages)
    if applied is not None:
        mark_applied(doc, applied)
    return doc


def _attempt_document(attempt: Attempt) -> dict[str, Any]:
    """Flat: the decline codes stand among the attempt's other fields, in its fields' order."""
    doc: dict[str, Any] = {}
    for name in ATTEMPT_FIELDS:
        value = getattr(attempt, name)
        if isinstance(value, DeclineCodes):
            doc.update(asdict(value))
        else:
            doc[name] = value
    doc["outcome"] = attempt.outcome.value
    return doc


def _attempt_from(doc: dict[str, Any]) -> Attempt:
    others = {name: value for name, value in doc.items() if name not in CODE_FIELDS}
    codes = DeclineCodes(**{name: doc.get(name) for name in CODE_FIELDS})
    return Attempt(**{**others, "outcome": AttemptOutcome(doc["outcome"]), "codes": codes})


def recovery_from(doc: dict[str, Any]) -> Recovery:
    return Recovery(
        payment=read_stored(RecoveryPayment, doc["snapshot"]),
        algorithm=Algorithm(doc["algorithm"]),
        status=RecoveryStatus(doc["status"]),
        version=doc["version"],
        created_at=doc["created_at"],
        updated_at=doc["updated_at"],
        business_status=doc.get("business_status"),
        attempts=tuple(_attempt_from(a) for a in doc.get("attempts", ())),
        hard_declined_tokens=tuple(doc.get("hard_declined_tokens", ())),
        plan=plan_from(doc["plan"]) if doc.get("plan") else None,
        history=tuple(note_from(n) for n in doc.get("history", ())),
        ended_at=doc.get("ended_at"),
        paused=bool(doc.get("paused")),
        intake_version=doc.get("intake_version", 0),
        closed_by=doc.get("closed_by"),
        card_updated_at=doc.get("card_updated_at") or {},
        monitoring_switch_at=doc.get("monitoring_switch_at"),
        applied_messages=tuple(doc.get(APPLIED_FIELD, ())),
    )


class MongoRecoveryRepository:
    def __init__(self, db: AsyncDatabase[dict[str, Any]]) -> None:
        self._recoveries = db[RECOVERIES]

    async def get(self, payment_id: str, tx: Transaction | None = None) -> Recovery | None:
        doc = await self._recoveries.find_one({"_id": payment_id}, session=tx.session if tx else None)
        return recovery_from(doc) if doc is not None else None

    async def of_merchant(self, merchant_id: str, payment_id: str) -> Recovery | None:
        doc = await self._recoveries.find_one({"_id": payment_id, "merchant_id": merchant_id})
        return recovery_from(doc) if doc is not None else None

    async def insert(self, recovery: Recovery, tx: Transaction, *, applied: str | None = None) -> None:
        try:
            await self._recoveries.insert_one(recovery_document(recovery, applied), session=tx.session)
        except DuplicateKeyError as duplicate:
            # Inside a transaction this aborts it: the caller starts again from what is stored.
            raise RecoveryExists(recovery.payment_id) from duplicate

    async def save(self, recovery: Recovery, tx: Transaction, *, applied: str | None = None) -> None:
        replacement = recovery_document(recovery, applied)
        replacement["version"] = recovery.version + 1
        result = await self._recoveries.replace_one(
            {"_id": recovery.payment_id, "version": recovery.version}, replacement, session=tx.session
        )
        if result.matched_count != 1:
            raise ConcurrentUpdate(recovery.payment_id)

    async def record_applied(self, payment_id: str, key: str) -> bool:
        result = await self._recoveries.update_one(
            {"_id": payment_id, **not_applied(key)}, {"$push": push_applied(key)}
        )
        return result.matched_count == 1
