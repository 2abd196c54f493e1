"""Every message type travels in the envelope and comes back identical from its JSON."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from contracts_seed import load_seed
from pydantic import BaseModel, ValidationError

from recovery_contracts.api.recovery import RecoveryPaymentsCreate
from recovery_contracts.disputes import DisputeObject, DisputeStage, DisputeStatus
from recovery_contracts.envelope import MessageType
from recovery_contracts.messages import (
    FROM_OTHER_SERVICES,
    PAYLOADS,
    AttemptOutcome,
    BillingEventReceived,
    ConnectorAccountUpdated,
    DeliverWebhook,
    ExecuteRetry,
    PaymentAttemptFailed,
    PaymentAttemptRefused,
    PaymentCancelled,
    PaymentDisputeLost,
    PaymentDisputeUpdated,
    PaymentFailed,
    PaymentSucceeded,
    PaymentSync,
    ProfileUpdated,
    RecordBack,
    RecordBackBody,
    RecordBackState,
    RecordBackUpdated,
    RecoveryCancelRequested,
    RecoveryRequested,
    RecoveryScheduled,
    RecoveryShadowPlanned,
    RecoveryUpdated,
    ScheduleTimer,
    ShadowPlan,
    WebhookDeliveryFailed,
    WebhookEndpointDisabled,
    envelope_model,
    read_message,
    read_stored,
)
from recovery_contracts.payments import IntentStatus
from recovery_contracts.recovery import (
    AttemptSummary,
    PaymentToken,
    PriorRetries,
    RecoveryPayment,
    RetryAlgorithm,
    RetrySettings,
    build_payment_object,
)

pytestmark = pytest.mark.unit

NOW = datetime(2025, 9, 7, 20, 5, 2, 792000, tzinfo=UTC)
PAYMENT_ID = "12345_pay_019925c5959a79418301a9460b92edb1"
ATTEMPT_ID = "12345_att_019925c838c877c282d3eaf5b86e9036"
TOKEN = PaymentToken(
    token="pm_1S4olu2KXBHSNjodBbiedqY9",
    connector_customer_id="cus_T0qSE723C5Xxic",
    card_network="Visa",
    last_four_digits="1997",
)
PAYMENT = RecoveryPayment(
    payment_id=PAYMENT_ID,
    merchant_id="cloth_seller_I7nS4iwZnxRDJtGfiNTy",
    profile_id="pro_3mR8Jq2LxYp7TzWc0KdN",
    merchant_reference_id="test_ffhgfewf3476f5",
    amount=2250,
    currency="USD",
    created_at=NOW,
    billing_connector_id="mca_ppEVMjRWgTiGyCiwFtg9",
    payment_connector_id="mca_MbQwWzi4tFItmgYAmshC",
    connector="stripe",
    connector_customer_id="cus_T0qSE723C5Xxic",
    payment_method_type="card",
    payment_method_subtype="credit",
    tokens=(TOKEN,),
    retry=RetrySettings(algorithm=RetryAlgorithm.CASCADING),
)
EXECUTE = ExecuteRetry(
    payment=PAYMENT, attempt_id=ATTEMPT_ID, attempt_number=1, token=TOKEN, planned_at=NOW, total_retry_count=2
)
PAYMENT_OBJECT = build_payment_object(
    PAYMENT,
    status=IntentStatus.SUCCEEDED,
    modified_at=NOW,
    attempt=AttemptSummary(total_retry_count=2, token=TOKEN.token, connector_transaction_id="pi_3S4opd"),
)


def _payloads() -> dict[MessageType, BaseModel]:
    request = RecoveryPaymentsCreate.model_validate(load_seed("recovery-request.json"))
    samples: dict[MessageType, BaseModel] = {
        MessageType.RECOVERY_REQUESTED: RecoveryRequested(request=request),
        MessageType.RECOVERY_CANCEL_REQUESTED: RecoveryCancelRequested(
            merchant_reference_id=request.merchant_reference_id
        ),
        MessageType.BILLING_EVENT: BillingEventReceived(
            connector="stripebilling",
            connector_account_id="mca_stripebilling_1",
            body='{"id": "evt_1", "type": "invoice.payment_failed", "data": {"object": {"id": "in_1"}}}',
            headers={
                "Stripe-Signature": "t=1767225600,v1=5257a869e7ecebeda32affa62cdca3fa51cad7e77a0e56ff536d0ce8e108d8bd"
            },
            received_at=NOW,
        ),
        MessageType.RECOVERY_SCHEDULED: RecoveryScheduled(payment=PAYMENT),
        MessageType.EXECUTE_RETRY: ExecuteRetry(
            payment=PAYMENT,
            attempt_id=ATTEMPT_ID,
            attempt_number=1,
            token=TOKEN,
            planned_at=NOW,
            total_retry_count=2,
        ),
        MessageType.PAYMENT_ATTEMPT_FAILED: PaymentAttemptFailed(
            payment_id=PAYMENT_ID,
            attempt_id=ATTEMPT_ID,
            attempt_number=1,
            token=TOKEN.token,
            outcome=AttemptOutcome.DECLINED,
            decline_code="insufficient_funds",
            attempted_at=NOW,
        ),
        MessageType.PAYMENT_ATTEMPT_REFUSED: PaymentAttemptRefused(
            payment_id=PAYMENT_ID,
            attempt_id=ATTEMPT_ID,
            attempt_number=1,
            token=TOKEN.token,
            reason="the invoice was cancelled",
            refused_at=NOW,
        ),
        MessageType.PAYMENT_SUCCEEDED: PaymentSucceeded(
            payment_id=PAYMENT_ID,
            attempt_id=ATTEMPT_ID,
            attempt_number=1,
            token=TOKEN.token,
            connector_transaction_id="pi_3S4opd",
            succeeded_at=NOW,
            payment=PAYMENT_OBJECT,
        ),
        MessageType.PAYMENT_FAILED: PaymentFailed(
            payment_id=PAYMENT_ID,
            reason="all tokens hard-declined",
            business_status="FAILED_DUE_TO_HARD_DECLINE_ERROR",
            attempt_id=ATTEMPT_ID,
            payment=PAYMENT_OBJECT,
        ),
        MessageType.PAYMENT_CANCELLED: PaymentCancelled(
            payment_id=PAYMENT_ID,
            reason="the merchant cancelled the recovery: pending retries stopped",
            business_status="CANCELLED_BY_MERCHANT",
            payment=PAYMENT_OBJECT,
        ),
        MessageType.PROFILE_UPDATED: ProfileUpdated(
            profile_id="pro_3mR8Jq2LxYp7TzWc0KdN",
            merchant_id="cloth_seller_I7nS4iwZnxRDJtGfiNTy",
            version=2,
            webhook_url="https://merchant.example/webhooks",
            custom_headers={"x-tenant": "a"},
        ),
        MessageType.CONNECTOR_ACCOUNT_UPDATED: ConnectorAccountUpdated(
            connector_account_id="mca_MbQwWzi4tFItmgYAmshC",
            merchant_id="cloth_seller_I7nS4iwZnxRDJtGfiNTy",
            profile_id="pro_3mR8Jq2LxYp7TzWc0KdN",
            version=1,
            connector_type="payment_processor",
            connector_name="stripe",
            api_key="sk_test_x",
        ),
        MessageType.DELIVER_WEBHOOK: DeliverWebhook(
            initial_attempt_id="evt_019925c838c877c282d3eaf5b86e9036", retry_index=0
        ),
        MessageType.SCHEDULE_TIMER: ScheduleTimer(
            timer_id=f"execute:{PAYMENT_ID}:1",
            due_at=NOW,
            kind="execute_retry",
            payment_id=PAYMENT_ID,
            message={"type": "payment.execute-retry"},
        ),
        MessageType.RECOVERY_UPDATED: RecoveryUpdated(
            payment=PAYMENT, action="cancel_invoice", intent_status=IntentStatus.CANCELLED, version=2
        ),
        MessageType.PAYMENT_SYNC: PaymentSync(execute=EXECUTE, execute_message_id=ATTEMPT_ID, sync_number=1),
        MessageType.RECORD_BACK: RecordBack(
            payment_id=PAYMENT_ID,
            url="https://billing.example/record-back",
            body=RecordBackBody(
                merchant_reference_id="test_ffhgfewf3476f5",
                amount=2250,
                currency="USD",
                payment_method_type="card",
                attempt_status="charged",
                connector_transaction_id="pi_3S4opd",
            ),
        ),
        MessageType.WEBHOOK_DELIVERY_FAILED: WebhookDeliveryFailed(
            event_id="evt_019925c838c877c282d3eaf5b86e9036",
            idempotent_event_id="abc",
            event_type="payment_succeeded",
            payment_id=PAYMENT_ID,
            profile_id="pro_3mR8Jq2LxYp7TzWc0KdN",
            reason="RETRIES_EXCEEDED",
            attempts=17,
            failed_at=NOW,
        ),
        MessageType.WEBHOOK_ENDPOINT_DISABLED: WebhookEndpointDisabled(
            profile_id="pro_3mR8Jq2LxYp7TzWc0KdN",
            merchant_id="cloth_seller_I7nS4iwZnxRDJtGfiNTy",
            reason="410 Gone",
            disabled_at=NOW,
        ),
        MessageType.RECORD_BACK_UPDATED: RecordBackUpdated(
            payment_id=PAYMENT_ID,
            merchant_id="cloth_seller_I7nS4iwZnxRDJtGfiNTy",
            profile_id="pro_3mR8Jq2LxYp7TzWc0KdN",
            billing_connector="stripebilling",
            billing_connector_id="mca_billing",
            attempt=2,
            state=RecordBackState.RETRYING,
            status_code=500,
            at=NOW,
        ),
        MessageType.RECOVERY_SHADOW_PLANNED: RecoveryShadowPlanned(
            payment_id=PAYMENT_ID,
            active_algorithm=RetryAlgorithm.CASCADING,
            switch_at=NOW,
            shadows=(
                ShadowPlan(
                    algorithm=RetryAlgorithm.CASCADING,
                    kind="attempt",
                    reason="cascading ladder step 1/15 (+0:01:00)",
                    at=NOW,
                    token="pm_card_visa",
                    attempt_number=1,
                ),
                ShadowPlan(algorithm=RetryAlgorithm.SMART, kind="end", reason="no slot", outcome="retries_exhausted"),
            ),
            at=NOW,
        ),
        MessageType.PAYMENT_DISPUTE_LOST: PaymentDisputeLost(
            payment_id=PAYMENT_ID,
            dispute=DisputeObject(
                dispute_id="dsp_4f1c2a9b7e3d5a60",
                payment_id=PAYMENT_ID,
                attempt_id=ATTEMPT_ID,
                amount="2250",
                currency="USD",
                dispute_stage=DisputeStage.DISPUTE,
                dispute_status=DisputeStatus.DISPUTE_LOST,
                connector="stripe",
                connector_status="lost",
                connector_dispute_id="dp_1Q2w3E4r5T6y",
                connector_reason="fraudulent",
                created_at=NOW,
            ),
            connector_transaction_id="pi_3S4opd",
            amount=2250,
            lost_at=NOW,
        ),
    }
    lost = samples[MessageType.PAYMENT_DISPUTE_LOST]
    assert isinstance(lost, PaymentDisputeLost)
    inquiry = {
        "dispute_stage": DisputeStage.PRE_DISPUTE,
        "dispute_status": DisputeStatus.DISPUTE_OPENED,
        "connector_status": "warning_needs_response",
    }
    samples[MessageType.PAYMENT_DISPUTE_UPDATED] = PaymentDisputeUpdated(
        payment_id=PAYMENT_ID,
        dispute=lost.dispute.model_copy(update=inquiry),
        connector_transaction_id="pi_3S4opd",
        updated_at=NOW,
    )
    return samples


def test_every_message_type_has_a_sample_here():
    assert set(_payloads()) == set(MessageType) == set(PAYLOADS)


@pytest.mark.parametrize("message_type", list(MessageType), ids=lambda t: t.value)
def test_envelope_round_trips_through_json(message_type):
    model = envelope_model(message_type)
    envelope = model(
        type=message_type,
        correlation_id=PAYMENT_ID,
        merchant_id="cloth_seller_I7nS4iwZnxRDJtGfiNTy",
        profile_id="pro_3mR8Jq2LxYp7TzWc0KdN",
        payload=_payloads()[message_type],
    )

    again = model.model_validate_json(envelope.model_dump_json())

    assert again == envelope
    assert again.model_dump_json() == envelope.model_dump_json()


def test_envelope_rejects_a_payload_of_another_type():
    model = envelope_model(MessageType.DELIVER_WEBHOOK)
    body: dict[str, Any] = {"type": "webhook.deliver", "payload": {"payment_id": PAYMENT_ID}}
    with pytest.raises(ValidationError) as caught:
        model.model_validate(body)
    assert {"payload", "initial_attempt_id"} <= {str(p) for e in caught.value.errors() for p in e["loc"]}


def test_recovery_requested_applies_the_http_validation(recovery_request):
    recovery_request["action"] = "retry_now"
    with pytest.raises(ValidationError) as caught:
        envelope_model(MessageType.RECOVERY_REQUESTED).model_validate(
            {
                "type": "recovery.requested",
                "merchant_id": "m",
                "profile_id": "p",
                "payload": {"request": recovery_request},
            }
        )
    assert ("payload", "request", "action") in [tuple(e["loc"]) for e in caught.value.errors()]


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"connector": "custombilling"}, "connector"),
        ({"connector_account_id": "../mca_1"}, "connector_account_id"),
        ({"body": ""}, "body"),
        ({"headers": {"Bad Header": "x"}}, "headers"),
        ({"headers": {f"x-h{i}": "v" for i in range(21)}}, "headers"),
        ({"received_at": None}, "received_at"),
        ({"received_at": "2025-09-07T20:02:09.947"}, "received_at"),  # no offset: not comparable with a clock
    ],
    ids=[
        "connector-without-webhooks",
        "id-with-path",
        "empty-body",
        "header-name",
        "too-many-headers",
        "no-time",
        "time-without-offset",
    ],
)
def test_billing_event_is_bounded_and_names_the_bad_field(change, field):
    sample = _payloads()[MessageType.BILLING_EVENT].model_dump(mode="json")
    with pytest.raises(ValidationError) as caught:
        BillingEventReceived.model_validate({**sample, **change})
    assert field in {str(e["loc"][0]) for e in caught.value.errors()}


def _sample_envelope(message_type: MessageType) -> Any:
    return envelope_model(message_type)(
        type=message_type,
        correlation_id=PAYMENT_ID,
        merchant_id="cloth_seller_I7nS4iwZnxRDJtGfiNTy",
        profile_id="pro_3mR8Jq2LxYp7TzWc0KdN",
        payload=_payloads()[message_type],
    )


INTERNAL = [t for t in MessageType if t not in FROM_OTHER_SERVICES]


@pytest.mark.parametrize("message_type", INTERNAL, ids=lambda t: t.value)
def test_a_reader_ignores_fields_a_newer_producer_added_to_the_envelope_and_the_payload(message_type):
    envelope = _sample_envelope(message_type)
    body = envelope.model_dump(mode="json")
    body["trace_state"] = "added by a newer release"
    body["payload"]["priority"] = 7

    read = read_message(message_type, json.dumps(body))

    assert read == envelope
    # Reading from a stored document (a timer's message, an attempt's outcome) is as tolerant as from the broker.
    assert read_message(message_type, body) == envelope
    # Building a message stays strict: an unknown field there is a mistake in this code base.
    with pytest.raises(ValidationError, match="Extra inputs are not permitted"):
        envelope_model(message_type).model_validate(body)


def test_a_reader_ignores_added_fields_at_any_depth():
    scheduled = _sample_envelope(MessageType.RECOVERY_SCHEDULED)
    body = scheduled.model_dump(mode="json")
    body["payload"]["payment"]["tokens"][0]["card_country"] = "DE"
    body["payload"]["payment"]["retry"]["learning_rate"] = 0.5
    assert read_message(MessageType.RECOVERY_SCHEDULED, json.dumps(body)) == scheduled

    succeeded = _sample_envelope(MessageType.PAYMENT_SUCCEEDED)
    body = succeeded.model_dump(mode="json")
    body["payload"]["payment"]["amount"]["surcharge_details"] = {"amount": 10}
    assert read_message(MessageType.PAYMENT_SUCCEEDED, json.dumps(body)) == succeeded


@pytest.mark.parametrize("message_type", sorted(FROM_OTHER_SERVICES), ids=lambda t: t.value)
def test_the_commands_of_other_services_still_refuse_an_unknown_field_and_name_it(message_type):
    body = _sample_envelope(message_type).model_dump(mode="json")
    body["payload"]["priority"] = 7
    with pytest.raises(ValidationError) as caught:
        read_message(message_type, json.dumps(body))
    assert [("payload", "priority")] == [tuple(e["loc"]) for e in caught.value.errors()]


def test_a_reader_still_refuses_a_known_field_with_a_bad_value():
    body = _sample_envelope(MessageType.EXECUTE_RETRY).model_dump(mode="json")
    body["payload"]["attempt_number"] = 0
    body["payload"]["priority"] = 7
    with pytest.raises(ValidationError) as caught:
        read_message(MessageType.EXECUTE_RETRY, json.dumps(body))
    assert [("payload", "attempt_number")] == [tuple(e["loc"]) for e in caught.value.errors()]


def test_state_a_newer_release_stored_is_read_back_by_the_release_before_it():
    # A rollback: the recovery's snapshot in intake's and the scheduler's documents, a record back's request.
    payment = _payloads()[MessageType.RECOVERY_SCHEDULED].payment
    stored = payment.model_dump(mode="json")
    stored["tokens"][0]["card_country"] = "DE"
    stored["risk_score"] = 12
    assert read_stored(RecoveryPayment, stored) == payment
    with pytest.raises(ValidationError, match="Extra inputs are not permitted"):
        RecoveryPayment.model_validate(stored)
    request = _payloads()[MessageType.RECORD_BACK]
    assert read_stored(RecordBack, {**request.model_dump(mode="json"), "signature": "v2"}) == request


def test_a_token_without_prior_retries_is_written_as_the_release_before_wrote_it():
    # The release before `prior_retries` refuses an unknown field (it has no tolerant reader): every message
    # without a backfilled history must reach it unchanged, so the field is left out when empty.
    scheduled = _sample_envelope(MessageType.RECOVERY_SCHEDULED)
    token = json.loads(scheduled.model_dump_json())["payload"]["payment"]["tokens"][0]
    assert "prior_retries" not in token
    assert read_message(MessageType.RECOVERY_SCHEDULED, scheduled.model_dump_json()) == scheduled

    card = scheduled.payload.payment.tokens[0].model_copy(
        update={"prior_retries": (PriorRetries(at=datetime(2026, 1, 14, tzinfo=UTC), count=2),)}
    )
    assert json.loads(card.model_dump_json())["prior_retries"] == [{"at": "2026-01-14T00:00:00Z", "count": 2}]
    assert PaymentToken.model_validate_json(card.model_dump_json()) == card
