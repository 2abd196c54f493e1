"""The audit trail: what the merchant's people and tools did through the API and the console, one entry per
state-changing request a caller was known for (its key, or the admin key), whatever the answer: who, which route on
which ids, the answer's status, when. The requests that carry the payment flow itself (a recovery's request, the
billing systems' and the payment connector's webhooks, reading the events list) are not entries: their own records
keep them."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from recovery_contracts.api.audit import AuditActorKind

# The requests that change something (the others are reads).
CHANGING_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
# Changing requests that are not entries (route templates): the payment flow and a read sent as a POST.
NOT_AUDITED = frozenset(
    {
        "POST /v2/payments/recovery",
        "POST /events/{merchant_id}",
    }
)
# An answer from this status on is a refusal (4xx) or a failure (5xx).
REFUSED_FROM = 400
# The route id that names the payment an entry acted on.
PAYMENT_TARGET = "payment_id"


@dataclass(frozen=True)
class AuditActor:
    """Who a request acted as: set when its caller is known (before its access is checked, so that a refusal for
    want of a scope is an entry too)."""

    kind: AuditActorKind
    merchant_id: str | None
    key_id: str | None = None
    profile_id: str | None = None


@dataclass(frozen=True)
class AuditEntry:
    entry_id: str
    at: datetime
    actor: AuditActor
    method: str
    # The route's template (`/v2/api-keys/{key_id}`) and the ids it was called with.
    route: str
    target: Mapping[str, str]
    status: int

    @property
    def action(self) -> str:
        return f"{self.method} {self.route}"


class EmptyWindow(ValueError):
    """A window whose start is after its end: no entry could be in it, and the caller meant something else."""


@dataclass(frozen=True)
class AuditFilter:
    """Which of a merchant's entries a list shows: one key's (the console sessions signed in with it too), only
    the refused or failed (an answer of 400 or more), only those made from `created_after` to `created_before`
    (both included, as the events list's bounds of the same names), and only those on one payment (a route whose
    ids name it: cancelling its recovery, retrying its webhook, answering its dispute, ...)."""

    key_id: str | None = None
    refused_only: bool = False
    created_after: datetime | None = None
    created_before: datetime | None = None
    payment_id: str | None = None

    def __post_init__(self) -> None:
        if self.created_after and self.created_before and self.created_after > self.created_before:
            after, before = self.created_after.isoformat(), self.created_before.isoformat()
            raise EmptyWindow(f"created_after ({after}) is later than created_before ({before})")

    @property
    def narrowed(self) -> bool:
        """Whether it leaves out any entry at all."""
        return self != EVERY_ENTRY

    def matches(self, entry: AuditEntry) -> bool:
        return (
            (self.key_id is None or entry.actor.key_id == self.key_id)
            and (not self.refused_only or entry.status >= REFUSED_FROM)
            and (self.created_after is None or entry.at >= self.created_after)
            and (self.created_before is None or entry.at <= self.created_before)
            and (self.payment_id is None or entry.target.get(PAYMENT_TARGET) == self.payment_id)
        )


EVERY_ENTRY = AuditFilter()


def audited(method: str, route: str | None, actor: AuditActor | None) -> bool:
    """Whether a request is an entry: it changes something, a route took it, and its caller is known."""
    return (
        actor is not None
        and route is not None
        and method in CHANGING_METHODS
        and f"{method} {route}" not in NOT_AUDITED
    )
