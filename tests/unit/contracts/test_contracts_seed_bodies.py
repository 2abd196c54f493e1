"""The seed's HTTP bodies are accepted exactly as the original scenario sent them."""

from __future__ import annotations

import json

import pytest
from contracts_seed import PLACEHOLDERS, load_seed

from recovery_contracts.api.connector_accounts import (
    ConnectorAccountCreate,
    ConnectorAccountResponse,
    ConnectorType,
    HeaderKey,
    NoKey,
)
from recovery_contracts.api.profiles import ProfileUpdate
from recovery_contracts.api.recovery import (
    AttemptStatus,
    RecoveryAction,
    RecoveryAttemptStatus,
    RecoveryPaymentsCreate,
    recovery_status_of,
)
from recovery_contracts.recovery import RetryAlgorithm

pytestmark = pytest.mark.unit


def test_recovery_request_parses_and_keeps_last_four_digits_as_text(recovery_request):
    body = RecoveryPaymentsCreate.model_validate(recovery_request)

    info = body.payment_method_data.additional_payment_method_info
    assert info is not None
    assert info.last_four_digits == "1997"
    assert body.amount_details.order_amount == 2250
    assert body.amount_details.currency == "USD"
    assert body.attempt_status is AttemptStatus.FAILURE
    assert body.action is RecoveryAction.SCHEDULE_FAILED_PAYMENT
    assert body.recovery_status is RecoveryAttemptStatus.FAILED
    assert body.payment_merchant_connector_id == PLACEHOLDERS["{{payment_mca}}"]
    assert body.billing_started_at is not None and body.billing_started_at.tzinfo is not None


def test_recovery_request_parses_from_raw_json_bytes(recovery_request):
    body = RecoveryPaymentsCreate.model_validate_json(json.dumps(recovery_request))
    assert (
        body.model_dump(mode="json")["payment_method_data"]["additional_payment_method_info"]["last_four_digits"]
        == "1997"
    )


def test_last_four_digits_given_as_a_short_number_keeps_leading_zeros(recovery_request):
    recovery_request["payment_method_data"]["additional_payment_method_info"]["last_four_digits"] = 42
    body = RecoveryPaymentsCreate.model_validate(recovery_request)
    assert body.payment_method_data.additional_payment_method_info.last_four_digits == "0042"


def test_later_hyperswitch_field_names_are_accepted(recovery_request):
    recovery_request["transaction_status"] = recovery_request.pop("attempt_status")
    recovery_request["payment_method_metadata"] = recovery_request.pop("payment_method_data")
    body = RecoveryPaymentsCreate.model_validate(recovery_request)
    assert body.attempt_status is AttemptStatus.FAILURE
    assert "attempt_status" in body.model_dump()


def test_payment_connector_account_parses(payment_connector_account):
    account = ConnectorAccountCreate.model_validate(payment_connector_account)
    assert account.connector_type is ConnectorType.PAYMENT_PROCESSOR
    assert isinstance(account.connector_account_details, HeaderKey)
    assert account.payment_methods_enabled[0].payment_method_subtypes[0].minimum_amount == -1
    assert account.metadata == {"report_group": "Hello", "merchant_config_currency": "USD"}


def test_billing_connector_account_parses(billing_connector_account):
    account = ConnectorAccountCreate.model_validate(billing_connector_account)
    assert isinstance(account.connector_account_details, NoKey)
    recovery = account.feature_metadata.revenue_recovery
    assert recovery.max_retry_count == 9
    assert recovery.billing_account_reference == {PLACEHOLDERS["{{payment_mca}}"]: PLACEHOLDERS["{{payment_mca}}"]}
    assert recovery.switch_payment_method_config.retry_threshold == 0


def test_profile_update_parses():
    update = ProfileUpdate.model_validate(load_seed("profile-update.json"))
    assert update.revenue_recovery_retry_algorithm_type is RetryAlgorithm.CASCADING
    assert update.model_dump(exclude_unset=True) == {"revenue_recovery_retry_algorithm_type": "cascading"}


def test_connector_account_response_masks_the_api_key(payment_connector_account):
    account = ConnectorAccountCreate.model_validate(payment_connector_account)
    response = ConnectorAccountResponse.from_create(account, id="mca_MbQwWzi4tFItmgYAmshC")

    shown = response.model_dump(mode="json")
    api_key = PLACEHOLDERS["{{api_key}}"]
    assert api_key not in json.dumps(shown)
    assert shown["connector_account_details"]["api_key"] == api_key[:2] + "*" * (len(api_key) - 4) + api_key[-2:]
    assert shown["id"] == "mca_MbQwWzi4tFItmgYAmshC"
    assert shown["payment_methods_enabled"] == payment_connector_account["payment_methods_enabled"]


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        ("failure", "failed"),
        ("authorization_failed", "failed"),
        ("router_declined", "failed"),
        ("charged", "succeeded"),
        ("authorized", "succeeded"),
        ("partial_charged", "succeeded"),
        ("started", "processing"),
        ("pending", "processing"),
        ("authorizing", "processing"),
        ("voided", "invalid"),
        ("expired", "invalid"),
    ],
)
def test_attempt_status_maps_to_recovery_status(status, expected):
    assert recovery_status_of(AttemptStatus(status)) == expected
