"""Profile-level calls through intake (`x-profile-id`), as in Hyperswitch v2: with profile A named, a payment, a
recovery or a webhook event of the merchant's profile B answers exactly as one that does not exist, on every route
intake forwards (the scheduler's process tracker, the dispatcher's events API and endpoints, the read side) as on
intake's own `GET /v2/payments/{id}`; lists are A's; without the header the merchant's every profile is seen."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from recovery_cli.seed_scenario import Endpoints, MerchantSetup, SeedScenario
from recovery_contracts.ids import idempotent_event_id
from recovery_sandbox.receiver import create_app as receiver_app
from support.broker import BrokerProbe, broker_probe, eventually
from support.payments import payment_succeeded, recovery_payment
from support.services import intake_with_its_owners
from support.stack import Isolation

ADMIN_KEY = "test_admin_key_profile_scoping"
RESUME = {
    "revenue_recovery_task": "EXECUTE_WORKFLOW",
    "schedule_time": "2026-01-16T09:00:00Z",
    "status": "pending",
    "business_status": "Pending",
}
UNKNOWN_PAYMENT = "12345_pay_0000000000000000000000000000dead"
UNKNOWN_EVENT = "evt_00000000000000000000000000000000"


@dataclass(frozen=True)
class Tenant:
    """One merchant with two profiles, A and B, a payment in recovery on each, and a webhook event of each."""

    intake: str
    merchant_id: str
    api_key: str
    profile_a: str
    profile_b: str
    payment_a: str
    payment_b: str
    event_a: str
    event_b: str

    def call(self, method: str, path: str, *, profile: str | None = None, **kwargs: Any) -> httpx.Response:
        headers = {"api-key": self.api_key}
        if profile is not None:
            headers["x-profile-id"] = profile
        return httpx.request(method, f"{self.intake}{path}", headers=headers, timeout=15.0, **kwargs)

    def answer(self, method: str, path: str, **kwargs: Any) -> tuple[int, Any]:
        got = self.call(method, path, **kwargs)
        return got.status_code, got.json()


async def webhook_event_of(broker: BrokerProbe, db: Any, merchant_id: str, profile_id: str) -> str:
    """A `payment_succeeded` event of the profile, recorded by the dispatcher: the executor's message handed to the
    dispatcher's queue alone (the other services would take its payment, which intake never accepted, as theirs)."""
    event = payment_succeeded(recovery_payment(merchant_id=merchant_id, profile_id=profile_id))
    await broker.publish_to_queue("dispatcher.payment-succeeded", event)
    key = idempotent_event_id(event.payload.attempt_id, "payment_succeeded")
    record = await eventually(
        lambda: db.webhook_events.find_one({"idempotent_event_id": key, "status": {"$in": ["delivered", "failed"]}})
    )
    return str(record["event_id"])


@pytest.fixture
async def tenant(serve: Any, isolation: Isolation, db: Any) -> Tenant:
    intake = serve(intake_with_its_owners(serve, isolation, admin_api_key=ADMIN_KEY, config_cache_seconds=0))
    receiver = serve(receiver_app())
    scenario = SeedScenario(Endpoints(intake.url, "http://127.0.0.1:1", receiver.url, ADMIN_KEY), say=lambda _: None)
    merchant_id = scenario.create_merchant()
    api_key = scenario.create_api_key(merchant_id)
    payments, events = [], []
    profiles = [scenario.create_profile(merchant_id, f"{receiver.url}/hook/{n}") for n in ("a", "b")]
    async with broker_probe(isolation.rabbitmq_url) as broker:
        for n, profile in enumerate(profiles):
            payment_mca, billing_mca = scenario.create_connector_accounts(merchant_id, profile["id"], api_key)
            setup = MerchantSetup(merchant_id, profile["id"], api_key, "", None, payment_mca, billing_mca)
            accepted = scenario.request_recovery(setup, "cus_scoping", "pm_card_visa", merchant_reference_id=f"inv_{n}")
            payments.append(str(accepted["id"]))
            # The profile's endpoint reaches the dispatcher with profile.updated; then a webhook event of the profile.
            await eventually(lambda p=profile["id"]: db.webhook_endpoints.find_one({"_id": p}), timeout=40)
            events.append(await webhook_event_of(broker, db, merchant_id, profile["id"]))
    for payment_id in payments:
        await eventually(lambda p=payment_id: db.recoveries.find_one({"_id": p}), timeout=40)
        await eventually(lambda p=payment_id: db.analytics_payments.find_one({"_id": p}), timeout=40)
    return Tenant(intake.url, merchant_id, api_key, *(p["id"] for p in profiles), *payments, *events)


