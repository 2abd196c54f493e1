"""Intake's HTTP API on in-memory adapters (httpx over ASGI, no server): the recovery endpoint, the payment it
answers with, bad input refused with nothing stored or published, and the profile's versioned changes; the read
side's routes forwarded to an analytics service scripted on loopback."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import timedelta
from typing import Any

import httpx
import jsonschema
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from recovery_contracts import schemas
from recovery_contracts.envelope import MessageType
from recovery_intake.handlers.secret_rotation import SecretRotation
from recovery_runtime.secrets import SecretBox
from recovery_sandbox.serving import BackgroundServer

from .fakes import MERCHANT, PROFILE, SETTINGS, Intake, changed_concurrently, http_client, intake
from .recovery_requests import REFERENCE, recovery_body, with_token

RECOVERY = "/v2/payments/recovery"


def error_of(response: httpx.Response, status: int, code: str) -> str:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["code"] == code
    return f"{error['message']} {error.get('reason') or ''}"


async def test_a_recovery_is_answered_stored_and_scheduled(svc: Intake, client: httpx.AsyncClient) -> None:
    response = await client.post(RECOVERY, json=recovery_body())
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer == {"id": answer["id"], "intent_status": "failed", "merchant_reference_id": REFERENCE}
    [scheduled] = svc.publisher.envelopes(MessageType.RECOVERY_SCHEDULED)
    assert scheduled.correlation_id == answer["id"] and scheduled.causation_id is None

    payment = await client.get(f"/v2/payments/{answer['id']}")
    assert payment.status_code == 200, payment.text
    assert payment.json()["status"] == "failed" and payment.json()["merchant_reference_id"] == REFERENCE
    # Built from the request while no outcome is stored: the same checked-in schema as a stored one.
    jsonschema.validate(payment.json(), json.loads((schemas.DEFAULT_DIR / "http/PaymentObject.json").read_text()))

    # The same invoice again is the same payment, not a second recovery.
    again = await client.post(RECOVERY, json=recovery_body())
    assert again.json()["id"] == answer["id"]
    assert len(svc.publisher.envelopes(MessageType.RECOVERY_SCHEDULED)) == 1
    assert svc.publisher.envelopes(MessageType.RECOVERY_UPDATED) == []


@pytest.mark.parametrize("action", ["schedule_failed_payment", "cancel_invoice", "success_payment_external"])
async def test_a_request_for_another_profiles_invoice_is_refused_and_leaves_its_recovery_alone(
    svc: Intake, client: httpx.AsyncClient, action: str
) -> None:
    # The invoice reference is the merchant's (its unique key): another profile's recovery of it holds it, as when
    # two billing systems of one merchant number their invoices alike.
    first = (await client.post(RECOVERY, json=recovery_body())).json()
    theirs = svc.intents.intents[first["id"]]
    svc.intents.intents[first["id"]] = replace(
        theirs, snapshot=theirs.snapshot.model_copy(update={"profile_id": "pro_other"})
    )
    svc.publisher.published.clear()

    refused = await client.post(RECOVERY, json=recovery_body(action=action))

    assert "another profile of this merchant" in error_of(refused, 400, "IR_38")
    assert svc.intents.intents[first["id"]].status is theirs.status
    assert svc.intents.intents[first["id"]].snapshot.tokens == theirs.snapshot.tokens
    assert svc.publisher.published == []


async def test_a_later_request_for_the_invoice_updates_it(svc: Intake, client: httpx.AsyncClient) -> None:
    first = (await client.post(RECOVERY, json=recovery_body())).json()
    second = (await client.post(RECOVERY, json=with_token("pm_second", "1831985"))).json()
    cancelled = (await client.post(RECOVERY, json=recovery_body(action="cancel_invoice"))).json()

    assert first["id"] == second["id"] == cancelled["id"]
    assert cancelled["intent_status"] == "cancelled"
    updates = [e.payload for e in svc.publisher.envelopes(MessageType.RECOVERY_UPDATED)]
    assert [(u.version, u.action, u.tokens_added) for u in updates] == [
        (1, "schedule_failed_payment", ("pm_second",)),
        (2, "cancel_invoice", ()),
    ]


@pytest.mark.parametrize(
    ("body", "status", "code", "mention"),
    [
        (b'{"amount_details": {"order_amount": 2250,', 400, "IR_06", "Json deserialize error"),
        (recovery_body(amount_details={"order_amount": "lots", "currency": "USD"}), 400, "IR_06", "order_amount"),
        (recovery_body(surprise=1), 400, "IR_06", "surprise"),
        (recovery_body(billing_merchant_connector_id="mca_unknown"), 404, "HE_02", "mca_unknown"),
        (recovery_body(payment_merchant_connector_id="mca_billing_1"), 422, "IR_06", "not a payment_processor"),
        (recovery_body(attempt_status="charged"), 422, "IR_06", "needs a failed attempt_status"),
        (recovery_body(action="invalid_action"), 400, "IR_19", "invalid_action"),
        (recovery_body(billing_started_at="0001-01-01T00:00:00+01:00"), 400, "IR_06", "outside the calendar"),
    ],
    ids=[
        "malformed",
        "wrong-type",
        "unknown-field",
        "unknown-account",
        "wrong-account-kind",
        "not-failed",
        "invalid",
        "no-utc-time",
    ],
)
async def test_bad_input_is_refused_and_nothing_is_stored_or_published(
    svc: Intake, client: httpx.AsyncClient, body: Any, status: int, code: str, mention: str
) -> None:
    if isinstance(body, bytes):
        response = await client.post(RECOVERY, content=body, headers={"content-type": "application/json"})
    else:
        response = await client.post(RECOVERY, json=body)
    assert mention in error_of(response, status, code)
    assert svc.intents.intents == {} and svc.publisher.published == []


@pytest.mark.parametrize(
    ("headers", "status", "code", "mention"),
    [
        ({"api-key": ""}, 401, "IR_01", "api-key"),
        ({"api-key": "snd_not-a-key"}, 401, "IR_01", ""),
        ({"x-merchant-id": "someone_else"}, 401, "IR_01", "x-merchant-id"),
        ({"x-profile-id": ""}, 400, "IR_04", "x-profile-id"),
        ({"x-profile-id": "pro_someone_elses"}, 404, "HE_02", "pro_someone_elses"),
    ],
    ids=["no-key", "unknown-key", "other-merchant", "no-profile", "unknown-profile"],
)
async def test_a_caller_who_cannot_act_for_the_profile_is_refused(
    svc: Intake, client: httpx.AsyncClient, headers: dict[str, str], status: int, code: str, mention: str
) -> None:
    sent = {k: v for k, v in {**svc.headers(), **headers}.items() if v}
    client.headers.clear()
    response = await client.post(RECOVERY, json=recovery_body(), headers=sent)
    assert mention in error_of(response, status, code)
    assert svc.intents.intents == {} and svc.publisher.published == []


async def test_a_profile_change_raises_its_version_and_a_concurrent_one_loses(
    svc: Intake, client: httpx.AsyncClient
) -> None:
    client.headers["x-merchant-id"] = MERCHANT
    update = {"webhook_details": {"webhook_url": "https://merchant.example/webhooks"}}
    response = await client.put(f"/v2/profiles/{PROFILE}", json=update)
    assert response.status_code == 200, response.text
    [updated] = svc.publisher.envelopes(MessageType.PROFILE_UPDATED)
    assert (updated.payload.version, updated.payload.webhook_url) == (2, "https://merchant.example/webhooks")

    # Another instance saved version 3 between this one's read and its compare-and-set: busy, nothing emitted.
    changed_concurrently(svc.profiles.profiles, PROFILE, svc.profiles)
    busy = await client.put(f"/v2/profiles/{PROFILE}", json=update)
    assert "busy" in error_of(busy, 422, "HE_00")
    assert len(svc.publisher.envelopes(MessageType.PROFILE_UPDATED)) == 1


async def test_a_profile_webhook_retry_schedule_is_stored_shown_and_carried_to_the_dispatcher(
    svc: Intake, client: httpx.AsyncClient
) -> None:
    client.headers["x-merchant-id"] = MERCHANT
    details = {"webhook_url": "https://merchant.example/webhooks", "retry_schedule_seconds": [30, 300, 3600]}
    response = await client.put(f"/v2/profiles/{PROFILE}", json={"webhook_details": details})
    assert response.status_code == 200, response.text
    assert response.json()["webhook_details"]["retry_schedule_seconds"] == [30, 300, 3600]
    [updated] = svc.publisher.envelopes(MessageType.PROFILE_UPDATED)
    assert updated.payload.webhook_retry_schedule_seconds == (30, 300, 3600)

    # `webhook_details` is replaced whole: left out, the schedule goes back to the dispatcher's default (None).
    details = {"webhook_url": "https://merchant.example/webhooks"}
    assert (await client.put(f"/v2/profiles/{PROFILE}", json={"webhook_details": details})).status_code == 200
    assert svc.publisher.envelopes(MessageType.PROFILE_UPDATED)[-1].payload.webhook_retry_schedule_seconds is None

    # A bad schedule is refused with the field named, and nothing changes or is emitted.
    details = {"webhook_url": "https://merchant.example/webhooks", "retry_schedule_seconds": [60, 0]}
    refused = await client.put(f"/v2/profiles/{PROFILE}", json={"webhook_details": details})
    assert refused.status_code == 400 and "retry_schedule_seconds" in refused.text, refused.text
    assert len(svc.publisher.envelopes(MessageType.PROFILE_UPDATED)) == 2


async def test_a_rotated_secret_signs_beside_the_old_one_until_the_overlap_ends(
    svc: Intake, client: httpx.AsyncClient
) -> None:
    rotated = await client.post(f"/v2/profiles/{PROFILE}/webhook-secret/rotate", json={"overlap_seconds": 60})
    assert rotated.status_code == 200, rotated.text
    assert rotated.json()["standard_webhooks_secret"].startswith("whsec_")
    assert rotated.json()["active_secrets"] == 2

    retirement = SecretRotation(
        svc.adapters, SecretBox.from_settings(SETTINGS), default_overlap=timedelta(0), retirement_interval=1.0
    )
    assert await retirement.retire_due() == 0
    svc.clock.advance(timedelta(seconds=60))
    assert await retirement.retire_due() == 1

    updates = [e.payload for e in svc.publisher.envelopes(MessageType.PROFILE_UPDATED)]
    assert [(u.version, len(u.standard_webhooks_secrets)) for u in updates] == [(2, 2), (3, 1)]
    assert updates[1].standard_webhooks_secrets == updates[0].standard_webhooks_secrets[:1]


async def test_a_rotation_with_no_overlap_replaces_the_secret_at_once(svc: Intake, client: httpx.AsyncClient) -> None:
    """`overlap_seconds: 0` is a value, not an absent one: the old secret stops signing now, not after the
    default overlap (a leaked secret is cut off this way)."""
    rotated = await client.post(f"/v2/profiles/{PROFILE}/webhook-secret/rotate", json={"overlap_seconds": 0})

    assert rotated.status_code == 200, rotated.text
    assert rotated.json()["active_secrets"] == 1
    assert rotated.json().get("previous_secrets_expire_at") is None
    [update] = [e.payload for e in svc.publisher.envelopes(MessageType.PROFILE_UPDATED)]
    assert (update.version, len(update.standard_webhooks_secrets)) == (2, 1)


async def test_an_invoice_keeps_only_its_latest_requests() -> None:
    svc = intake(intent_requests_kept=2)
    async with http_client(svc, headers=svc.headers()) as client:
        for n in range(5):
            answer = await client.post(RECOVERY, json=recovery_body(connector_transaction_id=f"tx_{n}"))
            assert answer.status_code == 200, answer.text
    [intent] = svc.intents.intents.values()
    assert [r.connector_transaction_id for r in intent.requests] == ["tx_3", "tx_4"]


async def test_an_owner_that_does_not_answer_is_a_503_to_retry_not_a_500(unused_tcp_port: int) -> None:
    """The process tracker, the events API and the read side are answered by other services through intake's
    gateway: one that cannot be reached (here a loopback port nobody listens on) is 503 with Retry-After."""
    nobody = f"http://127.0.0.1:{unused_tcp_port}"
    svc = intake(scheduler_internal_url=nobody, dispatcher_internal_url=nobody, analytics_internal_url=nobody)
    async with http_client(svc, headers=svc.headers()) as client:
        for path in (
            "/v2/process-trackers/revenue-recovery-workflow/12345_pay_x",
            f"/events/{MERCHANT}/endpoints",
            "/v2/payments/recovery-list",
        ):
            answer = await client.get(path)
            assert "not reachable" in error_of(answer, 503, "HE_00"), path
            assert answer.headers["retry-after"] == "5"


async def test_the_recovery_list_forwards_every_value_of_its_filters_and_refuses_an_unknown_one() -> None:
    """The extensions `record_back_state` and `dispute_state` (repeatable) reach the read side (the analytics service,
    scripted here on loopback) with every value; a value the API does not know is refused here, never forwarded."""
    asked: list[list[tuple[str, str]]] = []

    async def answer_list(request: Request) -> JSONResponse:
        asked.append(sorted(request.query_params.multi_items()))
        return JSONResponse({"count": 0, "total_count": 0, "data": [], "next_cursor": None})

    filters = [("dispute_state", "lost"), ("dispute_state", "open"), ("record_back_state", "abandoned")]
    with BackgroundServer(Starlette(routes=[Route("/internal/recoveries/{merchant}", answer_list)])) as analytics:
        svc = intake(analytics_internal_url=analytics.url)
        async with http_client(svc, headers=svc.headers()) as client:
            listed = await client.get("/v2/payments/recovery-list", params=filters)
            unknown = await client.get("/v2/payments/recovery-list", params={"dispute_state": "won"})

    assert listed.status_code == 200, listed.text
    assert asked == [filters]
    assert "dispute_state" in error_of(unknown, 400, "IR_06")


async def test_the_dispute_routes_forward_hyperswitchs_filters_and_the_dispute_and_refuse_what_is_wrong() -> None:
    """`GET /v2/disputes/list` reaches the read side (scripted on loopback) with every filter as given, the dotted
    `received_time.*` names too, and the merchant of the key in the path; `GET /v2/disputes/{id}` names the
    dispute; an unknown status or order is refused here (never forwarded), as is an id that cannot exist."""
    asked: list[tuple[str, list[tuple[str, str]]]] = []

    async def answer(request: Request) -> JSONResponse:
        asked.append((request.url.path, sorted(request.query_params.multi_items())))
        return JSONResponse([] if request.url.path.endswith(MERCHANT) else {"dispute_id": "dsp_1"})

    filters = [
        ("dispute_status", "dispute_challenged"),
        ("dispute_status", "dispute_opened"),
        ("received_time.gte", "2026-12-01T00:00:00Z"),
        ("sort", "answer_by"),
    ]
    routes = [Route("/internal/disputes/{merchant}", answer), Route("/internal/disputes/{merchant}/{dispute}", answer)]
    with BackgroundServer(Starlette(routes=routes)) as analytics:
        svc = intake(analytics_internal_url=analytics.url)
        async with http_client(svc, headers=svc.headers()) as client:
            listed = await client.get("/v2/disputes/list", params=filters)
            one = await client.get("/v2/disputes/dsp_1")
            unknown = await client.get("/v2/disputes/list", params={"dispute_status": "opened"})
            unsorted = await client.get("/v2/disputes/list", params={"sort": "amount"})
            bad_id = await client.get("/v2/disputes/dsp%2E%2E")

    assert (listed.status_code, listed.json()) == (200, []), listed.text
    assert (one.status_code, one.json()) == (200, {"dispute_id": "dsp_1"}), one.text
    assert asked == [(f"/internal/disputes/{MERCHANT}", filters), (f"/internal/disputes/{MERCHANT}/dsp_1", [])]
    assert "dispute_status" in error_of(unknown, 400, "IR_06")
    assert "sort" in error_of(unsorted, 400, "IR_06")
    assert error_of(bad_id, 404, "HE_02").strip() == "Dispute does not exist in our records"


async def test_the_monitoring_threshold_counts_from_when_the_profile_chose_monitoring(
    svc: Intake, client: httpx.AsyncClient
) -> None:
    """Hyperswitch's monitoring_configured_timestamp: the moment a profile turns to monitoring, kept while it stays
    there, carried in each recovery's snapshot; not the profile's creation."""
    created = svc.profiles.profiles[PROFILE]["created_at"]
    svc.clock.advance(timedelta(days=3))
    switched_at = svc.clock.now()
    turned = await client.put(f"/v2/profiles/{PROFILE}", json={"revenue_recovery_retry_algorithm_type": "monitoring"})
    assert turned.status_code == 200, turned.text
    svc.clock.advance(timedelta(hours=1))
    renamed = await client.put(f"/v2/profiles/{PROFILE}", json={"profile_name": "renamed"})
    assert renamed.status_code == 200, renamed.text
    assert svc.profiles.profiles[PROFILE]["monitoring_configured_at"] == switched_at

    assert (await client.post(RECOVERY, json=recovery_body())).status_code == 200
    [scheduled] = svc.publisher.envelopes(MessageType.RECOVERY_SCHEDULED)
    retry = scheduled.payload.payment.retry
    assert (retry.algorithm.value, retry.profile_created_at) == ("monitoring", created)
    assert retry.monitoring_configured_at == switched_at

    # Leaving monitoring forgets the moment; coming back starts a new period.
    await client.put(f"/v2/profiles/{PROFILE}", json={"revenue_recovery_retry_algorithm_type": "smart"})
    assert "monitoring_configured_at" not in svc.profiles.profiles[PROFILE]
    svc.clock.advance(timedelta(days=1))
    await client.put(f"/v2/profiles/{PROFILE}", json={"revenue_recovery_retry_algorithm_type": "monitoring"})
    assert svc.profiles.profiles[PROFILE]["monitoring_configured_at"] == svc.clock.now()
