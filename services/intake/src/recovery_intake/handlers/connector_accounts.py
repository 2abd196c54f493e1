"""Creating and changing a connector account (`/v2/connector-accounts`): stored with its credentials sealed,
`connector-account.updated` emitted in the same transaction."""

from __future__ import annotations

from collections.abc import Collection

from recovery_contracts.api.connector_accounts import ConnectorAccountCreate, ConnectorAccountUpdate
from recovery_contracts.api.errors import ApiError
from recovery_contracts.ids import new_connector_account_id
from recovery_intake.dependencies import Document, IntakeAdapters
from recovery_intake.domain.connector_accounts import (
    billing_references,
    changed_connector_account,
    check_billing_reference,
    check_record_back_url,
    new_connector_account,
    updated_body,
)
from recovery_intake.domain.rejection import Rejection
from recovery_runtime.secrets import SecretBox
from recovery_runtime.unit_of_work import Transaction


class ConnectorAccountSetup:
    def __init__(self, adapters: IntakeAdapters, box: SecretBox, *, http_allowed_hosts: Collection[str]) -> None:
        self._profiles = adapters.profiles
        self._accounts = adapters.connector_accounts
        self._unit_of_work = adapters.unit_of_work
        self._clock = adapters.clock
        self._box = box
        self._http_hosts = http_allowed_hosts

    async def create(self, merchant_id: str, body: ConnectorAccountCreate) -> Document:
        if await self._profiles.get(merchant_id, body.profile_id) is None:
            raise Rejection(ApiError.PROFILE_NOT_FOUND, id=body.profile_id)
        await self._check_references(merchant_id, body)
        change = new_connector_account(
            body,
            account_id=new_connector_account_id(),
            merchant_id=merchant_id,
            seal=self._box.seal,
            now=self._clock.now(),
        )

        async def create(tx: Transaction) -> None:
            await self._accounts.add(change.account, tx)
            tx.emit(change.message)

        await self._unit_of_work.apply(create)
        return change.account

    async def update(
        self, merchant_id: str, account_id: str, body: ConnectorAccountUpdate, *, profile_id: str | None
    ) -> Document:
        """`profile_id`: the caller's `x-profile-id`, when sent (the account must be that profile's)."""
        if body.merchant_id is not None and body.merchant_id != merchant_id:
            # Another merchant's id reads as one that does not exist.
            raise Rejection(ApiError.MERCHANT_ACCOUNT_NOT_FOUND)

        async def update(tx: Transaction) -> Document:
            stored = await self._accounts.get(merchant_id, account_id, profile_id=profile_id, tx=tx)
            if stored is None:
                raise Rejection(ApiError.CONNECTOR_ACCOUNT_NOT_FOUND)
            account = updated_body(stored, body, self._box.open)
            # Only what the update sends is checked again: switching an account off must work even when a rule
            # tightened since it was created (say, the egress policy of its record-back URL).
            if body.feature_metadata is not None:
                await self._check_references(merchant_id, account)
            change = changed_connector_account(stored, account, seal=self._box.seal, now=self._clock.now())
            if not await self._accounts.save(change.account, change.expected_version, tx):
                raise Rejection(ApiError.RESOURCE_BUSY)
            tx.emit(change.message)
            return change.account

        return await self._unit_of_work.apply(update)

    async def _check_references(self, merchant_id: str, body: ConnectorAccountCreate) -> None:
        """The record-back URL may be reached, and the payment accounts a billing account names are its
        profile's."""
        check_record_back_url(body, self._http_hosts)
        for referenced in billing_references(body):
            check_billing_reference(referenced, await self._accounts.get(merchant_id, referenced), body.profile_id)
