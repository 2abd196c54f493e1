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


def audited(method: str, route: str | None, actor: AuditActor | None) -> bool:
    """Whether a request is an entry: it changes something, a route took it, and its caller is known."""
    return (
        actor is not None
        and route is not None
        and method in CHANGING_METHODS
        and f"{method} {route}" not in NOT_AUDITED
    )
