"""Fixtures every unit test of handlers shares."""

from __future__ import annotations

import pytest

from recovery_runtime.bus import requeue_pause


class Requeues(list[int]):
    """The delivery counts of the messages the pipeline handed back, and (`pauses`) how long each would have
    waited first."""

    def __init__(self) -> None:
        super().__init__()
        self.pauses: list[float] = []


@pytest.fixture
def requeues(monkeypatch: pytest.MonkeyPatch) -> Requeues:
    """Messages the consumer pipeline handed back for a redelivery (no pause: the tests run in milliseconds)."""
    paused = Requeues()

    def pause(error: BaseException, deliveries: int) -> float:
        paused.append(deliveries)
        paused.pauses.append(requeue_pause(error, deliveries))
        return 0.0

    monkeypatch.setattr("recovery_runtime.consumer.requeue_pause", pause)
    return paused
