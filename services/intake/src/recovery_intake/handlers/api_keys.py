"""Issuing, changing and revoking merchant API keys (`/v2/api-keys`): shown once, stored as a keyed hash, scoped.

A key mints keys with at most its own scopes and expiry, at most `max_keys` active per merchant; an update gives
a key nothing its changer could not mint (scopes never change; a new expiration follows the minting rule);
revoking a key revokes every key it minted (and theirs), so a leaked key does not outlive its revocation.
"""

from __future__ import annotations

import structlog

from recovery_contracts.api.api_keys import ApiKeyCreate, ApiKeyUpdate
from recovery_contracts.api.errors import ApiError
from recovery_intake.dependencies import Document, IntakeAdapters
from recovery_intake.domain.access import (
    Minter,
    check_expiration,
    check_expiration_change,
    scopes_of,
    scopes_to_grant,
)
from recovery_intake.domain.api_keys import IssuedKey, api_key_changes, api_key_document, issue_api_key
from recovery_intake.domain.quotas import check_quota
from recovery_intake.domain.rejection import Rejection

log = structlog.get_logger(__name__)


class ApiKeyIssuer:
    def __init__(self, adapters: IntakeAdapters, *, environment: str, hash_secret: str, max_keys: int) -> None:
        self._keys = adapters.api_keys
        self._clock = adapters.clock
        self._environment = environment
        self._hash_secret = hash_secret
        self._max_keys = max_keys

    async def issue(self, merchant_id: str, body: ApiKeyCreate, minter: Minter) -> tuple[Document, IssuedKey]:
        """The stored key and the issued one (its plaintext for the response only)."""
        now = self._clock.now()
        check_expiration(body.expiration, now, minter.expires_at)
        scopes = scopes_to_grant(body.scopes, minter.scopes)
        held = await self._keys.count_active(merchant_id, now)
        check_quota(
            merchant_id,
            held,
            self._max_keys,
            what="active API keys",
            setting="MAX_API_KEYS_PER_MERCHANT",
            remedy="revoke one before creating another",
        )
        issued = issue_api_key(self._environment, self._hash_secret)
        doc = api_key_document(issued, merchant_id, body, now, scopes=scopes, created_by_key=minter.key_id)
        await self._keys.add(doc)
        if minter.key_id is not None:
            # The minting key revoked meanwhile: its revocation may have looked for its keys before this one was
            # stored, so this one goes too (the revocation wrote its flag before looking).
            minting = await self._keys.get(merchant_id, minter.key_id)
            if minting is None or minting.get("revoked"):
                await self._keys.revoke(merchant_id, issued.key_id, now)
                raise Rejection(ApiError.UNAUTHORIZED, reason="the API key creating this one has been revoked")
        return doc, issued

    async def update(self, merchant_id: str, key_id: str, body: ApiKeyUpdate, changer: Minter) -> Document:
        """The key renamed, described or given a new expiration by `changer`; its scopes never change."""
        key = await self._keys.get(merchant_id, key_id)
        if key is None or key.get("revoked"):
            raise Rejection(ApiError.API_KEY_NOT_FOUND)
        if body.expiration is not None:
            check_expiration_change(body.expiration, scopes_of(key), self._clock.now(), changer)
        changes = api_key_changes(body)
        if not changes:
            return key
        updated = await self._keys.update(key, changes)
        if updated is None:
            raise Rejection(ApiError.API_KEY_NOT_FOUND)  # revoked meanwhile
        log.info("api_key.updated", key_id=key_id, fields=sorted(changes))
        return updated

    async def revoke(self, merchant_id: str, key_id: str) -> None:
        revoked = await self._keys.revoke(merchant_id, key_id, self._clock.now())
        if not revoked:
            raise Rejection(ApiError.API_KEY_NOT_FOUND)
        log.info("api_key.revoked", key_id=key_id, minted_by_it=revoked[1:])
