"""Payloads of every message on the broker; `PAYLOADS` maps each message type to its model."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from enum import StrEnum
from functools import cache
from typing import Annotated, Any, Literal, TypeVar

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field
from pydantic.config import ExtraValues

from recovery_contracts.api.connector_accounts import ConnectorName
from recovery_contracts.api.fields import ExternalReference, HeaderMap, Identifier
from recovery_contracts.api.recovery import RecoveryPaymentsCreate
from recovery_contracts.disputes import DisputeObject
from recovery_contracts.envelope import Envelope, MessageType, envelope_for
from recovery_contracts.payments import IntentStatus, PaymentObject
from recovery_contracts.recovery import PaymentToken, RecoveryPayment, RetryAlgorithm


class _Payload(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RecoveryRequested(_Payload):
    """A failed invoice payment from another service: the same body as `POST /v2/payments/recovery`.

    The envelope's `merchant_id` and `profile_id` say whose it is (the role of the HTTP headers).
    """

    request: RecoveryPaymentsCreate


class RecoveryCancelRequested(_Payload):
    """Cancel an invoice's recovery by its reference, from another service: what
    `POST /v2/revenue-recovery/{merchant_reference_id}/cancel` does. The envelope's `merchant_id` and `profile_id`
    say whose it is; an invoice that profile does not have is dead-lettered (`x-rejection-reason`)."""

    merchant_reference_id: ExternalReference


# A billing system's event body, in characters: Stripe's, Chargebee's and Recurly's are a few KiB (intake's HTTP
# bound: 256 KiB).
MAX_BILLING_EVENT_LENGTH = 262_144


class BillingEventReceived(_Payload):
    """A billing system's webhook delivery taken by a deployment's own ingress, handed on as received.

    Applied exactly as `POST /v2/webhooks/recovery/{merchant_id}/{profile_id}/{connector_account_id}` applies it:
    the envelope's `merchant_id` and `profile_id` play the role of the path's, and intake verifies the billing
    system's signature (Stripe-Signature, recurly-signature) or basic auth (Chargebee) itself, so `body` must be the
    request body byte for byte (decoded as UTF-8) and `headers` must hold the header the billing system
    authenticates with."""

    connector: Literal[ConnectorName.STRIPEBILLING, ConnectorName.CHARGEBEE, ConnectorName.RECURLY]
    connector_account_id: Identifier
    body: str = Field(min_length=1, max_length=MAX_BILLING_EVENT_LENGTH, description="the body exactly as received")
    headers: HeaderMap = Field(
        description="the delivery's headers intake reads: `Stripe-Signature` (stripebilling), `Authorization` "
        "(chargebee), `recurly-signature` (recurly); names in any case"
    )
    # Aware, unlike the other messages' times (which this system's own services write, always aware): an outside
    # publisher may leave the offset out, and a naive time cannot be compared with intake's clock. Refused by
    # validation, the message is dead-lettered with the field named instead of failing until its delivery limit.
    received_at: AwareDatetime = Field(
        description="when the ingress received the delivery, with its UTC offset (`Z` or `+hh:mm`): Stripe's "
        "signature tolerance is measured from it"
    )


class RecoveryScheduled(_Payload):
    payment: RecoveryPayment
    # Set when an existing recovery was updated by a new request (e.g. a later failure for the same invoice).
    action: str = "schedule_failed_payment"


class ExecuteRetry(_Payload):
    payment: RecoveryPayment
    attempt_id: str
    attempt_number: int = Field(ge=1)
    token: PaymentToken
    planned_at: datetime
    total_retry_count: int = Field(ge=1, description="billing system's attempts plus ours, this one included")


class AttemptOutcome(StrEnum):
    DECLINED = "declined"
    ERROR = "error"


# `PaymentAttemptFailed.error_code` of an `error` whose connector refused the saved payment method itself: it
# exists but may not be charged any more (detached from the customer, or another customer's). No retry mends it
# until the card data changes (the scheduler's `fix` class); the connector's own words stay in `message`.
PAYMENT_METHOD_UNUSABLE = "payment_method_unusable"


class PaymentAttemptFailed(_Payload):
    payment_id: str
    attempt_id: str
    attempt_number: int
    token: str
    outcome: AttemptOutcome
    error_code: str | None = None
    decline_code: str | None = None
    message: str | None = None
    advice_code: str | None = None
    network_advice_code: str | None = None
    network_decline_code: str | None = None
    connector_transaction_id: str | None = None
    attempted_at: datetime


class PaymentAttemptRefused(_Payload):
    """A planned attempt the executor refused without sending anything to the connector: the invoice may no longer
    be charged as far as it knows (`reason`: cancelled, paid elsewhere, a payment in progress at the billing system,
    another attempt of the payment succeeded), including an attempt whose outcome was unknown and that the connector
    turned out never to have seen. No card network saw it; its recovery plans again later if it still runs."""

    payment_id: str
    attempt_id: str
    attempt_number: int = Field(ge=1)
    token: str
    reason: str
    refused_at: datetime


class PaymentSucceeded(_Payload):
    payment_id: str
    attempt_id: str
    attempt_number: int
    token: str
    connector_transaction_id: str
    succeeded_at: datetime
    payment: PaymentObject


class PaymentFailed(_Payload):
    payment_id: str
    reason: str
    business_status: str
    # The attempt that makes this a failure "from our side" (Hyperswitch sends payment_failed only then).
    attempt_id: str
    payment: PaymentObject


class PaymentCancelled(_Payload):
    """A recovery cancelled before it recovered the payment: by the merchant (`CANCELLED_BY_MERCHANT`) or by its
    billing system (`CANCELLED_BY_BILLING_CONNECTOR`); the merchant's `payment_cancelled` webhook. One per payment
    (a cancelled recovery never runs again)."""

    payment_id: str
    reason: str
    business_status: str
    payment: PaymentObject


class ProfileUpdated(_Payload):
    """State transfer of a profile's webhook settings; consumers apply only newer versions."""

    profile_id: str
    merchant_id: str
    version: int = Field(ge=1)
    webhook_url: str | None = None
    # Intake always sends true (no Hyperswitch profile field maps to it: a profile without `webhook_url` sends
    # nothing); the dispatcher honours false, for a producer that has such a switch.
    webhooks_enabled: bool = True
    payment_response_hash_key: str | None = None
    standard_webhooks_secrets: tuple[str, ...] = ()
    custom_headers: dict[str, str] = Field(
        default_factory=dict,
        description="the profile's `outgoing_webhook_custom_http_headers`: names as configured, each value sealed "
        "(`enc:v1:<key id>:...`, recovery_runtime.secrets) as intake stores it; the dispatcher opens a value only to "
        "send it. A value that is not sealed (a message from before values were sealed) is sent as it is",
    )
    retry_algorithm: RetryAlgorithm = RetryAlgorithm.MONITORING
    # Delays (seconds) of the automatic webhook retries after the initial attempt; None: the dispatcher's
    # default (Hyperswitch's schedule); () delivers once.
    webhook_retry_schedule_seconds: tuple[Annotated[float, Field(ge=0, le=7 * 86400)], ...] | None = Field(
        default=None, max_length=50
    )
    # The profile's `webhook_details` toggles (Hyperswitch's): False means events of that type are not raised for
    # the profile; None (not set) sends them, as Hyperswitch does with the flag absent.
    payment_created_enabled: bool | None = None
    payment_succeeded_enabled: bool | None = None
    payment_failed_enabled: bool | None = None
    # `webhook_details.max_deliveries_per_second` (extension): deliveries per second to the profile's endpoint
    # (each dispatcher's own bound); None: no limit.
    webhook_max_deliveries_per_second: int | None = Field(default=None, ge=1, le=10_000)


