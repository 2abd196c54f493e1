"""The payment connector that charges for a connector account: Stripe, metered, paced when the account or the
executors set a pace (adapters/pacing.py), its key opened for the call."""

from __future__ import annotations

import httpx

from recovery_executor.adapters.metered import MeteredConnector
from recovery_executor.adapters.pacing import MongoConnectorPacing, PacedConnector, budget_key
from recovery_executor.adapters.stripe import StripeConnector
from recovery_executor.domain.connector_account import ConnectorAccount
from recovery_executor.domain.pacing import Pace
from recovery_executor.domain.ports import PaymentConnector
from recovery_runtime.secrets import SecretBox


class StripeConnectors:
    """Called only for accounts the domain lets charge (`ConnectorAccount.refusal_to_charge`)."""

    def __init__(
        self,
        base_url: str,
        http_client: httpx.AsyncClient,
        box: SecretBox,
        timeout: float,
        pacing: MongoConnectorPacing | None = None,
        default_pace: Pace | None = None,
    ) -> None:
        self._base_url = base_url
        self._http = http_client
        self._box = box
        self._timeout = timeout
        self._pacing = pacing
        self._default_pace = default_pace

    def __call__(self, account: ConnectorAccount) -> PaymentConnector:
        # Intake publishes credentials sealed (recovery_runtime.secrets); opened only here, for the call.
        api_key = self._box.open_if_sealed(account.api_key)
        stripe = StripeConnector(
            base_url=self._base_url, api_key=api_key, http_client=self._http, timeout=self._timeout
        )
        metered = MeteredConnector(stripe, "stripe")
        pace = account.pace or self._default_pace
        if self._pacing is None or pace is None:
            return metered
        return PacedConnector(metered, self._pacing, budget_key("stripe", api_key), pace)
