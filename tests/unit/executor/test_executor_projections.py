"""The executor's projections: invoice statuses (for the charge guard) and connector accounts (for the call)."""

from __future__ import annotations

import json

from recovery_contracts.payments import IntentStatus

from .builders import ACCOUNT, connector_account, planned, recovery_updated
from .fakes import Executor


async def test_only_a_newer_invoice_status_applies_and_a_duplicate_is_acknowledged(
    executor: Executor, requeues: list[int]
) -> None:
    payment = planned().payload.payment
    cancelled = recovery_updated(payment, IntentStatus.CANCELLED, 3)

    await executor.send("executor.recovery-updated", cancelled)
    await executor.send("executor.recovery-updated", cancelled)
    await executor.send("executor.recovery-updated", recovery_updated(payment, IntentStatus.FAILED, 2))

    assert executor.states.states[payment.payment_id] == (3, "cancelled")
    assert requeues == [] and executor.publisher.dead_letters == []


async def test_only_a_newer_connector_account_applies_and_reaches_the_connector(executor: Executor) -> None:
    await executor.send("executor.connector-account-updated", connector_account(3, connector_name="stripe"))
    await executor.send("executor.connector-account-updated", connector_account(2, disabled=True))

    await executor.send("executor.execute-retry", planned())

    assert len(executor.connector.charges) == 1
    account = executor.accounts_given_to_connectors[-1]
    assert (account.connector_account_id, account.api_key, account.disabled) == (ACCOUNT, "sealed-key", False)


async def test_an_invalid_projection_update_is_dead_lettered_with_the_reason(executor: Executor) -> None:
    update = connector_account().model_dump(mode="json")
    update["payload"]["version"] = 0

    await executor.send("executor.connector-account-updated", json.dumps(update).encode())

    [letter] = executor.publisher.dead_letters
    assert "payload.version: Input should be greater than or equal to 1" in letter.reason