class ConnectorAccountUpdated(_Payload):
    """State transfer of a connector account (credentials for the executor, retry settings for the scheduler)."""

    connector_account_id: str
    merchant_id: str
    profile_id: str
    version: int = Field(ge=1)
    connector_type: str
    connector_name: str
    api_key: str | None = None
    disabled: bool = False
    revenue_recovery: dict[str, Any] | None = None
    # A payment connector account's own pace (`feature_metadata.request_pace`); None: the executors' default.
    requests_per_second: float | None = Field(default=None, gt=0)
    request_burst: int | None = Field(default=None, ge=1)


class DeliverWebhook(_Payload):
    """A timer fired: deliver (again) the event whose initial attempt is `initial_attempt_id`."""

    initial_attempt_id: str
    retry_index: int = Field(ge=0)


class ScheduleTimer(_Payload):
    """Ask the scheduler to publish `message` at `due_at`. `timer_id` makes the request idempotent."""

    timer_id: str = Field(min_length=1, max_length=200)
    due_at: datetime
    kind: str
    payment_id: str | None = None
    message: dict[str, Any]


def timer_for(
    message: Envelope[Any], *, timer_id: str, due_at: datetime, kind: str, caused_by: Envelope[Any] | None = None
) -> Envelope[ScheduleTimer]:
    """Ask the scheduler (the owner of durable timers) to publish `message` at `due_at`; the request carries the
    message's payment, merchant and profile, and `caused_by`'s trail."""
    timer = ScheduleTimer(
        timer_id=timer_id,
        due_at=due_at,
        kind=kind,
        payment_id=message.correlation_id,
        message=message.model_dump(mode="json"),
    )
    return envelope_for(
        MessageType.SCHEDULE_TIMER,
        timer,
        caused_by=caused_by,
        correlation_id=message.correlation_id,
        merchant_id=message.merchant_id,
        profile_id=message.profile_id,
    )


