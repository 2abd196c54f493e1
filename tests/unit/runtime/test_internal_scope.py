"""The scope of a forwarded call: the merchant, and the profile when intake's request named one. A profile-level call
owns its profile's resources only; a list filter naming another profile owns nothing."""

from __future__ import annotations

import httpx
import pytest
from fastapi import Depends, FastAPI

from recovery_runtime.internal_api import (
    MERCHANT_HEADER,
    PROFILE_HEADER,
    TOKEN_HEADER,
    InternalCaller,
    InternalScope,
)

TOKEN = "internal-token-for-tests"
MERCHANT_LEVEL = InternalScope("merchant_a")
PROFILE_LEVEL = InternalScope("merchant_a", "pro_a")


@pytest.mark.parametrize(
    ("scope", "merchant_id", "profile_id", "owned"),
    [
        (MERCHANT_LEVEL, "merchant_a", "pro_a", True),
        (MERCHANT_LEVEL, "merchant_a", "pro_b", True),
        (MERCHANT_LEVEL, "merchant_a", None, True),
        (MERCHANT_LEVEL, "merchant_b", "pro_a", False),
        (PROFILE_LEVEL, "merchant_a", "pro_a", True),
        (PROFILE_LEVEL, "merchant_a", "pro_b", False),
        # A resource whose profile is not known (yet): not the profile's.
        (PROFILE_LEVEL, "merchant_a", None, False),
        (PROFILE_LEVEL, "merchant_b", "pro_a", False),
    ],
)
def test_a_profile_level_scope_owns_its_profiles_resources_only(
    scope: InternalScope, merchant_id: str, profile_id: str | None, owned: bool
) -> None:
    assert scope.owns(merchant_id, profile_id) is owned


@pytest.mark.parametrize(
    ("scope", "asked", "listed", "owned"),
    [
        (MERCHANT_LEVEL, None, None, True),
        (MERCHANT_LEVEL, "pro_b", "pro_b", True),
        (PROFILE_LEVEL, None, "pro_a", True),
        (PROFILE_LEVEL, "pro_a", "pro_a", True),
        # Both given and different: the list is of a profile outside the scope, empty.
        (PROFILE_LEVEL, "pro_b", "pro_b", False),
    ],
)
def test_a_list_is_of_the_profile_asked_for_else_of_the_scopes(
    scope: InternalScope, asked: str | None, listed: str | None, owned: bool
) -> None:
    assert scope.list_profile(asked) == listed
    assert scope.owns(scope.merchant_id, scope.list_profile(asked)) is owned


@pytest.fixture
async def internal() -> httpx.AsyncClient:
    app = FastAPI()
    caller = InternalCaller(TOKEN)

    @app.get("/scope")
    async def scope(scope: InternalScope = Depends(caller)) -> dict[str, str | None]:
        return {"merchant_id": scope.merchant_id, "profile_id": scope.profile_id}

    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://service")


async def test_the_caller_reads_the_merchant_and_the_optional_profile_after_the_token(
    internal: httpx.AsyncClient,
) -> None:
    merchant = {TOKEN_HEADER: TOKEN, MERCHANT_HEADER: "merchant_a"}

    merchant_level = await internal.get("/scope", headers=merchant)
    profile_level = await internal.get("/scope", headers={**merchant, PROFILE_HEADER: "pro_a"})
    empty_profile = await internal.get("/scope", headers={**merchant, PROFILE_HEADER: ""})
    no_merchant = await internal.get("/scope", headers={TOKEN_HEADER: TOKEN, PROFILE_HEADER: "pro_a"})
    wrong_token = await internal.get("/scope", headers={**merchant, TOKEN_HEADER: "not-the-token"})

    assert merchant_level.json() == {"merchant_id": "merchant_a", "profile_id": None}
    assert profile_level.json() == {"merchant_id": "merchant_a", "profile_id": "pro_a"}
    assert empty_profile.json() == {"merchant_id": "merchant_a", "profile_id": None}
    assert (no_merchant.status_code, wrong_token.status_code) == (400, 403)
