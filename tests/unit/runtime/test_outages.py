"""While the database is unreachable a consumer holds its message and runs the handler again, instead of
requeueing it towards the delivery limit; anything else is not an outage and propagates at once."""

from __future__ import annotations

import asyncio

import pytest
from pymongo.errors import (
    AutoReconnect,
    DuplicateKeyError,
    NetworkTimeout,
    OperationFailure,
    ServerSelectionTimeoutError,
)

from recovery_runtime import bus
from recovery_runtime.bus import is_outage, through_outages


def transient_transaction_error() -> OperationFailure:
    error = OperationFailure("WriteConflict", code=112)
    error._add_error_label("TransientTransactionError")
    return error


@pytest.mark.parametrize(
    "error",
    [AutoReconnect("gone"), NetworkTimeout("slow"), ServerSelectionTimeoutError("none"), transient_transaction_error()],
)
def test_unreachable_database_errors_are_outages(error: Exception) -> None:
    assert is_outage(error)


def test_an_outage_wrapped_by_the_handler_is_still_an_outage() -> None:
    try:
        try:
            raise ServerSelectionTimeoutError("127.0.0.1:27017: connection refused")
        except ServerSelectionTimeoutError as cause:
            raise RuntimeError("could not load the recovery") from cause
    except RuntimeError as wrapped:
        assert is_outage(wrapped)


@pytest.mark.parametrize(
    "error", [DuplicateKeyError("E11000"), OperationFailure("bad $set", code=9), ValueError("a bug"), KeyError("x")]
)
def test_bugs_and_data_errors_are_not_outages(error: Exception) -> None:
    assert not is_outage(error)


async def test_the_handler_runs_again_until_the_database_is_back(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(bus, "OUTAGE_PAUSE_CAP_SECONDS", 0.01)
    calls: list[int] = []

    async def handler() -> None:
        calls.append(len(calls))
        if len(calls) < 4:
            raise AutoReconnect("connection refused")

    await asyncio.wait_for(through_outages(handler, "test.queue"), 5.0)
    assert calls == [0, 1, 2, 3]


async def test_a_failure_that_is_not_an_outage_propagates_on_the_first_run() -> None:
    calls: list[int] = []

    async def handler() -> None:
        calls.append(1)
        raise ValueError("a bug")

    with pytest.raises(ValueError, match="a bug"):
        await through_outages(handler, "test.queue")
    assert calls == [1]
