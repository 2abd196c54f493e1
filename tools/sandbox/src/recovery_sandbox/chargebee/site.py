"""The Chargebee sandbox's site: its invoices and transactions, the changes the API and the controls make to them,
the events they send, and the writes' idempotency keys.

Transactions as Chargebee's API v2 shows them (https://apidocs.chargebee.com/docs/api/transactions): a payment
recorded against an invoice (`record_payment`) lists the refunds recorded of it (`linked_refunds`: `txn_id`,
`txn_status`, `txn_date`, `txn_amount`); a refund (`record_refund`, an offline refund such as a chargeback) is a
transaction of `type` `refund` naming the payment (`reference_transaction_id`, and `refunded_txn_id` as older API
versions named it), and keeps the `reference_number` it was recorded with. *List transactions* filters on
`reference_number`, `type`, `customer_id` and `id_at_gateway` (`<field>[is]`; any other filter is refused). The
sandbox bounds a refund by what is left of the payment's amount; Chargebee's reference bounds it by the payment's
`amount_unused`, which this sandbox does not model. A refund leaves the invoice as it was (no credit note, no
`amount_refunded`).

A write's idempotency key is kept for Chargebee's idempotency window, 30 minutes (its API reference's "Idempotent
requests"), then forgotten; `forget_idempotency_keys` (`POST /_sandbox/idempotency/expire`) ends every window now.

One lock guards the state: handlers run on the server's event loop while a test may read the site from its thread.
In memory only, as the rest of the Chargebee sandbox.
"""

from __future__ import annotations

import asyncio
import base64
import copy
import json
import secrets
import threading
import time
from collections.abc import Callable
from typing import Any

import httpx
from pydantic import BaseModel, Field

from recovery_sandbox.chargebee.errors import ChargebeeError
from recovery_sandbox.injected_failures import FailureSwitch

# The header Chargebee names a write's idempotency key in, and the one it marks a replayed answer with.
IDEMPOTENCY_KEY = "chargebee-idempotency-key"
IDEMPOTENCY_REPLAYED = "chargebee-idempotency-replayed"
# How long Chargebee keeps an idempotency key: "an idempotency window of 30 minutes" (its API reference, Idempotent
# requests).
IDEMPOTENCY_WINDOW_SECONDS = 30 * 60
# Chargebee's list pages: `limit` 1 to 100, 10 when not given.
PAGE_LIMIT, PAGE_DEFAULT = 100, 10
# The longest `reference_number` a transaction takes.
REFERENCE_NUMBER_CHARS = 100


class WebhookSettings(BaseModel):
    """Chargebee's webhook settings: the URL and the basic auth it sends."""

    url: str
    username: str
    password: str


class PaymentFailure(BaseModel):
    """A failed collection of an invoice at the gateway (what Chargebee's dunning reports as payment_failed)."""

    reference_number: str = Field(description="the gateway's customer/payment method, e.g. cus_.../pm_...")
    gateway_account_id: str = "gw_stripe"
    id_at_gateway: str = "ch_failed"
    error_code: str = "insufficient_funds"
    error_text: str = "Your card has insufficient funds."
    card_type: str = "visa"
    last4: str = "4242"


def _new_id(prefix: str) -> str:
    return prefix + secrets.token_hex(8)


