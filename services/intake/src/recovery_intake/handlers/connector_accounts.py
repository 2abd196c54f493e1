"""Creating a connector account (`POST /v2/connector-accounts`): stored with its credentials sealed,
`connector-account.updated` emitted in the same transaction."""

from __future__ import annotations

from collections.abc import Collection

from recovery_contracts.api.connector_accounts import ConnectorAccountCreate
from recovery_contracts.api.errors import ApiError
from recovery_contracts.ids import new_connector_account_id
from recovery_intake.dependencies import Document, IntakeAdapters
from recovery_intake.domain.connector_accounts import (
    billing_references,
    check_billing_reference,
    check_record_back_url,
    new_connector_account,
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
        check_record_back_url(body, self._http_hosts)
        for referenced in billing_references(body):
            check_billing_reference(referenced, await self._accounts.get(merchant_id, referenced), body.profile_id)
        doc, message = new_connector_account(
            body,
            account_id=new_connector_account_id(),
            merchant_id=merchant_id,
            seal=self._box.seal,
            now=self._clock.now(),
        )

        async def create(tx: Transaction) -> None:
            await self._accounts.add(doc, tx)
            tx.emit(message)

        await self._unit_of_work.apply(create)
        return doc
