"""Merchant isolation, endpoint by endpoint: no key, a wrong key, another merchant's key, another merchant's ids
and another merchant's profile are each refused; another merchant's ids answer exactly as ids that do not exist."""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from fastapi.routing import iter_route_contexts
from security_system import System, Tenant

from recovery_cli.scenario import PAYMENT_CONNECTOR_ACCOUNT, RECOVERY_REQUEST, seed_body
from recovery_runtime.service import Service


@dataclass(frozen=True)
class Endpoint:
    method: str
    # A path template over {merchant}, {profile}, {key}, {mca}, {payment}, {invoice}, {event}, {dispute} (the owner's
    # ids; no tenant has a dispute: a dispute id names none).
    path: str
    body: Callable[[Tenant, Tenant], Any] = lambda own, owner: None
    # Whether the path (or query) names a resource of its owner (then another merchant's id must read as
    # nonexistent).
    names_resource: bool = True
    admin_only: bool = False
    # A query template over the same ids, where the query names the resource.
    query: str = ""

    def url(self, owner: Tenant | None) -> str:
        if owner is None:
            ids = dict(
                merchant="nobody_Xx",
                profile="pro_00000000000000000000",
                key="key_00000000000000000000",
                mca="mca_00000000000000000000",
                payment="12345_pay_" + "0" * 32,
                invoice="invoice_nobody",
                event="evt_" + "0" * 32,
                dispute="dsp_" + "0" * 32,
            )
        else:
            ids = dict(
                merchant=owner.setup.merchant_id,
                profile=owner.setup.profile_id,
                key=owner.key_id,
                mca=owner.setup.payment_mca,
                payment=owner.payment_id,
                invoice=owner.reference,
                event="evt_" + "0" * 32,
                dispute="dsp_" + "0" * 32,
            )
        url = self.path.format(**ids)
        return f"{url}?{self.query.format(**ids)}" if self.query else url

    def __str__(self) -> str:
        return f"{self.method} {self.path}"


def recovery_body(own: Tenant, owner: Tenant) -> dict[str, Any]:
    """A recovery on `own`'s profile naming `owner`'s connector accounts."""
    body = seed_body(
        RECOVERY_REQUEST,
        customer_id_from_stripe="cus_x",
        payment_method_id_from_stripe="pm_x",
        billing_mca=owner.setup.billing_mca,
        payment_mca=owner.setup.payment_mca,
    )
    body["merchant_reference_id"] = "invoice_probe"
    return body


def connector_body(own: Tenant, owner: Tenant) -> dict[str, Any]:
    return seed_body(PAYMENT_CONNECTOR_ACCOUNT, api_key="sk_test_probe", profile_id=owner.setup.profile_id)


def disabling_body(own: Tenant, owner: Tenant) -> dict[str, Any]:
    """An update that would stop the account's charges, were it applied to another merchant's account."""
    return {"connector_type": "payment_processor", "disabled": True}


RESUME = {
    "revenue_recovery_task": "EXECUTE_WORKFLOW",
    "schedule_time": "2030-01-01T00:00:00.000Z",
    "status": "pending",
    "business_status": "Pending",
}


@pytest.fixture(scope="module")
def intake_settings() -> dict[str, Any]:
    """The tests below present bad keys from one address, one to three an endpoint: at the default refill of one
    failure a second they ran out of the address's failed-authentication budget (429s) once an endpoint was
    added. Five a second keeps them under it however long the module runs; the limit's own test guesses from
    another address, far faster than that."""
    return {"auth_failure_per_second": 5.0}


