"""The audit trail on in-memory adapters (httpx over ASGI): each state-changing request whose caller is known is an
entry, whatever the answer (who: the key, the admin key or a console session; which route on which ids; the status;
when), a refusal for want of a scope too; reads, a recovery's request and calls no key was found for are not; the
merchant reads its own entries newest first, page by page (`GET /v2/audit-events`, `read_only` or `management`, the
admin key naming the merchant); an entry the database does not take is logged and counted, and the answer goes out."""

from __future__ import annotations

from datetime import timedelta
from typing import Any, cast

from recovery_contracts.api.audit import AuditActorKind
from recovery_intake import metrics
from recovery_intake.domain.audit import AuditActor, AuditEntry, audited

from .api_calls import mint
from .fakes import ADMIN_KEY, API_KEY, MERCHANT, FakeAuditLog, Intake, http_client, intake
from .recovery_requests import recovery_body
from .test_console_routes import session_token, signed_in

AUDIT = "/v2/audit-events"


def trail(svc: Intake) -> list[AuditEntry]:
    return cast(FakeAuditLog, svc.adapters.audit).entries


def seen(entry: AuditEntry) -> tuple[Any, ...]:
    return (entry.actor.kind.value, entry.actor.key_id, entry.action, dict(entry.target), entry.status)


async def test_changing_requests_with_a_known_caller_are_entries_whatever_the_answer() -> None:
    svc = intake()
    async with http_client(svc) as client:
        reader = await mint(client, API_KEY, ["read_only"])
        renamed = await client.put(
            f"/v2/api-keys/{reader['key_id']}", json={"name": "dashboards"}, headers=svc.headers()
        )
        refused = await client.post(
            "/v2/api-keys", json={"name": "x", "expiration": "never"}, headers={"api-key": reader["api_key"]}
        )
        revoked = await client.delete(
            f"/v2/api-keys/{reader['key_id']}", headers={"api-key": ADMIN_KEY, "x-merchant-id": MERCHANT}
        )
        # Not entries: a read, a recovery's request (the payment flow: the intent is its record), a call no key
        # was found for.
        await client.get("/v2/api-keys/list", headers=svc.headers())
        await client.post("/v2/payments/recovery", json=recovery_body(), headers=svc.headers())
        await client.delete(f"/v2/api-keys/{reader['key_id']}", headers={"api-key": "snd_" + "x" * 43})

    assert (renamed.status_code, refused.status_code, revoked.status_code) == (200, 403, 200)
    assert [seen(e) for e in trail(svc)] == [
        ("api_key", "key_1", "POST /v2/api-keys", {}, 200),
        ("api_key", "key_1", "PUT /v2/api-keys/{key_id}", {"key_id": reader["key_id"]}, 200),
        ("api_key", reader["key_id"], "POST /v2/api-keys", {}, 403),
        ("admin_key", None, "DELETE /v2/api-keys/{key_id}", {"key_id": reader["key_id"]}, 200),
    ]
    assert {e.actor.merchant_id for e in trail(svc)} == {MERCHANT}
    assert trail(svc)[1].actor.profile_id == "pro_1"  # the profile the request named
    assert all(e.at == svc.clock.now() and e.entry_id for e in trail(svc))


async def test_a_request_the_models_refuse_before_its_route_is_an_entry_of_its_caller() -> None:
    """The body or a path id refused by the models (400 IR_06) never reaches the route that would name the caller:
    the refusal is named for the key that sent it all the same; one no key would authenticate is not an entry."""
    svc = intake()
    async with http_client(svc) as client:
        bad_body = await client.put("/v2/api-keys/key_1", json={"name": ["not", "a", "name"]}, headers=svc.headers())
        bad_path = await client.delete("/v2/api-keys/key_not-a-key-id", headers=svc.headers())
        as_admin = await client.post("/v2/merchant-accounts", json={"merchant_name": 7}, headers={"api-key": ADMIN_KEY})
        admin_for_merchant = await client.post(
            "/v2/profiles", json={"profile_name": 7}, headers={"api-key": ADMIN_KEY, "x-merchant-id": MERCHANT}
        )
        unknown_key = await client.put(
            "/v2/api-keys/key_1", json={"name": ["x"]}, headers={"api-key": "snd_" + "x" * 43}
        )
        other_merchant = await client.put(
            "/v2/api-keys/key_1", json={"name": ["x"]}, headers={"api-key": API_KEY, "x-merchant-id": "merchant_other"}
        )

    answers = [bad_body, bad_path, as_admin, admin_for_merchant, unknown_key, other_merchant]
    assert [a.status_code for a in answers] == [400] * 6, [a.text for a in answers]
    assert [(*seen(e), e.actor.merchant_id) for e in trail(svc)] == [
        ("api_key", "key_1", "PUT /v2/api-keys/{key_id}", {"key_id": "key_1"}, 400, MERCHANT),
        ("api_key", "key_1", "DELETE /v2/api-keys/{key_id}", {"key_id": "key_not-a-key-id"}, 400, MERCHANT),
        ("admin_key", None, "POST /v2/merchant-accounts", {}, 400, None),
        ("admin_key", None, "POST /v2/profiles", {}, 400, MERCHANT),
    ]
    # Still the refusal it was (IR_06), not an authentication failure (401).
    assert "IR_06" in unknown_key.text


