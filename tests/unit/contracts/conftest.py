"""Fixtures for the contract tests: fresh, filled copies of the seed's bodies."""

from __future__ import annotations

from typing import Any

import pytest
from contracts_seed import load_seed


@pytest.fixture
def recovery_request() -> dict[str, Any]:
    return load_seed("recovery-request.json")


@pytest.fixture
def payment_connector_account() -> dict[str, Any]:
    return load_seed("payment-connector-account.json")


@pytest.fixture
def billing_connector_account() -> dict[str, Any]:
    return load_seed("billing-connector-account.json")
