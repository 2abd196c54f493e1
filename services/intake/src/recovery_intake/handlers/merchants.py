"""Creating a merchant account (`POST /v2/merchant-accounts`, admin key only)."""

from __future__ import annotations

from recovery_contracts.api.merchants import MerchantAccountCreate
from recovery_contracts.ids import new_merchant_id
from recovery_intake.dependencies import Document, IntakeAdapters


class MerchantOnboarding:
    def __init__(self, adapters: IntakeAdapters) -> None:
        self._merchants = adapters.merchants
        self._clock = adapters.clock

    async def create(self, body: MerchantAccountCreate) -> Document:
        doc = {
            "_id": new_merchant_id(body.merchant_name),
            **body.model_dump(mode="json", exclude_none=True),
            "created_at": self._clock.now(),
        }
        await self._merchants.add(doc)
        return doc