async def test_the_merchant_reads_its_trail_newest_first_page_by_page() -> None:
    svc = intake()
    async with http_client(svc) as client:
        for name in ("one", "two", "three"):
            await client.post("/v2/api-keys", json={"name": name, "expiration": "never"}, headers=svc.headers())
            svc.clock.advance(timedelta(minutes=1))
        payments_only = await mint(client, API_KEY, ["payments"])
        first = await client.get(AUDIT, params={"limit": 2}, headers={"api-key": API_KEY})
        rest = await client.get(
            AUDIT, params={"limit": 2, "cursor": first.json()["next_cursor"]}, headers={"api-key": API_KEY}
        )
        as_admin = await client.get(AUDIT, params={"merchant_id": MERCHANT}, headers={"api-key": ADMIN_KEY})
        not_allowed = await client.get(AUDIT, headers={"api-key": payments_only["api_key"]})
        other_merchant = await client.get(AUDIT, params={"merchant_id": "merchant_other"}, headers=svc.headers())
        bad_cursor = await client.get(AUDIT, params={"cursor": "not-a-cursor"}, headers=svc.headers())

    assert first.status_code == 200, first.text
    page = first.json()
    # The mint (last) first, then the third and second keys' creations.
    assert page["count"] == 2 and [e["status_code"] for e in page["data"]] == [200, 200]
    assert page["data"][0]["created_at"] > page["data"][1]["created_at"]
    assert page["data"][0] == {
        **page["data"][0],
        "merchant_id": MERCHANT,
        "actor": "api_key",
        "key_id": "key_1",
        "method": "POST",
        "route": "/v2/api-keys",
        "target": {},
    }
    assert rest.json()["count"] == 2 and rest.json()["next_cursor"] is None
    ids = [e["event_id"] for e in page["data"] + rest.json()["data"]]
    assert len(set(ids)) == 4
    assert [e["event_id"] for e in as_admin.json()["data"]] == ids
    assert not_allowed.status_code == 403, not_allowed.text
    assert other_merchant.status_code == 404, other_merchant.text
    assert bad_cursor.status_code == 422 and "cursor" in bad_cursor.text


async def test_the_trail_is_read_for_one_key_or_only_the_refused() -> None:
    svc = intake()
    async with http_client(svc) as client:
        reader = await mint(client, API_KEY, ["read_only"])
        await client.post(
            "/v2/api-keys", json={"name": "x", "expiration": "never"}, headers={"api-key": reader["api_key"]}
        )
        await client.put(f"/v2/api-keys/{reader['key_id']}", json={"name": "dashboards"}, headers=svc.headers())
        by_key = await client.get(AUDIT, params={"key_id": reader["key_id"]}, headers=svc.headers())
        refused = await client.get(AUDIT, params={"refused": "true"}, headers=svc.headers())
        first_of_key_1 = await client.get(AUDIT, params={"key_id": "key_1", "limit": 1}, headers=svc.headers())
        rest_of_key_1 = await client.get(
            AUDIT,
            params={"key_id": "key_1", "limit": 1, "cursor": first_of_key_1.json()["next_cursor"]},
            headers=svc.headers(),
        )
        too_long = await client.get(AUDIT, params={"key_id": "k" * 65}, headers=svc.headers())

    assert [(e["key_id"], e["status_code"]) for e in by_key.json()["data"]] == [(reader["key_id"], 403)]
    assert [(e["key_id"], e["status_code"]) for e in refused.json()["data"]] == [(reader["key_id"], 403)]
    assert [e["route"] for e in first_of_key_1.json()["data"] + rest_of_key_1.json()["data"]] == [
        "/v2/api-keys/{key_id}",
        "/v2/api-keys",
    ]
    assert rest_of_key_1.json()["next_cursor"] is None
    assert too_long.status_code == 400 and "key_id" in too_long.text


