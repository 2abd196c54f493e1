"""Stripe API versions in the sandbox: the version a request is served as, and what it changes.

Stripe serves a request as the version its `Stripe-Version` header names, else as the account's default API version
(https://docs.stripe.com/api/versioning), and names the version it used in the answer's `Stripe-Version` header.
The sandbox's accounts default to DEFAULT_API_VERSION, newer than the STORED_API_VERSION its objects are kept in,
so a caller that sends no `Stripe-Version` gets what it would from an account created today; a caller pinned to
2024-06-20 gets the objects as stored.

From 2025-03-31.basil on, an invoice has no `charge` and no `payment_intent` (its payments are the Invoice
Payment objects of `invoice.payments`), and neither can be expanded: Stripe answers 400
(https://docs.stripe.com/changelog/basil/2025-03-31/add-support-for-multiple-partial-payments-on-invoices).
That much of basil is modelled, nothing else: `payments` is not served, and `paid` and `paid_out_of_band`, which
basil also removes, are kept (the billing demo still reads them unpinned). Webhook endpoints and their events stay
on STORED_API_VERSION, as if every endpoint had been created pinned to it.
"""

from __future__ import annotations

import re
from typing import Any

from fastapi import Request

from recovery_sandbox.stripe.errors import invalid_request

# The version the sandbox's objects are shaped after (Stripe's API reference of 2024-06-20).
STORED_API_VERSION = "2024-06-20"
# The version a request without `Stripe-Version` is served as: the sandbox account's default.
DEFAULT_API_VERSION = "2025-03-31.basil"
# The first version whose invoices have no `charge`/`payment_intent`.
BASIL = "2025-03-31"
INVOICE_FIELDS_REMOVED_IN_BASIL = ("charge", "payment_intent")

_VERSION = re.compile(r"^\d{4}-\d{2}-\d{2}(\.[a-z]+)?$")


def api_version(request: Request) -> str:
    """The version `request` is served as: its `Stripe-Version`, else the account's default; 400 if malformed."""
    named = request.headers.get("stripe-version")
    if named is None:
        return DEFAULT_API_VERSION
    if not _VERSION.match(named.strip()):
        raise invalid_request(f"Invalid Stripe API version: {named}", param="Stripe-Version")
    return named.strip()


def answered_version(request: Request) -> str:
    """The version named in the answer's `Stripe-Version` header (the default when the request's is malformed)."""
    named = (request.headers.get("stripe-version") or "").strip()
    return named if _VERSION.match(named) else DEFAULT_API_VERSION


def is_basil_or_later(version: str) -> bool:
    return version[:10] >= BASIL


def invoice_as(invoice: dict[str, Any], version: str) -> dict[str, Any]:
    """The stored invoice as `version` shows it (a copy without basil's removed fields, or the invoice itself)."""
    if not is_basil_or_later(version):
        return invoice
    return {key: value for key, value in invoice.items() if key not in INVOICE_FIELDS_REMOVED_IN_BASIL}


def check_expandable(field: str, version: str) -> None:
    """Stripe's 400 for an `expand[]` of a field the version does not have."""
    if field in INVOICE_FIELDS_REMOVED_IN_BASIL and is_basil_or_later(version):
        raise invalid_request(f"This property cannot be expanded ({field}).", param="expand")
