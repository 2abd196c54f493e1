"""The sandbox's account: customers, payment methods, PaymentIntents, charges, disputes, files, ledger, idempotency.

StripeState is built up in layers, one idea to a module: state.py keeps the state (its lock, its file, idempotency
and faults), customers.py the customers and their payment methods, payment_intents.py the PaymentIntents with their
charges and ledger, and params.py the helpers the endpoints share (ids, Stripe's parameter checks).
"""

from __future__ import annotations

from recovery_sandbox.stripe.payment_intents import PaymentIntentState


class StripeState(PaymentIntentState):
    """The sandbox's account, whole: what the app and the modules beside it (disputes, files, invoices, credit notes,
    webhooks) hold."""
