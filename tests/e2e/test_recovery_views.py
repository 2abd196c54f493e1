"""The read side through intake's public door: after a recovery succeeds, its merchant sees it in the recovery
list, its recovery intent, the analytics and its timeline; another merchant cannot reach it; the admin key names
the merchant it reads."""

from __future__ import annotations

from typing import Any

import httpx

from recovery_cli.seed_scenario import Endpoints, SeedScenario
from recovery_cli.stack import Stack
from support.broker import eventually


async def test_a_recovered_payment_is_in_its_merchants_read_model_and_nobody_elses(stack: Stack) -> None:
    scenario = SeedScenario(Endpoints.of(stack), say=lambda _: None)
    setup = scenario.bootstrap()
    customer, payment_method = scenario.customer_with_card("pm_card_visa")
    payment_id = scenario.request_recovery(setup, customer, payment_method)["id"]
    scenario.wait_for_webhook(payment_id, timeout=60)
    other = scenario.bootstrap()
    mine = {"api-key": setup.api_key}

    async with httpx.AsyncClient(base_url=stack.intake_url, timeout=10) as intake:

        async def recovered() -> dict[str, Any] | None:
            figures = (await intake.get("/v2/revenue-recovery/analytics", headers=mine)).json()
            return figures if figures.get("payments_recovered") == 1 else None

        figures = await eventually(recovered, timeout=60)
        assert (figures["payments_total"], figures["recovery_rate"]) == (1, 1.0)
        assert figures["recovered_amount"] == {"USD": 2250}
        assert figures["by_attempt_number"] == {"1": 1}

        listed = (await intake.get("/v2/payments/recovery-list", headers=mine, params={"status": "recovered"})).json()
        assert [(p["id"], p["status"], p["attempt_count"]) for p in listed["data"]] == [(payment_id, "recovered", 1)]
        intent = await intake.get(f"/v2/payments/{payment_id}/get-revenue-recovery-intent", headers=mine)
        assert intent.status_code == 200, intent.text
        assert (intent.json()["id"], intent.json()["status"]) == (payment_id, "recovered")
        assert intent.json()["merchant_reference_id"] == "test_ffhgfewf3476f5"
        timeline_path = f"/v2/process-trackers/revenue-recovery-workflow/{payment_id}/timeline"
        timeline = await intake.get(timeline_path, headers=mine)
        assert timeline.status_code == 200, timeline.text
        assert [e["kind"] for e in timeline.json()["entries"]] == [
            "recovery_accepted",
            "attempt_succeeded",
            "recovery_finished",
        ]
        assert timeline.json()["attempts"][0]["token"] == payment_method

        theirs = {"api-key": other.api_key}
        not_theirs = [
            await intake.get(f"/v2/payments/{payment_id}/get-revenue-recovery-intent", headers=theirs),
            await intake.get(f"/v2/process-trackers/revenue-recovery-workflow/{payment_id}/timeline", headers=theirs),
            await intake.get("/v2/payments/recovery-list", headers=theirs, params={"merchant_id": setup.merchant_id}),
        ]
        assert [answer.status_code for answer in not_theirs] == [404, 404, 404]
        assert (await intake.get("/v2/payments/recovery-list", headers=theirs)).json()["total_count"] == 0

        admin = {"api-key": stack.config.admin_api_key}
        named = {"merchant_id": setup.merchant_id}
        as_admin = await intake.get("/v2/payments/recovery-list", headers=admin, params=named)
        assert [p["id"] for p in as_admin.json()["data"]] == [payment_id]
        unknown = await intake.get("/v2/revenue-recovery/analytics", headers={"api-key": "snd_not_a_key"})
        assert unknown.status_code == 401