TOKEN_CLEARED = {"connector_customer_id": "cus_x", "payment_processor_token": "pm_x", "is_hard_decline": False}
ENDPOINTS = [
    Endpoint("POST", "/v2/merchant-accounts", lambda o, w: {"merchant_name": "probe"}, False, admin_only=True),
    Endpoint("GET", "/v2/merchant-accounts/{merchant}"),
    Endpoint("POST", "/v2/profiles", lambda o, w: {"profile_name": "probe"}, names_resource=False),
    Endpoint("GET", "/v2/profiles/{profile}"),
    Endpoint("PUT", "/v2/profiles/{profile}", lambda o, w: {"profile_name": "taken over"}),
    Endpoint("POST", "/v2/profiles/{profile}/webhook-secret/rotate", lambda o, w: {}),
    Endpoint("POST", "/v2/api-keys", lambda o, w: {"name": "probe", "expiration": "never"}, names_resource=False),
    Endpoint("GET", "/v2/api-keys/list", names_resource=False),
    Endpoint("GET", "/v2/api-keys/{key}"),
    Endpoint("PUT", "/v2/api-keys/{key}", lambda o, w: {"name": "taken over"}),
    Endpoint("DELETE", "/v2/api-keys/{key}"),
    Endpoint("POST", "/v2/connector-accounts", connector_body),
    Endpoint("GET", "/v2/connector-accounts/{mca}"),
    Endpoint("PUT", "/v2/connector-accounts/{mca}", disabling_body),
    Endpoint("POST", "/v2/payments/recovery", recovery_body),
    Endpoint("GET", "/v2/payments/{payment}"),
    Endpoint("POST", "/v2/revenue-recovery/{invoice}/cancel"),
    # The merchant's answer to a dispute on its payment (another merchant's payment reads as none).
    Endpoint("POST", "/v2/payments/{payment}/disputes/{dispute}/accept"),
    Endpoint("POST", "/v2/payments/{payment}/disputes/{dispute}/evidence", lambda o, w: {"uncategorized_text": "x"}),
    # A file for the evidence: sent without one, so an admitted call stops at the dispute (none here) or the file.
    Endpoint("POST", "/v2/payments/{payment}/disputes/{dispute}/files"),
    Endpoint("POST", "/events/{merchant}", lambda o, w: {}),
    Endpoint("GET", "/events/{merchant}/{event}/attempts"),
    Endpoint("POST", "/events/{merchant}/{event}/retry"),
    # The merchant's failed events of the last hour delivered again (none of these tenants has any).
    Endpoint(
        "POST",
        "/events/{merchant}/recover",
        lambda o, w: {"since": (datetime.now(UTC) - timedelta(hours=1)).isoformat()},
    ),
    Endpoint("GET", "/events/{merchant}/endpoints"),
    Endpoint("GET", "/v2/process-trackers/revenue-recovery-workflow/{payment}"),
    Endpoint("POST", "/v2/process-trackers/revenue-recovery-workflow/{payment}/resume", lambda o, w: RESUME),
    Endpoint("GET", "/v2/revenue-recovery/retry-stats", names_resource=False),
    # A multipart upload: sent here without its file, so an admitted call stops at the missing file (400).
    Endpoint("POST", "/v2/recovery/data-backfill", names_resource=False),
    # A customer's kept cards: the key's merchant's own, whoever the customer id names.
    Endpoint("GET", "/v2/recovery/data-backfill/cards", names_resource=False, query="connector_customer_id=cus_x"),
    Endpoint("DELETE", "/v2/recovery/data-backfill/cards", names_resource=False, query="connector_customer_id=cus_x"),
    # The merchant's word on a card: on the key's merchant's own cards, whatever the token names (here a clear of
    # a card with nothing recorded, which changes nothing).
    Endpoint("PUT", "/v2/recovery/data-backfill/update-token", lambda o, w: TOKEN_CLEARED, names_resource=False),
    Endpoint(
        "GET", "/v2/recovery/data-backfill/token-status", names_resource=False, query="payment_processor_token=pm_x"
    ),
    # The read side (answered by the analytics service). The admin key names a merchant with `merchant_id`; a
    # merchant key naming another merchant there must read as naming one that does not exist.
    Endpoint("GET", "/v2/payments/recovery-list", query="merchant_id={merchant}"),
    Endpoint("GET", "/v2/payments/{payment}/get-revenue-recovery-intent"),
    Endpoint("GET", "/v2/revenue-recovery/analytics", query="merchant_id={merchant}"),
    Endpoint("GET", "/v2/process-trackers/revenue-recovery-workflow/{payment}/timeline"),
    Endpoint("GET", "/v2/disputes/list", query="merchant_id={merchant}"),
    Endpoint("GET", "/v2/disputes/{dispute}"),
    # The audit trail: the key's merchant's; the admin key names it.
    Endpoint("GET", "/v2/audit-events", query="merchant_id={merchant}"),
]
MERCHANT_ENDPOINTS = [e for e in ENDPOINTS if not e.admin_only]
RESOURCE_ENDPOINTS = [e for e in MERCHANT_ENDPOINTS if e.names_resource]


