"""Executor settings: the connector endpoints, timeouts and pace."""

from __future__ import annotations

from pydantic import Field, model_validator

from recovery_runtime.settings import ServiceSettings


class ExecutorSettings(ServiceSettings):
    http_port: int = 8082
    stripe_api_base: str = "https://api.stripe.com"
    # A charge that has not answered by then is an unknown outcome: synced later, never charged anew.
    connector_timeout_seconds: float = Field(default=30.0, gt=0)
    # The charge lease on the payment's fence (docs/guarantees.md): a charge is sent, and its call cut, within the
    # first half of it; the second half covers the connector finishing a request it got and the hosts' clocks
    # disagreeing. At least twice CONNECTOR_TIMEOUT_SECONDS (checked at start), so that a whole call fits in the
    # first half. A cancel waits at most this long for an executor killed while charging. At most 120 s: a cancel
    # that came as a message waits for it in redeliveries (pauses growing to 10 s, 155 s over the queues' 20
    # deliveries), and a longer lease would dead-letter it while the lease still runs.
    charge_lease_seconds: float = Field(default=60.0, gt=0, le=120)
    # An attempt still "charging" after this long was abandoned by a crashed executor and may be resumed. At most
    # 120 s: a copy of its command waits for that in redeliveries (pauses growing to 10 s), and the queues
    # dead-letter a message at its 20th delivery.
    abandoned_attempt_seconds: float = Field(default=60.0, gt=0, le=120)
    # How long the billing connector may take to accept a record back before the try counts as failed.
    record_back_timeout_seconds: float = Field(default=10.0, gt=0)
    # How long a connector account's credentials are kept in process memory (0: read before every charge). A
    # `connector-account.updated` this instance applies drops its entry at once; one another instance applies
    # (a disabled account) reaches this one within this time.
    credentials_cache_seconds: float = Field(default=2.0, ge=0, le=60)
    # Pacing the connector (docs/retry-engine.md): the requests a second every executor together sends through one
    # connector account (one secret key), charges and syncs, with a burst of CONNECTOR_REQUEST_BURST after a quiet
    # spell; a request waits for its turn. An account's own `feature_metadata.request_pace` comes first; 0: the
    # accounts without one are unpaced. Stripe allows 100 a second in live mode and 25 in its sandbox, across
    # everything that uses the account, and asks background work to take a subset.
    connector_requests_per_second: float = Field(default=0.0, ge=0, le=10_000)
    connector_request_burst: int = Field(default=10, ge=1, le=1_000)

    @model_validator(mode="after")
    def _lease_outlasts_the_connector_call(self) -> ExecutorSettings:
        if self.charge_lease_seconds < 2 * self.connector_timeout_seconds:
            raise ValueError(
                f"CHARGE_LEASE_SECONDS ({self.charge_lease_seconds}) must be at least twice CONNECTOR_TIMEOUT_SECONDS "
                f"({self.connector_timeout_seconds}): a charge is sent and answered within the first half of its lease"
            )
        return self
