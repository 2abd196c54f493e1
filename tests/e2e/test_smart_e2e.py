"""Smart through the services: a profile on `smart`, declines of several kinds from the Stripe sandbox, and what
its plans, network-budget reservations and token switch look like through the public API, up to the signed
webhook; and a payment accepted in monitoring, where cascading's and smart's shadow plans show. One stack, the
payments side by side, at a time scale where smart's day-scale waits take seconds."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import httpx

from recovery_cli.seed_scenario import MerchantSetup, SeedScenario
from recovery_cli.stack import Stack
from support.stack import attach_card, seed_scenario

TRACKER = "/v2/process-trackers/revenue-recovery-workflow"
# A business day is 4.3 s of wall clock: smart's wait after an insufficient-funds decline (a day, in the
# customer's daytime) is the longest step here.
TIME_SCALE = 20_000.0


def tracker(scenario: SeedScenario, setup: MerchantSetup, payment_id: str) -> dict[str, Any]:
    answer = scenario.http.get(f"{scenario.endpoints.intake_url}{TRACKER}/{payment_id}", headers=setup.headers())
    assert answer.status_code == 200, answer.text
    return dict(answer.json())


def wait_until(
    scenario: SeedScenario,
    setup: MerchantSetup,
    payment_id: str,
    condition: Callable[[dict[str, Any]], bool],
    what: str,
    timeout: float = 30.0,
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        view = tracker(scenario, setup, payment_id)
        if condition(view):
            return view
        assert time.monotonic() < deadline, f"{payment_id}: not {what}: {view}"
        time.sleep(0.05)


def fault(stack: Stack, payment_method: str, decline_code: str) -> None:
    armed = httpx.post(
        f"{stack.stripe_url}/_sandbox/faults",
        json={"payment_method": payment_method, "mode": "decline", "decline_code": decline_code, "times": 1},
    )
    assert armed.status_code < 300, armed.text


def choose_algorithm(scenario: SeedScenario, setup: MerchantSetup, algorithm: str) -> None:
    chosen = scenario.http.put(
        f"{scenario.endpoints.intake_url}/v2/profiles/{setup.profile_id}",
        json={"revenue_recovery_retry_algorithm_type": algorithm},
        headers={**setup.headers(), "x-profile-id": setup.profile_id},
    )
    assert chosen.status_code == 200, chosen.text


def read_side_timeline(
    scenario: SeedScenario,
    setup: MerchantSetup,
    payment_id: str,
    ready: Callable[[dict[str, Any]], bool] = lambda timeline: timeline["status"] == "finish",
) -> dict[str, Any]:
    """The analytics service's timeline once `ready` (it consumes the events too, a moment later)."""
    deadline = time.monotonic() + 15
    while True:
        answer = scenario.http.get(
            f"{scenario.endpoints.intake_url}{TRACKER}/{payment_id}/timeline", headers=setup.headers()
        )
        if answer.status_code == 200 and ready(answer.json()):
            return dict(answer.json())
        assert time.monotonic() < deadline, answer.text
        time.sleep(0.1)


def reservations(view: dict[str, Any], token: str) -> list[tuple[int, str]]:
    [shown] = [t for t in view["tokens"] if t["token"] == token]
    return [(r["attempt_number"], r["outcome"]) for r in shown["budget_reservations"]]


def planned_reasons(view: dict[str, Any]) -> list[str]:
    return [note["reason"] for note in view["timeline"] if note["what"] == "attempt_planned"]


def planned(number: int, token: str) -> Callable[[dict[str, Any]], bool]:
    def check(view: dict[str, Any]) -> bool:
        plan = view["plan"] or {}
        return plan.get("kind") == "attempt" and (plan["attempt_number"], plan["token"]) == (number, token)

    return check