@pytest.mark.timeout(240)
async def test_another_profiles_payment_reads_as_one_that_does_not_exist_on_every_route(tenant: Tenant) -> None:
    a, b = tenant.profile_a, tenant.profile_b
    read_routes = [
        ("GET", "/v2/payments/{}"),  # intake's own: the rule the forwarded routes follow
        ("GET", "/v2/process-trackers/revenue-recovery-workflow/{}"),
        ("POST", "/v2/process-trackers/revenue-recovery-workflow/{}/resume"),
        ("GET", "/v2/payments/{}/get-revenue-recovery-intent"),
        ("GET", "/v2/process-trackers/revenue-recovery-workflow/{}/timeline"),
    ]
    for method, route in read_routes:
        body = {"json": RESUME} if method == "POST" else {}
        theirs = tenant.answer(method, route.format(tenant.payment_b), profile=a, **body)
        unknown = tenant.answer(method, route.format(UNKNOWN_PAYMENT), profile=a, **body)
        assert theirs == unknown, route
        assert theirs[0] == 404 and theirs[1]["error"]["code"] == "HE_02", route
        # Found by their own profile, and merchant-wide without one (a resume of a recovery in progress is refused
        # as such, 400: found, not 404).
        for profile in (b, None):
            found = tenant.call(method, route.format(tenant.payment_b), profile=profile, **body)
            assert found.status_code == (400 if method == "POST" else 200), (route, profile, found.text)
        own = tenant.call(method, route.format(tenant.payment_a), profile=a, **body)
        assert own.status_code == (400 if method == "POST" else 200), (route, own.text)


@pytest.mark.timeout(240)
async def test_the_read_side_lists_and_figures_are_the_profiles(tenant: Tenant) -> None:
    a, b = tenant.profile_a, tenant.profile_b

    def listed(**kwargs: Any) -> list[str]:
        answer = tenant.call("GET", "/v2/payments/recovery-list", **kwargs)
        assert answer.status_code == 200, answer.text
        return [p["id"] for p in answer.json()["data"]]

    assert listed(profile=a) == listed(params={"profile_id": a}) == [tenant.payment_a]
    assert sorted(listed()) == sorted([tenant.payment_a, tenant.payment_b])
    # Both named and different: the list of a profile outside the call's, as of a profile that does not exist.
    assert listed(profile=a, params={"profile_id": b}) == listed(params={"profile_id": "pro_doesnotexist"}) == []
    # The admin key naming the merchant (`merchant_id`) is profile-level with `x-profile-id` too.
    admin = httpx.get(
        f"{tenant.intake}/v2/payments/recovery-list",
        params={"merchant_id": tenant.merchant_id},
        headers={"api-key": ADMIN_KEY, "x-profile-id": b},
    )
    assert [p["id"] for p in admin.json()["data"]] == [tenant.payment_b]

    def total(**kwargs: Any) -> int:
        answer = tenant.call("GET", "/v2/revenue-recovery/analytics", **kwargs)
        assert answer.status_code == 200, answer.text
        return int(answer.json()["payments_total"])

    assert (total(profile=a), total(profile=b), total()) == (1, 1, 2)
    assert total(profile=a, params={"profile_id": b}) == 0


@pytest.mark.timeout(240)
async def test_another_profiles_webhook_event_reads_as_one_that_does_not_exist(tenant: Tenant) -> None:
    a, b = tenant.profile_a, tenant.profile_b
    events = f"/events/{tenant.merchant_id}"
    for method, route in (("GET", "/{}/attempts"), ("POST", "/{}/retry")):
        theirs = tenant.answer(method, events + route.format(tenant.event_b), profile=a)
        unknown = tenant.answer(method, events + route.format(UNKNOWN_EVENT), profile=a)
        assert theirs == unknown and theirs[0] == 404, route
    assert tenant.call("GET", f"{events}/{tenant.event_b}/attempts", profile=b).status_code == 200
    assert tenant.call("GET", f"{events}/{tenant.event_b}/attempts").status_code == 200
    assert tenant.call("GET", f"{events}/{tenant.event_a}/attempts", profile=a).status_code == 200

    def listed(profile: str | None, body: dict[str, Any]) -> dict[str, Any]:
        answer = tenant.call("POST", events, profile=profile, json=body)
        assert answer.status_code == 200, answer.text
        return dict(answer.json())

    assert [e["event_id"] for e in listed(a, {})["events"]] == [tenant.event_a]
    assert [e["event_id"] for e in listed(a, {"profile_id": a})["events"]] == [tenant.event_a]
    assert {e["event_id"] for e in listed(None, {})["events"]} == {tenant.event_a, tenant.event_b}
    assert listed(a, {"profile_id": b}) == listed(None, {"profile_id": "pro_doesnotexist"})
    assert listed(a, {"profile_id": b})["total_count"] == 0

    def endpoint_profiles(profile: str | None) -> list[str]:
        answer = tenant.call("GET", f"{events}/endpoints", profile=profile)
        assert answer.status_code == 200, answer.text
        return sorted({e["profile_id"] for e in answer.json()["endpoints"]})

    assert (endpoint_profiles(a), endpoint_profiles(b)) == ([a], [b])
    assert endpoint_profiles(None) == sorted([a, b])