async def test_the_trail_is_read_within_a_window_of_time_both_ends_included_page_by_page() -> None:
    svc = intake()
    started = svc.clock.now()
    async with http_client(svc) as client:
        for name in ("at 0h", "at 1h", "at 2h", "at 3h"):
            await client.post("/v2/api-keys", json={"name": name, "expiration": "never"}, headers=svc.headers())
            svc.clock.advance(timedelta(hours=1))

        async def window(**bounds: str) -> Any:
            return await client.get(AUDIT, params=bounds, headers=svc.headers())

        # The ends are exactly the second and third entries' times; the first and last are a millisecond outside.
        inside = await window(created_after="2026-01-15T13:00:00Z", created_before="2026-01-15T14:00:00.000Z")
        outside = await window(created_after="2026-01-15T12:00:00.001Z", created_before="2026-01-15T14:59:59.999Z")
        first = await client.get(
            AUDIT, params={"created_after": "2026-01-15T13:00:00", "limit": 1}, headers=svc.headers()
        )  # no offset: UTC
        rest = await client.get(
            AUDIT,
            params={"created_after": "2026-01-15T13:00:00", "limit": 2, "cursor": first.json()["next_cursor"]},
            headers=svc.headers(),
        )
        offset = await window(created_before="2026-01-15T14:00:00+01:00")  # 13:00 UTC
        empty = await window(created_after="2026-01-15T14:00:00Z", created_before="2026-01-15T13:00:00Z")
        not_a_time = await window(created_after="yesterday")
        no_utc_time = await window(created_before="0001-01-01T00:00:00+01:00")

    def created(answer: Any) -> list[str]:
        assert answer.status_code == 200, answer.text
        return [e["created_at"] for e in answer.json()["data"]]

    assert started.hour == 12
    assert created(inside) == ["2026-01-15T14:00:00.000Z", "2026-01-15T13:00:00.000Z"]
    assert created(outside) == ["2026-01-15T14:00:00.000Z", "2026-01-15T13:00:00.000Z"]
    assert created(first) + created(rest) == [
        "2026-01-15T15:00:00.000Z",
        "2026-01-15T14:00:00.000Z",
        "2026-01-15T13:00:00.000Z",
    ]
    assert rest.json()["next_cursor"] is None
    assert created(offset) == ["2026-01-15T13:00:00.000Z", "2026-01-15T12:00:00.000Z"]
    assert empty.status_code == 422, empty.text
    message = empty.json()["error"]["message"]
    assert "created_after (2026-01-15T14:00:00+00:00) is later than created_before" in message, message
    assert not_a_time.status_code == 400 and "created_after" in not_a_time.text, not_a_time.text
    assert no_utc_time.status_code == 400 and "outside the calendar once in UTC" in no_utc_time.text, no_utc_time.text


async def test_a_payments_entries_are_those_whose_route_named_it() -> None:
    svc = intake()
    async with http_client(svc) as client:
        for payment, dispute in (("12345_pay_a", "dp_1"), ("12345_pay_b", "dp_2"), ("12345_pay_a", "dp_3")):
            accepted = f"/v2/payments/{payment}/disputes/{dispute}/accept"
            assert (await client.post(accepted, headers=svc.headers())).status_code == 404  # no such dispute
            svc.clock.advance(timedelta(seconds=1))
        await client.post("/v2/api-keys", json={"name": "x", "expiration": "never"}, headers=svc.headers())
        on_a = await client.get(AUDIT, params={"payment_id": "12345_pay_a"}, headers=svc.headers())
        first = await client.get(AUDIT, params={"payment_id": "12345_pay_a", "limit": 1}, headers=svc.headers())
        on_none = await client.get(AUDIT, params={"payment_id": "12345_pay_z"}, headers=svc.headers())
        too_long = await client.get(AUDIT, params={"payment_id": "p" * 129}, headers=svc.headers())

    assert [e["target"] for e in on_a.json()["data"]] == [
        {"payment_id": "12345_pay_a", "dispute_id": "dp_3"},
        {"payment_id": "12345_pay_a", "dispute_id": "dp_1"},
    ]
    assert first.json()["next_cursor"] is not None
    assert on_none.json() == {"count": 0, "data": [], "next_cursor": None}
    assert too_long.status_code == 400 and "payment_id" in too_long.text