class Chargebee:
    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self.lock = threading.RLock()
        self._clock = clock
        self.invoices: dict[str, dict[str, Any]] = {}
        self.transactions: dict[str, dict[str, Any]] = {}
        self.events: dict[str, dict[str, Any]] = {}
        self.deliveries: list[dict[str, Any]] = []
        self.webhook: WebhookSettings | None = None
        self.record_failures = FailureSwitch()
        self.refund_failures = FailureSwitch()
        # Idempotency key -> when it was first used, that request (path, form) and its answer (status, body).
        self._answers: dict[str, tuple[float, str, dict[str, Any], int, dict[str, Any]]] = {}
        self._sending: set[asyncio.Task[None]] = set()

    def create_invoice(self, params: dict[str, Any]) -> dict[str, Any]:
        customer = params.get("customer_id")
        amounts = (params.get("charges") or {}).get("amount") or {}
        if not customer or not amounts:
            raise ChargebeeError(400, "param_wrong_value", "customer_id and charges[amount][0] are required")
        total = sum(int(v) for v in (amounts.values() if isinstance(amounts, dict) else amounts))
        now = int(time.time())
        invoice = {
            "id": _new_id("inv_"),
            "customer_id": customer,
            "status": "payment_due",
            "currency_code": str(params.get("currency_code") or "USD").upper(),
            "date": now,
            "total": total,
            "amount_due": total,
            "amount_paid": 0,
            "linked_payments": [],
            "object": "invoice",
        }
        with self.lock:
            self.invoices[invoice["id"]] = invoice
        return invoice

    def invoice(self, invoice_id: str) -> dict[str, Any]:
        found = self.invoices.get(invoice_id)
        if found is None:
            raise ChargebeeError(404, "resource_not_found", f"Sorry, we couldn't find that resource: {invoice_id}")
        return found

    def record_payment(self, invoice_id: str, params: dict[str, Any]) -> dict[str, Any]:
        with self.lock:
            invoice = self.invoice(invoice_id)
            txn = params.get("transaction") or {}
            if txn.get("status") not in ("success", "failure"):
                raise ChargebeeError(400, "param_wrong_value", "transaction[status] must be success or failure")
            if not txn.get("payment_method"):
                raise ChargebeeError(400, "param_wrong_value", "transaction[payment_method] cannot be blank")
            if invoice["status"] != "payment_due":
                raise ChargebeeError(400, "invalid_state_for_request", f"Invoice {invoice_id} is {invoice['status']}")
            amount = int(txn.get("amount") or invoice["amount_due"])
            transaction = {
                "id": _new_id("txn_"),
                "object": "transaction",
                "amount": amount,
                "currency_code": invoice["currency_code"],
                "customer_id": invoice["customer_id"],
                "date": int(txn.get("date") or time.time()),
                "id_at_gateway": txn.get("id_at_gateway"),
                "payment_method": txn["payment_method"],
                "status": txn["status"],
                "type": "payment",
                "linked_invoices": [{"invoice_id": invoice_id, "applied_amount": amount}],
                "linked_refunds": [],
            }
            self.transactions[transaction["id"]] = transaction
            if txn["status"] == "success":
                paid = min(amount, invoice["amount_due"])
                invoice["amount_paid"] += paid
                invoice["amount_due"] -= paid
                invoice["linked_payments"].append({"txn_id": transaction["id"], "applied_amount": paid})
                if invoice["amount_due"] == 0:
                    invoice.update(status="paid", paid_at=int(time.time()))
                self.emit("payment_succeeded", {"transaction": transaction, "invoice": dict(invoice)})
            return {"invoice": invoice, "transaction": transaction}

    def void_invoice(self, invoice_id: str) -> dict[str, Any]:
        """Chargebee's *Void an invoice*: refused once a payment is applied; the invoice becomes `voided` and an
        `invoice_updated` event is sent."""
        with self.lock:
            invoice = self.invoice(invoice_id)
            if invoice["amount_paid"] or invoice["status"] in ("paid", "voided"):
                raise ChargebeeError(
                    400,
                    "invalid_state_for_request",
                    f"Invoice {invoice_id} is {invoice['status']}: it cannot be voided",
                )
            invoice.update(status="voided", voided_at=int(time.time()))
            self.emit("invoice_updated", {"invoice": dict(invoice)})
            return {"invoice": invoice}

    def payment_failed(self, invoice_id: str, failure: PaymentFailure) -> dict[str, Any]:
        with self.lock:
            invoice = self.invoice(invoice_id)
            transaction = {
                "id": _new_id("txn_"),
                "object": "transaction",
                "amount": invoice["amount_due"],
                "currency_code": invoice["currency_code"],
                "customer_id": invoice["customer_id"],
                "date": int(time.time()),
                "gateway": "stripe",
                "gateway_account_id": failure.gateway_account_id,
                "id_at_gateway": failure.id_at_gateway,
                "reference_number": failure.reference_number,
                "payment_method": "card",
                "status": "failure",
                "type": "payment",
                "error_code": failure.error_code,
                "error_text": failure.error_text,
                "linked_invoices": [{"invoice_id": invoice_id, "applied_amount": 0}],
            }
            self.transactions[transaction["id"]] = transaction
            card = {"card_type": failure.card_type, "funding_type": "credit", "last4": failure.last4}
            return self.emit("payment_failed", {"transaction": transaction, "invoice": dict(invoice), "card": card})

    # ----- transactions ----------------------------------------------------------------------------------

    def transaction(self, transaction_id: str) -> dict[str, Any]:
        found = self.transactions.get(transaction_id)
        if found is None:
            raise ChargebeeError(404, "resource_not_found", f"Sorry, we couldn't find that resource: {transaction_id}")
        return found

    def payments_of(self, invoice_id: str, limit: str | None, offset: str | None) -> dict[str, Any]:
        """Chargebee's *List payments for an invoice*: the payment transactions applied to it, newest first, a page
        at a time (`next_offset` names the next page; absent on the last)."""
        with self.lock:
            self.invoice(invoice_id)
            payments = [
                t
                for t in self.transactions.values()
                if t["type"] == "payment" and any(i["invoice_id"] == invoice_id for i in t["linked_invoices"])
            ]
            return _transactions_page(payments, limit, offset)

    def list_transactions(self, equal_to: dict[str, str], limit: str | None, offset: str | None) -> dict[str, Any]:
        """Chargebee's *List transactions* with `<field>[is]` filters (`equal_to`: field -> value; the fields this
        sandbox filters on: `reference_number`, `type`, `customer_id`, `id_at_gateway`), newest first, paged as
        `payments_of`."""
        unknown = set(equal_to) - {"reference_number", "type", "customer_id", "id_at_gateway"}
        if unknown:
            raise ChargebeeError(400, "param_wrong_value", f"this sandbox does not filter on {sorted(unknown)}")
        with self.lock:
            found = [t for t in self.transactions.values() if all(t.get(k) == v for k, v in equal_to.items())]
            return _transactions_page(found, limit, offset)

    def record_refund(self, transaction_id: str, params: dict[str, Any]) -> dict[str, Any]:
        """Chargebee's *Record an offline refund* of a successful payment: a refund transaction linked to it, at most
        what is left of its amount (the whole of it when `amount` is not given)."""
        with self.lock:
            payment = self.transaction(transaction_id)
            if payment["type"] != "payment" or payment["status"] != "success":
                message = f"Transaction {transaction_id} is not a successful payment: no refund can be recorded"
                raise ChargebeeError(400, "invalid_request", message)
            method, date, reference = params.get("payment_method"), params.get("date"), params.get("reference_number")
            if not method:
                raise ChargebeeError(400, "param_wrong_value", "payment_method cannot be blank", param="payment_method")
            if reference is not None and (not isinstance(reference, str) or len(reference) > REFERENCE_NUMBER_CHARS):
                message = f"reference_number cannot be longer than {REFERENCE_NUMBER_CHARS} characters"
                raise ChargebeeError(400, "param_wrong_value", message, param="reference_number")
            if not isinstance(date, str) or not date.isdigit():
                raise ChargebeeError(400, "param_wrong_value", "date must be a timestamp in seconds", param="date")
            left = payment["amount"] - sum(r["txn_amount"] for r in payment["linked_refunds"])
            if left <= 0:
                message = f"Transaction {transaction_id} is refunded in full"
                raise ChargebeeError(400, "invalid_state_for_request", message)
            amount = _amount(params.get("amount"), left)
            refund = {
                "id": _new_id("txn_"),
                "object": "transaction",
                "amount": amount,
                "currency_code": payment["currency_code"],
                "customer_id": payment["customer_id"],
                "date": int(date),
                "payment_method": method,
                "reference_number": reference,
                "status": "success",
                "type": "refund",
                "reference_transaction_id": payment["id"],
                "refunded_txn_id": payment["id"],
                "linked_invoices": [],
                "linked_refunds": [],
            }
            self.transactions[refund["id"]] = refund
            payment["linked_refunds"].append(
                {"txn_id": refund["id"], "txn_status": "success", "txn_date": refund["date"], "txn_amount": amount}
            )
            return {"transaction": refund}

    # ----- idempotency keys ------------------------------------------------------------------------------

    def once(
        self,
        key: str | None,
        path: str,
        form: dict[str, Any],
        failures: FailureSwitch,
        write: Callable[[], dict[str, Any]],
    ) -> tuple[int, dict[str, Any], bool]:
        """`write` under the idempotency key `key`: its answer (status, body) and whether it is a replay. The first
        answer under a key is the answer to every repeat of the same request (path and form); the key used with
        another request is refused. An injected failure (`failures`) is not kept: a retry under the same key goes
        through, as the executor retries under one key. A key is kept for Chargebee's idempotency window only: a
        repeat after it is a new request, which meets the site as it is by then ("not due", "refunded", or a
        second refund)."""
        with self.lock:
            failing = failures.take()
            if failing is not None:
                raise ChargebeeError(failing, "internal_error", "Sorry, something went wrong", "api_error")
            now = self._clock()
            if key is not None and key in self._answers and now - self._answers[key][0] >= IDEMPOTENCY_WINDOW_SECONDS:
                del self._answers[key]
            if key is not None and key in self._answers:
                _, first_path, first_form, status, body = self._answers[key]
                if (first_path, first_form) != (path, form):
                    message = f"The idempotency key {key} was used with another request ({first_path})"
                    raise ChargebeeError(400, "invalid_request", message)
                return status, copy.deepcopy(body), True
            try:
                status, body = 200, write()
            except ChargebeeError as error:
                status, body = error.status, error.body()
            if key is not None:
                self._answers[key] = (now, path, copy.deepcopy(form), status, json.loads(json.dumps(body)))
            return status, body, False

    def forget_idempotency_keys(self) -> int:
        """Every idempotency window ended now (as 30 minutes later): how many keys were forgotten."""
        with self.lock:
            forgotten = len(self._answers)
            self._answers.clear()
            return forgotten

    # ----- events ----------------------------------------------------------------------------------------

    def emit(self, event_type: str, content: dict[str, Any]) -> dict[str, Any]:
        event = {
            "id": _new_id("ev_"),
            "object": "event",
            "api_version": "v2",
            "event_type": event_type,
            "occurred_at": int(time.time()),
            "source": "scheduled_job",
            "webhook_status": "scheduled",
            "content": json.loads(json.dumps(content)),
        }
        with self.lock:
            self.events[event["id"]] = event
        try:
            task = asyncio.get_running_loop().create_task(self.deliver(event))
        except RuntimeError:
            return event
        self._sending.add(task)
        task.add_done_callback(self._sending.discard)
        return event

    async def deliver(self, event: dict[str, Any], password: str | None = None) -> None:
        settings = self.webhook
        if settings is None:
            return
        token = base64.b64encode(f"{settings.username}:{password or settings.password}".encode()).decode()
        record: dict[str, Any] = {"event": event["id"], "type": event["event_type"], "url": settings.url}
        try:
            async with httpx.AsyncClient(timeout=10.0, trust_env=False) as client:
                answer = await client.post(
                    settings.url,
                    content=json.dumps(event).encode(),
                    headers={"Content-Type": "application/json", "Authorization": f"Basic {token}"},
                )
            record.update(status=answer.status_code, answer=answer.text[:1000])
        except httpx.HTTPError as error:
            record.update(status=None, error=f"{type(error).__name__}: {error}")
        with self.lock:
            self.deliveries.append(record)


