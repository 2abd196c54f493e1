"""Answering a dispute on a recovered payment at the payment connector: accepting it (the money stays with the
customer) or challenging it with evidence (the bank reviews it).

`POST /v2/payments/{payment_id}/disputes/{dispute_id}/accept` and `.../evidence`, this system's routes: Hyperswitch's
v1 `POST /disputes/accept/{dispute_id}` and `POST /disputes/evidence` name the dispute alone, its v2 API has no
dispute routes, and here a dispute is kept on its payment's intent. The evidence is Hyperswitch's
`SubmitEvidenceRequest`'s text fields, which are Stripe's evidence fields of the same names, and its file fields
that Stripe has (`receipt`, `customer_communication`, ...): each the id of a file uploaded for the dispute
(`POST /v2/payments/{payment_id}/disputes/{dispute_id}/files`, which uploads it to Stripe and answers
`DisputeFileResponse`, Hyperswitch's `CreateFileResponse`), Stripe's file id; Hyperswitch's two file fields Stripe has
no field for (`invoice_showing_distinct_transactions`, `recurring_transaction_agreement`) are refused as unknown.

Finding them: `GET /v2/disputes/list` and `GET /v2/disputes/{dispute_id}` answer Hyperswitch's `DisputeResponse`
(`recovery_contracts.disputes.DisputeObject`) from the read side, with Hyperswitch's v1 list filters and this
system's `sort` (`DisputeSort`)."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, model_validator

from recovery_contracts.api.fields import RequestBody, ResponseBody
from recovery_contracts.disputes import DisputeStage, DisputeStatus
from recovery_contracts.timestamps import UtcMillis


class DisputeSort(StrEnum):
    """The order of `GET /v2/disputes/list` (extension `sort`)."""

    RECEIVED_TIME = "received_time"  # newest first (when this system was first told of each)
    ANSWER_BY = "answer_by"  # the earliest deadline to answer first; one without a deadline first of all


class DisputeListConstraints(BaseModel):
    """The query of `GET /v2/disputes/list`: Hyperswitch's v1 `DisputeListGetConstraints` (each filter repeatable
    here: any of its values), bounds on when this system was first told of a dispute (`received_time` exactly,
    `received_time.lt`, ...; UTC when they name no offset), `profile_id`, `limit`, and this system's `sort`. Other
    query parameters are the route's own (the admin key's `merchant_id`)."""

    model_config = ConfigDict(frozen=True, populate_by_name=True)

    dispute_status: list[DisputeStatus] | None = None
    dispute_stage: list[DisputeStage] | None = None
    reason: list[Annotated[str, Field(max_length=255)]] | None = None
    connector: list[Annotated[str, Field(max_length=64)]] | None = None
    received_time: UtcMillis | None = None
    received_time_lt: UtcMillis | None = Field(None, alias="received_time.lt")
    received_time_lte: UtcMillis | None = Field(None, alias="received_time.lte")
    received_time_gt: UtcMillis | None = Field(None, alias="received_time.gt")
    received_time_gte: UtcMillis | None = Field(None, alias="received_time.gte")
    sort: DisputeSort = Field(
        DisputeSort.RECEIVED_TIME,
        description="extension: `received_time` (newest first) or `answer_by` (the earliest deadline first)",
    )
    profile_id: str | None = None
    limit: int = Field(20, ge=1, le=100)

    def received(self) -> tuple[tuple[str, datetime], ...]:
        """The bounds given, as `(comparison, time)`: `eq`, `lt`, `lte`, `gt`, `gte`."""
        given = {
            "eq": self.received_time,
            "lt": self.received_time_lt,
            "lte": self.received_time_lte,
            "gt": self.received_time_gt,
            "gte": self.received_time_gte,
        }
        return tuple((op, at) for op, at in given.items() if at is not None)


# Stripe takes at most 150,000 characters of evidence text in all; one field here at most this.
MAX_EVIDENCE_CHARS = 20_000

EvidenceText = Annotated[str, Field(min_length=1, max_length=MAX_EVIDENCE_CHARS)] | None
# A file uploaded for the dispute: Stripe's file id, as the upload answered it.
EvidenceFile = Annotated[str, Field(pattern=r"^file_[A-Za-z0-9_]{1,250}$")] | None
# What Stripe takes as dispute evidence (its File Upload API, purpose `dispute_evidence`): these types, at most
# 5 MB (its file upload guide; taken as 5,000,000 bytes).
EVIDENCE_FILE_TYPES = {"application/pdf": "pdf", "image/jpeg": "jpg", "image/png": "png"}
MAX_EVIDENCE_FILE_BYTES = 5_000_000


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
    # Files (Stripe's file ids of files uploaded for the dispute).
    cancellation_policy: EvidenceFile = None
    customer_communication: EvidenceFile = None
    customer_signature: EvidenceFile = None
    receipt: EvidenceFile = None
    refund_policy: EvidenceFile = None
    service_documentation: EvidenceFile = None
    shipping_documentation: EvidenceFile = None
    uncategorized_file: EvidenceFile = None

    @model_validator(mode="after")
    def _some_evidence(self) -> DisputeEvidenceRequest:
        if not self.given():
            raise ValueError("give at least one evidence field")
        return self

    def given(self) -> dict[str, str]:
        """The fields given, by name."""
        return {name: value for name, value in self.model_dump().items() if value is not None}


class DisputeFileResponse(ResponseBody):
    """A file uploaded for a dispute's evidence (Hyperswitch's `CreateFileResponse`: `file_id`, here Stripe's id, to
    name in an evidence field), with what Stripe kept of it."""

    file_id: str
    file_name: str | None = None
    file_size: int
    file_type: str


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