async def test_the_admin_key_naming_no_merchant_reads_the_platforms_own_entries() -> None:
    svc = intake()
    async with http_client(svc) as client:
        await client.post("/v2/merchant-accounts", json={"merchant_name": "m2"}, headers={"api-key": ADMIN_KEY})
        await client.post("/v2/api-keys", json={"name": "x", "expiration": "never"}, headers=svc.headers())
        platform = await client.get(AUDIT, headers={"api-key": ADMIN_KEY})
        by_header = await client.get(AUDIT, headers={"api-key": ADMIN_KEY, "x-merchant-id": MERCHANT})
        merchant_key = await client.get(AUDIT, headers={"api-key": API_KEY})
        wrong_key = await client.get(AUDIT, headers={"api-key": "snd_" + "x" * 43})

    assert platform.status_code == 200, platform.text
    assert [(e["merchant_id"], e["actor"], e["route"]) for e in platform.json()["data"]] == [
        (None, "admin_key", "/v2/merchant-accounts")
    ]
    assert [e["route"] for e in by_header.json()["data"]] == ["/v2/api-keys"]
    assert [e["route"] for e in merchant_key.json()["data"]] == ["/v2/api-keys"]  # never the platform's
    assert wrong_key.status_code == 401


async def test_a_console_action_is_the_consoles_entry_with_the_sessions_key() -> None:
    svc = intake()
    path = "/console/payments/12345_pay_unknown/disputes/dsp_unknown/accept"
    async with signed_in(svc) as console:
        answer = await console.post(path, data={"csrf_token": session_token(svc, console)})
        await console.get("/console/overview")

    assert answer.status_code == 404, answer.text
    [entry] = [e for e in trail(svc) if e.actor.kind.value == "console"]
    assert seen(entry) == (
        "console",
        "key_1",
        "POST /console/payments/{payment_id}/disputes/{dispute_id}/{answer}",
        {"payment_id": "12345_pay_unknown", "dispute_id": "dsp_unknown", "answer": "accept"},
        404,
    )


async def test_an_entry_the_database_does_not_take_is_logged_and_counted_and_the_answer_goes_out() -> None:
    svc = intake()

    async def unavailable(entry: AuditEntry) -> None:
        raise ConnectionError("the database does not answer")

    cast(FakeAuditLog, svc.adapters.audit).record = unavailable  # type: ignore[method-assign]
    failures = metrics.AUDIT_WRITE_FAILURES._value.get()
    async with http_client(svc) as client:
        created = await client.post("/v2/api-keys", json={"name": "x", "expiration": "never"}, headers=svc.headers())

    assert created.status_code == 200, created.text
    assert metrics.AUDIT_WRITE_FAILURES._value.get() == failures + 1


def test_only_changing_requests_of_known_callers_outside_the_payment_flow_are_entries() -> None:
    actor = AuditActor(AuditActorKind.API_KEY, MERCHANT, "key_1")
    assert audited("DELETE", "/v2/api-keys/{key_id}", actor)
    assert not audited("GET", "/v2/api-keys/{key_id}", actor)
    assert not audited("DELETE", "/v2/api-keys/{key_id}", None)
    assert not audited("DELETE", None, actor)
    assert not audited("POST", "/v2/payments/recovery", actor)
    assert not audited("POST", "/events/{merchant_id}", actor)


async def test_the_profile_a_request_named_is_kept_to_an_ids_length() -> None:
    """`x-profile-id` is recorded as the request named it, before it is checked: a long one is cut."""
    svc = intake()
    async with http_client(svc) as client:
        answer = await client.post(
            "/v2/api-keys",
            json={"name": "x", "expiration": "never"},
            headers={**svc.headers(), "x-profile-id": "p" * 5000},
        )

    assert answer.status_code in (200, 404), answer.text
    [entry] = trail(svc)
    assert entry.actor.profile_id == "p" * 64
