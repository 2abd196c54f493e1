"""The Recurly sandbox's site: its invoices and transactions, the changes the API and the controls make to them, the
notification each change sends, refunds of its invoices (credit invoices, refunds.py), and the record-back controls
(idempotency keys, injected failures).

One lock guards the state: handlers run on the server's event loop while a test may read the site from its thread.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

from pydantic import BaseModel, Field

from recovery_sandbox.injected_failures import FailureSwitch
from recovery_sandbox.recurly.notifications import post_notification, signature_header
from recovery_sandbox.recurly.objects import (
    OPEN,
    PAYABLE,
    Invoice,
    InvoiceState,
    PaymentFailure,
    Transaction,
    invoice_view,
    iso_time,
    recurly_id,
    transaction_view,
)
from recovery_sandbox.recurly.refunds import (
    CreditInvoice,
    RefundRefused,
    credit_invoice_view,
    minor_units,
    page_of,
    refund_request,
)
from recovery_sandbox.redelivery import Schedule

FIRST_INVOICE_NUMBER = 1001


class RecurlyError(Exception):
    """An answer in Recurly's error shape: `{"error": {"type", "message", "params"}}`."""

    def __init__(self, status: int, error_type: str, message: str, params: list[dict[str, Any]] | None = None) -> None:
        super().__init__(message)
        self.status, self.error_type, self.message, self.params = status, error_type, message, params or []

    def body(self) -> dict[str, Any]:
        return {"error": {"type": self.error_type, "message": self.message, "params": self.params}}


class NewInvoice(BaseModel):
    account_code: str = Field(min_length=1)
    currency: str = Field(default="USD", min_length=3, max_length=3)
    amount: int = Field(gt=0, description="minor units")


class WebhookSettings(BaseModel):
    url: str
    secret: str = Field(min_length=1)