def test_smart_plans_reserves_switches_tokens_and_recovers_through_the_services(start_stack: Any) -> None:
    stack = start_stack(time_scale=TIME_SCALE)
    scenario = seed_scenario(stack)
    setup = scenario.bootstrap()
    # A payment accepted while the profile is in monitoring: charged by no one, compared by both algorithms.
    choose_algorithm(scenario, setup, "monitoring")
    watched_customer, watched_card = scenario.customer_with_card("pm_card_visa")
    nsf_error = {"code": "insufficient_funds", "message": "nsf"}
    watched = scenario.request_recovery(
        setup, watched_customer, watched_card, merchant_reference_id="smart_monitored", error=nsf_error
    )["id"]
    choose_algorithm(scenario, setup, "smart")

    # The billing system's charge failed with a processing error (smart's technical cadence: a retry within the
    # hour); the sandbox answers that retry with a processing error too, then approves the next.
    glitch_customer, glitch_card = scenario.customer_with_card("pm_card_visa")
    fault(stack, glitch_card, "processing_error")
    glitch = scenario.request_recovery(
        setup,
        glitch_customer,
        glitch_card,
        merchant_reference_id="smart_processing_error",
        error={"code": "processing_error", "message": "An error occurred while processing your card."},
    )["id"]

    # Insufficient funds on the customer's first card, then a decline of that card itself (expired): smart
    # switches to the customer's other saved card, which pays.
    customer, first = scenario.customer_with_card("pm_card_visa")
    other = attach_card(stack, scenario, customer, "pm_card_mastercard")
    fault(stack, first, "insufficient_funds")
    fault(stack, first, "expired_card")
    nsf = dict(merchant_reference_id="smart_insufficient_funds", error=nsf_error)
    payment_id = scenario.request_recovery(setup, customer, first, **nsf)["id"]
    # The billing system's retry on the other saved card failed too: the recovery now knows both.
    assert (
        scenario.request_recovery(setup, customer, other, connector_transaction_id="smart_2", **nsf)["id"] == payment_id
    )

    # Attempt 1 on the first card declined (insufficient funds); attempt 2 waits for the customer's next day and
    # holds its slot in the merchant's budget on that card.
    waiting = wait_until(scenario, setup, payment_id, planned(2, first), "planning attempt 2 on the first card")
    assert reservations(waiting, first) == [(1, "declined"), (2, "planned")]
    assert "insufficient_funds cadence" in planned_reasons(waiting)[-1]
    # The billing system reports a payment in progress: the planned attempt will not run, its slot is given back.
    scenario.request_recovery(setup, customer, first, action="pending_payment", **nsf)
    paused = wait_until(scenario, setup, payment_id, lambda v: v["recovery_status"] == "awaiting_billing", "paused")
    assert reservations(paused, first) == [(1, "declined")]
    # It failed after all: smart plans attempt 2 again, and takes its slot again.
    scenario.request_recovery(setup, customer, first, connector_transaction_id="smart_3", **nsf)
    again = wait_until(scenario, setup, payment_id, planned(2, first), "planning attempt 2 again")
    assert reservations(again, first) == [(1, "declined"), (2, "planned")]

    succeeded = scenario.wait_for_webhook(payment_id, timeout=30)
    recovered = scenario.wait_for_webhook(glitch, timeout=30)

    # The first card: declined twice, the second time for the card itself; the other card paid.
    charges = scenario.charges(customer)
    assert [(c["status"], c["payment_method"]) for c in charges] == [
        ("failed", first),
        ("failed", first),
        ("succeeded", other),
    ]
    view = wait_until(scenario, setup, payment_id, lambda v: v["recovery_status"] == "succeeded", "succeeded")
    assert view["algorithm"] == "smart" and view["business_status"] == "COMPLETED_EXECUTE_TASK"
    assert [(a["token"], a["outcome"], a["decline_code"], a.get("decline_class")) for a in view["attempts"]] == [
        (first, "declined", "insufficient_funds", "later"),
        (first, "declined", "expired_card", "fix"),
        (other, "succeeded", None, None),
    ]
    reasons = planned_reasons(view)
    assert all(reason.startswith("smart: ") for reason in reasons), reasons
    assert "insufficient_funds cadence" in reasons[1]
    assert reasons[-1] == f"smart: no decline on this token yet; switched from token {first}"
    # Every attempt made kept its slot, on the card it was made with.
    assert reservations(view, first) == [(1, "declined"), (2, "declined")]
    assert reservations(view, other) == [(3, "succeeded")]

    glitched = wait_until(scenario, setup, glitch, lambda v: v["recovery_status"] == "succeeded", "succeeded")
    # Stripe sends `advice_code` try_again_later with the processing error, and advice outranks the code
    # (docs/retry-engine.md): the retry's decline is `later`, waited on smart's soft cadence.
    assert [(a["outcome"], a["decline_code"], a.get("decline_class")) for a in glitched["attempts"]] == [
        ("declined", "processing_error", "later"),
        ("succeeded", None, None),
    ]
    first_plan, second_plan = planned_reasons(glitched)
    assert first_plan.startswith("smart: technical decline (decline_code=processing_error); technical cadence")
    assert second_plan.startswith("smart: later decline (advice_code=try_again_later")
    assert "soft cadence" in second_plan
    assert [c["status"] for c in scenario.charges(glitch_customer)] == ["failed", "succeeded"]

    # The read side's timeline tells the same story, and each payment got one signed payment_succeeded.
    timeline = read_side_timeline(scenario, setup, payment_id)
    assert [(a["token"], a["outcome"]) for a in timeline["attempts"]] == [
        (first, "declined"),
        (first, "declined"),
        (other, "succeeded"),
    ]
    assert timeline["entries"][-1]["kind"] == "recovery_finished"
    for webhook in (succeeded, recovered):
        assert webhook.signature_verified, webhook.signature_512
    deliveries = [(w.object_id, w.event_type) for w in scenario.received() if w.object_id in (payment_id, glitch)]
    assert sorted(deliveries) == sorted([(payment_id, "payment_succeeded"), (glitch, "payment_succeeded")])

    # The monitored payment: nothing charged; what cascading and smart would have done, in the process tracker
    # and on the public timeline.
    monitored = tracker(scenario, setup, watched)
    assert (monitored["algorithm"], monitored["recovery_status"], monitored["attempts"]) == (
        "monitoring",
        "monitoring",
        [],
    )
    shadows = monitored["plan"]["shadows"]
    assert [(name, plan["kind"]) for name, plan in shadows.items()] == [("cascading", "attempt"), ("smart", "attempt")]
    assert shadows["cascading"]["reason"].startswith("cascading ladder step 1")
    assert "insufficient_funds cadence" in shadows["smart"]["reason"]
    assert monitored["timeline"][-1]["shadows"] == shadows
    watched_timeline = read_side_timeline(scenario, setup, watched, lambda t: len(t["shadow_plans"]) == 2)
    assert [(p["algorithm"], p["takes_over"], p["reason"]) for p in watched_timeline["shadow_plans"]] == [
        ("cascading", True, shadows["cascading"]["reason"]),
        ("smart", False, shadows["smart"]["reason"]),
    ]
    assert [e["kind"] for e in watched_timeline["entries"]].count("shadow_planned") == 2
    assert scenario.charges(watched_customer) == []
