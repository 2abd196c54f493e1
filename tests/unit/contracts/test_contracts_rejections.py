"""Bad input is rejected with the offending field named (deny_unknown_fields, strict enums)."""

from __future__ import annotations

import pytest
from contracts_seed import load_seed
from pydantic import ValidationError

from recovery_contracts.api.api_keys import ApiKeyCreate
from recovery_contracts.api.connector_accounts import ConnectorAccountCreate
from recovery_contracts.api.errors import ApiError, describe_validation_errors, validation_error_response
from recovery_contracts.api.profiles import ProfileCreate, ProfileUpdate
from recovery_contracts.api.recovery import RecoveryPaymentsCreate

pytestmark = pytest.mark.unit


def _locs(exc: ValidationError) -> set[str]:
    return {".".join(str(p) for p in e["loc"]) for e in exc.errors()}


def _reject(model, body) -> ValidationError:
    with pytest.raises(ValidationError) as caught:
        model.model_validate(body)
    return caught.value


@pytest.mark.parametrize(
    ("path", "field"),
    [
        ((), "retry_now"),
        (("amount_details",), "tip"),
        (("payment_method_data", "additional_payment_method_info"), "cvv"),
        (("billing", "address"), "planet"),
        (("error",), "decline_reason"),
    ],
)
def test_unknown_field_in_recovery_request_is_rejected_and_named(recovery_request, path, field):
    target = recovery_request
    for key in path:
        target = target[key]
    target[field] = "x"

    exc = _reject(RecoveryPaymentsCreate, recovery_request)

    assert ".".join((*path, field)) in _locs(exc)
    assert f"unknown field `{'.'.join((*path, field))}`" in describe_validation_errors(exc.errors())


@pytest.mark.parametrize(
    ("path", "value"),
    [
        (("action",), "retry_now"),
        (("attempt_status",), "exploded"),
        (("payment_method_type",), "cash"),
        (("payment_method_sub_type",), "gold"),
        (("amount_details", "currency"), "usd"),
        (("amount_details", "currency"), "XYZ"),
        (("amount_details", "currency"), "US"),
        (("payment_method_data", "additional_payment_method_info", "card_network"), "visa card"),
    ],
)
def test_bad_enum_value_in_recovery_request_is_rejected_and_named(recovery_request, path, value):
    target = recovery_request
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value

    exc = _reject(RecoveryPaymentsCreate, recovery_request)

    assert ".".join(path) in _locs(exc)


@pytest.mark.parametrize(
    ("path", "value"),
    [
        (("amount_details", "order_amount"), "2250"),
        (("amount_details", "order_amount"), 22.5),
        (("amount_details", "order_amount"), -1),
        (("amount_details", "order_amount"), True),
        (("amount_details",), "2250 USD"),
        (("merchant_reference_id",), 12345),
        (("payment_method_data", "additional_payment_method_info", "last_four_digits"), 19970),
        (("payment_method_data", "additional_payment_method_info", "last_four_digits"), "19a7"),
        (("payment_method_data", "additional_payment_method_info", "card_exp_month"), "13"),
        (("billing_started_at",), "yesterday"),
        (("billing_merchant_connector_id",), "mca_with spaces"),
        (("payment_merchant_connector_id",), "m" * 65),
    ],
)
def test_wrong_type_or_value_in_recovery_request_is_rejected_and_named(recovery_request, path, value):
    target = recovery_request
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value

    exc = _reject(RecoveryPaymentsCreate, recovery_request)

    assert any(loc.startswith(".".join(path)) for loc in _locs(exc))


@pytest.mark.parametrize("missing", ["amount_details", "merchant_reference_id", "action", "attempt_status"])
def test_missing_required_field_is_named(recovery_request, missing):
    del recovery_request[missing]
    exc = _reject(RecoveryPaymentsCreate, recovery_request)
    assert f"missing field `{missing}`" in describe_validation_errors(exc.errors())


def test_placeholders_left_unfilled_are_rejected():
    exc = _reject(RecoveryPaymentsCreate, load_seed("recovery-request.json", fill=False))
    assert "billing_merchant_connector_id" in _locs(exc)


def test_bad_connector_type_is_rejected_and_named(payment_connector_account):
    payment_connector_account["connector_type"] = "bogus"
    assert "connector_type" in _locs(_reject(ConnectorAccountCreate, payment_connector_account))


def test_unknown_auth_type_is_rejected_and_named(payment_connector_account):
    payment_connector_account["connector_account_details"]["auth_type"] = "PasswordPlease"
    assert "connector_account_details" in _locs(_reject(ConnectorAccountCreate, payment_connector_account))


def test_credentials_not_matching_auth_type_are_rejected(payment_connector_account):
    payment_connector_account["connector_account_details"] = {"auth_type": "NoKey", "api_key": "sk_live_x"}
    exc = _reject(ConnectorAccountCreate, payment_connector_account)
    assert "connector_account_details.NoKey.api_key" in _locs(exc)


