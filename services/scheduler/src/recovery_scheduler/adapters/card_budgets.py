"""The `card_budgets` collection: one document per merchant and card (token), the reservations of the merchant's
recoveries on that card, the `never` declines they met on it (`hard_declines`) and the merchant's word on when it
may next be tried (`not_before`), and the recoveries that ran out of retries while that word held the card back
(`held_off`: fields a release before them neither reads nor keeps: docs/deployment.md, "Upgrading"); written by
compare-and-set on `version`, inside the
recovery's transaction."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict
from typing import Any

from pymongo import ASCENDING
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError, OperationFailure

from recovery_runtime.mongo import IndexSpec
from recovery_runtime.unit_of_work import Transaction
from recovery_scheduler.dependencies import CardBudgetChanged
from recovery_scheduler.domain.budget_writes import Release
from recovery_scheduler.domain.card_budgets import CardBudget, HardDecline, Reservation
from recovery_scheduler.domain.plans import record_from, stored_fields

CARD_BUDGETS = "card_budgets"
INDEXES = [
    # A budget whose reservations all left the longest window goes by itself.
    IndexSpec(CARD_BUDGETS, [("expires_at", ASCENDING)], "card_budget_ttl", options={"expireAfterSeconds": 0}),
]


def card_budget_id(merchant_id: str, token: str) -> str:
    return f"{merchant_id}/{token}"


def card_budget_document(budget: CardBudget) -> dict[str, Any]:
    return {
        "_id": card_budget_id(budget.merchant_id, budget.token),
        "merchant_id": budget.merchant_id,
        "token": budget.token,
        "version": budget.version + 1,
        "reservations": [stored_fields(r) for r in budget.reservations],
        "hard_declines": [asdict(d) for d in budget.hard_declines],
        "not_before": budget.not_before,
        "held_off": list(budget.held_off),
        "expires_at": budget.expires_at,
    }


def card_budget_from(doc: dict[str, Any]) -> CardBudget:
    return CardBudget(
        merchant_id=doc["merchant_id"],
        token=doc["token"],
        version=doc["version"],
        reservations=tuple(record_from(Reservation, r) for r in doc.get("reservations", ())),
        hard_declines=tuple(HardDecline(**d) for d in doc.get("hard_declines", ())),
        not_before=doc.get("not_before"),
        held_off=tuple(doc.get("held_off") or ()),
    )


class MongoCardBudgetRepository:
    def __init__(self, db: AsyncDatabase[dict[str, Any]]) -> None:
        self._budgets = db[CARD_BUDGETS]

    async def read(
        self, merchant_id: str, tokens: Sequence[str], tx: Transaction | None = None
    ) -> dict[str, CardBudget]:
        found = {token: CardBudget(merchant_id, token) for token in tokens}
        ids = [card_budget_id(merchant_id, token) for token in found]
        async for doc in self._budgets.find({"_id": {"$in": ids}}, session=tx.session if tx else None):
            found[doc["token"]] = card_budget_from(doc)
        return found

    async def reserve(self, budget: CardBudget, tx: Transaction) -> None:
        doc = card_budget_id(budget.merchant_id, budget.token)
        try:
            if not budget.reservations and not budget.hard_declines and budget.not_before is None:
                # Nothing counts on the card any more: the document goes (with nothing in it, it would have no
                # `expires_at`, and the TTL index never removes a document without one).
                if budget.version != 0:
                    deleted = await self._budgets.delete_one(
                        {"_id": doc, "version": budget.version}, session=tx.session
                    )
                    if deleted.deleted_count != 1:
                        raise CardBudgetChanged(doc)
                return
            if budget.version == 0:
                await self._budgets.insert_one(card_budget_document(budget), session=tx.session)
                return
            stored = card_budget_document(budget)
            del stored["_id"]
            result = await self._budgets.replace_one(
                {"_id": doc, "version": budget.version}, stored, session=tx.session
            )
        except DuplicateKeyError as taken:
            # Another recovery stored the card's first reservation; inside a transaction this aborts it.
            raise CardBudgetChanged(doc) from taken
        except OperationFailure as conflict:
            # Another transaction writes the same budget (a write conflict): planned again on what it commits.
            if conflict.has_error_label("TransientTransactionError"):
                raise CardBudgetChanged(doc) from conflict
            raise
        if result.matched_count != 1:
            raise CardBudgetChanged(doc)

    async def release(self, release: Release, tx: Transaction) -> None:
        await self._budgets.update_one(
            {"_id": card_budget_id(release.merchant_id, release.token)},
            {
                "$pull": {"reservations": {"payment_id": release.payment_id, "attempt_number": release.attempt_number}},
                "$inc": {"version": 1},
            },
            session=tx.session,
        )
