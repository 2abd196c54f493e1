"""A payment connector account as the executor knows it (intake's `connector-account.updated`), and which ones
may charge."""

from __future__ import annotations

from dataclasses import dataclass

from recovery_executor.domain.pacing import Pace

# The payment connectors the executor can charge through.
CHARGING_CONNECTORS = frozenset({"stripe"})


@dataclass(frozen=True)
class ConnectorAccount:
    connector_account_id: str
    connector_name: str | None
    api_key: str  # sealed by intake (recovery_runtime.secrets): opened only for the call
    disabled: bool = False
    pace: Pace | None = None  # the account's own (`feature_metadata.request_pace`); None: the executors' default

    def refusal_to_charge(self) -> str | None:
        """Why no charge may go through this account (the command can never apply), or None."""
        if self.disabled:
            return f"connector account {self.connector_account_id} is disabled"
        if self.connector_name not in CHARGING_CONNECTORS:
            return f"connector {self.connector_name!r} is not supported for charges"
        return None
