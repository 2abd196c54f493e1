"""The recovery intents in MongoDB (`payment_intents`): one document per invoice, its messages embedded.

A new intent is one insert carrying the intent, its `recovery.scheduled` (embedded outbox, published from
there by the relay after a crash) and the consumed message's id; the unique (merchant, reference) index refuses
a second intent for an invoice. Later changes run in the unit of work's transaction.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime
from typing import Any

from pymongo import ASCENDING
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from recovery_contracts.api.recovery import RecoveryAction
from recovery_contracts.disputes import DisputeStage, DisputeStatus
from recovery_contracts.messages import read_stored
from recovery_contracts.payments import IntentStatus
from recovery_contracts.recovery import RecoveryPayment
from recovery_intake.dependencies import Document, IntentExists, OutcomeRecorded
from recovery_intake.domain.intent import (
    FINAL,
    KEPT_AGAINST_OUTCOME,
    Intent,
    IntentChange,
    IntentDispute,
    IntentRequest,
    known_transactions,
)
from recovery_runtime.bus import AlreadyApplied
from recovery_runtime.mongo import IndexSpec
from recovery_runtime.unit_of_work import (
    OUTBOX_FIELD,
    Transaction,
    mark_applied,
    not_applied,
    push_applied,
    was_applied,
)

COLLECTION = "payment_intents"
INDEXES = [
    IndexSpec(
        COLLECTION,
        [("merchant_id", ASCENDING), ("merchant_reference_id", ASCENDING)],
        "intent_reference",
        unique=True,
    ),
    # The data backfill's look-up: a merchant's invoices of one customer at the payment processor.
    IndexSpec(
        COLLECTION,
        [("merchant_id", ASCENDING), ("snapshot.connector_customer_id", ASCENDING)],
        "intent_customer",
    ),
]
# How many open invoices of one customer a backfill row updates at most (a customer has a few), and how many
# customers one look-up asks for.
CUSTOMER_INVOICES_LIMIT = 100
CUSTOMERS_PER_QUERY = 500


class IntentRepository:
    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self._intents = db[COLLECTION]

    async def add(self, change: IntentChange, tx: Transaction, *, applied: str | None = None) -> None:
        intent = change.intent
        doc = {"_id": intent.payment_id, **_fields(intent)}
        for message in change.messages:
            tx.emit(message)
        if tx.session is None and change.messages:
            # No transaction: the messages travel in the intent itself.
            doc[OUTBOX_FIELD] = tx.embed(COLLECTION, intent.payment_id, intent.modified_at)
        if applied is not None:
            mark_applied(doc, applied)
        try:
            await self._intents.insert_one(doc, session=tx.session)
        except DuplicateKeyError as duplicate:
            raise IntentExists(intent.merchant_reference_id) from duplicate

    async def by_reference(
        self, merchant_id: str, reference: str, tx: Transaction, *, applying: str | None = None
    ) -> Intent | None:
        doc = await self._intents.find_one(
            {"merchant_id": merchant_id, "merchant_reference_id": reference}, session=tx.session
        )
        if doc is None:
            return None
        if applying is not None and was_applied(doc, applying):
            raise AlreadyApplied(applying)
        return intent_of(doc)

    async def save(self, change: IntentChange, tx: Transaction, *, applied: str | None = None) -> None:
        # `$set`, not a replace: the applied message ids and any embedded message not yet published stay.
        intent = change.intent
        update: Document = {"$set": _fields(intent)}
        if applied is not None:
            update["$push"] = push_applied(applied)
        await self._intents.update_one({"_id": intent.payment_id}, update, session=tx.session)
        for message in change.messages:
            tx.emit(message)

    async def open_with_tokens(
        self, merchant_id: str, cards: Collection[tuple[str, str]]
    ) -> dict[tuple[str, str], list[str]]:
        customers = sorted({customer for customer, _ in cards})
        found: dict[tuple[str, str], list[str]] = {}
        fields = {"merchant_reference_id": 1, "snapshot.connector_customer_id": 1, "snapshot.tokens.token": 1}
        for start in range(0, len(customers), CUSTOMERS_PER_QUERY):
            query = {
                "merchant_id": merchant_id,
                "snapshot.connector_customer_id": {"$in": customers[start : start + CUSTOMERS_PER_QUERY]},
                "status": {"$nin": [status.value for status in FINAL]},
            }
            async for doc in self._intents.find(query, fields):
                customer = doc["snapshot"]["connector_customer_id"]
                for token in {t["token"] for t in doc["snapshot"].get("tokens") or ()}:
                    if (customer, token) in cards:
                        references = found.setdefault((customer, token), [])
                        if len(references) < CUSTOMER_INVOICES_LIMIT:
                            references.append(doc["merchant_reference_id"])
        return found

    async def get(self, merchant_id: str, payment_id: str, profile_id: str | None = None) -> Intent | None:
        query = {"_id": payment_id, "merchant_id": merchant_id}
        if profile_id is not None:
            query["profile_id"] = profile_id
        doc = await self._intents.find_one(query)
        return intent_of(doc) if doc is not None else None

    async def record_outcome(
        self, payment_id: str, status: IntentStatus, payment_object: Document, now: datetime, applied: str
    ) -> OutcomeRecorded:
        # One update: the applied-message check (compare-and-set on the intent's applied ids) and the change.
        kept = [s.value for s in KEPT_AGAINST_OUTCOME[status]]
        changed = await self._intents.update_one(
            {"_id": payment_id, "status": {"$nin": kept}, **not_applied(applied)},
            {
                "$set": {"status": status.value, "payment_object": payment_object, "modified_at": now},
                "$push": push_applied(applied),
            },
        )
        if changed.matched_count:
            return OutcomeRecorded.APPLIED
        # Applied before, or the intent keeps its status (or is unknown): record the id without effect, so that
        # a copy of this message counts as the duplicate it is.
        recorded = await self._intents.update_one(
            {"_id": payment_id, **not_applied(applied)}, {"$push": push_applied(applied)}
        )
        if recorded.matched_count:
            return OutcomeRecorded.KEPT
        if await self._intents.count_documents({"_id": payment_id}, limit=1):
            return OutcomeRecorded.DUPLICATE
        return OutcomeRecorded.UNKNOWN_INTENT


def _fields(intent: Intent) -> Document:
    fields: Document = {
        "merchant_id": intent.merchant_id,
        "profile_id": intent.profile_id,
        "merchant_reference_id": intent.merchant_reference_id,
        "status": intent.status.value,
        "action": intent.action.value,
        "scheduled": intent.scheduled,
        "version": intent.version,
        "billing_transactions": list(intent.billing_transactions),
        "snapshot": intent.snapshot.model_dump(mode="json"),
        "payment_object": intent.payment_object,
        "created_at": intent.created_at,
        "modified_at": intent.modified_at,
    }
    if intent.requests:
        fields["requests"] = [
            {"at": r.at, "action": r.action.value, "connector_transaction_id": r.connector_transaction_id}
            for r in intent.requests
        ]
    if intent.disputes:
        fields["disputes"] = [
            {
                "dispute_id": d.dispute_id,
                "connector_dispute_id": d.connector_dispute_id,
                "amount": d.amount,
                "currency": d.currency,
                "reason": d.reason,
                "stage": d.stage.value,
                "status": d.status.value,
                "told_at": d.told_at,
                "challenge_required_by": d.challenge_required_by,
                "emitted": [status.value for status in d.emitted],
            }
            for d in intent.disputes
        ]
    return fields


def intent_of(doc: Document) -> Intent:
    snapshot = read_stored(RecoveryPayment, doc["snapshot"])
    transactions: Any = doc.get("billing_transactions")
    return Intent(
        snapshot=snapshot,
        status=IntentStatus(doc["status"]),
        action=RecoveryAction(doc["action"]),
        scheduled=bool(doc.get("scheduled")),
        version=int(doc.get("version", 0)),
        # An intent stored without the list: the one failure its snapshot knows.
        billing_transactions=tuple(transactions) if transactions is not None else known_transactions(snapshot),
        created_at=doc["created_at"],
        modified_at=doc["modified_at"],
        payment_object=doc.get("payment_object"),
        requests=tuple(
            IntentRequest(r["at"], RecoveryAction(r["action"]), r.get("connector_transaction_id"))
            for r in doc.get("requests") or ()
        ),
        disputes=tuple(_dispute_of(d) for d in doc.get("disputes") or ()),
    )


def _dispute_of(doc: Document) -> IntentDispute:
    """A kept dispute; one stored before disputes had a status (only lost ones were kept then, with `lost_at`)."""
    status = DisputeStatus(doc.get("status", DisputeStatus.DISPUTE_LOST))
    return IntentDispute(
        doc["dispute_id"],
        doc["connector_dispute_id"],
        doc["amount"],
        doc["currency"],
        doc.get("reason"),
        DisputeStage(doc.get("stage", DisputeStage.DISPUTE)),
        status,
        doc["told_at"] if "told_at" in doc else doc["lost_at"],
        doc.get("challenge_required_by"),
        tuple(DisputeStatus(s) for s in doc["emitted"]) if "emitted" in doc else (status,),
    )
