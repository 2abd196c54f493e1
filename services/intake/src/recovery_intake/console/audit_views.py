"""The Audit trail page's rows: each entry of the merchant's trail (domain/audit.py) as people read it, who (the key,
the admin key, a console session and the key it signed in with), what in words (the route's action; the route itself
beside it), on what (the ids, a payment's linking to its page), and how it ended (done, refused, failed)."""

from __future__ import annotations

from dataclasses import dataclass

from recovery_contracts.api.audit import AuditActorKind
from recovery_intake.console.formatting import timestamp
from recovery_intake.domain.audit import PAYMENT_TARGET, REFUSED_FROM, AuditEntry

# What each state-changing route does, by its method and template: the API's and the console's own (a console
# session's entry names the console's route). A route missing here is shown as its method and template.
ACTIONS: dict[str, str] = {
    "POST /v2/merchant-accounts": "Created the merchant account",
    "POST /v2/api-keys": "Created an API key",
    "PUT /v2/api-keys/{key_id}": "Changed an API key",
    "DELETE /v2/api-keys/{key_id}": "Revoked an API key",
    "POST /v2/connector-accounts": "Added a connector account",
    "PUT /v2/connector-accounts/{account_id}": "Changed a connector account",
    "POST /v2/profiles": "Created a profile",
    "PUT /v2/profiles/{profile_id}": "Changed a profile",
    "POST /v2/profiles/{profile_id}/webhook-secret/rotate": "Rotated a profile's webhook secret",
    "POST /v2/revenue-recovery/{merchant_reference_id}/cancel": "Cancelled a recovery",
    "POST /v2/process-trackers/revenue-recovery-workflow/{payment_id}/resume": "Resumed a recovery's workflow",
    "POST /v2/payments/{payment_id}/disputes/{dispute_id}/accept": "Accepted a dispute",
    "POST /v2/payments/{payment_id}/disputes/{dispute_id}/evidence": "Submitted evidence for a dispute",
    "POST /v2/payments/{payment_id}/disputes/{dispute_id}/files": "Uploaded a file for a dispute's evidence",
    "POST /v2/recovery/data-backfill": "Uploaded card data",
    "DELETE /v2/recovery/data-backfill/cards": "Forgot a customer's cards",
    "PUT /v2/recovery/data-backfill/update-token": "Marked a card",
    "POST /events/{merchant_id}/{event_id}/retry": "Retried a webhook's delivery",
    "POST /events/{merchant_id}/recover": "Delivered failed webhooks again",
    "POST /console/sign-in": "Signed in to the console",
    "POST /console/sign-out": "Signed out of the console",
    "POST /console/merchant": "Chose the merchant to view",
    "POST /console/payments/{payment_id}/cancel": "Cancelled a recovery",
    "POST /console/payments/{payment_id}/record-back/restart": "Started a record back again",
    "POST /console/payments/{payment_id}/disputes/{dispute_id}/refund-record/restart": "Started a refund record again",
    "POST /console/payments/{payment_id}/disputes/{dispute_id}/{answer}": "Answered a dispute",
    "POST /console/payments/{payment_id}/webhooks/{event_id}/retry": "Retried a webhook's delivery",
    "POST /console/webhooks/recover": "Delivered failed webhooks again",
    "POST /console/card-data": "Uploaded card data",
    "POST /console/card-data/forget": "Forgot a customer's cards",
    "POST /console/card-data/token-status": "Marked a card",
    "POST /console/dead-letters/{queue}/replay": "Replayed a dead-letter queue",
}


@dataclass(frozen=True)
class AuditRow:
    entry_id: str
    when: str
    who: str
    action: str
    # The method and route template the entry names (`DELETE /v2/api-keys/{key_id}`).
    route: str
    # The ids the route was called with, as `name=value`.
    target: tuple[str, ...]
    # The payment the route acted on, for a link to its page; None when it named none.
    payment_id: str | None
    status: int
    # `done` (below 400), `refused` (4xx) or `failed` (5xx).
    outcome: str


def who(entry: AuditEntry) -> str:
    actor = entry.actor
    key = f"API key {actor.key_id}" if actor.key_id else "the admin key"
    match actor.kind:
        case AuditActorKind.API_KEY:
            return key
        case AuditActorKind.ADMIN_KEY:
            return "The admin key"
        case AuditActorKind.CONSOLE:
            return f"Console, {key}"


def outcome(status: int) -> str:
    if status < REFUSED_FROM:
        return "done"
    return "refused" if status < 500 else "failed"


def audit_rows(entries: list[AuditEntry]) -> list[AuditRow]:
    return [
        AuditRow(
            entry_id=entry.entry_id,
            when=timestamp(entry.at),
            who=who(entry),
            action=ACTIONS.get(entry.action, entry.action),
            route=entry.action,
            target=tuple(f"{name}={value}" for name, value in entry.target.items()),
            payment_id=entry.target.get(PAYMENT_TARGET),
            status=entry.status,
            outcome=outcome(entry.status),
        )
        for entry in entries
    ]
