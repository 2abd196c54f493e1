"""The least-privilege tables are the collections the services really use: the seed's scenario (and a paced
charge) runs on the whole system with a PyMongo command listener in every service process (the benchmark's
bench/instrument), and every collection a service sent a command to is one docs/deployment.md grants it; the
same tables in docs/security.md agree. A collection a release adds without its grant fails here, not in a
deployment whose role refuses it (intake's `rate_limits` went a day unlisted, its shared rate limit failing open
under such a role)."""

from __future__ import annotations

import os
import re
from datetime import UTC, datetime
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

from recovery_cli.demo import ScenarioOutcome, SeedScenario
from recovery_cli.stack.components import EVERYTHING
from support.stack import StackFactory, seed_scenario

ROOT = Path(__file__).resolve().parents[2]
SERVICES = ("intake", "scheduler", "executor", "webhook-dispatcher", "analytics")
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


def test_the_tables_in_deployment_and_security_agree() -> None:
    deployment = granted("deployment.md", "| service | collections it writes (and reads) |")
    security = granted("security.md", "| service | collections (readWrite) |")
    assert set(deployment) == set(SERVICES)
    assert deployment == security


def test_every_collection_a_service_uses_is_granted_to_it(start_stack: StackFactory) -> None:
    instrument = str(ROOT / "bench" / "instrument")
    pythonpath = os.pathsep.join(filter(None, [instrument, os.environ.get("PYTHONPATH")]))
    stack = start_stack(
        EVERYTHING,
        extra_env={"PYTHONPATH": pythonpath, "BENCH_MONGO_MONITOR": "1"},
        # Paced, so that the executor reserves its account's turns too.
        component_env={"executor": {"CONNECTOR_REQUESTS_PER_SECOND": "50"}},
    )
    scenario = seed_scenario(stack)
    outcome = scenario.run()
    beyond_the_seed(scenario, outcome)

    grants = granted("deployment.md", "| service | collections it writes (and reads) |")
    seen = {service: set().union(*(used(stack.url(i)) for i in stack.instances(service))) for service in SERVICES}
    # The scenario reached every service's own state (so the check below is not vacuous).
    assert {"payment_intents", "rate_limits"} <= seen["intake"]
    assert {"recoveries", "timers"} <= seen["scheduler"]
    assert {"attempts", "connector_pacing", "payment_fences"} <= seen["executor"]
    assert "webhook_events" in seen["webhook-dispatcher"] and "analytics_payments" in seen["analytics"]
    ungranted = {service: sorted(seen[service] - grants[service]) for service in SERVICES}
    assert not any(ungranted.values()), f"collections used but not granted (docs/deployment.md): {ungranted}"
