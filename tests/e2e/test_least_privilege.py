"""The least-privilege tables are the collections the services really use: the seed's scenario (and a paced
charge), then the paths past it (the read side, a data backfill, a cancel, the three billing systems' webhooks and
record backs, operators' resumes, the console) run on the whole system with a PyMongo command listener in every
service process (the benchmark's bench/instrument), and every collection a service sent a command to is one
docs/deployment.md grants it; the same tables in docs/security.md agree. A collection a release adds without its
grant fails here, not in a deployment whose role refuses it (intake's `rate_limits` went a day unlisted, its shared
rate limit failing open under such a role)."""

from __future__ import annotations

import os
import re
from datetime import UTC, datetime
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

from recovery_cli.billing_demo import ChargebeeScenario, StripeBillingScenario, poll
from recovery_cli.billing_recurly import RecurlyScenario
from recovery_cli.seed_scenario import MerchantSetup, ScenarioOutcome, SeedScenario
from recovery_cli.stack.components import EVERYTHING
from support.stack import StackFactory, resume_workflow, seed_scenario, setup_merchant

ROOT = Path(__file__).resolve().parents[2]
SERVICES = ("intake", "scheduler", "executor", "webhook-dispatcher", "analytics")
_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
_ROW = re.compile(r"^\| (intake|scheduler|executor|webhook-dispatcher|analytics) \| (.+) \|$")


def granted(doc: str, heading: str) -> dict[str, set[str]]:
    """The table under `heading` in docs/`doc`: service -> the collections it lists."""
    text = (ROOT / "docs" / doc).read_text()
    table = text[text.index(heading) :].split("\n\n", 1)[0]
    rows = {}
    for line in table.splitlines():
        match = _ROW.match(line)
        if match:
            rows[match.group(1)] = set(re.findall(r"`([a-z_]+)`", match.group(2)))
    return rows


def used(stack_url: str) -> set[str]:
    """The collections one service process sent commands to (the listener's counter on its /metrics)."""
    families = text_string_to_metric_families(httpx.get(f"{stack_url}/metrics", timeout=10).text)
    return {
        sample.labels["collection"]
        for family in families
        if family.name == "bench_mongo_commands"
        for sample in family.samples
        if sample.labels.get("collection")
    }


def beyond_the_seed(scenario: SeedScenario, outcome: ScenarioOutcome) -> None:
    """The paths past the seed's flow, each answered: the read side (tracker, timeline, intent, recovery list,
    analytics, retry statistics, events, their attempts, endpoints), a second recovery whose card takes a data
    backfill (card data and retry history), then its cancel by reference."""
    http, intake, headers = scenario.http, scenario.endpoints.intake_url, outcome.setup.headers()
    merchant, payment_id = outcome.setup.merchant_id, outcome.payment_id
    tracker = f"{intake}/v2/process-trackers/revenue-recovery-workflow/{payment_id}"
    reads = [
        tracker,
        f"{tracker}/timeline",
        f"{intake}/v2/payments/{payment_id}/get-revenue-recovery-intent",
        f"{intake}/v2/payments/recovery-list",
        f"{intake}/v2/revenue-recovery/analytics",
        f"{intake}/v2/revenue-recovery/retry-stats",
        f"{intake}/events/{merchant}/endpoints",
    ]
    for url in reads:
        answer = http.get(url, headers=headers)
        assert answer.status_code == 200, (url, answer.text)
    events = http.post(f"{intake}/events/{merchant}", json={}, headers=headers)
    assert events.status_code == 200, events.text
    event_id = events.json()["events"][0]["event_id"]
    attempts = http.get(f"{intake}/events/{merchant}/{event_id}/attempts", headers=headers)
    assert attempts.status_code == 200, attempts.text

    customer, card, reference = outcome.customer_id, outcome.payment_method_id, "least_privilege_2"
    scenario.request_recovery(outcome.setup, customer, card, merchant_reference_id=reference)
    history = f'"{{""{datetime.now(UTC).date().isoformat()}"": 1}}"'
    upload = f"customer_id_resp,token,card_network,daily_retry_history\n{customer},{card},Visa,{history}\n"
    backfill = http.post(
        f"{intake}/v2/recovery/data-backfill", files={"file": ("cards.csv", upload.encode())}, headers=headers
    )
    assert backfill.status_code == 200, backfill.text
    cancel = http.post(f"{intake}/v2/revenue-recovery/{reference}/cancel", headers=headers)
    assert cancel.status_code == 200, cancel.text


def resume(intake: str, setup: MerchantSetup, payment_id: str, task: str) -> None:
    answer = resume_workflow(intake, setup.headers(), payment_id, task)
    assert answer.status_code == 200, answer.text


def billing_systems_and_a_resume(scenario: SeedScenario) -> None:
    """Stripe Billing's and Chargebee's signed webhooks through to the invoice marked paid there; a recovery out of
    retries (one step of the ladder, insufficient funds) resumed by EXECUTE_WORKFLOW for one more attempt."""
    intake = scenario.endpoints.intake_url
    for billing in (StripeBillingScenario(scenario), ChargebeeScenario(scenario)):
        _, invoice, _ = billing.run()
        assert billing.recorded_paid(invoice), invoice

    short = setup_merchant(scenario, [60], max_retry_count=1)
    customer, card = scenario.customer_with_card("pm_card_chargeDeclinedInsufficientFunds")
    failed_id = scenario.request_recovery(short, customer, card)["id"]
    tracker = f"{intake}/v2/process-trackers/revenue-recovery-workflow/{failed_id}"
    poll(
        lambda: httpx.get(tracker, headers=short.headers(), timeout=10).json(),
        lambda found: found.get("recovery_status") == "failed",
        timeout=60,
    )
    charged = len(scenario.charges(customer))
    resume(intake, short, failed_id, "EXECUTE_WORKFLOW")
    poll(lambda: scenario.charges(customer), lambda charges: len(charges) == charged + 1, timeout=60)


