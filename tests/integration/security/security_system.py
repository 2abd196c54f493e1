"""The two-merchant system the security tests drive: who they are and how to call intake."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx

from recovery_cli.seed_scenario import MerchantSetup, SeedScenario
from support.stack import recovery_body


@dataclass
class Tenant:
    setup: MerchantSetup
    key_id: str
    payment_id: str
    # The invoice of `payment_id` (its `merchant_reference_id`).
    reference: str

    def headers(self, **overrides: str) -> dict[str, str]:
        return {**self.setup.headers(), **overrides}


@dataclass
class System:
    intake_url: str
    scenario: SeedScenario
    a: Tenant
    b: Tenant

    def call(self, method: str, path: str, headers: dict[str, str], body: Any = None) -> httpx.Response:
        return httpx.request(method, f"{self.intake_url}{path}", json=body, headers=headers, timeout=30)


def make_tenant(scenario: SeedScenario, intake_url: str, reference: str) -> Tenant:
    setup = scenario.bootstrap()
    keys = httpx.get(f"{intake_url}/v2/api-keys/list", headers=setup.headers(), timeout=30).json()
    body = recovery_body(setup, merchant_reference_id=reference)
    answer = httpx.post(f"{intake_url}/v2/payments/recovery", json=body, headers=setup.headers(), timeout=30)
    assert answer.status_code == 200, answer.text
    return Tenant(setup, keys[0]["key_id"], answer.json()["id"], reference)


def eventually(probe: Callable[[], Any], timeout: float = 20.0) -> Any:
    """`probe()` asked again until it gives a true value (or `timeout` seconds pass): its last value."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.1)
