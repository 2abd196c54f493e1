"""`POST /v2/merchant-accounts` (admin key): the merchant account, in Hyperswitch v2 field names."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

from pydantic import Field

from recovery_contracts.api.fields import Identifier, Metadata, Name, RequestBody, ResponseBody
from recovery_contracts.payments import AddressDetails

_Text = Annotated[str, Field(max_length=256)]


class ProductType(StrEnum):
    ORCHESTRATION = "orchestration"
    VAULT = "vault"
    RECON = "recon"
    RECOVERY = "recovery"
    COST_OBSERVABILITY = "cost_observability"
    DYNAMIC_ROUTING = "dynamic_routing"


class ReconStatus(StrEnum):
    NOT_REQUESTED = "not_requested"
    REQUESTED = "requested"
    ACTIVE = "active"
    DISABLED = "disabled"


class MerchantDetails(RequestBody):
    primary_contact_person: _Text | None = None
    primary_phone: Annotated[str, Field(max_length=32)] | None = None
    primary_email: Annotated[str, Field(max_length=320)] | None = None
    secondary_contact_person: _Text | None = None
    secondary_phone: Annotated[str, Field(max_length=32)] | None = None
    secondary_email: Annotated[str, Field(max_length=320)] | None = None
    website: Annotated[str, Field(max_length=2048)] | None = None
    about_business: Annotated[str, Field(max_length=2048)] | None = None
    address: AddressDetails | None = None


class MerchantAccountCreate(RequestBody):
    merchant_name: Name
    merchant_details: MerchantDetails | None = None
    metadata: Metadata | None = None
    product_type: ProductType | None = None


class MerchantAccountResponse(ResponseBody):
    id: Identifier
    merchant_name: Name
    merchant_details: MerchantDetails | None = None
    publishable_key: str | None = None
    metadata: Metadata | None = None
    organization_id: str | None = None
    recon_status: ReconStatus = ReconStatus.NOT_REQUESTED
    product_type: ProductType | None = None
