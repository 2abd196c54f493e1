"""Where the services keep sealed secrets (`recovery_runtime.secrets`) at rest: every collection and field, one list.

`recovery secrets status|reseal` counts and re-seals exactly these fields. The tests check the list against the
code: tests/unit/ops/test_sealed_fields.py against intake's sealing of profiles and connector accounts,
tests/integration/ops/test_secrets_command.py against every sealed value the running services write.
"""

from __future__ import annotations

from dataclasses import dataclass

from recovery_intake.domain.sealed_fields import CONNECTOR_SECRET_FIELDS


@dataclass(frozen=True)
class SealedField:
    """A field of `collection` (a dotted `path`) holding one sealed value, or a list of them (`many`), that
    service `owner` writes."""

    collection: str
    path: str
    owner: str
    many: bool = False

    @property
    def name(self) -> str:
        return f"{self.collection}.{self.path}"


SEALED_FIELDS: tuple[SealedField, ...] = (
    # intake's profiles: the signing keys and the webhook password (domain/sealed_fields.py, domain/profiles.py).
    SealedField("profiles", "payment_response_hash_key", "intake"),
    SealedField("profiles", "standard_webhooks_secrets", "intake", many=True),
    SealedField("profiles", "webhook_details.webhook_password", "intake"),
    # intake's connector accounts: each credential of the stored request body, field by field.
    *(
        SealedField("connector_accounts", f"body.{block}.{field}", "intake")
        for block, fields in CONNECTOR_SECRET_FIELDS.items()
        for field in fields
    ),
    # The consumers' copies, as `connector-account.updated` and `profile.updated` carried them.
    SealedField("connector_credentials", "api_key", "executor"),
    SealedField("webhook_endpoints", "hash_key", "webhook-dispatcher"),
    SealedField("webhook_endpoints", "whsec_secrets", "webhook-dispatcher", many=True),
)


def fields_by_collection() -> dict[str, tuple[SealedField, ...]]:
    collections: dict[str, tuple[SealedField, ...]] = {}
    for field in SEALED_FIELDS:
        collections[field.collection] = (*collections.get(field.collection, ()), field)
    return collections
