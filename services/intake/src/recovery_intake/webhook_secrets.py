"""Rotating a profile's Standard Webhooks secret, and retiring the previous ones when their overlap ends.

Both change the profile (sealed secrets, version + 1) and emit `profile.updated` in one transaction, so the
dispatcher signs with exactly the stored set. Retirement runs in every intake instance; the version
compare-and-set makes concurrent runs harmless.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

import structlog

from recovery_contracts.api.errors import ApiError
from recovery_intake.adapters.repository import IntakeRepository
from recovery_intake.domain.profile_events import profile_updated
from recovery_intake.domain.rejection import Rejection
from recovery_intake.domain.webhook_secrets import SecretSet, new_whsec_secret
from recovery_runtime.clock import Clock
from recovery_runtime.secrets import SecretBox
from recovery_runtime.unit_of_work import UnitOfWork, Transaction

log = structlog.get_logger(__name__)


def secret_set_of(doc: dict[str, Any]) -> SecretSet:
    return SecretSet(tuple(doc.get("standard_webhooks_secrets") or ()), doc.get("standard_webhooks_retire_at"))


def with_secret_set(doc: dict[str, Any], secret_set: SecretSet) -> dict[str, Any]:
    return {
        **doc,
        "standard_webhooks_secrets": list(secret_set.secrets),
        "standard_webhooks_retire_at": secret_set.retire_at,
    }


class WebhookSecretRotation:
    def __init__(
        self,
        repository: IntakeRepository,
        store: UnitOfWork,
        clock: Clock,
        box: SecretBox,
        *,
        default_overlap: timedelta,
        retirement_interval: float,
    ) -> None:
        self._repository = repository
        self._store = store
        self._clock = clock
        self._box = box
        self._default_overlap = default_overlap
        self._interval = retirement_interval

    async def rotate(self, merchant_id: str, profile_id: str, overlap: timedelta | None) -> tuple[dict[str, Any], str]:
        """The profile after rotation and the new secret (plaintext, for the response only)."""
        secret = new_whsec_secret()

        async def rotate(tx: Transaction) -> dict[str, Any]:
            doc = await self._repository.profile(merchant_id, profile_id, tx.session)
            if doc is None:
                raise Rejection(ApiError.PROFILE_NOT_FOUND, id=profile_id)
            now = self._clock.now()
            rotated = secret_set_of(doc).rotated(self._box.seal(secret), now, overlap or self._default_overlap)
            return await self._save(tx, doc, rotated)

        return await self._store.apply(rotate), secret

    async def retire_due(self) -> int:
        """Drops the previous secrets of every profile whose overlap has ended; how many profiles changed."""
        changed = 0
        for due in await self._repository.profiles_with_secrets_to_retire(self._clock.now()):
            try:
                changed += await self._store.apply(self._retirement(due["merchant_id"], due["_id"]))
            except Rejection:
                continue  # a concurrent update won: its version carries the set; the next pass looks again
        return changed

    def _retirement(self, merchant_id: str, profile_id: str) -> Callable[[Transaction], Awaitable[bool]]:
        async def retire(tx: Transaction) -> bool:
            doc = await self._repository.profile(merchant_id, profile_id, tx.session)
            if doc is None or not secret_set_of(doc).due(self._clock.now()):
                return False
            await self._save(tx, doc, secret_set_of(doc).retired())
            return True

        return retire

    async def run(self) -> None:
        while True:
            retired = await self.retire_due()
            if retired:
                log.info("webhook_secrets.retired", profiles=retired)
            await asyncio.sleep(self._interval)

    async def _save(self, tx: Transaction, doc: dict[str, Any], secret_set: SecretSet) -> dict[str, Any]:
        expected = doc["version"]
        updated = with_secret_set(doc, secret_set)
        updated["version"] = expected + 1
        updated["modified_at"] = self._clock.now()
        if not await self._repository.save_profile(updated, expected, tx.session):
            raise Rejection(ApiError.RESOURCE_BUSY)
        tx.emit(profile_updated(updated))
        return updated
