"""The events API on a profile-level call (`x-internal-profile-id`): the profile's events only. Another profile's
event answers as an unknown one, the list is the profile's (a filter naming another profile lists nothing, as for
a profile without events), and a merchant-level call sees every profile's."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from recovery_dispatcher.adapters.event_documents import initial_document
from recovery_dispatcher.domain.event import WebhookEvent
from recovery_dispatcher.domain.ids import initial_event_id
from recovery_dispatcher.handlers.recover_failed import Recovered
from recovery_dispatcher.http import router
from recovery_runtime.internal_api import MERCHANT_HEADER, PROFILE_HEADER, TOKEN_HEADER, InternalCaller

from .fakes import InMemoryEvents, RecordQueries

TOKEN = "internal-token-for-tests"
MERCHANT = "merchant_test"
T0 = datetime(2026, 12, 3, 10, 0, tzinfo=UTC)
AS_MERCHANT = {TOKEN_HEADER: TOKEN, MERCHANT_HEADER: MERCHANT}
AS_A = {**AS_MERCHANT, PROFILE_HEADER: "pro_a"}


def event(profile_id: str, n: int) -> WebhookEvent:
    idempotent = f"idem_{profile_id}_{n}"
    return WebhookEvent(
        event_id=initial_event_id(idempotent, T0 + timedelta(seconds=n)),
        idempotent_event_id=idempotent,
        event_type="payment_succeeded",
        primary_object_id=f"12345_att_{profile_id}_{n}",
        payment_id=f"12345_pay_{profile_id}_{n}",
        merchant_id=MERCHANT,
        profile_id=profile_id,
        created_at=T0 + timedelta(seconds=n),
        body=b"{}",
        sequence=1,
    )


@dataclass
class EventsApi:
    http: httpx.AsyncClient
    queries: RecordQueries
    retried: list[str]
    # What each recover asked for: (merchant, profile).
    recovered: list[tuple[str, str | None]]
    a: WebhookEvent
    b: WebhookEvent


@pytest.fixture
async def api() -> EventsApi:
    events = InMemoryEvents()
    a, b = event("pro_a", 1), event("pro_b", 2)
    for recorded in (a, b):
        events.recorded_elsewhere(recorded)
    queries = RecordQueries([initial_document(e) for e in (a, b)])
    retried: list[str] = []

    async def retry_event(initial: WebhookEvent) -> dict[str, Any]:
        retried.append(initial.event_id)
        return initial_document(initial)

    recovered: list[tuple[str, str | None]] = []

    async def recover(
        merchant_id: str, since: datetime, until: datetime | None, profile_id: str | None, cursor: str | None
    ) -> Recovered:
        recovered.append((merchant_id, profile_id))
        return Recovered([], None)

    app = FastAPI()
    app.include_router(router(events, queries, retry_event, recover, InternalCaller(TOKEN)))
    http = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://dispatcher")
    return EventsApi(http, queries, retried, recovered, a, b)


def listed(answer: httpx.Response) -> list[str]:
    assert answer.status_code == 200, answer.text
    return [e["event_id"] for e in answer.json()["events"]]


async def test_another_profiles_event_answers_as_an_unknown_one(api: EventsApi) -> None:
    base = f"/internal/events/{MERCHANT}"
    own = await api.http.get(f"{base}/{api.a.event_id}/attempts", headers=AS_A)
    other = await api.http.get(f"{base}/{api.b.event_id}/attempts", headers=AS_A)
    unknown = await api.http.get(f"{base}/evt_unknown/attempts", headers=AS_A)
    retry_other = await api.http.post(f"{base}/{api.b.event_id}/retry", headers=AS_A)
    retry_unknown = await api.http.post(f"{base}/evt_unknown/retry", headers=AS_A)
    merchant_level = await api.http.get(f"{base}/{api.b.event_id}/attempts", headers=AS_MERCHANT)

    assert own.status_code == 200 and [r["event_id"] for r in own.json()] == [api.a.event_id]
    assert other.status_code == 404 and (other.status_code, other.json()) == (unknown.status_code, unknown.json())
    assert (retry_other.status_code, retry_other.json()) == (retry_unknown.status_code, retry_unknown.json())
    assert retry_other.status_code == 404 and api.retried == []
    assert merchant_level.status_code == 200 and merchant_level.json()[0]["profile_id"] == "pro_b"


async def test_the_list_is_the_profiles_and_a_filter_on_another_profile_lists_nothing(api: EventsApi) -> None:
    path = f"/internal/events/{MERCHANT}/list"

    as_a = await api.http.post(path, json={}, headers=AS_A)
    as_a_filtered = await api.http.post(path, json={"profile_id": "pro_a"}, headers=AS_A)
    as_a_asking_b = await api.http.post(path, json={"profile_id": "pro_b"}, headers=AS_A)
    nonexistent = await api.http.post(path, json={"profile_id": "pro_none"}, headers=AS_MERCHANT)
    merchant_level = await api.http.post(path, json={}, headers=AS_MERCHANT)
    merchant_asking_b = await api.http.post(path, json={"profile_id": "pro_b"}, headers=AS_MERCHANT)

    assert listed(as_a) == listed(as_a_filtered) == [api.a.event_id]
    assert (
        as_a_asking_b.json()
        == nonexistent.json()
        == {
            "events": [],
            "total_count": 0,
            "total_count_capped": False,
            "next_cursor": None,
        }
    )
    assert listed(merchant_level) == [api.b.event_id, api.a.event_id]
    assert listed(merchant_asking_b) == [api.b.event_id]
    # The profile-level lists were read with the profile's filter; the mismatch read nothing at all.
    assert [f.get("business_profile_id") for f in api.queries.filters] == ["pro_a", "pro_a", "pro_none", None, "pro_b"]


async def test_a_recover_is_of_the_calls_profile_and_never_of_another(api: EventsApi) -> None:
    base = f"/internal/events/{MERCHANT}/recover"
    since = {"since": T0.isoformat()}
    own = await api.http.post(base, json=since, headers=AS_A)
    named_own = await api.http.post(base, json={**since, "profile_id": "pro_a"}, headers=AS_A)
    other = await api.http.post(base, json={**since, "profile_id": "pro_b"}, headers=AS_A)
    merchant_wide = await api.http.post(base, json=since, headers=AS_MERCHANT)
    narrowed = await api.http.post(base, json={**since, "profile_id": "pro_b"}, headers=AS_MERCHANT)
    another_merchant = await api.http.post("/internal/events/merchant_other/recover", json=since, headers=AS_A)
    no_since = await api.http.post(base, json={}, headers=AS_A)

    assert [a.status_code for a in (own, named_own, other, merchant_wide, narrowed)] == [200] * 5
    assert other.json() == {"recovered_count": 0, "event_ids": [], "next_cursor": None, "refused_profiles": {}}
    # The profile-level call's own profile, never widened; the merchant-level call's as it asked.
    assert api.recovered == [(MERCHANT, "pro_a"), (MERCHANT, "pro_a"), (MERCHANT, None), (MERCHANT, "pro_b")]
    assert another_merchant.status_code == 404
    assert no_since.status_code == 400 and "since" in no_since.text