def test_payment_processor_with_a_billing_connector_name_is_rejected(payment_connector_account):
    payment_connector_account["connector_name"] = "chargebee"
    exc = _reject(ConnectorAccountCreate, payment_connector_account)
    assert "not a payment processor" in str(exc)


def test_unknown_field_in_revenue_recovery_settings_is_rejected(billing_connector_account):
    billing_connector_account["feature_metadata"]["revenue_recovery"]["max_retries"] = 3
    exc = _reject(ConnectorAccountCreate, billing_connector_account)
    assert "feature_metadata.revenue_recovery.max_retries" in _locs(exc)


def test_duplicate_billing_account_references_are_rejected(billing_connector_account):
    billing_connector_account["feature_metadata"]["revenue_recovery"]["billing_account_reference"] = {
        "mca_aaaaaaaaaaaaaaaaaaaa": "acct_1",
        "mca_bbbbbbbbbbbbbbbbbbbb": "acct_1",
    }
    exc = _reject(ConnectorAccountCreate, billing_connector_account)
    assert "values must be unique" in str(exc)


def test_profile_update_rejects_an_unknown_algorithm_and_unknown_fields():
    assert "revenue_recovery_retry_algorithm_type" in _locs(
        _reject(ProfileUpdate, {"revenue_recovery_retry_algorithm_type": "aggressive"})
    )
    assert "webhook_secret" in _locs(_reject(ProfileUpdate, {"webhook_secret": "x"}))


def test_profile_rejects_non_http_webhook_url_and_header_injection():
    base = {"profile_name": "default", "webhook_details": {"webhook_url": "ftp://example.com/hook"}}
    assert "webhook_details.webhook_url" in _locs(_reject(ProfileCreate, base))
    headers = {"profile_name": "default", "outgoing_webhook_custom_http_headers": {"x-a": "1\r\nx-b: 2"}}
    assert "outgoing_webhook_custom_http_headers" in _locs(_reject(ProfileCreate, headers))
    too_many = {
        "profile_name": "d",
        "outgoing_webhook_custom_http_headers": {f"x-{i}": "v" for i in range(21)},
    }
    assert "outgoing_webhook_custom_http_headers" in _locs(_reject(ProfileCreate, too_many))


@pytest.mark.parametrize(
    "schedule",
    [[0], [-5], [604_801], ["60"], [1.5], [60] * 51, 60],
    ids=["zero", "negative", "over-a-week", "string", "fraction", "51-retries", "not-a-list"],
)
def test_a_webhook_retry_schedule_is_whole_seconds_from_one_to_a_week_at_most_fifty(schedule):
    body = {"webhook_details": {"webhook_url": "https://merchant.example/hooks", "retry_schedule_seconds": schedule}}
    assert any(loc.startswith("webhook_details.retry_schedule_seconds") for loc in _locs(_reject(ProfileUpdate, body)))


def test_a_webhook_retry_schedule_may_be_empty_or_up_to_fifty_delays():
    for schedule in ([], [1], [604_800] * 50):
        details = {"webhook_url": "https://merchant.example/hooks", "retry_schedule_seconds": schedule}
        parsed = ProfileUpdate.model_validate({"webhook_details": details})
        assert parsed.webhook_details is not None and parsed.webhook_details.retry_schedule_seconds == schedule


def test_oversized_metadata_is_rejected(recovery_request):
    recovery_request["metadata"] = {"blob": "x" * 20_000}
    assert "metadata" in _locs(_reject(RecoveryPaymentsCreate, recovery_request))


def test_api_key_expiration_is_never_or_a_datetime():
    assert ApiKeyCreate.model_validate({"name": "k", "expiration": "never"}).expiration == "never"
    created = ApiKeyCreate.model_validate({"name": "k", "expiration": "2030-01-01T00:00:00"})
    assert created.model_dump(mode="json")["expiration"] == "2030-01-01T00:00:00.000Z"
    assert "expiration" in {e["loc"][0] for e in _reject(ApiKeyCreate, {"name": "k", "expiration": "soon"}).errors()}


def test_validation_error_becomes_hyperswitch_error_body_without_echoing_input(recovery_request):
    recovery_request["action"] = "retry_now"
    recovery_request["card_number"] = "4242424242424242"
    exc = _reject(RecoveryPaymentsCreate, recovery_request)

    body = validation_error_response(exc.errors()).model_dump(mode="json", exclude_none=True)

    assert list(body["error"]) == ["type", "message", "code"]
    assert body["error"]["type"] == "invalid_request"
    assert body["error"]["code"] == "IR_06"
    assert "`action`" in body["error"]["message"] and "`card_number`" in body["error"]["message"]
    assert "4242424242424242" not in body["error"]["message"]
    assert ApiError.INVALID_REQUEST_BODY.status_code == 400


def test_attempt_status_under_both_names_is_ambiguous_and_rejected(recovery_request):
    recovery_request["transaction_status"] = "charged"
    assert "transaction_status" in _locs(_reject(RecoveryPaymentsCreate, recovery_request))
