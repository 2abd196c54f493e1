"""Rebuild the read model from scratch: drop the views, their disputes and the daily figures, fold every payment's
events of the event log again (`analytics_events`), and store the result.

Run it with the analytics service stopped (scaled to zero): events published meanwhile wait in its queues and
are folded once it runs again. A view saved by a running instance during a rebuild could be counted twice.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any

from pymongo.asynchronous.database import AsyncDatabase

from recovery_analytics.adapters import days, event_log, views
from recovery_analytics.domain.figures import Counters
from recovery_analytics.domain.record import ViewRecord
from recovery_analytics.domain.view import project
from recovery_runtime.mongo import ensure_indexes

BATCH = 500


@dataclass(frozen=True)
class RebuildReport:
    payments: int
    events: int
    days: int


def nested(counters: Mapping[str, int]) -> dict[str, Any]:
    """`{"recovered_amount.USD": 90}` as the document `$inc` would have built: `{"recovered_amount": {"USD": 90}}`."""
    tree: dict[str, Any] = {}
    for key, value in counters.items():
        *path, leaf = key.split(".")
        node = tree
        for part in path:
            node = node.setdefault(part, {})
        node[leaf] = value
    return tree


async def rebuild(db: AsyncDatabase[dict[str, Any]]) -> RebuildReport:
    await db[views.COLLECTION].drop()
    await db[views.DISPUTES].drop()
    await db[days.COLLECTION].drop()
    await ensure_indexes(db, event_log.INDEXES + views.INDEXES + days.INDEXES)
    per_day: dict[tuple[str, str, date], Counters] = {}
    pending: list[dict[str, Any]] = []
    disputes: list[dict[str, Any]] = []
    payments = events = 0
    async for payment_id, payment_events in event_log.MongoEventLog(db).by_payment():
        record = ViewRecord.of(project(payment_id, payment_events), version=1, events=payment_events)
        payments, events = payments + 1, events + len(payment_events)
        pending.append(views.to_document(record))
        disputes.extend(views.dispute_documents(record))
        if record.day is not None and record.merchant_id is not None and record.profile_id is not None:
            day = per_day.setdefault((record.merchant_id, record.profile_id, record.day), {})
            for key, value in record.contribution.items():
                day[key] = day.get(key, 0) + value
        if len(pending) >= BATCH:
            await db[views.COLLECTION].insert_many(pending)
            pending = []
    if pending:
        await db[views.COLLECTION].insert_many(pending)
    for start in range(0, len(disputes), BATCH):
        await db[views.DISPUTES].insert_many(disputes[start : start + BATCH])
    documents = [
        {
            "_id": days.day_key(merchant_id, profile_id, day),
            "merchant_id": merchant_id,
            "profile_id": profile_id,
            "day": day.isoformat(),
            "counters": nested(counters),
        }
        for (merchant_id, profile_id, day), counters in per_day.items()
    ]
    for start in range(0, len(documents), BATCH):
        await db[days.COLLECTION].insert_many(documents[start : start + BATCH])
    return RebuildReport(payments=payments, events=events, days=len(documents))
