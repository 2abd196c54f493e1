"""Scheduler settings: timer polling and leases, the recoveries' horizon."""

from __future__ import annotations

from pydantic import Field

from recovery_runtime.settings import ServiceSettings


class SchedulerSettings(ServiceSettings):
    http_port: int = 8081
    # The longest sleep between claims when no stored timer falls due sooner (the loop sleeps until the next
    # one it saw within this interval). A timer an instance stores wakes that instance's loop and is claimed when
    # due; the poll bounds the wait of the others (given back after a failure, or stored by a stopped instance).
    timer_poll_seconds: float = Field(default=0.1, gt=0)
    timer_batch_size: int = Field(default=200, ge=1, le=5000)
    # A batch claimed by an instance that died before publishing it is fired again by another once this expires.
    timer_lease_seconds: float = Field(default=30.0, gt=0)
    # Every recovery ends this long (business time, scaled by TIME_SCALE) after its payment was created, whatever
    # it waits for (monitoring, the billing system, a budget): `horizon_reached`. 60 days: twice the retry window
    # (Recurly ends a dunning after 60 days).
    recovery_horizon_seconds: int = Field(default=60 * 86_400, gt=0)
    # true: smart moves a retry to an hour at which the merchant's own retries like it succeeded more often, once a
    # key has the evidence (docs/retry-engine.md, "Learned hours"). Off by default: in the simulator it recovered no
    # more, and less where customers churn (the hour statistics mostly echo smart's own payday mornings).
    smart_learned_hours: bool = False