def error_of(response: httpx.Response) -> dict[str, Any]:
    assert response.headers.get("content-type", "").startswith("application/json"), response.text
    return response.json()["error"]


def normalised(response: httpx.Response, *ids: str) -> tuple[int, str]:
    text = response.text
    for value in ids:
        text = text.replace(value, "<id>")
    return response.status_code, text


@pytest.mark.parametrize("endpoint", ENDPOINTS, ids=str)
def test_without_a_valid_key_nothing_is_answered(system: System, endpoint: Endpoint) -> None:
    a = system.a
    body = endpoint.body(a, a)
    no_key = {k: v for k, v in a.headers().items() if k != "api-key"}
    for headers in (no_key, a.headers(**{"api-key": "snd_" + "x" * 43}), a.headers(**{"api-key": ""})):
        response = system.call(endpoint.method, endpoint.url(a), headers, body)
        assert response.status_code == 401, (endpoint, response.text)
        assert error_of(response)["code"] == "IR_01"


@pytest.mark.parametrize("endpoint", MERCHANT_ENDPOINTS, ids=str)
def test_another_merchants_key_cannot_act_for_this_merchant(system: System, endpoint: Endpoint) -> None:
    a, b = system.a, system.b
    # B's key presented with A's merchant id (and A's profile): refused before anything is looked up.
    response = system.call(
        endpoint.method, endpoint.url(a), b.headers(**{"x-merchant-id": a.setup.merchant_id}), endpoint.body(a, a)
    )
    assert response.status_code == 401, (endpoint, response.text)
    assert "x-merchant-id" in error_of(response).get("reason", "")


@pytest.mark.parametrize("endpoint", MERCHANT_ENDPOINTS, ids=str)
def test_a_profile_of_another_merchant_reads_as_a_profile_that_does_not_exist(
    system: System, endpoint: Endpoint
) -> None:
    a, b = system.a, system.b
    foreign = system.call(
        endpoint.method, endpoint.url(a), a.headers(**{"x-profile-id": b.setup.profile_id}), endpoint.body(a, a)
    )
    unknown_id = "pro_" + "9" * 20
    unknown = system.call(
        endpoint.method, endpoint.url(a), a.headers(**{"x-profile-id": unknown_id}), endpoint.body(a, a)
    )
    assert foreign.status_code == 404, (endpoint, foreign.text)
    assert normalised(foreign, b.setup.profile_id) == normalised(unknown, unknown_id)


