"""Receivers can verify both signature schemes with recovery_contracts.verification alone."""

from datetime import UTC, datetime, timedelta

import pytest
from standardwebhooks import Webhook

from recovery_contracts.verification import (
    WebhookVerificationError,
    verify_hyperswitch_signature,
    verify_standard_webhook,
)
from recovery_dispatcher.domain.outgoing_webhook import build_headers, generate_whsec_secret, sign_hyperswitch

pytestmark = pytest.mark.unit

BODY = b'{"merchant_id":"m","event_id":"evt_1","event_type":"payment_succeeded"}'
NOW = datetime(2025, 9, 7, 20, 5, 2, tzinfo=UTC)
SECRET = generate_whsec_secret()


def _headers(timestamp: datetime = NOW, secrets: tuple[str, ...] = (SECRET,)) -> dict[str, str]:
    return dict(
        build_headers(
            body=BODY,
            webhook_id="evt_1",
            timestamp=int(timestamp.timestamp()),
            hash_key=None,
            whsec_secrets=secrets,
        )
    )


def test_hyperswitch_signature_verifies_and_rejects_tampering() -> None:
    signature = sign_hyperswitch(BODY, "hash-key")
    assert verify_hyperswitch_signature(BODY, signature, "hash-key")
    assert verify_hyperswitch_signature(BODY, signature.upper(), "hash-key")
    assert not verify_hyperswitch_signature(BODY + b" ", signature, "hash-key")
    assert not verify_hyperswitch_signature(BODY, signature, "other-key")
    assert not verify_hyperswitch_signature(BODY, "ü" * 128, "hash-key")
    assert not verify_hyperswitch_signature(BODY, "", "hash-key")


def test_standard_webhook_verifies() -> None:
    verify_standard_webhook(BODY, _headers(), SECRET, now=NOW)


def test_headers_are_case_insensitive() -> None:
    headers = {name.upper(): value for name, value in _headers().items()}
    verify_standard_webhook(BODY, headers, SECRET, now=NOW)


def test_any_of_several_signatures_matches_during_rotation() -> None:
    old, new = generate_whsec_secret(), generate_whsec_secret()
    headers = _headers(secrets=(old, new))
    verify_standard_webhook(BODY, headers, old, now=NOW)
    verify_standard_webhook(BODY, headers, new, now=NOW)
    # A receiver that holds both secrets while it rotates.
    verify_standard_webhook(BODY, _headers(secrets=(new,)), [old, new], now=NOW)


def test_agrees_with_the_standardwebhooks_library() -> None:
    now = datetime.now(UTC)
    headers = _headers(timestamp=now)
    Webhook(SECRET).verify(BODY, headers)
    verify_standard_webhook(BODY, headers, SECRET)

    library_signature = Webhook(SECRET).sign("evt_1", now, BODY.decode())
    verify_standard_webhook(
        BODY,
        {
            "webhook-id": "evt_1",
            "webhook-timestamp": str(int(now.timestamp())),
            "webhook-signature": library_signature,
        },
        SECRET,
    )


@pytest.mark.parametrize("missing", ["webhook-id", "webhook-timestamp", "webhook-signature"])
def test_missing_header_is_named(missing: str) -> None:
    headers = _headers()
    del headers[missing]
    with pytest.raises(WebhookVerificationError, match=f"missing {missing} header"):
        verify_standard_webhook(BODY, headers, SECRET, now=NOW)


@pytest.mark.parametrize(
    ("shift", "message"),
    [(timedelta(minutes=-6), "too old"), (timedelta(minutes=6), "too new")],
)
def test_timestamp_outside_tolerance_is_refused(shift: timedelta, message: str) -> None:
    with pytest.raises(WebhookVerificationError, match=message):
        verify_standard_webhook(BODY, _headers(timestamp=NOW + shift), SECRET, now=NOW)


def test_timestamp_inside_a_custom_tolerance_passes() -> None:
    headers = _headers(timestamp=NOW - timedelta(minutes=20))
    verify_standard_webhook(BODY, headers, SECRET, tolerance=timedelta(minutes=30), now=NOW)


def test_bad_timestamp_is_refused() -> None:
    headers = _headers() | {"webhook-timestamp": "2025-09-07T20:05:02Z"}
    with pytest.raises(WebhookVerificationError, match="invalid webhook-timestamp"):
        verify_standard_webhook(BODY, headers, SECRET, now=NOW)


@pytest.mark.parametrize(
    "tamper",
    [
        lambda body, headers: (body + b" ", headers),
        lambda body, headers: (body, headers | {"webhook-id": "evt_2"}),
        lambda body, headers: (body, headers | {"webhook-signature": "v1,AAAA"}),
        lambda body, headers: (
            body,
            headers | {"webhook-signature": headers["webhook-signature"].replace("v1", "v2")},
        ),
    ],
)
def test_tampering_finds_no_matching_signature(tamper) -> None:
    body, headers = tamper(BODY, _headers())
    with pytest.raises(WebhookVerificationError, match="no matching signature"):
        verify_standard_webhook(body, headers, SECRET, now=NOW)


def test_wrong_secret_finds_no_matching_signature() -> None:
    with pytest.raises(WebhookVerificationError, match="no matching signature"):
        verify_standard_webhook(BODY, _headers(), generate_whsec_secret(), now=NOW)