def _transactions_page(transactions: list[dict[str, Any]], limit: str | None, offset: str | None) -> dict[str, Any]:
    """A page of transactions (given oldest first), newest first, as Chargebee's lists answer:
    `{"list": [{"transaction": ...}], "next_offset": ...}`, `next_offset` absent on the last page."""
    size = _page_limit(limit)
    start = int(offset) if offset and offset.isdigit() else 0
    newest_first = list(reversed(transactions))
    page: dict[str, Any] = {"list": [{"transaction": copy.deepcopy(t)} for t in newest_first[start : start + size]]}
    if start + size < len(newest_first):
        page["next_offset"] = str(start + size)
    return page


def _page_limit(limit: str | None) -> int:
    if limit is None:
        return PAGE_DEFAULT
    if not limit.isdigit() or not 1 <= int(limit) <= PAGE_LIMIT:
        raise ChargebeeError(400, "param_wrong_value", f"limit must be between 1 and {PAGE_LIMIT}", param="limit")
    return int(limit)


def _amount(given: Any, left: int) -> int:
    if given is None or given == "":
        return left
    if not isinstance(given, str) or not given.isdigit() or int(given) < 1:
        raise ChargebeeError(400, "param_wrong_value", "amount must be at least 1", param="amount")
    if int(given) > left:
        raise ChargebeeError(400, "param_wrong_value", f"amount cannot be more than {left}", param="amount")
    return int(given)
