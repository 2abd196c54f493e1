"""A lost dispute's refund record at the billing system's API (adapters/billing_systems.py picks the billing system
and opens the account's key): recorded once, under the record's idempotency key, and on every try but the first
looked for at the billing system before it is asked again (domain/dispute_refunds.py `looks_before_recording`: an
idempotency key is kept for a while only, the tries last days).

Chargebee: `POST {site}/api/v2/transactions/{transaction}/record_refund` (basic auth with the key as the user name,
`chargebee-idempotency-key`) of the transaction `record_payment` answered with, else of the payment found in
`GET {site}/api/v2/invoices/{invoice}/payments` by the connector's charge (its `id_at_gateway`); the refund names the
dispute as its `reference_number`, which a later try looks for with *List transactions*
(`GET {site}/api/v2/transactions?reference_number[is]=<dispute>&type[is]=refund`: one read, and it finds the refund
whatever Chargebee links to the payment).
Stripe Billing: `POST {STRIPE_API_BASE}/v1/credit_notes` (bearer auth, `Idempotency-Key`, `Stripe-Version` pinned as
the pay call's) of the invoice, its whole amount `out_of_band_amount`; a later try matches `metadata[dispute_id]`
among `GET /v1/credit_notes?invoice=`.
Recurly: `POST {base}/invoices/{invoice}/refund` (basic auth, the API version in `Accept`, `Idempotency-Key`), a JSON
body refunding the amount outside Recurly (`external_refund`); a later try matches the dispute in the customer notes of
the invoice's credit invoices, `GET {base}/invoices/{invoice}/related_invoices` (pages followed by their `next`)."""

from __future__ import annotations

from recovery_contracts.messages import DisputeRefund, RecordBack
from recovery_executor.domain.billing_systems import (
    chargebee_answer,
    chargebee_payment_in,
    chargebee_reference,
    chargebee_refund_form,
    chargebee_refund_in,
    chargebee_refusal,
    recurly_credit_invoice_in,
    recurly_refund_answer,
    recurly_refund_body,
    recurly_refusal,
    stripe_credit_note_answer,
    stripe_credit_note_form,
    stripe_credit_note_in,
    stripe_refusal,
)
from recovery_executor.domain.dispute_refunds import looks_before_recording
from recovery_executor.domain.ports import RecordBackAnswer
from recovery_runtime.connector_apis import RECURLY_ACCEPT, STRIPE_VERSION, key_as_user

from .billing_api import BillingApi, RecordBackCall

# Pages of an invoice's payments read to find the one to refund (Chargebee's largest page is 100).
PAYMENT_PAGES = 5
# Pages of an invoice's credit notes read to find the one a try made (Stripe's largest page is 100).
CREDIT_NOTE_PAGES = 5
# Pages of an invoice's related (credit) invoices read to find the one a try made (an invoice is refunded a few times).
RELATED_INVOICE_PAGES = 5


class ChargebeeRefunds:
    def __init__(self, api: BillingApi) -> None:
        self._api = api

    async def record(
        self,
        site: str,
        request: RecordBack,
        refund: DisputeRefund,
        api_key: str,
        idempotency_key: str,
        transaction_id: str | None,
    ) -> RecordBackAnswer:
        auth = {"Authorization": key_as_user(api_key)}
        if looks_before_recording(request):
            made = await self._refund_made(site, refund.dispute_id, auth)
            if made is not None:
                return made
        if transaction_id is None:
            found = await self._payment(site, request, auth)
            if isinstance(found, RecordBackAnswer):
                return found
            transaction_id = found
        url = f"{site}/api/v2/transactions/{transaction_id}/record_refund"
        headers = {**auth, "chargebee-idempotency-key": idempotency_key}
        call = RecordBackCall("POST", url, chargebee_refund_form(refund), headers, chargebee_answer)
        return await self._api.send(call)

    async def _payment(self, site: str, request: RecordBack, auth: dict[str, str]) -> str | RecordBackAnswer:
        """The Chargebee transaction of the payment the record back recorded, by the connector's charge among the
        invoice's payments (a record back before transaction ids were kept, or one answered "already paid")."""
        charge = request.body.connector_transaction_id
        invoice = request.body.merchant_reference_id
        if not charge:
            return RecordBackAnswer(
                accepted=False, error="no Chargebee transaction to refund: the payment names no charge", blocked=True
            )
        url, offset = f"{site}/api/v2/invoices/{invoice}/payments", None
        for _ in range(PAYMENT_PAGES):
            params = {"limit": "100", **({"offset": offset} if offset else {})}
            page = await self._api.read(url, auth, chargebee_refusal, params)
            if isinstance(page, RecordBackAnswer):
                return page
            found = chargebee_payment_in(page, charge)
            if found is not None:
                return found
            offset = page.get("next_offset")
            if not isinstance(offset, str) or not offset:
                break
        return RecordBackAnswer(accepted=False, error=f"no payment of {charge} on Chargebee invoice {invoice} yet")

    async def _refund_made(self, site: str, dispute_id: str, auth: dict[str, str]) -> RecordBackAnswer | None:
        """Accepted, naming it, if Chargebee holds a refund recorded for the dispute (an earlier try's, its answer
        lost); the read's refusal if Chargebee could not be read (never a blind second refund); None: not there,
        record it. The dispute id is the merchant's and the dispute's alone, so a refund bearing it is this one."""
        params = {"reference_number[is]": chargebee_reference(dispute_id), "type[is]": "refund", "limit": "10"}
        listed = await self._api.read(f"{site}/api/v2/transactions", auth, chargebee_refusal, params)
        if isinstance(listed, RecordBackAnswer):
            return listed
        made = chargebee_refund_in(listed, dispute_id)
        return RecordBackAnswer(accepted=True, status_code=200, transaction_id=made) if made is not None else None


