"""Endpoint health as the console reads it: the success rate and latency of recent attempts, the breaker and
the disabled flag per profile and URL, for the calling merchant only (its one profile on a profile-level call)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from fastapi import FastAPI

from recovery_dispatcher.domain.breaker import CircuitBreaker, CircuitState
from recovery_dispatcher.domain.endpoint_status import AttemptSample, EndpointStatus, recent_deliveries
from recovery_dispatcher.http import endpoints_router
from recovery_runtime.internal_api import MERCHANT_HEADER, PROFILE_HEADER, TOKEN_HEADER, InternalCaller

TOKEN = "internal-token-for-tests"
NOW = datetime(2026, 12, 3, 10, 0, tzinfo=UTC)


def test_recent_deliveries_give_the_success_rate_and_the_latency() -> None:
    samples = [AttemptSample(True, ms) for ms in (10, 20, 30, 40, 50, 60, 70, 80, 90)] + [AttemptSample(False, None)]
    recent = recent_deliveries(samples)
    assert (recent.attempts, recent.delivered, recent.success_rate) == (10, 9, 0.9)
    assert (recent.latency_ms_mean, recent.latency_ms_p90) == (50.0, 90)  # nearest rank of the 9 answer times


def test_no_attempt_has_no_rate_and_no_latency() -> None:
    recent = recent_deliveries([])
    assert (recent.attempts, recent.success_rate, recent.latency_ms_mean, recent.latency_ms_p90) == (
        0,
        None,
        None,
        None,
    )


class Statuses:
    def __init__(self, statuses: dict[str, list[EndpointStatus]]) -> None:
        self.statuses = statuses
        self.asked: list[str] = []

    async def of_merchant(self, merchant_id: str) -> list[EndpointStatus]:
        self.asked.append(merchant_id)
        return self.statuses.get(merchant_id, [])


OPEN = CircuitBreaker(CircuitState.OPEN, consecutive_failures=5, opened_at=NOW, cooldown=timedelta(seconds=30))
FAILING = EndpointStatus(
    profile_id="pro_1",
    url="https://merchant.example/hooks",
    current=True,
    enabled=True,
    disabled_reason="410 Gone",
    failing_since=NOW - timedelta(hours=1),
    breaker=OPEN,
    slow_responses=2,
    last_slow_at=NOW,
    recent=recent_deliveries([AttemptSample(True, 120), AttemptSample(False, 30)]),
)


@pytest.fixture
def statuses() -> Statuses:
    return Statuses({"merchant_a": [FAILING]})


@pytest.fixture
async def internal(statuses: Statuses) -> httpx.AsyncClient:
    app = FastAPI()
    app.include_router(endpoints_router(statuses, InternalCaller(TOKEN)))
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://dispatcher")


async def test_the_merchants_endpoints_with_their_breaker_latency_and_disabled_flag(
    internal: httpx.AsyncClient,
) -> None:
    answer = await internal.get(
        "/internal/endpoints/merchant_a", headers={TOKEN_HEADER: TOKEN, MERCHANT_HEADER: "merchant_a"}
    )

    assert answer.status_code == 200, answer.text
    [endpoint] = answer.json()["endpoints"]
    assert endpoint == {
        "profile_id": "pro_1",
        "url": "https://merchant.example/hooks",
        "current": True,
        "enabled": True,
        "disabled": True,
        "disabled_reason": "410 Gone",
        "failing_since": "2026-12-03T09:00:00.000Z",
        "breaker": {
            "state": "open",
            "consecutive_failures": 5,
            "opened_at": "2026-12-03T10:00:00.000Z",
            "retry_at": "2026-12-03T10:00:30.000Z",
        },
        "slow_responses": 2,
        "last_slow_at": "2026-12-03T10:00:00.000Z",
        "recent_attempts": 2,
        "recent_delivered": 1,
        "success_rate": 0.5,
        "latency_ms": {"mean": 75.0, "p90": 120},
    }


async def test_another_merchant_or_no_token_reads_nothing(internal: httpx.AsyncClient, statuses: Statuses) -> None:
    path = "/internal/endpoints/merchant_a"
    as_other = await internal.get(path, headers={TOKEN_HEADER: TOKEN, MERCHANT_HEADER: "merchant_b"})
    without_token = await internal.get(path, headers={MERCHANT_HEADER: "merchant_a"})
    none_yet = await internal.get(
        "/internal/endpoints/merchant_b", headers={TOKEN_HEADER: TOKEN, MERCHANT_HEADER: "merchant_b"}
    )

    assert (as_other.status_code, without_token.status_code) == (404, 403)
    assert none_yet.json() == {"merchant_id": "merchant_b", "endpoints": []}
    assert statuses.asked == ["merchant_b"]


async def test_a_profile_level_call_reads_its_profiles_endpoints_only() -> None:
    other_profile = replace(FAILING, profile_id="pro_2", url="https://merchant.example/other")
    app = FastAPI()
    app.include_router(endpoints_router(Statuses({"merchant_a": [FAILING, other_profile]}), InternalCaller(TOKEN)))
    internal = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://dispatcher")
    merchant = {TOKEN_HEADER: TOKEN, MERCHANT_HEADER: "merchant_a"}

    def profiles(answer: httpx.Response) -> list[str]:
        assert answer.status_code == 200, answer.text
        return [endpoint["profile_id"] for endpoint in answer.json()["endpoints"]]

    path = "/internal/endpoints/merchant_a"
    assert profiles(await internal.get(path, headers={**merchant, PROFILE_HEADER: "pro_1"})) == ["pro_1"]
    assert profiles(await internal.get(path, headers={**merchant, PROFILE_HEADER: "pro_2"})) == ["pro_2"]
    assert profiles(await internal.get(path, headers=merchant)) == ["pro_1", "pro_2"]
