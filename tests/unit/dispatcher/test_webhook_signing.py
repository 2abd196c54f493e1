"""Both signature schemes match known vectors and independent verifiers; headers come in a fixed order."""

import base64
import hashlib
import hmac
import time
from datetime import UTC, datetime

import pytest
from standardwebhooks import Webhook

from recovery_dispatcher.domain.outgoing_webhook import (
    RESERVED_HEADERS,
    build_headers,
    decode_whsec_secret,
    generate_whsec_secret,
    sign_hyperswitch,
    sign_standard,
)

pytestmark = pytest.mark.unit

BODY = b'{"merchant_id":"m","event_id":"evt_1"}'


def test_hyperswitch_signature_matches_the_known_vector() -> None:
    # Derived once with hmac/hashlib and frozen: a change here breaks every merchant's verification.
    assert sign_hyperswitch(b'{"hello":"world"}', "test_hash_key") == (
        "e52f67f1c63d9a9131dd11141397633e116ca350b8f086af8e2b6a96b6353b52"
        "26e33ed64f51d5cd3375f74683ebc866275ebba44c08fee9db6af867b0abf664"
    )


def test_hyperswitch_signature_is_lowercase_hex_hmac_sha512_of_the_exact_bytes() -> None:
    key = "hash-key-ünïcode"
    expected = hmac.new(key.encode("utf-8"), BODY, hashlib.sha512).hexdigest()
    signature = sign_hyperswitch(BODY, key)
    assert signature == expected
    assert signature == signature.lower()
    assert len(signature) == 128
    assert sign_hyperswitch(BODY + b" ", key) != signature


def test_standard_signature_matches_the_specification_vector() -> None:
    # The Standard Webhooks / Svix published test vector.
    assert (
        sign_standard(
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1614265330,
            b'{"test": 2432232314}',
            ["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"],
        )
        == "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
    )


def test_standard_headers_verify_with_the_standardwebhooks_library() -> None:
    secret = generate_whsec_secret()
    now = int(time.time())
    headers = dict(build_headers(body=BODY, webhook_id="evt_1", timestamp=now, hash_key=None, whsec_secrets=[secret]))

    Webhook(secret).verify(BODY, headers)
    # The library signs the same message the same way.
    assert headers["webhook-signature"] == Webhook(secret).sign(
        "evt_1", datetime.fromtimestamp(now, tz=UTC), BODY.decode()
    )


def test_rotation_sends_both_signatures_and_each_secret_verifies() -> None:
    old, new = generate_whsec_secret(), generate_whsec_secret()
    now = int(time.time())
    headers = dict(build_headers(body=BODY, webhook_id="evt_1", timestamp=now, hash_key=None, whsec_secrets=[old, new]))

    entries = headers["webhook-signature"].split(" ")
    assert len(entries) == 2
    assert all(entry.startswith("v1,") for entry in entries)
    Webhook(old).verify(BODY, headers)
    Webhook(new).verify(BODY, headers)
    with pytest.raises(Exception, match="signature"):
        Webhook(generate_whsec_secret()).verify(BODY, headers)


def test_generated_secret_is_whsec_with_32_random_bytes() -> None:
    secret = generate_whsec_secret()
    assert secret.startswith("whsec_")
    assert len(decode_whsec_secret(secret)) == 32
    assert generate_whsec_secret() != secret


def test_bad_secret_is_refused() -> None:
    with pytest.raises(ValueError, match="base64"):
        decode_whsec_secret("whsec_not base64!")


def test_headers_come_in_order_with_custom_headers_between_user_agent_and_signatures() -> None:
    headers = build_headers(
        body=BODY,
        webhook_id="evt_1",
        timestamp=1_700_000_000,
        hash_key="key",
        whsec_secrets=[base64.b64encode(b"k" * 32).decode()],
        custom_headers={"X-Merchant-Tag": "blue", "Authorization": "Bearer abc"},
    )

    assert [name for name, _ in headers] == [
        "Content-Type",
        "User-Agent",
        "X-Merchant-Tag",
        "Authorization",
        "X-Webhook-Signature-512",
        "webhook-id",
        "webhook-timestamp",
        "webhook-signature",
    ]
    values = dict(headers)
    assert values["Content-Type"] == "application/json"
    assert values["User-Agent"] == "recovery-engine-webhooks/1"
    assert values["X-Webhook-Signature-512"] == sign_hyperswitch(BODY, "key")
    assert values["webhook-id"] == "evt_1"
    assert values["webhook-timestamp"] == "1700000000"


def test_custom_headers_never_override_signatures_or_standard_headers() -> None:
    custom = [
        ("x-webhook-signature-512", "forged"),
        ("Webhook-Id", "forged"),
        ("WEBHOOK-TIMESTAMP", "0"),
        ("webhook-signature", "v1,forged"),
        ("content-type", "text/plain"),
        ("X-Allowed", "yes"),
    ]
    headers = build_headers(
        body=BODY, webhook_id="evt_1", timestamp=1, hash_key="key", whsec_secrets=[], custom_headers=custom
    )

    lowered = [(name.lower(), value) for name, value in headers]
    assert ("x-allowed", "yes") in lowered
    assert all(value != "forged" for _, value in lowered)
    assert [name for name, _ in lowered].count("content-type") == 1
    assert "webhook-id" in RESERVED_HEADERS


def test_no_hash_key_and_no_secret_omit_their_headers_but_keep_id_and_timestamp() -> None:
    names = [name for name, _ in build_headers(body=BODY, webhook_id="evt_1", timestamp=1, hash_key=None)]
    assert names == ["Content-Type", "User-Agent", "webhook-id", "webhook-timestamp"]
