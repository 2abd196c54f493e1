"""Issuing and revoking merchant API keys (`/v2/api-keys`): shown once, stored as a keyed hash."""

from __future__ import annotations

from datetime import datetime

from recovery_contracts.api.api_keys import ApiKeyCreate
from recovery_contracts.api.errors import ApiError
from recovery_intake.domain.api_keys import IssuedKey, api_key_document, issue_api_key
from recovery_intake.domain.rejection import Rejection
from recovery_intake.ports import Document, IntakeAdapters


class ApiKeyIssuer:
    def __init__(self, adapters: IntakeAdapters, *, environment: str, hash_secret: str) -> None:
        self._keys = adapters.api_keys
        self._clock = adapters.clock
        self._environment = environment
        self._hash_secret = hash_secret

    async def issue(self, merchant_id: str, body: ApiKeyCreate) -> tuple[Document, IssuedKey]:
        """The stored key and the issued one (its plaintext for the response only)."""
        now = self._clock.now()
        if isinstance(body.expiration, datetime) and body.expiration <= now:
            raise Rejection(ApiError.INVALID_DATA_VALUE, field_name="expiration", reason="must be in the future")
        issued = issue_api_key(self._environment, self._hash_secret)
        doc = api_key_document(issued, merchant_id, body, now)
        await self._keys.add(doc)
        return doc, issued

    async def revoke(self, merchant_id: str, key_id: str) -> None:
        if not await self._keys.revoke(merchant_id, key_id, self._clock.now()):
            raise Rejection(ApiError.API_KEY_NOT_FOUND)