class WebhookDeliveryFailed(_Payload):
    """Operational event: a webhook event will not be delivered (RETRIES_EXCEEDED, blocked, endpoint gone)."""

    event_id: str
    idempotent_event_id: str
    event_type: str
    payment_id: str
    profile_id: str
    url: str | None = None
    reason: str
    attempts: int = Field(ge=0)
    failed_at: datetime


class WebhookEndpointDisabled(_Payload):
    """Operational event: the dispatcher disabled a profile's webhook endpoint (410 Gone, long failure)."""

    profile_id: str
    merchant_id: str
    url: str | None = None
    reason: str
    failing_since: datetime | None = None
    disabled_at: datetime


# `RecoveryUpdated.action` when the merchant's data backfill (`POST /v2/recovery/data-backfill`) changed the card
# data of the snapshot's tokens: the snapshot is taken; a recovery that ended waiting for a fixed card may plan again.
CARD_DATA_BACKFILL = "card_data_backfill"


class RecoveryUpdated(_Payload):
    """An existing recovery intent changed: a later request for the same invoice (another token, another
    billing-system failure), an action that stops or pauses it, or the merchant's card-data backfill
    (`CARD_DATA_BACKFILL`). State transfer: `payment` is the whole current snapshot (tokens merged); consumers
    apply only newer `version`s."""

    payment: RecoveryPayment
    action: str
    intent_status: IntentStatus
    version: int = Field(ge=1)
    tokens_added: tuple[str, ...] = ()
    # The merchant asked for `action` itself (`cancel_invoice` by reference: the API's cancel, the console,
    # `recovery.cancel-requested`), not its billing system: what the recovery's end says.
    by_merchant: bool = False


class PaymentSync(_Payload):
    """PSYNC: ask the connector what became of an attempt whose outcome is unknown. Never a new charge."""

    execute: ExecuteRetry
    execute_message_id: str
    sync_number: int = Field(ge=1)


class RecordBackBody(_Payload):
    """What the billing connector is told after a successful retry (Hyperswitch's InvoiceRecordBack)."""

    merchant_reference_id: str
    amount: int
    currency: str
    payment_method_type: str
    attempt_status: str
    connector_transaction_id: str | None


class DisputeRefund(_Payload):
    """A lost dispute, recorded at the billing system as a refund of the payment its record back recorded
    (Chargebee: an offline refund, payment method `chargeback`, of the transaction `record_payment` made; Stripe
    Billing: a credit note of the invoice, credited out of band)."""

    dispute_id: str
    amount: int = Field(ge=1)
    currency: str
    reason: str | None = None
    lost_at: AwareDatetime


