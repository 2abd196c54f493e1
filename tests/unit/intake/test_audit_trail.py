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
