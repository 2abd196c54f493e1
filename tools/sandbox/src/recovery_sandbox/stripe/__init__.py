"""A Stripe-compatible sandbox for development and tests: test cards, idempotency, a charge ledger, faults, and
an account whose default API version (DEFAULT_API_VERSION) is newer than the one its objects are shaped after
(STRIPE_VERSION): callers that send no `Stripe-Version` see invoices as that newer version shows them."""

from recovery_sandbox.stripe.app import STRIPE_VERSION, create_app
from recovery_sandbox.stripe.faults import Fault, FaultMode
from recovery_sandbox.stripe.test_cards import TEST_PAYMENT_METHODS
from recovery_sandbox.stripe.versions import DEFAULT_API_VERSION

__all__ = ["DEFAULT_API_VERSION", "STRIPE_VERSION", "TEST_PAYMENT_METHODS", "Fault", "FaultMode", "create_app"]