class RecordBack(_Payload):
    """Record a successful retry back to the billing connector; repeated on timers until it is accepted, refused
    for good (blocked) or abandoned; an operator may start it again (a new round of tries)."""

    payment_id: str
    url: str
    body: RecordBackBody
    attempt: int = Field(default=1, ge=1)
    # The try this round of tries started at: 1, or the first try after an operator started an abandoned or
    # blocked record back again (the waits between tries start over with each round).
    round_start: int = Field(default=1, ge=1)
    # A billing system recorded through its own API (`stripebilling`, `chargebee`, `recurly`): its name and the
    # billing connector account whose credentials the call uses. None: the `custombilling` callback to `url`.
    billing_connector: str | None = None
    billing_connector_id: str | None = None
    # Set: not the payment but a dispute lost on it is recorded (a refund); a record of its own, with its own tries.
    dispute: DisputeRefund | None = None


class RecordBackState(StrEnum):
    """Where a payment's record back stands after a try."""

    RETRYING = "retrying"  # refused or unanswered: tried again on a timer
    ACCEPTED = "accepted"  # the billing system recorded the payment
    ABANDONED = "abandoned"  # every try refused: left to an operator
    BLOCKED = "blocked"  # the egress policy refuses the destination: never retried


class RecordBackUpdated(_Payload):
    """Event: one try of a payment's record back and where the record back stands after it (the read side's
    timeline shows every try). Emitted by the executor with the try, in the same transaction."""

    payment_id: str
    merchant_id: str | None = None
    profile_id: str | None = None
    # The billing system it is recorded at (`stripebilling`, `chargebee`, `recurly`, `custombilling`) and its account.
    billing_connector: str
    billing_connector_id: str | None = None
    attempt: int = Field(ge=1)
    state: RecordBackState
    status_code: int | None = None
    error: str | None = None
    at: datetime
    # Set: the try recorded a lost dispute as a refund (`RecordBack.dispute`), not the payment.
    dispute_id: str | None = None


class ShadowPlan(_Payload):
    """What one algorithm would do now for a recovery in monitoring (nothing is charged). `kind`: `attempt`
    (`attempt_number` with `token` at `at`), `replan` (ask again at `at`), `end` (`outcome`) or
    `AwaitBillingSystem`; `at` is business time (the time scale does not apply)."""

    algorithm: RetryAlgorithm
    kind: str
    reason: str
    at: datetime | None = None
    token: str | None = None
    attempt_number: int | None = None
    outcome: str | None = None


class RecoveryShadowPlanned(_Payload):
    """Event: a recovery in monitoring was planned in the shadow: what cascading and smart would each do now
    (`shadows`), and `active_algorithm`, the one that takes over when the profile's monitoring period ends at
    `switch_at` (None: no threshold). Emitted by the scheduler with each monitoring step, in its transaction."""

    payment_id: str
    active_algorithm: RetryAlgorithm
    switch_at: datetime | None = None
    shadows: tuple[ShadowPlan, ...] = Field(max_length=8)
    at: datetime


class PaymentDisputeLost(_Payload):
    """Event: the payment connector decided a dispute against the merchant on a payment a recovery collected (its
    webhook, verified and applied once by intake). The executor records it at the billing system as a refund
    (`RecordBack.dispute`); the dispatcher sends the merchant's `dispute_lost` webhook; the read side shows it."""

    payment_id: str
    dispute: DisputeObject
    # The connector's charge the dispute is on (Stripe: the PaymentIntent), and what it took back, in minor units.
    connector_transaction_id: str
    amount: int = Field(ge=1)
    lost_at: AwareDatetime


class PaymentDisputeUpdated(_Payload):
    """Event: a dispute on a payment a recovery collected was opened, challenged, won or cancelled at the payment
    connector (its webhook, verified and applied once by intake; a lost one is `payment.dispute-lost`). The
    dispatcher sends the merchant's webhook of the dispute's status (`dispute_opened`, ...); nothing is recorded at
    the billing system, since no money moved for good."""

    payment_id: str
    dispute: DisputeObject
    # The connector's charge the dispute is on (Stripe: the PaymentIntent).
    connector_transaction_id: str
    # When the connector told of the change (its event's creation time).
    updated_at: AwareDatetime


