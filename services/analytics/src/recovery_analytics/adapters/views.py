"""`analytics_payments`: one record per payment (its view's query fields, figures and answers, and the events it
was folded from: `history`), saved by compare-and-set on its version. Only the projection reads `history`: the
answers leave it out. `analytics_disputes`: each dispute of a saved record as it stands now, one document per
dispute (`_id` its dispute id), written in the same transaction as its record, for the dispute list."""

from __future__ import annotations

from dataclasses import fields
from datetime import date, datetime
from typing import Any

from pymongo import ASCENDING, DESCENDING
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from recovery_analytics.dependencies import ConcurrentUpdate, DisputeQuery, RecoveryPage, RecoveryQuery
from recovery_analytics.domain.record import ViewRecord
from recovery_analytics.domain.view import ViewStatus
from recovery_contracts.disputes import DisputeObject
from recovery_contracts.envelope import Envelope, MessageType
from recovery_contracts.messages import read_message
from recovery_runtime.mongo import IndexSpec, within
from recovery_runtime.unit_of_work import Transaction

COLLECTION = "analytics_payments"
DISPUTES = "analytics_disputes"
INDEXES = [
    # The list (newest first, per merchant), its status filter, and the analytics' recovered payments.
    IndexSpec(COLLECTION, [("merchant_id", 1), ("created_at", DESCENDING), ("_id", DESCENDING)], "merchant_created"),
    IndexSpec(
        COLLECTION,
        [("merchant_id", 1), ("recovery_status", 1), ("created_at", DESCENDING), ("_id", DESCENDING)],
        "merchant_status_created",
    ),
    # The list's record-back filter (the record backs an operator must look at: abandoned, blocked).
    IndexSpec(
        COLLECTION,
        [("merchant_id", 1), ("record_back_state", 1), ("created_at", DESCENDING), ("_id", DESCENDING)],
        "merchant_record_back_created",
    ),
    # The list's dispute filter (the disputes a merchant must still answer: open; or those lost).
    IndexSpec(
        COLLECTION,
        [("merchant_id", 1), ("dispute_state", 1), ("created_at", DESCENDING), ("_id", DESCENDING)],
        "merchant_dispute_created",
    ),
    # The dispute list: newest first, and the disputes to answer by their deadline.
    IndexSpec(DISPUTES, [("merchant_id", 1), ("received_at", DESCENDING), ("_id", DESCENDING)], "merchant_received"),
    IndexSpec(
        DISPUTES,
        [("merchant_id", 1), ("dispute_status", 1), ("answer_by", 1), ("_id", 1)],
        "merchant_status_answer_by",
    ),
]
# Not a field of the view's document: `disputes` (each is its own document in DISPUTES, written with it).
_FIELDS = [f.name for f in fields(ViewRecord) if f.name not in ("payment_id", "history", "disputes")]
# What the answers read: all but the events the view was folded from.
_ANSWER = {"history": 0}


def to_document(record: ViewRecord) -> dict[str, Any]:
    doc = {name: getattr(record, name) for name in _FIELDS}
    doc["_id"] = record.payment_id
    doc["day"] = record.day.isoformat() if record.day is not None else None
    # Counter names hold dots (`recovered_amount.USD`), which field names should not: kept as pairs.
    doc["contribution"] = sorted([key, value] for key, value in record.contribution.items())
    # As the event log keeps them (the envelope as received); null when the view does not carry them.
    doc["history"] = [e.model_dump(mode="json") for e in record.history] if record.history is not None else None
    return doc


def from_document(doc: dict[str, Any]) -> ViewRecord:
    values: dict[str, Any] = {name: doc.get(name) for name in _FIELDS}
    values["day"] = date.fromisoformat(doc["day"]) if doc.get("day") else None
    values["contribution"] = {key: value for key, value in doc.get("contribution") or []}
    history = doc.get("history")
    values["history"] = tuple(_envelope(e) for e in history) if history is not None else None
    return ViewRecord(payment_id=doc["_id"], **values)


def dispute_documents(record: ViewRecord) -> list[dict[str, Any]]:
    """The record's disputes as `analytics_disputes` stores them: the fields the list filters and sorts on, and the
    dispute as the list answers it."""
    documents = []
    for answer in record.disputes:
        dispute = DisputeObject.model_validate(answer)
        documents.append(
            {
                "_id": dispute.dispute_id,
                "merchant_id": record.merchant_id,
                "profile_id": record.profile_id,
                "payment_id": record.payment_id,
                "dispute_status": dispute.dispute_status.value,
                "dispute_stage": dispute.dispute_stage.value,
                "connector": dispute.connector,
                "reason": dispute.connector_reason,
                "received_at": dispute.created_at,
                "answer_by": dispute.challenge_required_by,
                "dispute": answer,
            }
        )
    return documents


