"""The issuer model: what the card's issuer (and the network, and Stripe) answer to one retry.

A plug-in: any class with an `outcome(attempt, rng)` method (and a `name`) is an `IssuerModel`;
`--issuer-model package.module:Class` loads one (`load_issuer_model`). The simulator calls it once per attempt the
planner makes; the model sees only what an issuer could know about the attempt, never the algorithm.
"""

from __future__ import annotations

import importlib
import random
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol, runtime_checkable


@dataclass(frozen=True)
class PastDecline:
    """One earlier decline of this payment (the billing system's first failure included)."""

    at: datetime
    decline_code: str
    advice_code: str | None = None
    network_advice_code: str | None = None


@dataclass(frozen=True)
class AttemptContext:
    """Everything an issuer model is told about one attempt.

    `local_time` is the time at the customer (issuer country's offset); `day_of_month` is its day.
    `declines` is this payment's decline history, oldest first (the first failure is `declines[0]`).
    `card_updated_at`: when the card data was last refreshed (account updater, new expiry), or None.
    """

    invoice: str
    card_network: str
    funding: str  # credit | debit | prepaid
    issuer_country: str
    amount: int  # minor units
    currency: str
    attempt_number: int  # this system's attempt, 1-based
    at: datetime  # UTC
    since_first_failure: timedelta
    local_time: datetime
    day_of_month: int
    declines: tuple[PastDecline, ...]
    card_updated_at: datetime | None = None


@dataclass(frozen=True)
class IssuerOutcome:
    """Approved, or declined with a Stripe decline code and optional Stripe and Mastercard advice codes."""

    approved: bool
    decline_code: str | None = None
    advice_code: str | None = None  # Stripe: do_not_try_again | try_again_later | confirm_card_data
    network_advice_code: str | None = None  # Mastercard Merchant Advice Code: 01, 02, 03, 21, 24..30

    @staticmethod
    def approve() -> IssuerOutcome:
        return IssuerOutcome(True)

    @staticmethod
    def decline(code: str, advice_code: str | None = None, network_advice_code: str | None = None) -> IssuerOutcome:
        return IssuerOutcome(False, code, advice_code, network_advice_code)


@runtime_checkable
class IssuerModel(Protocol):
    """Answers one attempt. Must be deterministic given `rng` (draw every random number from it), so that a run is
    reproducible for a seed. `name` labels the results ("model" in the JSON)."""

    name: str

    def outcome(self, attempt: AttemptContext, rng: random.Random) -> IssuerOutcome: ...


def load_issuer_model(spec: str) -> IssuerModel:
    """`package.module:Class` -> an instance (the class is called without arguments)."""
    module_name, separator, class_name = spec.partition(":")
    if not separator or not module_name or not class_name:
        raise ValueError(f"expected package.module:Class, got {spec!r}")
    module = importlib.import_module(module_name)
    try:
        cls = getattr(module, class_name)
    except AttributeError:
        raise ValueError(f"{module_name} has no {class_name}") from None
    model = cls()
    if not isinstance(model, IssuerModel):
        raise ValueError(f"{spec} does not implement IssuerModel (a `name` and `outcome(attempt, rng)`)")
    return model