class RecurlySite:
    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self.lock = threading.RLock()
        self.site_id = recurly_id()
        self.accounts: dict[str, str] = {}
        self.invoices: dict[str, Invoice] = {}
        self.transactions: dict[str, Transaction] = {}
        self.credit_invoices: dict[str, CreditInvoice] = {}
        self.events: list[dict[str, Any]] = []
        self.webhook: WebhookSettings | None = None
        self.record_failures = FailureSwitch()
        # When a notification not answered 2xx is sent again (`POST /_sandbox/webhook/redelivery` sets it).
        self.redelivery = Schedule()
        self._answers: dict[str, tuple[str, int, dict[str, Any]]] = {}
        self._sending: set[asyncio.Task[int | None]] = set()

    # ----- reads ---------------------------------------------------------------------------------------------

    def invoice_answer(self, invoice_id: str) -> dict[str, Any]:
        """A charge invoice, or a credit invoice a refund made."""
        with self.lock:
            credit = self.credit_invoices.get(invoice_id)
            return credit_invoice_view(credit) if credit is not None else invoice_view(self._invoice(invoice_id))

    def related_invoices(self, invoice_id: str, path: str, cursor: int, limit: int) -> dict[str, Any]:
        """Recurly's `GET /invoices/{id}/related_invoices`: a charge invoice's credit invoices (newest first), or the
        charge invoice a credit invoice refunded."""
        with self.lock:
            credit = self.credit_invoices.get(invoice_id)
            if credit is not None:
                views = [invoice_view(credit.refunded)]
            else:
                invoice = self._invoice(invoice_id)
                made = [c for c in self.credit_invoices.values() if c.refunded is invoice]
                views = [credit_invoice_view(c) for c in reversed(made)]
            return page_of(views, path, cursor, limit)

    def transaction_answer(self, transaction_id: str) -> dict[str, Any]:
        """By Recurly id or as `uuid-<uuid>`."""
        with self.lock:
            if transaction_id.startswith("uuid-"):
                wanted = transaction_id.removeprefix("uuid-")
                found = next((t for t in self.transactions.values() if t.uuid == wanted), None)
            else:
                found = self.transactions.get(transaction_id)
            if found is None:
                raise RecurlyError(404, "not_found", f"Couldn't find Transaction with id = {transaction_id}")
            return transaction_view(found)

    def _invoice(self, invoice_id: str) -> Invoice:
        """By Recurly id or as `number-<number>`."""
        if invoice_id.startswith("number-"):
            wanted = invoice_id.removeprefix("number-")
            found = next((i for i in self.invoices.values() if i.number == wanted), None)
        else:
            found = self.invoices.get(invoice_id)
        if found is None:
            raise RecurlyError(404, "not_found", f"Couldn't find Invoice with id = {invoice_id}", [{"param": "id"}])
        return found

    # ----- changes -------------------------------------------------------------------------------------------

    def create_invoice(self, request: NewInvoice) -> dict[str, Any]:
        with self.lock:
            invoice = Invoice(
                id=recurly_id(),
                uuid=uuid.uuid4().hex,
                number=self._next_number(),
                account_id=self.accounts.setdefault(request.account_code, recurly_id()),
                account_code=request.account_code,
                currency=request.currency.upper(),
                total=request.amount,
                created_at=self._clock(),
            )
            self.invoices[invoice.id] = invoice
            return invoice_view(invoice)

    def payment_failed(self, invoice_id: str, failure: PaymentFailure) -> dict[str, Any]:
        """A declined transaction on an open invoice, which becomes past due; `payment.failed` is sent."""
        with self.lock:
            invoice = self._move(invoice_id, OPEN, InvoiceState.PAST_DUE)
            transaction = Transaction(recurly_id(), uuid.uuid4().hex, invoice, invoice.total, self._clock(), failure)
            self.transactions[transaction.id] = transaction
            invoice.transactions.append(transaction)
            self._notify("payment", "failed", transaction.id, transaction.uuid)
            return transaction_view(transaction)

    def paid(self, invoice_id: str) -> dict[str, Any]:
        with self.lock:
            invoice = self._move(invoice_id, PAYABLE, InvoiceState.PAID)
            self._notify("charge_invoice", "paid", invoice.id, invoice.uuid)
            return invoice_view(invoice)

    def failed(self, invoice_id: str) -> dict[str, Any]:
        with self.lock:
            invoice = self._move(invoice_id, OPEN, InvoiceState.FAILED)
            self._notify("charge_invoice", "failed", invoice.id, invoice.uuid)
            return invoice_view(invoice)

    def mark_successful(self, invoice_id: str, idempotency_key: str | None) -> tuple[int, dict[str, Any]]:
        """Recurly's `PUT /invoices/{id}/mark_successful`. The first answer under a key is the answer to every
        repeat of it, but an injected failure (a 5xx, or what `record_failures` says) is not kept: a retry under
        the same key goes through, as the executor's record back retries under one key."""
        with self.lock:
            failing = self.record_failures.take()
            if failing is not None:
                raise RecurlyError(failing, "internal_server_error", "An unexpected error has occurred.")
            return self._once(idempotency_key, f"invoice {invoice_id}", lambda: self.paid(invoice_id))

    def refund(self, invoice_id: str, body: Any, idempotency_key: str | None) -> tuple[int, dict[str, Any]]:
        """Recurly's `POST /invoices/{id}/refund` (refunds.py takes the body): a paid charge invoice refunded by at
        most what it can still refund, outside Recurly; the credit invoice made. Idempotent as `mark_successful`,
        until `forget_idempotency_keys`."""
        with self.lock:
            return self._once(idempotency_key, f"invoice {invoice_id} (refund)", lambda: self._refund(invoice_id, body))

    def forget_idempotency_keys(self) -> int:
        """Ends every idempotency key's window now (`POST /_sandbox/idempotency/expire`): the next use of a key is a
        new request. How many were kept."""
        with self.lock:
            forgotten = len(self._answers)
            self._answers.clear()
            return forgotten

    def _refund(self, invoice_id: str, body: Any) -> dict[str, Any]:
        invoice = self._invoice(invoice_id)
        try:
            request = refund_request(body)
            if invoice.state is not InvoiceState.PAID:
                raise RefundRefused(f"Invoice {invoice.number} is {invoice.state.value}: only a paid one is refunded")
            refundable = invoice.total - invoice.refunded
            amount = refundable if request.amount is None else minor_units(request.amount)
            if not 0 < amount <= refundable:
                left = f"{refundable / 100:.2f}"
                raise RefundRefused(f"Amount cannot exceed the refundable amount of {left}", "amount")
        except RefundRefused as refused:
            params = [{"param": refused.param, "message": refused.message}] if refused.param else []
            raise RecurlyError(422, "validation", refused.message, params) from refused
        credit = CreditInvoice(
            id=recurly_id(),
            uuid=uuid.uuid4().hex,
            number=self._next_number(),
            refunded=invoice,
            amount=amount,
            created_at=self._clock(),
            customer_notes=request.credit_customer_notes,
            transaction_id=recurly_id(),
            transaction_uuid=uuid.uuid4().hex,
            external=request.external_refund,
        )
        self.credit_invoices[credit.id] = credit
        invoice.refunded += amount
        return credit_invoice_view(credit)

    def _once(self, key: str | None, what: str, act: Callable[[], dict[str, Any]]) -> tuple[int, dict[str, Any]]:
        """`act`'s answer (200, or its refusal), kept as the answer to every later use of the key `key` on `what`."""
        if key is not None and key in self._answers:
            first, status, body = self._answers[key]
            if first != what:
                raise RecurlyError(400, "bad_request", f"Idempotency-Key {key} was first used on {first}")
            return status, body
        try:
            answer = 200, act()
        except RecurlyError as error:
            answer = error.status, error.body()
        if key is not None:
            self._answers[key] = (what, *answer)
        return answer

    def _next_number(self) -> str:
        """Charge and credit invoices share the site's number sequence."""
        return str(FIRST_INVOICE_NUMBER + len(self.invoices) + len(self.credit_invoices))

    def _move(self, invoice_id: str, allowed: frozenset[InvoiceState], to: InvoiceState) -> Invoice:
        invoice = self._invoice(invoice_id)
        if invoice.state not in allowed:
            message = f"Invoice {invoice.number} is {invoice.state.value}: it cannot become {to.value}"
            raise RecurlyError(422, "invalid_transition", message)
        invoice.state = to
        if to in (InvoiceState.PAID, InvoiceState.FAILED):
            invoice.closed_at = self._clock()
        return invoice

    # ----- notifications -------------------------------------------------------------------------------------

    def _notify(self, object_type: str, event_type: str, object_id: str, object_uuid: str) -> None:
        notification = {
            "id": object_id,
            "object_type": object_type,
            "site_id": self.site_id,
            "event_type": event_type,
            "event_time": iso_time(self._clock()),
            "uuid": object_uuid,
        }
        with self.lock:
            n = len(self.events)
            self.events.append({"n": n, "notification": notification, "deliveries": []})
        try:
            task = asyncio.get_running_loop().create_task(self._send_until_taken(n))
        except RuntimeError:  # no event loop (the site driven directly): recorded, not sent
            return
        self._sending.add(task)
        task.add_done_callback(self._sending.discard)

    async def _send_until_taken(self, n: int) -> int | None:
        """Recurly's deliveries of notification `n`, again while not taken; none without a webhook configured."""
        if self.webhook is None:
            return None

        async def status() -> int | None:
            delivery = await self.send(n)
            return None if delivery is None else delivery.get("status")

        return await self.redelivery.until_taken(status)

    async def send(self, n: int, signing: list[str] | None = None, age_seconds: int = 0) -> dict[str, Any] | None:
        """POST notification `n` to the webhook, signed with its secret (or each of `signing`) as of `age_seconds`
        ago; the delivery as recorded in the event, or None when no webhook is configured."""
        settings = self.webhook
        if settings is None:
            return None
        body = json.dumps(self.events[n]["notification"]).encode()
        timestamp_ms = int(self._clock() * 1000) - age_seconds * 1000
        signature = signature_header(signing or [settings.secret], body, timestamp_ms)
        outcome = await post_notification(settings.url, body, signature)
        delivery = {"url": settings.url, "timestamp_ms": timestamp_ms, **outcome}
        with self.lock:
            self.events[n]["deliveries"].append(delivery)
        return delivery
