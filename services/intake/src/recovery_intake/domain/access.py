"""What a merchant API key may do: its scopes, what each route needs, and what a key may grant the keys it mints.

Three scopes (`ApiKeyScope`, an extension of Hyperswitch's API): `payments` reads and writes recoveries,
payments, events and process trackers; `read_only` reads everything but secrets; `management` reads and writes
the configuration (API keys, connector accounts, the merchant account) and the profiles, whose responses carry the
signing secrets. The admin key may do everything. A key stored before scopes existed has all three: it keeps the
power it had (docs/security.md).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from recovery_contracts.api.api_keys import ApiKeyScope
from recovery_contracts.api.errors import ApiError

from .rejection import Rejection

ALL_SCOPES = frozenset(ApiKeyScope)


class Area(StrEnum):
    """What a route touches."""

    # Recoveries, payments, webhook events, process trackers.
    PAYMENTS = "payments"
    # The merchant account, API keys, connector accounts (credentials masked in answers).
    CONFIGURATION = "configuration"
    # Profiles: their answers show the signing secrets in full, and they set where webhooks go.
    SECRETS = "secrets"


@dataclass(frozen=True)
class Access:
    area: Area
    write: bool

    def __str__(self) -> str:
        return f"{'write' if self.write else 'read'} {self.area.value}"


READ_PAYMENTS = Access(Area.PAYMENTS, write=False)
WRITE_PAYMENTS = Access(Area.PAYMENTS, write=True)
READ_CONFIGURATION = Access(Area.CONFIGURATION, write=False)
WRITE_CONFIGURATION = Access(Area.CONFIGURATION, write=True)
SECRETS = Access(Area.SECRETS, write=True)


@dataclass(frozen=True)
class Minter:
    """The key creating another (`key_id` None: the admin key)."""

    key_id: str | None
    scopes: frozenset[ApiKeyScope]
    expires_at: datetime | None


def permits(scopes: Collection[ApiKeyScope], access: Access) -> bool:
    if access.area is Area.PAYMENTS and ApiKeyScope.PAYMENTS in scopes:
        return True
    if access.area is not Area.PAYMENTS and ApiKeyScope.MANAGEMENT in scopes:
        return True
    return not access.write and access.area is not Area.SECRETS and ApiKeyScope.READ_ONLY in scopes


def scopes_needed(access: Access) -> tuple[ApiKeyScope, ...]:
    """The scopes any one of which permits `access` (for the refusal's words)."""
    return tuple(s for s in sorted(ALL_SCOPES) if permits((s,), access))


def check_access(scopes: Collection[ApiKeyScope], access: Access) -> None:
    if not permits(scopes, access):
        needed = " or ".join(f"`{s.value}`" for s in scopes_needed(access))
        held = ", ".join(f"`{s.value}`" for s in sorted(scopes)) or "none"
        raise Rejection(
            ApiError.ACCESS_FORBIDDEN,
            reason=f"to {access} this API key needs the scope {needed}; it has {held}",
            resource=access.area.value,
        )


def scopes_of(key: Mapping[str, Any]) -> frozenset[ApiKeyScope]:
    """A stored key's scopes; one stored before scopes existed (no `scopes` field) has all of them."""
    stored = key.get("scopes")
    return ALL_SCOPES if stored is None else frozenset(ApiKeyScope(s) for s in stored)


def scopes_to_grant(
    requested: Collection[ApiKeyScope] | None, minter: frozenset[ApiKeyScope]
) -> frozenset[ApiKeyScope]:
    """A new key's scopes: those requested (all of the minter's when none are), never more than the minter has."""
    if requested is None:
        return minter
    _check_holds(minter, requested, "a key can grant only scopes it has")
    return frozenset(requested)


def check_expiration_change(
    expiration: datetime | str, key_scopes: Collection[ApiKeyScope], now: datetime, changer: Minter
) -> None:
    """A key's new expiration, set by `changer`: what `changer` could mint (in the future, no later than its own
    expiry), on a key with no scope `changer` lacks (prolonging a key grants its scopes for longer)."""
    _check_holds(changer.scopes, key_scopes, "a key can change the expiration only of keys within its own scopes")
    check_expiration(expiration, now, changer.expires_at)


def _check_holds(held: frozenset[ApiKeyScope], wanted: Collection[ApiKeyScope], rule: str) -> None:
    missing = frozenset(wanted) - held
    if missing:
        names = ", ".join(f"`{s.value}`" for s in sorted(missing))
        raise Rejection(ApiError.ACCESS_FORBIDDEN, reason=f"{rule}: this API key lacks {names}", resource="scopes")


def check_expiration(expiration: datetime | str, now: datetime, minter_expires_at: datetime | None) -> None:
    """A new key expires in the future, and no later than the key minting it (a key that expires cannot hand
    out one that does not)."""
    if isinstance(expiration, datetime) and expiration <= now:
        raise Rejection(ApiError.INVALID_DATA_VALUE, field_name="expiration", reason="must be in the future")
    if minter_expires_at is None:
        return
    if not isinstance(expiration, datetime) or expiration > minter_expires_at:
        raise Rejection(
            ApiError.INVALID_DATA_VALUE,
            field_name="expiration",
            reason=f"must not be later than the expiry of the API key creating it ({minter_expires_at.isoformat()})",
        )
