"""The merchant receiver over real HTTP: signature checks, Standard Webhooks, recording, scripted answers."""

from __future__ import annotations

import base64
import json
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from standardwebhooks import Webhook

from recovery_sandbox import receiver
from recovery_sandbox.receiver import expected_signature_512
from recovery_sandbox.serving import BackgroundServer

pytestmark = pytest.mark.integration

# RFC 4231, test case 2: HMAC-SHA-512 with key "Jefe" over "what do ya want for nothing?".
RFC4231_KEY = "Jefe"
RFC4231_BODY = b"what do ya want for nothing?"
RFC4231_SHA512 = (
    "164b7a7bfcf819e2e395fbe73b56e0a387bd64222e831fd610270cd7ea250554"
    "9758bf75c05a994a6d034f65f8f0e6fdcaeab1a34d4a6b4b636e070a38bce737"
)
# Computed with `openssl dgst -sha512 -hmac whk_test_key` over the exact bytes below.
WEBHOOK_KEY = "whk_test_key"
WEBHOOK_BODY = b'{"event_type":"payment_succeeded","amount":2250}'
WEBHOOK_SHA512 = (
    "a7aa8cf3d38b001cd2c5589d6f6968a913847a65d617069b05224f6fe197c850"
    "4430f4963386e4ff5f58ecaccbda562894948f048823701c967d2f08e6ec726c"
)
WHSEC = "whsec_" + base64.b64encode(b"standard-webhooks-test-secret-32b").decode()


def received(server: BackgroundServer) -> list[dict]:
    return httpx.get(server.url + "/received").json()


def configure(server: BackgroundServer, **config: object) -> None:
    httpx.post(server.url + "/_receiver/config", json=config).raise_for_status()


def post(server: BackgroundServer, body: bytes, headers: dict[str, str], path: str = "/webhooks") -> httpx.Response:
    return httpx.post(server.url + path, content=body, headers={"Content-Type": "application/json", **headers})


def standard_headers(secret: str, body: bytes, msg_id: str = "msg_1", at: datetime | None = None) -> dict[str, str]:
    at = at or datetime.now(UTC)
    signature = Webhook(secret).sign(msg_id, at, body.decode())
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(at.timestamp())),
        "webhook-signature": signature,
    }


def test_the_signature_function_matches_published_and_openssl_vectors() -> None:
    assert expected_signature_512(RFC4231_KEY, RFC4231_BODY) == RFC4231_SHA512
    assert expected_signature_512(WEBHOOK_KEY, WEBHOOK_BODY) == WEBHOOK_SHA512


def test_a_correct_signature_verifies_and_a_tampered_body_does_not(receiver_server: BackgroundServer) -> None:
    configure(receiver_server, hash_key=WEBHOOK_KEY)

    good = post(receiver_server, WEBHOOK_BODY, {"X-Webhook-Signature-512": WEBHOOK_SHA512})
    tampered = post(
        receiver_server, WEBHOOK_BODY.replace(b"2250", b"2251"), {"X-Webhook-Signature-512": WEBHOOK_SHA512}
    )
    unsigned = post(receiver_server, WEBHOOK_BODY, {})
    deliveries = received(receiver_server)

    assert (good.status_code, tampered.status_code, unsigned.status_code) == (200, 200, 200)
    assert [d["signature_512"]["valid"] for d in deliveries] == [True, False, False]
    assert deliveries[2]["signature_512"]["present"] is False
    assert deliveries[0]["body"] == WEBHOOK_BODY.decode()
    assert deliveries[0]["json"] == {"event_type": "payment_succeeded", "amount": 2250}


def test_the_signature_is_over_the_exact_bytes_not_the_json_value(receiver_server: BackgroundServer) -> None:
    configure(receiver_server, hash_key=WEBHOOK_KEY)
    reformatted = json.dumps(json.loads(WEBHOOK_BODY), indent=2).encode()

    post(receiver_server, reformatted, {"X-Webhook-Signature-512": WEBHOOK_SHA512})

    assert received(receiver_server)[0]["signature_512"]["valid"] is False


def test_without_a_hash_key_the_signature_is_recorded_unverified(receiver_server: BackgroundServer) -> None:
    post(receiver_server, WEBHOOK_BODY, {"X-Webhook-Signature-512": WEBHOOK_SHA512})

    [delivery] = received(receiver_server)

    assert delivery["signature_512"] == {"present": True, "valid": None, "error": "no hash key configured"}
    assert ["x-webhook-signature-512", WEBHOOK_SHA512] in delivery["headers"]


