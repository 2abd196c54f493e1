"""Creating and changing a business profile (`/v2/profiles`): stored with its secrets sealed, `profile.updated`
emitted in the same transaction."""

from __future__ import annotations

from collections.abc import Collection

from recovery_contracts.api.errors import ApiError
from recovery_contracts.api.profiles import ProfileCreate, ProfileUpdate
from recovery_contracts.ids import new_profile_id
from recovery_intake.dependencies import Document, IntakeAdapters
from recovery_intake.domain.outbound_urls import outbound_url_problem
from recovery_intake.domain.profiles import changed_profile, new_profile
from recovery_intake.domain.quotas import check_quota
from recovery_intake.domain.rejection import Rejection
from recovery_intake.domain.sealed_fields import seal_profile_secrets
from recovery_intake.domain.webhook_secrets import new_whsec_secret
from recovery_runtime.secrets import SecretBox
from recovery_runtime.unit_of_work import Transaction


class ProfileSettings:
    def __init__(
        self, adapters: IntakeAdapters, box: SecretBox, *, http_allowed_hosts: Collection[str], max_profiles: int
    ) -> None:
        self._profiles = adapters.profiles
        self._max_profiles = max_profiles
        self._unit_of_work = adapters.unit_of_work
        self._clock = adapters.clock
        self._box = box
        self._http_hosts = http_allowed_hosts

    async def create(self, merchant_id: str, body: ProfileCreate) -> Document:
        self._check_webhook_url(body)
        check_quota(
            merchant_id,
            await self._profiles.count(merchant_id),
            self._max_profiles,
            what="profiles",
            setting="MAX_PROFILES_PER_MERCHANT",
            remedy="use one of them, or ask the operator for a higher limit",
        )
        change = new_profile(
            body.model_dump(mode="json", exclude_none=True),
            profile_id=new_profile_id(),
            merchant_id=merchant_id,
            webhook_secret=new_whsec_secret(),
            seal=self._box.seal,
            now=self._clock.now(),
        )

        async def create(tx: Transaction) -> None:
            await self._profiles.add(change.profile, tx)
            tx.emit(change.message)

        await self._unit_of_work.apply(create)
        return change.profile

    async def update(self, merchant_id: str, profile_id: str, body: ProfileUpdate) -> Document:
        self._check_webhook_url(body)
        changes = seal_profile_secrets(body.model_dump(mode="json", exclude_unset=True), self._box.seal)

        async def update(tx: Transaction) -> Document:
            stored = await self._profiles.get(merchant_id, profile_id, tx)
            if stored is None:
                raise Rejection(ApiError.PROFILE_NOT_FOUND, id=profile_id)
            change = changed_profile(stored, changes, seal=self._box.seal, now=self._clock.now())
            if not await self._profiles.save(change.profile, change.expected_version, tx):
                raise Rejection(ApiError.RESOURCE_BUSY)
            tx.emit(change.message)
            return change.profile

        return await self._unit_of_work.apply(update)

    def _check_webhook_url(self, body: ProfileCreate | ProfileUpdate) -> None:
        if body.webhook_details is not None:
            problem = outbound_url_problem(body.webhook_details.webhook_url, self._http_hosts)
            if problem:
                raise Rejection(ApiError.INVALID_REQUEST_DATA, message=f"webhook_details.webhook_url {problem}")