class StripeCreditNotes:
    def __init__(self, api: BillingApi, stripe_api_base: str) -> None:
        self._api = api
        self._base = stripe_api_base

    async def record(
        self, request: RecordBack, refund: DisputeRefund, api_key: str, idempotency_key: str
    ) -> RecordBackAnswer:
        auth = {"Authorization": f"Bearer {api_key}", "Stripe-Version": STRIPE_VERSION}
        invoice = request.body.merchant_reference_id
        if looks_before_recording(request):
            made = await self._credit_note_made(invoice, refund.dispute_id, auth)
            if made is not None:
                return made
        form = stripe_credit_note_form(refund, invoice, request.payment_id)
        headers = {**auth, "Idempotency-Key": idempotency_key}
        call = RecordBackCall("POST", f"{self._base}/v1/credit_notes", form, headers, stripe_credit_note_answer)
        return await self._api.send(call)

    async def _credit_note_made(self, invoice: str, dispute_id: str, auth: dict[str, str]) -> RecordBackAnswer | None:
        """Accepted, naming it, if a credit note of the invoice is the dispute's; the read's refusal if Stripe could
        not be read; None: not there, issue it."""
        params = {"invoice": invoice, "limit": "100"}
        for _ in range(CREDIT_NOTE_PAGES):
            page = await self._api.read(f"{self._base}/v1/credit_notes", auth, stripe_refusal, params)
            if isinstance(page, RecordBackAnswer):
                return page
            found = stripe_credit_note_in(page, dispute_id)
            if found is not None:
                return RecordBackAnswer(accepted=True, status_code=200, transaction_id=found)
            listed = page.get("data")
            last = listed[-1] if isinstance(listed, list) and listed else None
            after = last.get("id") if isinstance(last, dict) else None
            if page.get("has_more") is not True or not isinstance(after, str):
                break
            params = {**params, "starting_after": after}
        return None


class RecurlyRefunds:
    def __init__(self, api: BillingApi) -> None:
        self._api = api

    async def record(
        self, base: str, request: RecordBack, refund: DisputeRefund, api_key: str, idempotency_key: str
    ) -> RecordBackAnswer:
        auth = {"Authorization": key_as_user(api_key), "Accept": RECURLY_ACCEPT}
        invoice = request.body.merchant_reference_id
        if looks_before_recording(request):
            made = await self._credit_invoice_made(base, invoice, refund.dispute_id, auth)
            if made is not None:
                return made
        url = f"{base}/invoices/{invoice}/refund"
        headers = {**auth, "Idempotency-Key": idempotency_key}
        body = recurly_refund_body(refund)
        return await self._api.send(RecordBackCall("POST", url, None, headers, recurly_refund_answer, body))

    async def _credit_invoice_made(
        self, base: str, invoice: str, dispute_id: str, auth: dict[str, str]
    ) -> RecordBackAnswer | None:
        """Accepted, naming it, if a credit invoice of the invoice is the dispute's; the read's refusal if Recurly could
        not be read; None: not there, refund it."""
        url = f"{base}/invoices/{invoice}/related_invoices"
        for _ in range(RELATED_INVOICE_PAGES):
            page = await self._api.read(url, auth, recurly_refusal)
            if isinstance(page, RecordBackAnswer):
                return page
            found = recurly_credit_invoice_in(page, dispute_id)
            if found is not None:
                return RecordBackAnswer(accepted=True, status_code=200, transaction_id=found)
            after = page.get("next")  # Recurly's: the next page's path under the API base (the key goes nowhere else)
            if page.get("has_more") is not True or not isinstance(after, str) or not after.startswith("/"):
                break
            url = f"{base}{after}"
        return None
