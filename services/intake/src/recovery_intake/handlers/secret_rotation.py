"""Rotating a profile's Standard Webhooks secret, and retiring the previous ones when their overlap ends.

Both change the profile (sealed secrets, version + 1) and emit `profile.updated` in one transaction, so the
dispatcher signs with exactly the stored set. Retirement runs in every intake instance; the version
compare-and-set makes concurrent runs harmless.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import timedelta

import structlog

from recovery_contracts.api.errors import ApiError
from recovery_intake.dependencies import Document, IntakeAdapters
from recovery_intake.domain.profiles import ProfileChange, secrets_of, with_secrets
from recovery_intake.domain.rejection import Rejection
from recovery_intake.domain.webhook_secrets import new_whsec_secret
from recovery_runtime.secrets import SecretBox
from recovery_runtime.unit_of_work import Transaction

log = structlog.get_logger(__name__)


class SecretRotation:
    def __init__(
        self, adapters: IntakeAdapters, box: SecretBox, *, default_overlap: timedelta, retirement_interval: float
    ) -> None:
        self._profiles = adapters.profiles
        self._unit_of_work = adapters.unit_of_work
        self._clock = adapters.clock
        self._box = box
        self._default_overlap = default_overlap
        self._interval = retirement_interval

    async def rotate(self, merchant_id: str, profile_id: str, overlap: timedelta | None) -> tuple[Document, str]:
        """The profile after rotation and the new secret (plaintext, for the response only). `overlap`: how long
        the previous secrets keep signing; None takes the default, and zero replaces them at once (so it must not
        be read as unset: that is how a leaked secret is cut off)."""
        secret = new_whsec_secret()
        kept_for = self._default_overlap if overlap is None else overlap

        async def rotate(tx: Transaction) -> Document:
            stored = await self._profiles.get(merchant_id, profile_id, tx)
            if stored is None:
                raise Rejection(ApiError.PROFILE_NOT_FOUND, id=profile_id)
            now = self._clock.now()
            rotated = secrets_of(stored).rotated(self._box.seal(secret), now, kept_for)
            return await self._save(with_secrets(stored, rotated, now), tx)

        return await self._unit_of_work.apply(rotate), secret

    async def retire_due(self) -> int:
        """Drops the previous secrets of every profile whose overlap has ended; how many profiles changed."""
        changed = 0
        for due in await self._profiles.with_secrets_to_retire(self._clock.now()):
            try:
                changed += await self._unit_of_work.apply(self._retirement(due["merchant_id"], due["_id"]))
            except Rejection:
                continue  # a concurrent update won: its version carries the set; the next pass looks again
        return changed

    def _retirement(self, merchant_id: str, profile_id: str) -> Callable[[Transaction], Awaitable[bool]]:
        async def retire(tx: Transaction) -> bool:
            stored = await self._profiles.get(merchant_id, profile_id, tx)
            now = self._clock.now()
            if stored is None or not secrets_of(stored).due(now):
                return False
            await self._save(with_secrets(stored, secrets_of(stored).retired(), now), tx)
            return True

        return retire

    async def run(self) -> None:
        while True:
            retired = await self.retire_due()
            if retired:
                log.info("webhook_secrets.retired", profiles=retired)
            await asyncio.sleep(self._interval)

    async def _save(self, change: ProfileChange, tx: Transaction) -> Document:
        if not await self._profiles.save(change.profile, change.expected_version, tx):
            raise Rejection(ApiError.RESOURCE_BUSY)
        tx.emit(change.message)
        return change.profile
