"""Fixtures every unit test of handlers shares."""

from __future__ import annotations

import pytest

from recovery_runtime.bus import MAX_RETRY_PAUSE_SECONDS, RetryLater


class Requeues(list[int]):
    """The delivery counts of the messages the pipeline handed back, and (`waits`) the latest moment each handler
    named for looking again (`RetryLater.after_seconds`; the longest pause for any other error)."""

    def __init__(self) -> None:
        super().__init__()
        self.waits: list[float] = []


@pytest.fixture
def requeues(monkeypatch: pytest.MonkeyPatch) -> Requeues:
    """Messages the consumer pipeline handed back for a redelivery (no pause: the tests run in milliseconds)."""
    paused = Requeues()

    def pause(error: BaseException, deliveries: int) -> float:
        paused.append(deliveries)
        paused.waits.append(error.after_seconds if isinstance(error, RetryLater) else MAX_RETRY_PAUSE_SECONDS)
        return 0.0

    monkeypatch.setattr("recovery_runtime.consumer.requeue_pause", pause)
    return paused