PAYLOADS: dict[MessageType, type[BaseModel]] = {
    MessageType.RECOVERY_REQUESTED: RecoveryRequested,
    MessageType.RECOVERY_CANCEL_REQUESTED: RecoveryCancelRequested,
    MessageType.BILLING_EVENT: BillingEventReceived,
    MessageType.RECOVERY_SCHEDULED: RecoveryScheduled,
    MessageType.EXECUTE_RETRY: ExecuteRetry,
    MessageType.PAYMENT_ATTEMPT_FAILED: PaymentAttemptFailed,
    MessageType.PAYMENT_ATTEMPT_REFUSED: PaymentAttemptRefused,
    MessageType.PAYMENT_SUCCEEDED: PaymentSucceeded,
    MessageType.PAYMENT_FAILED: PaymentFailed,
    MessageType.PAYMENT_CANCELLED: PaymentCancelled,
    MessageType.PROFILE_UPDATED: ProfileUpdated,
    MessageType.CONNECTOR_ACCOUNT_UPDATED: ConnectorAccountUpdated,
    MessageType.DELIVER_WEBHOOK: DeliverWebhook,
    MessageType.SCHEDULE_TIMER: ScheduleTimer,
    MessageType.RECOVERY_UPDATED: RecoveryUpdated,
    MessageType.PAYMENT_SYNC: PaymentSync,
    MessageType.RECORD_BACK: RecordBack,
    MessageType.WEBHOOK_DELIVERY_FAILED: WebhookDeliveryFailed,
    MessageType.WEBHOOK_ENDPOINT_DISABLED: WebhookEndpointDisabled,
    MessageType.RECORD_BACK_UPDATED: RecordBackUpdated,
    MessageType.RECOVERY_SHADOW_PLANNED: RecoveryShadowPlanned,
    MessageType.PAYMENT_DISPUTE_LOST: PaymentDisputeLost,
    MessageType.PAYMENT_DISPUTE_UPDATED: PaymentDisputeUpdated,
}


StoredT = TypeVar("StoredT", bound=BaseModel)


@cache
def envelope_model(message_type: MessageType) -> type[Envelope[Any]]:
    return Envelope[PAYLOADS[message_type]]  # type: ignore[valid-type,index]


# Commands other teams' services publish: read as their HTTP twins are, an unknown field refused (the sender sees
# the reason in the dead-letter queue, as an HTTP caller would in the answer).
FROM_OTHER_SERVICES = frozenset(
    {MessageType.RECOVERY_REQUESTED, MessageType.RECOVERY_CANCEL_REQUESTED, MessageType.BILLING_EVENT}
)


def read_stored(model: type[StoredT], data: Mapping[str, Any]) -> StoredT:
    """A contract model kept in a service's own state (a recovery's snapshot, a record back's request), read back
    as a message is (`read_message`): a field a newer release stored is ignored, so the release before it still
    reads the state after a rollback."""
    return model.model_validate(data, extra="ignore")


def read_message(message_type: MessageType, data: str | bytes | Mapping[str, Any]) -> Envelope[Any]:
    """A message as its reader takes it: a consumer, or a service reading back a message it stored (a timer's, an
    attempt's outcome). A field the reader's contract does not have, at any depth, is ignored: a newer producer's
    addition passes an older reader in a rolling upgrade or after a rollback, where a refusal would dead-letter
    every such message. Every field the reader has is checked as strictly as ever, and building a message stays
    strict (`extra="forbid"`: an unknown keyword is an error, and mypy's pydantic plugin sees it). The commands of
    other teams' services (`FROM_OTHER_SERVICES`) keep refusing unknown fields: they are requests, like the HTTP
    bodies they mirror. ValidationError when the message is not one of `message_type`."""
    extra: ExtraValues = "forbid" if message_type in FROM_OTHER_SERVICES else "ignore"
    model = envelope_model(message_type)
    if isinstance(data, str | bytes):
        return model.model_validate_json(data, extra=extra)
    return model.model_validate(data, extra=extra)