@pytest.mark.parametrize("endpoint", RESOURCE_ENDPOINTS, ids=str)
def test_another_merchants_ids_read_as_ids_that_do_not_exist(system: System, endpoint: Endpoint) -> None:
    a, b = system.a, system.b
    if "process-trackers" in endpoint.path:
        wait_for_recovery(system, b)
    if endpoint.method == "GET" and "{event}" not in endpoint.path and "{dispute}" not in endpoint.path:
        # B's resource exists where it is read (the read side catches up in its own time), so that A's answer
        # below is about a resource that is there, not one that is not yet.
        own = answered(system, endpoint.url(b), b.headers())
        assert own.status_code == 200, (endpoint, own.text)
    headers = a.headers()
    if endpoint.path == "/v2/connector-accounts":
        headers.pop("x-profile-id")  # the body names the profile
    foreign = system.call(endpoint.method, endpoint.url(b), headers, endpoint.body(a, b))
    absent = system.call(endpoint.method, endpoint.url(None), headers, endpoint.body(a, b))
    assert foreign.status_code == 404, (endpoint, foreign.text)
    ids = (
        b.setup.merchant_id,
        b.setup.profile_id,
        b.key_id,
        b.setup.payment_mca,
        b.setup.billing_mca,
        b.payment_id,
        b.reference,
        "nobody_Xx",
        "pro_00000000000000000000",
        "key_00000000000000000000",
        "mca_00000000000000000000",
        "12345_pay_" + "0" * 32,
    )
    if endpoint.path not in ("/v2/payments/recovery", "/v2/connector-accounts"):
        assert normalised(foreign, *ids) == normalised(absent, *ids), endpoint
    # Nothing of B's changed through A's calls.
    assert system.call("GET", f"/v2/profiles/{b.setup.profile_id}", b.headers()).json()["profile_name"] == "default"
    assert system.call("GET", "/v2/api-keys/list", b.headers()).status_code == 200
    assert system.call("GET", f"/v2/api-keys/{b.key_id}", b.headers()).json()["name"] != "taken over"
    account = system.call("GET", f"/v2/connector-accounts/{b.setup.payment_mca}", b.headers()).json()
    assert account["disabled"] is False
    assert system.call("GET", f"/v2/payments/{b.payment_id}", b.headers()).json()["status"] != "cancelled"


@pytest.mark.parametrize("path", ["/v2/payments/recovery-list", "/v2/revenue-recovery/analytics", "/v2/disputes/list"])
def test_the_read_side_filtered_by_another_merchants_profile_reads_as_an_unknown_profile(
    system: System, path: str
) -> None:
    a, b = system.a, system.b
    # B's payment is in the read model: a filter on its profile would find it, were the merchant not A's.
    assert answered(system, f"/v2/payments/{b.payment_id}/get-revenue-recovery-intent", b.headers()).status_code == 200
    unknown_id = "pro_" + "9" * 20
    foreign = system.call("GET", f"{path}?profile_id={b.setup.profile_id}", a.headers())
    unknown = system.call("GET", f"{path}?profile_id={unknown_id}", a.headers())
    assert foreign.status_code == 200, foreign.text
    assert normalised(foreign, b.setup.profile_id) == normalised(unknown, unknown_id)
    assert b.payment_id not in foreign.text


def test_listing_api_keys_shows_only_the_callers(system: System) -> None:
    listed = system.call("GET", "/v2/api-keys/list", system.a.headers()).json()
    assert {k["merchant_id"] for k in listed} == {system.a.setup.merchant_id}
    assert system.b.key_id not in {k["key_id"] for k in listed}


def test_a_revoked_or_expired_key_stops_working(system: System) -> None:
    a = system.a
    admin = {"api-key": system.scenario.endpoints.admin_api_key, "x-merchant-id": a.setup.merchant_id}
    created = system.call("POST", "/v2/api-keys", admin, {"name": "short", "expiration": "never"}).json()
    key = created["api_key"]
    assert key.startswith("snd_") and len(key) >= 4 + 43
    assert "api_key" not in system.call("GET", f"/v2/api-keys/{created['key_id']}", admin).json()
    headers = {"api-key": key, "x-merchant-id": a.setup.merchant_id}
    assert system.call("GET", "/v2/api-keys/list", headers).status_code == 200
    assert system.call("DELETE", f"/v2/api-keys/{created['key_id']}", admin).json()["revoked"] is True
    assert system.call("GET", "/v2/api-keys/list", headers).status_code == 401
    past = system.call("POST", "/v2/api-keys", admin, {"name": "old", "expiration": "2020-01-01T00:00:00Z"})
    assert past.status_code == 400 and "expiration" in past.text


def test_the_retry_statistics_are_the_callers_own_merchants(system: System) -> None:
    for tenant in (system.a, system.b):
        answer = system.call("GET", "/v2/revenue-recovery/retry-stats", tenant.headers())
        assert answer.status_code == 200, answer.text
        assert (answer.json()["merchant_id"], answer.json()["time_zone"]) == (tenant.setup.merchant_id, "UTC")