def an_abandoned_record_back_started_again(scenario: SeedScenario) -> None:
    """Recurly's webhook; its record back refused until abandoned (three days of business time), then started
    again by the API's PSYNC resume, and the invoice marked paid."""
    recurly = RecurlyScenario(scenario)
    setup = recurly.connect(scenario.bootstrap(), retry_ladder_seconds=[60], max_jitter_seconds=0)
    failures = f"{recurly.sandbox}/_sandbox/record_failures"
    httpx.post(failures, json={"count": 1000, "status": 500}).raise_for_status()
    invoice = recurly.failed_invoice()
    payment_id = recurly.wait_for_merchant_webhook(invoice["id"]).body["content"]["object"]["id"]
    timeline = f"{scenario.endpoints.intake_url}/v2/process-trackers/revenue-recovery-workflow/{payment_id}/timeline"
    poll(
        lambda: httpx.get(timeline, headers=setup.merchant.headers(), timeout=10).json(),
        lambda found: [t["state"] for t in found.get("record_back") or []][-1:] == ["abandoned"],
        timeout=60,
    )
    httpx.post(failures, json={"count": 0}).raise_for_status()
    resume(scenario.endpoints.intake_url, setup.merchant, payment_id, "PSYNC_WORKFLOW")
    assert recurly.wait_for_invoice(invoice["id"])["state"] == "paid"


def console_pages(intake: str, api_key: str, merchant_id: str, pages: list[str]) -> None:
    """Signed in to the console as a browser would (the sign-in form's CSRF token, then the session cookie), each
    of `pages` answered 200."""
    with httpx.Client(base_url=f"{intake}/console", timeout=10) as console:
        form = console.get("/sign-in")
        token = _CSRF.search(form.text)
        assert token is not None, form.text
        signed_in = console.post(
            "/sign-in", data={"api_key": api_key, "merchant_id": merchant_id, "csrf_token": token.group(1)}
        )
        assert signed_in.status_code == 303 and signed_in.headers["location"].endswith("/overview"), signed_in.text
        for page in pages:
            answer = console.get(page)
            assert answer.status_code == 200, (page, answer.text[:500])


def the_console(scenario: SeedScenario, outcome: ScenarioOutcome) -> None:
    """A merchant's pages (overview, recoveries, a payment, webhooks, card data, retries) and the operator's."""
    intake, merchant = scenario.endpoints.intake_url, outcome.setup.merchant_id
    pages = ["/overview", "/recoveries", f"/payments/{outcome.payment_id}", "/webhooks", "/card-data", "/retries"]
    console_pages(intake, outcome.setup.api_key, merchant, pages)
    console_pages(intake, scenario.endpoints.admin_api_key, merchant, ["/overview", "/dead-letters", "/services"])


def test_the_tables_in_deployment_and_security_agree() -> None:
    deployment = granted("deployment.md", "| service | collections it writes (and reads) |")
    security = granted("security.md", "| service | collections (readWrite) |")
    assert set(deployment) == set(SERVICES)
    assert deployment == security


def test_every_collection_a_service_uses_is_granted_to_it(start_stack: StackFactory) -> None:
    instrument = str(ROOT / "bench" / "instrument")
    pythonpath = os.pathsep.join(filter(None, [instrument, os.environ.get("PYTHONPATH")]))
    monitored = {"PYTHONPATH": pythonpath, "BENCH_MONGO_MONITOR": "1"}
    stack = start_stack(
        EVERYTHING,
        extra_env=monitored,
        # Paced, so that the executor reserves its account's turns too.
        component_env={"executor": {"CONNECTOR_REQUESTS_PER_SECOND": "50"}},
    )
    scenario = seed_scenario(stack)
    outcome = scenario.run()
    beyond_the_seed(scenario, outcome)
    billing_systems_and_a_resume(scenario)
    the_console(scenario, outcome)
    seen = {service: set().union(*(used(stack.url(i)) for i in stack.instances(service))) for service in SERVICES}
    # The same deployment again, where a record back's three days of tries take seconds.
    stack.stop()
    fast = start_stack(EVERYTHING, extra_env=monitored, time_scale=100_000)
    an_abandoned_record_back_started_again(seed_scenario(fast))
    for service in SERVICES:
        seen[service] |= set().union(*(used(fast.url(i)) for i in fast.instances(service)))

    grants = granted("deployment.md", "| service | collections it writes (and reads) |")
    # The scenario reached every service's own state (so the check below is not vacuous).
    assert {"payment_intents", "rate_limits", "connector_accounts"} <= seen["intake"]
    assert {"recoveries", "timers"} <= seen["scheduler"]
    assert {"attempts", "connector_pacing", "payment_fences", "record_backs"} <= seen["executor"]
    assert "webhook_events" in seen["webhook-dispatcher"] and "analytics_payments" in seen["analytics"]
    ungranted = {service: sorted(seen[service] - grants[service]) for service in SERVICES}
    assert not any(ungranted.values()), f"collections used but not granted (docs/deployment.md): {ungranted}"