def test_standard_webhooks_headers_verify_with_the_whsec_secret(receiver_server: BackgroundServer) -> None:
    configure(receiver_server, whsec_secret=WHSEC)
    other_secret = "whsec_" + base64.b64encode(b"some-other-secret-of-enough-bytes").decode()

    post(receiver_server, WEBHOOK_BODY, standard_headers(WHSEC, WEBHOOK_BODY))
    post(receiver_server, WEBHOOK_BODY, standard_headers(other_secret, WEBHOOK_BODY))
    post(
        receiver_server,
        WEBHOOK_BODY,
        standard_headers(WHSEC, WEBHOOK_BODY, at=datetime.now(UTC) - timedelta(hours=1)),
    )
    results = [d["standard_webhooks"] for d in received(receiver_server)]

    assert [r["valid"] for r in results] == [True, False, False]
    assert all(r["present"] for r in results)
    assert "too old" in results[2]["error"]


def test_both_schemes_are_checked_on_one_delivery(tmp_path: Path) -> None:
    log = tmp_path / "deliveries.jsonl"
    app = receiver.create_app(hash_key=WEBHOOK_KEY, whsec_secret=WHSEC, log_path=log)
    with BackgroundServer(app) as server:
        post(
            server,
            WEBHOOK_BODY,
            {"X-Webhook-Signature-512": WEBHOOK_SHA512, **standard_headers(WHSEC, WEBHOOK_BODY)},
            path="/any/path/at/all",
        )
        [delivery] = received(server)

    assert delivery["signature_512"]["valid"] is True
    assert delivery["standard_webhooks"]["valid"] is True
    assert delivery["path"] == "/any/path/at/all"
    [logged] = [json.loads(line) for line in log.read_text().splitlines()]
    # The log line is written on receipt, before the answer goes out (`answered_at` comes after).
    assert logged == {key: value for key, value in delivery.items() if key != "answered_at"}


def test_a_bad_whsec_secret_is_refused(receiver_server: BackgroundServer) -> None:
    response = httpx.post(receiver_server.url + "/_receiver/config", json={"whsec_secret": "whsec_"})

    assert response.status_code == 400


def test_scripted_answers_are_given_in_order_then_200(receiver_server: BackgroundServer) -> None:
    configure(
        receiver_server,
        behaviours=[
            {"status": 500, "times": 2},
            {"status": 410},
            {"status": 301, "location": "http://127.0.0.1:9/elsewhere"},
            {"status": 429, "retry_after": "30"},
        ],
    )

    answers = [post(receiver_server, WEBHOOK_BODY, {}) for _ in range(6)]

    assert [a.status_code for a in answers] == [500, 500, 410, 301, 429, 200]
    assert answers[3].headers["location"] == "http://127.0.0.1:9/elsewhere"
    assert answers[4].headers["retry-after"] == "30"
    assert [d["response"]["status"] for d in received(receiver_server)] == [500, 500, 410, 301, 429, 200]


def test_a_behaviour_for_a_path_answers_only_that_path_and_others_keep_their_order(
    receiver_server: BackgroundServer,
) -> None:
    configure(
        receiver_server,
        behaviours=[
            {"path": "/webhooks/slow", "status": 202, "times": 2},
            {"status": 500},
            {"path": "/webhooks/gone", "status": 410},
        ],
    )

    answers = [
        (path, post(receiver_server, WEBHOOK_BODY, {}, path=path).status_code)
        for path in ("/webhooks/fast", "/webhooks/slow", "/webhooks/fast", "/webhooks/slow", "/webhooks/slow")
    ]
    gone = post(receiver_server, WEBHOOK_BODY, {}, path="/webhooks/gone")

    # The path-less 500 goes to the first delivery of any path; the slow path's two 202s are its own.
    assert answers == [
        ("/webhooks/fast", 500),
        ("/webhooks/slow", 202),
        ("/webhooks/fast", 200),
        ("/webhooks/slow", 202),
        ("/webhooks/slow", 200),
    ]
    assert gone.status_code == 410
    slow = httpx.get(receiver_server.url + "/received", params={"path": "/webhooks/slow"}).json()
    assert [d["response"]["status"] for d in slow] == [202, 202, 200]


def test_a_stalled_answer_times_the_sender_out_but_the_delivery_is_recorded(
    receiver_server: BackgroundServer,
) -> None:
    configure(receiver_server, behaviours=[{"sleep_seconds": 1.5}])

    started = time.monotonic()
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(receiver_server.url + "/webhooks", content=WEBHOOK_BODY, timeout=0.3)

    assert time.monotonic() - started < 1.5
    [delivery] = received(receiver_server)
    assert "answered_at" not in delivery  # still stalling: not answered yet
    time.sleep(1.5)
    [delivery] = received(receiver_server)
    assert delivery["answered_at"] > delivery["received_at"]
