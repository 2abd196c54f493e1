"""Calls of intake's API the unit tests share: minting a key, and checking a refusal's status, code and words."""

from __future__ import annotations

from typing import Any

import httpx

from .fakes import MERCHANT


async def mint(client: httpx.AsyncClient, by: str, scopes: list[str] | None = None, **body: Any) -> dict[str, Any]:
    """A new key of the tenant's merchant, minted by the key `by` (its answer, with the plaintext key)."""
    sent: dict[str, Any] = {"name": "minted", "expiration": "never", **body}
    if scopes is not None:
        sent["scopes"] = scopes
    headers = {"api-key": by, "x-merchant-id": MERCHANT}
    response = await client.post("/v2/api-keys", json=sent, headers=headers)
    assert response.status_code == 200, response.text
    created: dict[str, Any] = response.json()
    return created


def refused(response: httpx.Response, status: int, code: str, *mentions: str) -> None:
    """`response` is the refusal `status`/`code`, its message or reason naming each of `mentions`."""
    assert response.status_code == status, response.text
    error = response.json()["error"]
    text = f"{error['message']} {error.get('reason') or ''}"
    assert error["code"] == code and all(m in text for m in mentions), text
