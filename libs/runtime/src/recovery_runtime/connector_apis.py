"""The outside APIs this platform calls, as every service and tool calls them: the pinned versions and default
addresses, and the basic auth Chargebee and Recurly take (intake reads Stripe and Chargebee invoices and Recurly
transactions; the executor charges through Stripe and records back at Stripe Billing, Chargebee and Recurly; the CLI's
scenarios drive the sandboxes). One place, so that two services can never pin two versions."""

import base64

# Stripe's API version every call pins (`Stripe-Version`): without it Stripe answers in the account's default
# version, which changes the shapes read (the invoice's payment fields moved in 2025).
STRIPE_VERSION = "2024-06-20"

# Recurly's API v2021-02-25 (the version Hyperswitch's Recurly connector reads), asked for in `Accept`.
RECURLY_ACCEPT = "application/vnd.recurly.v2021-02-25"
# Recurly's API address when the account names none (an EU site sets `https://v3.eu.recurly.com`).
RECURLY_API_BASE = "https://v3.recurly.com"


def key_as_user(api_key: str) -> str:
    """`Authorization` with the private API key as the basic auth user name and no password (Chargebee's and
    Recurly's APIs, read by intake and written by the executor)."""
    return "Basic " + base64.b64encode(f"{api_key}:".encode()).decode()
