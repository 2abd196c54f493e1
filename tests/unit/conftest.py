"""Fixtures every unit test of handlers shares."""

from __future__ import annotations

import pytest


@pytest.fixture
def requeues(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Messages the consumer pipeline handed back for a redelivery (no pause: the tests run in milliseconds)."""
    paused: list[int] = []

    def pause(deliveries: int) -> float:
        paused.append(deliveries)
        return 0.0

    monkeypatch.setattr("recovery_runtime.consumer.retry_pause", pause)
    return paused