def answered(system: System, path: str, headers: dict[str, str], timeout: float = 20.0) -> httpx.Response:
    """`GET path`, asked again (for at most `timeout` seconds) until it answers 200: the services that answer
    the process tracker and the read side learn of a recovery from the broker, a moment after intake took it."""
    deadline = time.monotonic() + timeout
    while True:
        response = system.call("GET", path, headers)
        if response.status_code == 200 or time.monotonic() >= deadline:
            return response
        time.sleep(0.2)


def wait_for_recovery(system: System, tenant: Tenant) -> None:
    path = f"/v2/process-trackers/revenue-recovery-workflow/{tenant.payment_id}"
    response = answered(system, path, tenant.headers())
    assert response.status_code == 200, f"the scheduler never learned of the recovery: {response.text}"


# Which scopes may call each merchant endpoint (docs/security.md, "Scopes"); the admin key may call all.
PERMITTED = {
    "GET /v2/merchant-accounts/{merchant}": {"read_only", "management"},
    "POST /v2/profiles": {"management"},
    "GET /v2/profiles/{profile}": {"management"},
    "PUT /v2/profiles/{profile}": {"management"},
    "POST /v2/profiles/{profile}/webhook-secret/rotate": {"management"},
    "POST /v2/api-keys": {"management"},
    "GET /v2/api-keys/list": {"read_only", "management"},
    "GET /v2/api-keys/{key}": {"read_only", "management"},
    "PUT /v2/api-keys/{key}": {"management"},
    "DELETE /v2/api-keys/{key}": {"management"},
    "POST /v2/connector-accounts": {"management"},
    "GET /v2/connector-accounts/{mca}": {"read_only", "management"},
    "PUT /v2/connector-accounts/{mca}": {"management"},
    "POST /v2/payments/recovery": {"payments"},
    "GET /v2/payments/{payment}": {"payments", "read_only"},
    "POST /v2/revenue-recovery/{invoice}/cancel": {"payments"},
    "POST /v2/payments/{payment}/disputes/{dispute}/accept": {"payments"},
    "POST /v2/payments/{payment}/disputes/{dispute}/evidence": {"payments"},
    "POST /v2/payments/{payment}/disputes/{dispute}/files": {"payments"},
    "POST /events/{merchant}": {"payments", "read_only"},
    "GET /events/{merchant}/{event}/attempts": {"payments", "read_only"},
    "POST /events/{merchant}/{event}/retry": {"payments"},
    "POST /events/{merchant}/recover": {"payments"},
    "GET /events/{merchant}/endpoints": {"payments", "read_only"},
    "GET /v2/process-trackers/revenue-recovery-workflow/{payment}": {"payments", "read_only"},
    "POST /v2/process-trackers/revenue-recovery-workflow/{payment}/resume": {"payments"},
    "GET /v2/revenue-recovery/retry-stats": {"payments", "read_only"},
    "POST /v2/recovery/data-backfill": {"payments"},
    "GET /v2/recovery/data-backfill/cards": {"payments", "read_only"},
    "DELETE /v2/recovery/data-backfill/cards": {"payments"},
    "PUT /v2/recovery/data-backfill/update-token": {"payments"},
    "GET /v2/recovery/data-backfill/token-status": {"payments", "read_only"},
    "GET /v2/payments/recovery-list": {"payments", "read_only"},
    "GET /v2/payments/{payment}/get-revenue-recovery-intent": {"payments", "read_only"},
    "GET /v2/revenue-recovery/analytics": {"payments", "read_only"},
    "GET /v2/process-trackers/revenue-recovery-workflow/{payment}/timeline": {"payments", "read_only"},
    "GET /v2/disputes/list": {"payments", "read_only"},
    "GET /v2/disputes/{dispute}": {"payments", "read_only"},
    "GET /v2/audit-events": {"read_only", "management"},
}
SCOPES = ("payments", "read_only", "management")