def _dispute_filter(query: DisputeQuery) -> dict[str, Any]:
    matching: dict[str, Any] = {"merchant_id": query.merchant_id}
    if query.profile_id is not None:
        matching["profile_id"] = query.profile_id
    for field, values in (
        ("dispute_status", query.statuses),
        ("dispute_stage", query.stages),
        ("reason", query.reasons),
        ("connector", query.connectors),
    ):
        if values:
            matching[field] = {"$in": list(values)}
    if query.received:
        matching["$and"] = within("received_at", query.received)
    return matching


def _envelope(doc: dict[str, Any]) -> Envelope[Any]:
    return read_message(MessageType(doc["type"]), doc)


def _session(tx: Transaction | None) -> Any:
    return tx.session if tx is not None else None


class MongoViewStore:
    def __init__(self, db: AsyncDatabase[dict[str, Any]]) -> None:
        self._views = db[COLLECTION]
        self._disputes = db[DISPUTES]

    async def get(self, payment_id: str, tx: Transaction | None = None) -> ViewRecord | None:
        doc = await self._views.find_one({"_id": payment_id}, session=_session(tx))
        return from_document(doc) if doc is not None else None

    async def save(self, record: ViewRecord, tx: Transaction) -> None:
        doc = to_document(record)
        if record.version == 1:
            try:
                await self._views.insert_one(doc, session=tx.session)
            except DuplicateKeyError as taken:
                raise ConcurrentUpdate(record.payment_id) from taken
        else:
            result = await self._views.replace_one(
                {"_id": record.payment_id, "version": record.version - 1}, doc, session=tx.session
            )
            if result.matched_count == 0:
                raise ConcurrentUpdate(record.payment_id)
        # Only a payment with a dispute writes here (a few in a thousand); its record's compare-and-set above
        # orders the writes.
        for dispute in dispute_documents(record):
            await self._disputes.replace_one({"_id": dispute["_id"]}, dispute, upsert=True, session=tx.session)

    async def of_merchant(self, merchant_id: str, payment_id: str) -> ViewRecord | None:
        doc = await self._views.find_one({"_id": payment_id, "merchant_id": merchant_id}, _ANSWER)
        return from_document(doc) if doc is not None else None

    async def page(self, query: RecoveryQuery) -> RecoveryPage:
        matching: dict[str, Any] = {"merchant_id": query.merchant_id, "list_item": {"$ne": None}}
        if query.profile_id is not None:
            matching["profile_id"] = query.profile_id
        if query.recovery_status is not None:
            matching["recovery_status"] = query.recovery_status
        for field, states in (("record_back_state", query.record_back_states), ("dispute_state", query.dispute_states)):
            if states:
                matching[field] = {"$in": list(states)}
        created: dict[str, Any] = {}
        if query.created_from is not None:
            created["$gte"] = query.created_from
        if query.created_to is not None:
            created["$lte"] = query.created_to
        if created:
            matching["created_at"] = created
        total = await self._views.count_documents(matching)
        paged = dict(matching)
        if query.after is not None:
            at, payment_id = query.after
            paged = {
                "$and": [
                    matching,
                    {"$or": [{"created_at": {"$lt": at}}, {"created_at": at, "_id": {"$lt": payment_id}}]},
                ]
            }
        cursor = self._views.find(paged, _ANSWER).sort([("created_at", DESCENDING), ("_id", DESCENDING)])
        # One more than the page: whether anything follows it.
        docs = await cursor.skip(query.offset).limit(query.limit + 1).to_list(query.limit + 1)
        records = [from_document(doc) for doc in docs[: query.limit]]
        return RecoveryPage(records, total, more=len(docs) > query.limit)

    async def seconds_to_recover(
        self, merchant_id: str, profile_id: str | None, created_from: datetime, created_before: datetime
    ) -> list[float]:
        matching: dict[str, Any] = {
            "merchant_id": merchant_id,
            "status": ViewStatus.RECOVERED.value,
            "created_at": {"$gte": created_from, "$lt": created_before},
        }
        if profile_id is not None:
            matching["profile_id"] = profile_id
        docs = await self._views.find(matching, {"seconds_to_recover": 1}).to_list(None)
        return [float(doc["seconds_to_recover"]) for doc in docs if doc.get("seconds_to_recover") is not None]

    async def disputes(self, query: DisputeQuery) -> list[dict[str, Any]]:
        order = (
            [("answer_by", ASCENDING), ("_id", ASCENDING)]
            if query.by_answer_by
            else [("received_at", DESCENDING), ("_id", DESCENDING)]
        )
        docs = await self._disputes.find(_dispute_filter(query), {"dispute": 1}).sort(order).to_list(query.limit)
        return [doc["dispute"] for doc in docs]

    async def dispute(self, merchant_id: str, profile_id: str | None, dispute_id: str) -> dict[str, Any] | None:
        matching = {"_id": dispute_id, "merchant_id": merchant_id}
        if profile_id is not None:
            matching["profile_id"] = profile_id
        doc = await self._disputes.find_one(matching, {"dispute": 1})
        return doc["dispute"] if doc is not None else None
