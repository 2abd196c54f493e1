"""A Stripe-compatible sandbox for development and tests: test cards, idempotency, a charge ledger, faults."""

from recovery_sandbox.stripe.app import STRIPE_VERSION, create_app
from recovery_sandbox.stripe.faults import Fault, FaultMode
from recovery_sandbox.stripe.test_cards import TEST_PAYMENT_METHODS

__all__ = ["STRIPE_VERSION", "TEST_PAYMENT_METHODS", "Fault", "FaultMode", "create_app"]