def mint(system: System, scopes: list[str] | None, by: str | None = None) -> dict[str, Any]:
    """A new key of A's, made by the admin key or by the key `by`."""
    a = system.a
    creator = {"api-key": by or system.scenario.endpoints.admin_api_key, "x-merchant-id": a.setup.merchant_id}
    body: dict[str, Any] = {"name": "scoped", "expiration": "never"}
    if scopes is not None:
        body["scopes"] = scopes
    created = system.call("POST", "/v2/api-keys", creator, body)
    assert created.status_code == 200, created.text
    answer: dict[str, Any] = created.json()
    return answer


@pytest.fixture(scope="module")
def scoped_keys(system: System) -> dict[str, str]:
    return {scope: mint(system, [scope])["api_key"] for scope in SCOPES}


# Intake's routes that are not merchant routes: they authenticate otherwise (or not at all), so the tests above
# do not apply to them. A path ending in "/" stands for every path under it.
NOT_MERCHANT_ROUTES = {
    "/healthz": "liveness probe for the orchestrator: unauthenticated, says nothing of any merchant",
    "/readyz": "readiness probe, as /healthz",
    "/metrics": "Prometheus exposition for the operator's scraper: unauthenticated, no merchant's data",
    "/openapi.json": "the API's description: public, as Hyperswitch's reference is",
    "/docs": "the API's description, rendered",
    "/docs/oauth2-redirect": "part of the rendered description",
    "/redoc": "the API's description, rendered",
    "/console/": "the web console: a session signed in with a key (its pages scope to the session's merchant; "
    "tests/unit/intake/test_console_*)",
    "/internal/": "service-to-service APIs: the internal token, never a merchant's key",
    "/v2/webhooks/recovery/": "billing systems' webhooks: the billing system's own signature or basic auth, checked "
    "against the connector account the path names (tests/unit/intake/test_billing_*)",
    "/v2/webhooks/{merchant_id}/{profile_id}/{connector_account_id}": "payment connectors' webhooks (a lost "
    "dispute): Stripe's signature, checked with the secret of the payment connector account the path names "
    "(tests/unit/intake/test_payment_webhooks.py)",
}


def _route_shape(method_and_path: str) -> str:
    """`PUT /v2/api-keys/{key_id}` and `PUT /v2/api-keys/{key}` alike: parameters unnamed."""
    return re.sub(r"\{[^}]+\}", "{}", method_and_path)


def intake_routes(service: Service) -> set[str]:
    """Every `METHOD /path` intake's app serves but those NOT_MERCHANT_ROUTES names."""
    routes = set()
    for route in iter_route_contexts(service.app.routes):
        path = route.path or ""
        if any(path == p or (p.endswith("/") and path.startswith(p)) for p in NOT_MERCHANT_ROUTES):
            continue
        routes |= {f"{method} {path}" for method in route.methods or () if method != "HEAD"}
    return routes


def test_every_merchant_endpoint_is_listed_with_the_scopes_it_admits(intake_service: Service) -> None:
    """A route added to intake without its place in ENDPOINTS (and so in every test above) fails here."""
    served = {_route_shape(r) for r in intake_routes(intake_service)}
    listed = {_route_shape(str(e)) for e in ENDPOINTS}
    assert served - listed == set(), "intake serves these, but ENDPOINTS does not list them"
    assert listed - served == set(), "ENDPOINTS lists these, but intake does not serve them"
    assert set(PERMITTED) == {str(e) for e in MERCHANT_ENDPOINTS}


@pytest.mark.parametrize("scope", SCOPES)
@pytest.mark.parametrize("endpoint", MERCHANT_ENDPOINTS, ids=str)
def test_a_key_reaches_only_the_endpoints_its_scope_admits(
    system: System, scoped_keys: dict[str, str], endpoint: Endpoint, scope: str
) -> None:
    a = system.a
    headers = {"api-key": scoped_keys[scope], "x-profile-id": a.setup.profile_id}
    # Ids that do not exist: an admitted call goes as far as the lookup (404) and changes nothing of A's.
    response = system.call(endpoint.method, endpoint.url(None), headers, endpoint.body(a, a))
    if scope in PERMITTED[str(endpoint)]:
        assert response.status_code not in (401, 403), (endpoint, scope, response.text)
    else:
        assert response.status_code == 403, (endpoint, scope, response.text)
        error = error_of(response)
        assert error["code"] == "IR_22" and f"`{scope}`" in error["reason"], error


