"""The console in a real browser: Playwright driving Debian's Chromium against the running system.

One stack for the module: merchant A with a recovered payment (a Visa that succeeds) and a failed one (a lost
card: a hard decline ends it), merchant B new and empty. Every page's console messages are collected: an error
fails the test that caused it. `CONSOLE_SCREENSHOTS=1` writes each page's screenshot into docs/ (docs/console.md).
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import expect, sync_playwright

from recovery_cli.seed_scenario import MerchantSetup, SeedScenario
from recovery_cli.stack import Stack
from recovery_intake.console.formatting import major_units, percentage
from recovery_intake.console.views import recovered_amounts
from support.mongodb import database_name_for, drop_database
from support.rabbitmq import VirtualHosts, vhost_name_for
from support.stack import Isolation, StackFactory, seed_scenario

CHROMIUM = "/usr/bin/chromium"
ADMIN_KEY = "test_admin"
DOCS = Path(__file__).resolve().parents[2] / "docs"
SCREENSHOTS = os.environ.get("CONSOLE_SCREENSHOTS") == "1"
# Which elements stick out past the right edge of the screen (for the failure message).
WIDER_THAN_SCREEN = """[...document.querySelectorAll('body *')]
  .filter(e => e.getBoundingClientRect().right > window.innerWidth + 0.5 && !e.closest('.table'))
  .map(e => e.tagName + '.' + e.className + ' ' + Math.round(e.getBoundingClientRect().right)).slice(0, 8)"""


@dataclass
class Seeded:
    stack: Stack
    scenario: SeedScenario
    a: MerchantSetup
    b: MerchantSetup
    recovered_id: str
    failed_id: str


@dataclass
class Browser:
    """A Chromium page with every console error and page error it saw."""

    page: Any
    errors: list[str] = field(default_factory=list)

    # Answers a test asked for (a 404 for another merchant's payment): Chromium logs them as errors too.
    expected_statuses: set[int] = field(default_factory=set)

    def watch(self) -> None:
        self.page.on("console", self._console)
        self.page.on("pageerror", lambda e: self.errors.append(f"page error: {e}"))
        self.page.on("response", self._response)

    def _console(self, message: Any) -> None:
        if message.type != "error":
            return
        if message.text.startswith("Failed to load resource") and any(
            f"status of {status}" in message.text for status in self.expected_statuses
        ):
            return
        self.errors.append(f"console {message.type}: {message.text}")

    def _response(self, response: Any) -> None:
        if response.status >= 400 and response.status not in self.expected_statuses:
            self.errors.append(f"{response.request.method} {response.url} answered {response.status}")


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory, mongodb_url: str, virtual_hosts: VirtualHosts) -> Iterator[Seeded]:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: apt-get install -y chromium (.ci/run does)", pytrace=False)
    vhost, database = vhost_name_for("console"), database_name_for("console")
    isolation = Isolation(virtual_hosts.create(vhost), mongodb_url, database)
    factory = StackFactory(tmp_path_factory.mktemp("console-stack"), isolation)
    try:
        stack = factory.start()
        scenario = seed_scenario(stack)
        # The receiver verifies with the last merchant's keys: A's webhooks are the ones the tests check.
        b = scenario.bootstrap("console_merchant_b")
        a = scenario.bootstrap("console_merchant_a")
        customer, card = scenario.customer_with_card("pm_card_visa")
        recovered = scenario.request_recovery(a, customer, card)["id"]
        lost_customer, lost_card = scenario.customer_with_card("pm_card_chargeDeclinedLostCard")
        failed = scenario.request_recovery(a, lost_customer, lost_card, merchant_reference_id="console_lost_card")["id"]
        scenario.wait_for_webhook(recovered, "payment_succeeded", timeout=60)
        scenario.wait_for_webhook(failed, "payment_failed", timeout=60)
        yield Seeded(stack, scenario, a, b, recovered, failed)
    finally:
        factory.stop_all()
        drop_database(mongodb_url, database)
        virtual_hosts.delete(vhost, wait=False)


@pytest.fixture(scope="module")
def chromium() -> Iterator[Any]:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield browser
        browser.close()


@pytest.fixture
def browser(chromium: Any) -> Iterator[Browser]:
    context = chromium.new_context(viewport={"width": 1280, "height": 900})
    opened = Browser(context.new_page())
    opened.watch()
    yield opened
    context.close()
    assert opened.errors == [], "the console logged errors in Chromium"


def console_url(seeded: Seeded, path: str = "") -> str:
    return f"{seeded.stack.intake_url}/console/{path}"


def sign_in(browser: Browser, seeded: Seeded, api_key: str, merchant_id: str) -> None:
    page = browser.page
    page.goto(console_url(seeded))
    page.get_by_label("API key").fill(api_key)
    page.get_by_label("Merchant ID").fill(merchant_id)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url("**/console/overview")


def screenshot(browser: Browser, name: str) -> None:
    if SCREENSHOTS:
        browser.page.screenshot(path=str(DOCS / f"console-{name}.png"), full_page=True)


def analytics_of(seeded: Seeded, setup: MerchantSetup) -> dict[str, Any]:
    """The figures as the public analytics API answers them (the same read model the console reads)."""
    answer = httpx.get(f"{seeded.stack.intake_url}/v2/revenue-recovery/analytics", headers=setup.headers(), timeout=15)
    assert answer.status_code == 200, answer.text
    return dict(answer.json())


def figure(browser: Browser, label: str) -> str:
    return str(browser.page.locator(f'[data-figure="{label}"] .value').inner_text()).strip()


def test_sign_in_and_overview_figures_match_the_analytics_api(browser: Browser, seeded: Seeded) -> None:
    sign_in(browser, seeded, seeded.a.api_key, seeded.a.merchant_id)
    figures = analytics_of(seeded, seeded.a)
    # The projection may still be applying the last events: wait until it has both payments' outcomes.
    deadline = time.monotonic() + 30
    while figures["payments_recovered"] + figures["payments_failed"] < 2 and time.monotonic() < deadline:
        time.sleep(0.5)
        figures = analytics_of(seeded, seeded.a)
    browser.page.reload()
    assert figures["payments_recovered"] == 1 and figures["payments_failed"] == 1
    assert figure(browser, "Recovery rate") == percentage(figures["recovery_rate"]) == "50.0%"
    assert figure(browser, "Recovered") == recovered_amounts(figures["recovered_amount"])
    assert figure(browser, "Recovered") == major_units(2250, "USD")  # the seed's invoice: USD 22.50
    assert figure(browser, "In progress") == str(figures["payments_in_progress"])
    for chart in ("recovered-per-day", "rate-by-attempt", "declines-by-class", "declines-by-network"):
        canvas = browser.page.locator(f"#chart-{chart}")
        assert canvas.is_visible()
        assert browser.page.evaluate(f"Chart.getChart('chart-{chart}') !== undefined")
    screenshot(browser, "overview")


def test_the_retries_page_shows_the_retry_statistics_api_and_filters_by_key(browser: Browser, seeded: Seeded) -> None:
    sign_in(browser, seeded, seeded.a.api_key, seeded.a.merchant_id)
    url = f"{seeded.stack.intake_url}/v2/revenue-recovery/retry-stats"
    stats = httpx.get(url, headers=seeded.a.headers(), timeout=15).json()
    # Each outcome is counted once the scheduler recorded it, and written within a second: both retries, then.
    deadline = time.monotonic() + 30
    while stats["attempts"] < 2 and time.monotonic() < deadline:
        time.sleep(0.5)
        stats = httpx.get(url, headers=seeded.a.headers(), timeout=15).json()
    assert (stats["attempts"], stats["successes"]) == (2, 1)
    page = browser.page
    page.goto(console_url(seeded, "retries"))
    assert figure(browser, "Retries") == "2" and figure(browser, "Approved") == "1"
    assert figure(browser, "Success rate") == percentage(stats["success_rate"]) == "50.0%"
    for chart in ("hour-of-day", "day-of-week", "day-of-month"):
        assert page.locator(f"#chart-{chart}").is_visible()
        assert page.evaluate(f"Chart.getChart('chart-{chart}') !== undefined")
    rows = page.locator("#retry-keys tbody tr")
    assert rows.count() == len(stats["data"])
    screenshot(browser, "retries")
    # A key's row shows that key's retries only.
    first = stats["data"][0]
    rows.first.get_by_role("link").click()
    page.wait_for_url(f"**/console/retries?decline_code={first['decline_code']}*")
    assert figure(browser, "Retries") == str(first["attempts"])
    assert page.locator("#retry-keys tr.selected").count() == 1


def test_card_data_is_uploaded_from_the_console_and_each_row_answered(
    browser: Browser, seeded: Seeded, tmp_path: Path
) -> None:
    sign_in(browser, seeded, seeded.a.api_key, seeded.a.merchant_id)
    cards = tmp_path / "cards.csv"
    cards.write_text("customer_id_resp,token,exp_date\ncus_nobody,pm_nobody,04/31\ncus_nobody,pm_nobody,13/31\n")
    page = browser.page
    page.goto(console_url(seeded, "card-data"))
    page.get_by_label("CSV file").set_input_files(str(cards))
    page.get_by_role("button", name="Upload").click()
    page.wait_for_selector("#card-data-result")
    result = page.locator("#card-data-result").inner_text()
    assert "1 row applied" in result and "1 row not applied" in result, result
    assert "0 recoveries updated" in result and "1 card kept for a later recovery" in result, result
    lines = page.locator("#card-data-errors tbody tr").all_inner_texts()
    assert [line.split("\t")[0].strip() for line in lines] == ["3"]
    assert "MM/YY" in lines[0]
    screenshot(browser, "card-data")

    # The kept card, looked up by its customer, then forgotten.
    page.get_by_label("Customer at the payment processor").fill("cus_nobody")
    page.locator("#kept-cards").get_by_role("button", name="Look up").click()
    page.wait_for_selector("#kept-cards-table")
    [row] = page.locator("#kept-cards-table tbody tr").all_inner_texts()
    assert row.split("\t")[:3] == ["pm_nobody", "04/2031", ""], row
    screenshot(browser, "card-data-kept")
    page.get_by_role("button", name="Forget these cards").click()
    page.wait_for_selector("#kept-cards >> text=1 card of cus_nobody forgotten.")
    page.goto(console_url(seeded, "card-data") + "?customer=cus_nobody")
    assert "No card of cus_nobody is kept." in page.locator("#kept-cards").inner_text()

    # The recovered payment's card, marked hard-declined by the merchant (its Payment page and the card's lookup say
    # so), then cleared.
    payment = console_url(seeded, f"payments/{seeded.recovered_id}")
    cards = page.locator("xpath=//dt[normalize-space()='Cards (tokens)']/following-sibling::dd[1]")
    page.goto(payment)
    card = cards.inner_text().strip()
    # Enter in a field sends nothing: the form's default button is disabled, each word is a button's.
    page.goto(console_url(seeded, "card-data"))
    page.get_by_label("Customer of the card").fill("cus_console")
    page.get_by_label("Card token").fill(card)
    page.get_by_label("Card token").press("Enter")
    page.wait_for_timeout(500)
    expect(page.locator("#card-status-answer")).to_have_count(0)
    lookup = page.locator("#card-lookup")
    for action, told, status, shown in (
        (
            "Mark hard-declined",
            f"card {card} marked hard-declined",
            f"{card}: hard-declined",
            f"{card} (marked hard-declined by the merchant)",
        ),
        ("Clear hard declines", f"card {card} cleared", f"{card}: not hard-declined", card),
    ):
        page.goto(console_url(seeded, "card-data"))
        page.get_by_label("Customer of the card").fill("cus_console")
        page.get_by_label("Card token").fill(card)
        page.get_by_role("button", name=action).click()
        expect(page.locator("#card-status-answer")).to_contain_text(told)
        # The card, ready to be looked up: its status as the scheduler now keeps it.
        expect(page.get_by_label("Card to look up")).to_have_value(card)
        page.locator("#card-status").get_by_role("button", name="Look up").click()
        expect(lookup).to_contain_text(status)
        # The recovered payment's attempt (made, or planned in the compressed schedule time of the test stack).
        used = re.compile(r"(\d+) attempts? in the last 30 days \(\d+ declined or not settled\), (\d+) planned")
        expect(lookup).to_contain_text(used)
        made, planned = (used.search(lookup.inner_text()) or pytest.fail("no usage line")).groups()
        assert int(made) + int(planned) >= 1, lookup.inner_text()
        declines = [row.split("\t") for row in page.locator("#card-lookup-declines tbody tr").all_inner_texts()]
        if action == "Mark hard-declined":
            assert [(row[0], row[3]) for row in declines] == [("the merchant", "no code given")], declines
        else:
            assert declines == []
        page.goto(payment)
        expect(cards).to_have_text(shown)
    # Held until a time ahead (the API's `scheduled_at`): the lookup says so; a time past lifts it.
    ahead = (datetime.now(UTC) + timedelta(days=30)).replace(second=0, microsecond=0)
    for hold, told, said in (
        (f"{ahead:%Y-%m-%dT%H:%M}", f"before {ahead.isoformat()}", f"tries it before {ahead:%Y-%m-%d %H:%M:%S} UTC"),
        ("2020-01-01T00:00", "is no longer held back", None),
    ):
        page.goto(console_url(seeded, "card-data"))
        page.get_by_label("Customer of the card").fill("cus_console")
        page.get_by_label("Card token").fill(card)
        page.get_by_label("Not before, UTC (with Hold until)").fill(hold)
        page.get_by_role("button", name="Hold until").click()
        expect(page.locator("#card-status-answer")).to_contain_text(told)
        page.locator("#card-status").get_by_role("button", name="Look up").click()
        if said is None:
            expect(page.locator("#card-lookup-not-before")).to_have_count(0)
        else:
            expect(page.locator("#card-lookup-not-before")).to_contain_text(said)


def test_recoveries_list_links_to_the_payment_and_its_attempts(browser: Browser, seeded: Seeded) -> None:
    sign_in(browser, seeded, seeded.a.api_key, seeded.a.merchant_id)
    page = browser.page
    page.get_by_role("link", name="Recoveries").click()
    page.wait_for_url("**/console/recoveries")
    expect(page.locator("tbody tr")).to_have_count(2)
    screenshot(browser, "recoveries")
    page.get_by_label("Status").select_option("terminated")
    page.get_by_role("button", name="Filter").click()
    page.wait_for_url("**status=terminated**")
    expect(page.locator("tbody tr")).to_have_count(1)
    page.get_by_role("link", name=seeded.failed_id).click()
    page.wait_for_url(f"**/console/payments/{seeded.failed_id}")
    attempt = page.locator("#attempts tr.attempt").first
    assert "pm_" in attempt.inner_text() and "lost_card" in attempt.inner_text()

    page.goto(console_url(seeded, f"payments/{seeded.recovered_id}"))
    rows = page.locator("#attempts tr.attempt")
    assert rows.count() >= 1
    assert "succeeded" in rows.last.inner_text()
    assert "visa" in rows.last.inner_text().lower()
    screenshot(browser, "payment")


def test_the_retry_button_delivers_the_webhook_again(browser: Browser, seeded: Seeded) -> None:
    sign_in(browser, seeded, seeded.a.api_key, seeded.a.merchant_id)
    page = browser.page
    page.goto(console_url(seeded, f"payments/{seeded.recovered_id}"))
    before = [w for w in seeded.scenario.received() if w.object_id == seeded.recovered_id]
    delivery = page.locator("article.delivery").first
    attempts_before = delivery.locator("tr.delivery-attempt").count()
    delivery.get_by_role("button", name="Retry delivery").click()
    # htmx swaps the delivery in place with its new attempt.
    page.locator("article.delivery").first.locator("tr.delivery-attempt").nth(attempts_before).wait_for()
    assert "manual retry" in page.locator("article.delivery").first.inner_text()
    after = [w for w in seeded.scenario.received() if w.object_id == seeded.recovered_id]
    assert len(after) == len(before) + 1
    assert after[-1].signature_verified


def test_delivering_failed_events_again_finds_none_when_every_webhook_went_out(
    browser: Browser, seeded: Seeded
) -> None:
    """The Webhooks page's recover, through intake to the running dispatcher: A's webhooks were all delivered, so
    nothing goes again and nothing reaches the receiver."""
    sign_in(browser, seeded, seeded.a.api_key, seeded.a.merchant_id)
    page = browser.page
    page.goto(console_url(seeded, "webhooks"))
    before = len(seeded.scenario.received())
    page.get_by_label("Failed in").select_option(label="the last 14 days")
    page.get_by_role("button", name="Deliver again").click()
    page.wait_for_url("**/console/webhooks?recovered=0")
    expect(page.locator("#recovered")).to_have_text("No failed event to deliver again.")
    time.sleep(1.0)
    assert len(seeded.scenario.received()) == before


def test_state_changes_need_the_csrf_token(browser: Browser, seeded: Seeded) -> None:
    sign_in(browser, seeded, seeded.a.api_key, seeded.a.merchant_id)
    page = browser.page
    page.goto(console_url(seeded, f"payments/{seeded.recovered_id}"))
    event_id = page.locator("article.delivery").first.get_attribute("data-event-id")
    before = len(seeded.scenario.received())
    # The session cookie rides along (same browser context), the token does not.
    answer = page.request.post(
        console_url(seeded, f"payments/{seeded.recovered_id}/webhooks/{event_id}/retry"), form={"csrf_token": "x"}
    )
    assert answer.status == 403
    cookie = next(c for c in page.context.cookies() if c["name"] == "console_session")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"
    assert len(seeded.scenario.received()) == before


def test_another_merchants_payment_is_not_reachable(browser: Browser, seeded: Seeded) -> None:
    sign_in(browser, seeded, seeded.b.api_key, seeded.b.merchant_id)
    page = browser.page
    # A new merchant: a clear empty state.
    assert page.get_by_test_id("empty-state").is_visible()
    screenshot(browser, "empty")
    browser.expected_statuses.add(404)
    answer = page.goto(console_url(seeded, f"payments/{seeded.recovered_id}"))
    assert answer is not None and answer.status == 404
    assert seeded.recovered_id not in page.locator("main").inner_text().replace(f"'{seeded.recovered_id}'", "")
    assert page.locator("#attempts").count() == 0
    page.goto(console_url(seeded, "recoveries"))
    assert seeded.recovered_id not in page.content()


def test_operator_pages(browser: Browser, seeded: Seeded) -> None:
    sign_in(browser, seeded, ADMIN_KEY, seeded.a.merchant_id)
    page = browser.page
    page.get_by_role("link", name="Webhooks").click()
    expect(page.locator("#endpoint-health tbody tr")).to_have_count(1)
    # The dispatcher's endpoint health: A's profile's URL, every recent attempt taken, a closed breaker.
    endpoint = page.locator("#endpoints tbody tr")
    expect(endpoint).to_have_count(1)
    cells = [cell.strip() for cell in endpoint.locator("td").all_inner_texts()]
    assert cells[0] == seeded.a.profile_id and cells[1].startswith("http"), cells
    assert cells[2].startswith("100.0% of ") and cells[3].endswith(" ms)"), cells
    assert (cells[4], cells[5]) == ("closed", "no"), cells
    # The same health through intake's public door, for its merchant only.
    path = f"{seeded.stack.intake_url}/events/{seeded.a.merchant_id}/endpoints"
    public = httpx.get(path, headers=seeded.a.headers(), timeout=10)
    assert public.status_code == 200, public.text
    [health] = public.json()["endpoints"]
    assert (health["profile_id"], health["breaker"]["state"], health["disabled"]) == (
        seeded.a.profile_id,
        "closed",
        False,
    )
    assert httpx.get(path, headers=seeded.b.headers(), timeout=10).status_code == 404
    screenshot(browser, "webhooks")
    page.get_by_role("link", name="Dead letters").click()
    page.wait_for_url("**/console/dead-letters")
    assert page.locator("#dead-letters tbody tr").count() > 0
    screenshot(browser, "dead-letters")
    page.get_by_role("link", name="Services").click()
    page.wait_for_url("**/console/services")
    readiness = page.locator("#services tbody tr")
    assert readiness.count() >= 5
    assert "not ready" not in page.locator("#services").inner_text()
    screenshot(browser, "services")


def test_a_merchant_does_not_see_the_operator_pages(browser: Browser, seeded: Seeded) -> None:
    sign_in(browser, seeded, seeded.a.api_key, seeded.a.merchant_id)
    assert browser.page.get_by_role("link", name="Dead letters").count() == 0
    browser.expected_statuses.add(403)
    answer = browser.page.goto(console_url(seeded, "dead-letters"))
    assert answer is not None and answer.status == 403


def test_the_layout_works_390_pixels_wide(browser: Browser, seeded: Seeded) -> None:
    page = browser.page
    page.set_viewport_size({"width": 390, "height": 844})
    sign_in(browser, seeded, seeded.a.api_key, seeded.a.merchant_id)
    for path in ("overview", "recoveries", f"payments/{seeded.recovered_id}", "webhooks", "retries", "card-data"):
        page.goto(console_url(seeded, path))
        # Nothing wider than the screen: wide tables scroll inside their own box.
        assert page.evaluate("document.documentElement.scrollWidth") <= 390, (path, page.evaluate(WIDER_THAN_SCREEN))
        assert page.get_by_role("link", name="Recoveries").is_visible()
    page.goto(console_url(seeded, "overview"))
    assert page.locator("#chart-recovered-per-day").is_visible()
    screenshot(browser, "overview-390")


def read_model_status(seeded: Seeded, payment_id: str) -> str | None:
    """The recovery's status in the read model (None until it has the payment)."""
    path = f"{seeded.stack.intake_url}/v2/payments/{payment_id}/get-revenue-recovery-intent"
    answer = httpx.get(path, headers=seeded.a.headers(), timeout=15)
    return str(answer.json()["status"]) if answer.status_code == 200 else None


