"""The least-privilege tables are the collections the services really use: the seed's scenario (and a paced
charge) runs on the whole system with a PyMongo command listener in every service process (the benchmark's
bench/instrument), and every collection a service sent a command to is one docs/deployment.md grants it; the
same tables in docs/security.md agree. A collection a release adds without its grant fails here, not in a
deployment whose role refuses it (intake's `rate_limits` went a day unlisted, its shared rate limit failing open
under such a role)."""

from __future__ import annotations

import os
import re
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

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
    scenario.run()

    grants = granted("deployment.md", "| service | collections it writes (and reads) |")
    seen = {service: set().union(*(used(stack.url(i)) for i in stack.instances(service))) for service in SERVICES}
    # The scenario reached every service's own state (so the check below is not vacuous).
    assert {"payment_intents", "rate_limits"} <= seen["intake"]
    assert {"recoveries", "timers"} <= seen["scheduler"]
    assert {"attempts", "connector_pacing", "payment_fences"} <= seen["executor"]
    assert "webhook_events" in seen["webhook-dispatcher"] and "analytics_payments" in seen["analytics"]
    ungranted = {service: sorted(seen[service] - grants[service]) for service in SERVICES}
    assert not any(ungranted.values()), f"collections used but not granted (docs/deployment.md): {ungranted}"