def test_a_key_grants_only_its_own_scopes_and_its_revocation_takes_the_keys_it_minted(system: System) -> None:
    a = system.a
    leaked = mint(system, ["management", "payments"])
    escalate = system.call(
        "POST", "/v2/api-keys", {"api-key": leaked["api_key"]}, {"name": "x", "expiration": "never", "scopes": SCOPES}
    )
    assert escalate.status_code == 403 and "`read_only`" in error_of(escalate)["reason"]
    child = mint(system, None, by=leaked["api_key"])
    assert child["scopes"] == ["management", "payments"]
    grandchild = mint(system, ["payments"], by=child["api_key"])
    payment = f"/v2/payments/{a.payment_id}"
    for key in (leaked, child, grandchild):
        assert system.call("GET", payment, {"api-key": key["api_key"]}).status_code == 200

    revoked = system.call("DELETE", f"/v2/api-keys/{leaked['key_id']}", a.headers())
    assert revoked.status_code == 200, revoked.text
    for key in (leaked, child, grandchild):
        response = system.call("GET", payment, {"api-key": key["api_key"]})
        assert response.status_code == 401, (key["key_id"], response.text)
    listed = {k["key_id"] for k in system.call("GET", "/v2/api-keys/list", a.headers()).json()}
    assert listed.isdisjoint({leaked["key_id"], child["key_id"], grandchild["key_id"]})
    assert a.key_id in listed


@pytest.mark.parametrize("header", ["api-key", "x-merchant-id", "x-profile-id"])
@pytest.mark.parametrize("endpoint", ENDPOINTS, ids=str)
def test_a_credential_header_sent_twice_is_refused(system: System, endpoint: Endpoint, header: str) -> None:
    a = system.a
    sent = list(a.headers().items())
    sent.append((header, "snd_" + uuid.uuid4().hex if header == "api-key" else dict(sent)[header]))
    response = httpx.request(
        endpoint.method, f"{system.intake_url}{endpoint.url(a)}", headers=sent, json=endpoint.body(a, a), timeout=30
    )
    assert response.status_code == 400, (endpoint, response.text)
    error = error_of(response)
    assert error["code"] == "IR_07" and f"{header} (header)" in error["message"], error


def test_failed_authentications_are_throttled_per_client_address(system: System) -> None:
    """From another loopback address (the server sees it as another client): guesses are refused with 429 once
    the address's failures exceed the burst (30 by default), and then even its valid key waits."""
    transport = httpx.HTTPTransport(local_address="127.0.0.2")
    with httpx.Client(transport=transport, base_url=system.intake_url, timeout=30) as guesser:
        statuses: list[int] = []
        while 429 not in statuses and len(statuses) < 300:
            guess = {"api-key": f"snd_{uuid.uuid4().hex}"}
            statuses.append(guesser.get("/v2/api-keys/list", headers=guess).status_code)
        assert statuses[-1] == 429 and set(statuses[:-1]) == {401}, statuses
        assert len(statuses) > 30  # the burst, plus what refilled meanwhile
        # Then the valid key waits too. This module refills the budget fast (its other tests' refusals must never
        # throttle them), so a slow machine may refill one failure between two requests: then a guess takes it and
        # the valid key is tried again at once, a few times at most.
        throttled = guesser.get("/v2/api-keys/list", headers=system.a.headers())
        for _ in range(4):
            if throttled.status_code == 429:
                break
            guesser.get("/v2/api-keys/list", headers={"api-key": f"snd_{uuid.uuid4().hex}"})
            throttled = guesser.get("/v2/api-keys/list", headers=system.a.headers())
        assert throttled.status_code == 429 and int(throttled.headers["retry-after"]) >= 1
        assert error_of(throttled)["code"] == "RR_01"
    assert system.call("GET", "/v2/api-keys/list", system.a.headers()).status_code == 200