def until(probe: Any, timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    while not (value := probe()) and time.monotonic() < deadline:
        time.sleep(0.3)
    return value


def test_a_merchant_cancels_a_recovery_in_progress(browser: Browser, seeded: Seeded) -> None:
    """Last in the module: it adds a third payment of A's, which the counts above do not expect."""
    scenario, a = seeded.scenario, seeded.a
    customer, card = scenario.customer_with_card("pm_card_chargeDeclinedInsufficientFunds")
    reference = "console_to_cancel"
    payment_id = scenario.request_recovery(a, customer, card, merchant_reference_id=reference)["id"]
    # The billing system says a payment is pending: the recovery waits for its word, open whatever the time scale.
    scenario.request_recovery(a, customer, card, merchant_reference_id=reference, action="pending_payment")
    assert until(lambda: read_model_status(seeded, payment_id) == "scheduled"), read_model_status(seeded, payment_id)
    sign_in(browser, seeded, a.api_key, a.merchant_id)
    page = browser.page
    page.goto(console_url(seeded, f"payments/{payment_id}"))

    page.get_by_text("Cancel this recovery…").click()
    page.get_by_role("button", name="Cancel recovery").click()

    page.wait_for_url(f"**/console/payments/{payment_id}")
    # Intake's cancel is the truth at once; the read model (the status) follows within moments.
    expect(page.locator("#cancel-accepted, .heading .status-terminated").first).to_be_visible()
    assert page.get_by_role("button", name="Cancel recovery").count() == 0
    payment = httpx.get(f"{seeded.stack.intake_url}/v2/payments/{payment_id}", headers=a.headers(), timeout=15)
    assert payment.json()["status"] == "cancelled", payment.text
    assert until(lambda: read_model_status(seeded, payment_id) == "terminated")
    page.reload()
    expect(page.locator(".heading .status")).to_have_text("terminated")
    assert page.locator("#cancel-accepted").count() == 0

    # The cancel is the audit trail's newest entry: the console's, with the session's key, linking to the payment.
    page.get_by_role("link", name="Audit trail").click()
    page.wait_for_url("**/console/audit")
    newest = page.locator("tr.audit-entry").first
    expect(newest).to_contain_text("Console, API key")
    expect(newest).to_contain_text("Cancelled a recovery")
    expect(newest).to_contain_text("POST /console/payments/{payment_id}/cancel")
    expect(newest).to_contain_text("done")
    screenshot(browser, "audit")
    trail = httpx.get(f"{seeded.stack.intake_url}/v2/audit-events", headers=a.headers(), timeout=15).json()
    assert trail["data"][0]["actor"] == "console" and trail["data"][0]["target"] == {"payment_id": payment_id}
    page.get_by_label("Refused or failed only").check()
    page.get_by_role("button", name="Filter").click()
    page.wait_for_url("**/console/audit?*refused=1*")
    assert page.locator("tr.audit-entry").count() == len(
        httpx.get(
            f"{seeded.stack.intake_url}/v2/audit-events", params={"refused": "true"}, headers=a.headers(), timeout=15
        ).json()["data"]
    )
    page.get_by_label("Refused or failed only").uncheck()
    page.get_by_role("button", name="Filter").click()
    page.locator("tr.audit-entry").first.get_by_role("link", name=payment_id).click()
    page.wait_for_url(f"**/console/payments/{payment_id}")
    # And back: the payment's own changes, its cancel alone (as the API's list of the payment's entries).
    page.get_by_role("link", name="Who changed this payment").click()
    page.wait_for_url(f"**/console/audit?payment_id={payment_id}")
    expect(page.locator("#payment-trail")).to_contain_text(payment_id)
    on_payment = httpx.get(
        f"{seeded.stack.intake_url}/v2/audit-events", params={"payment_id": payment_id}, headers=a.headers(), timeout=15
    ).json()["data"]
    assert [e["route"] for e in on_payment] == ["/console/payments/{payment_id}/cancel"], on_payment
    expect(page.locator("tr.audit-entry")).to_have_count(1)
    expect(page.locator("tr.audit-entry")).to_contain_text("Cancelled a recovery")

    # Within days (UTC, whole days: the API's created_after and created_before): the cancel's day keeps it, the next
    # day alone has nothing, and a first day after the last is refused in words rather than answered empty.
    cancelled_on = datetime.fromisoformat(on_payment[0]["created_at"]).astimezone(UTC).date()
    day_after = cancelled_on + timedelta(days=1)
    page.get_by_role("link", name="Audit trail").click()
    page.wait_for_url("**/console/audit")
    page.get_by_label("From").fill(cancelled_on.isoformat())
    page.get_by_label("To").fill(cancelled_on.isoformat())
    page.get_by_role("button", name="Filter").click()
    page.wait_for_url(f"**/console/audit?*created_from={cancelled_on}&created_to={cancelled_on}*")
    expect(page.locator("tr.audit-entry").first).to_contain_text("Cancelled a recovery")
    page.get_by_label("From").fill(day_after.isoformat())
    page.get_by_label("To").fill(day_after.isoformat())
    page.get_by_role("button", name="Filter").click()
    page.wait_for_url(f"**/console/audit?*created_from={day_after}&created_to={day_after}*")
    expect(page.get_by_test_id("empty-state")).to_contain_text("No entries match these filters")
    page.get_by_label("To").fill(cancelled_on.isoformat())
    browser.expected_statuses.add(400)
    page.get_by_role("button", name="Filter").click()
    expect(page.locator("body")).to_contain_text(
        f"No entry can match: the first day ({day_after}) is after the last ({cancelled_on})."
    )
