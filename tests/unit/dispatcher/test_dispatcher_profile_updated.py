"""`profile.updated` through the real consumer pipeline on in-memory adapters: a newer version is projected
(re-enabling a disabled endpoint), a redelivered message or an older version changes nothing, and an invalid
one is dead-lettered with the reason."""

from __future__ import annotations

import json
from dataclasses import replace

from .fakes import Dispatcher
from .messages import endpoint_update

PROFILE_UPDATED = "dispatcher.profile-updated"


async def test_a_newer_version_is_projected_and_enables_the_endpoint_again(dispatcher: Dispatcher) -> None:
    disabled = await dispatcher.endpoints.get("pro_test")
    assert disabled is not None
    dispatcher.endpoints.endpoints["pro_test"] = replace(disabled, disabled_reason="410 Gone from the URL")
    await dispatcher.send(PROFILE_UPDATED, endpoint_update(version=2, url="https://merchant.example/v2", schedule=(5,)))
    endpoint = await dispatcher.endpoints.get("pro_test")
    assert endpoint is not None and endpoint.url == "https://merchant.example/v2"
    assert endpoint.disabled_reason is None and endpoint.retry_schedule_seconds == (5,)


async def test_a_redelivered_update_is_applied_once(dispatcher: Dispatcher) -> None:
    update = endpoint_update(version=2, url="https://merchant.example/v2")
    await dispatcher.send(PROFILE_UPDATED, update)
    dispatcher.endpoints.versions["pro_test"] = 1  # were it applied again, it would overwrite
    dispatcher.endpoints.endpoints.pop("pro_test")
    await dispatcher.send(PROFILE_UPDATED, update)
    assert await dispatcher.endpoints.get("pro_test") is None
    assert dispatcher.published.dead_letters == []


async def test_an_older_version_changes_nothing(dispatcher: Dispatcher) -> None:
    await dispatcher.send(PROFILE_UPDATED, endpoint_update(version=3, url="https://merchant.example/v3"))
    await dispatcher.send(PROFILE_UPDATED, endpoint_update(version=2, url="https://merchant.example/v2"))
    endpoint = await dispatcher.endpoints.get("pro_test")
    assert endpoint is not None and endpoint.url == "https://merchant.example/v3"


async def test_an_invalid_update_is_dead_lettered_with_the_reason(dispatcher: Dispatcher) -> None:
    body = endpoint_update(version=2).model_dump(mode="json")
    body["payload"]["version"] = 0
    await dispatcher.send(PROFILE_UPDATED, json.dumps(body).encode())
    [letter] = dispatcher.published.dead_letters
    assert letter.queue == PROFILE_UPDATED and "payload.version" in letter.reason
