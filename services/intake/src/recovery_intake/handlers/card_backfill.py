"""The merchant's card-data backfill (`POST /v2/recovery/data-backfill`): each checked row is kept for the
customer's recoveries still to come (`saved_cards`, which `RecoveryIntake.accept` reads), and updates the saved
card of every open invoice of that customer that holds the token, one invoice per transaction, of which the
scheduler and the executor hear (`recovery.updated`, `card_data_backfill`)."""

from __future__ import annotations

from functools import partial

import structlog

from recovery_contracts.api.data_backfill import DataBackfillResponse, DataBackfillRowError, SavedCardsResponse
from recovery_contracts.recovery import PriorRetries
from recovery_intake.dependencies import IntakeAdapters
from recovery_intake.domain.card_backfill import BackfillRow, backfilled, prior_retries, read_backfill, saved_card
from recovery_intake.domain.intent import Intent
from recovery_runtime.unit_of_work import Transaction

log = structlog.get_logger(__name__)

# A customer's kept cards shown (or forgotten) in one answer: a customer has a few saved cards.
CARDS_SHOWN = 100


class CardDataBackfill:
    def __init__(self, adapters: IntakeAdapters) -> None:
        self._intents = adapters.intents
        self._saved_cards = adapters.saved_cards
        self._unit_of_work = adapters.unit_of_work
        self._clock = adapters.clock

    async def backfill(self, merchant_id: str, content: bytes) -> DataBackfillResponse:
        """Apply the file's rows (BackfillRefused when the file as a whole cannot be read: nothing applied). Each
        checked row is kept for the customer's recoveries to come, then applied to its open ones; a row that does
        not check fails with the reason, and the others apply."""
        rows, errors = read_backfill(content)
        now = self._clock.now()
        checked: list[tuple[BackfillRow, tuple[PriorRetries, ...] | None]] = []
        for row in rows:
            try:
                checked.append((row, prior_retries(row.record, now)))
            except ValueError as refused:
                errors.append(DataBackfillRowError(row_number=row.row_number, error=str(refused)))
        # Kept first: a recovery accepted from here on reads it, one accepted before is among the open ones below.
        await self._saved_cards.save(merchant_id, [saved_card(row.record, history, now) for row, history in checked])
        cards = {(row.record.customer_id_resp, row.record.token) for row, _ in checked}
        open_invoices = await self._intents.open_with_tokens(merchant_id, cards)
        updated = kept = 0
        for row, history in checked:
            references = open_invoices.get((row.record.customer_id_resp, row.record.token), [])
            if not references:
                kept += 1
            for reference in references:
                updated += await self._unit_of_work.apply(partial(self._apply, merchant_id, reference, row, history))
        errors.sort(key=lambda e: e.row_number)
        log.info("card_backfill.done", processed=len(checked), failed=len(errors), updated=updated, kept=kept)
        return DataBackfillResponse(
            processed_records=len(checked),
            failed_records=len(errors),
            updated_recoveries=updated,
            kept_for_later=kept,
            errors=errors,
        )

    async def kept_cards(self, merchant_id: str, customer_id: str) -> SavedCardsResponse:
        """What the merchant's uploads said of the customer's cards, kept for its recoveries still to come."""
        cards = await self._saved_cards.of_customer(merchant_id, customer_id, CARDS_SHOWN)
        return SavedCardsResponse(connector_customer_id=customer_id, cards=[card.view() for card in cards])

    async def forget_cards(self, merchant_id: str, customer_id: str) -> SavedCardsResponse:
        """The customer's kept cards forgotten (up to `CARDS_SHOWN` a call), and which they were. Open recoveries
        keep what they took of them; the customer's later ones get none."""
        forgotten = await self.kept_cards(merchant_id, customer_id)
        await self._saved_cards.forget(merchant_id, customer_id, [card.token for card in forgotten.cards])
        log.info("card_backfill.forgotten", cards=len(forgotten.cards))
        return forgotten

    async def _apply(
        self,
        merchant_id: str,
        reference: str,
        row: BackfillRow,
        history: tuple[PriorRetries, ...] | None,
        tx: Transaction,
    ) -> int:
        """1 when the invoice's card data changed (stored, `recovery.updated` emitted), else 0."""
        intent: Intent | None = await self._intents.by_reference(merchant_id, reference, tx)
        if intent is None:
            return 0
        card = next((t for t in intent.snapshot.tokens if t.token == row.record.token), None)
        if card is None:
            return 0
        change = intent.card_data_backfilled(card.token, backfilled(card, row.record, history), self._clock.now())
        if change.intent is intent:
            return 0
        await self._intents.save(change, tx)
        return 1
