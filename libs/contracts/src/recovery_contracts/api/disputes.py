"""Answering a dispute on a recovered payment at the payment connector: accepting it (the money stays with the
customer) or challenging it with evidence (the bank reviews it).

`POST /v2/payments/{payment_id}/disputes/{dispute_id}/accept` and `.../evidence`, this system's routes: Hyperswitch's
v1 `POST /disputes/accept/{dispute_id}` and `POST /disputes/evidence` name the dispute alone, its v2 API has no
dispute routes, and here a dispute is kept on its payment's intent. The evidence is Hyperswitch's
`SubmitEvidenceRequest`'s text fields, which are Stripe's evidence fields of the same names; its file fields (ids of
files uploaded to Hyperswitch) have no counterpart here and are refused as unknown fields."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, model_validator

from recovery_contracts.api.fields import RequestBody, ResponseBody
from recovery_contracts.disputes import DisputeStage, DisputeStatus
from recovery_contracts.timestamps import UtcMillis

# Stripe takes at most 150,000 characters of evidence text in all; one field here at most this.
MAX_EVIDENCE_CHARS = 20_000

EvidenceText = Annotated[str, Field(min_length=1, max_length=MAX_EVIDENCE_CHARS)] | None


class DisputeEvidenceRequest(RequestBody):
    """What the merchant says to the bank (at least one field); submitted at once, as Hyperswitch submits it."""

    access_activity_log: EvidenceText = None
    billing_address: EvidenceText = None
    cancellation_policy_disclosure: EvidenceText = None
    cancellation_rebuttal: EvidenceText = None
    customer_email_address: EvidenceText = None
    customer_name: EvidenceText = None
    customer_purchase_ip: EvidenceText = None
    product_description: EvidenceText = None
    refund_policy_disclosure: EvidenceText = None
    refund_refusal_explanation: EvidenceText = None
    service_date: EvidenceText = None
    shipping_address: EvidenceText = None
    shipping_carrier: EvidenceText = None
    shipping_date: EvidenceText = None
    shipping_tracking_number: EvidenceText = None
    uncategorized_text: EvidenceText = None

    @model_validator(mode="after")
    def _some_evidence(self) -> DisputeEvidenceRequest:
        if not self.given():
            raise ValueError("give at least one evidence field")
        return self

    def given(self) -> dict[str, str]:
        """The fields given, by name."""
        return {name: value for name, value in self.model_dump().items() if value is not None}


class DisputeAnswerResponse(ResponseBody):
    """The dispute as the payment connector answered: where it now stands in Hyperswitch's words and its own.
    `updated`: whether the answer moved the dispute on here (false when the connector's webhook told of it first);
    the merchant's webhook (`dispute_challenged`, `dispute_lost`, ...) follows either way, once."""

    dispute_id: str
    payment_id: str
    connector: str
    connector_dispute_id: str
    dispute_stage: DisputeStage
    dispute_status: DisputeStatus
    connector_status: str
    challenge_required_by: UtcMillis | None = None
    updated: bool
