"""Where the services keep sealed secrets (`recovery_runtime.secrets`) at rest: every collection and field, one list.

`recovery secrets status|reseal` counts and re-seals exactly these fields. The tests check the list against the
code: tests/unit/ops/test_sealed_fields.py against intake's sealing of profiles and connector accounts,
tests/integration/ops/test_secrets_command.py against every sealed value the running services write.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from recovery_intake.domain.sealed_fields import CONNECTOR_SECRET_FIELDS, CUSTOM_HEADERS


class Holds(StrEnum):
    """What a sealed field holds: one sealed value, a list of them, or a dict whose values are (names are not)."""

    ONE = "one"
    LIST = "list"
    DICT_VALUES = "dict values"


@dataclass(frozen=True)
class SealedField:
    """A field of `collection` (a dotted `path`) holding sealed values as `holds` says, that service `owner`
    writes."""

    collection: str
    path: str
    owner: str
    holds: Holds = Holds.ONE

    @property
    def name(self) -> str:
        """`collection.path`; `collection.path.*` for a dict's values (one per name)."""
        suffix = ".*" if self.holds is Holds.DICT_VALUES else ""
        return f"{self.collection}.{self.path}{suffix}"


SEALED_FIELDS: tuple[SealedField, ...] = (
    # intake's profiles: the signing keys, the webhook password and the custom header values
    # (domain/sealed_fields.py, domain/profiles.py).
    SealedField("profiles", "payment_response_hash_key", "intake"),
    SealedField("profiles", "standard_webhooks_secrets", "intake", Holds.LIST),
    SealedField("profiles", "webhook_details.webhook_password", "intake"),
    SealedField("profiles", CUSTOM_HEADERS, "intake", Holds.DICT_VALUES),
    # intake's connector accounts: each credential of the stored request body, field by field.
    *(
        SealedField("connector_accounts", f"body.{block}.{field}", "intake")
        for block, fields in CONNECTOR_SECRET_FIELDS.items()
        for field in fields
    ),
    # The consumers' copies, as `connector-account.updated` and `profile.updated` carried them.
    SealedField("connector_credentials", "api_key", "executor"),
    SealedField("webhook_endpoints", "hash_key", "webhook-dispatcher"),
    SealedField("webhook_endpoints", "whsec_secrets", "webhook-dispatcher", Holds.LIST),
    SealedField("webhook_endpoints", "custom_headers", "webhook-dispatcher", Holds.DICT_VALUES),
)


def fields_by_collection() -> dict[str, tuple[SealedField, ...]]:
    collections: dict[str, tuple[SealedField, ...]] = {}
    for field in SEALED_FIELDS:
        collections[field.collection] = (*collections.get(field.collection, ()), field)
    return collections
