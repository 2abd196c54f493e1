"""The console in Debian's Chromium (Playwright drives it; no browser download works here), signed in as a
merchant: what the billing end-to-end tests click."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from playwright.sync_api import Page, sync_playwright

CHROMIUM = "/usr/bin/chromium"


def require_chromium() -> None:
    """Fails the test at once (before it starts a stack) when Debian's Chromium is not installed."""
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: apt-get install -y chromium (.ci/run does)", pytrace=False)


@contextmanager
def signed_in_console(intake_url: str, api_key: str, merchant_id: str) -> Iterator[Page]:
    """A page of the console at `intake_url`, signed in with the merchant's key, on the Overview."""
    require_chromium()
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            page = chromium.new_page()
            page.goto(f"{intake_url}/console/")
            page.get_by_label("API key").fill(api_key)
            page.get_by_label("Merchant ID").fill(merchant_id)
            page.get_by_role("button", name="Sign in").click()
            page.wait_for_url("**/console/overview")
            yield page
        finally:
            chromium.close()
