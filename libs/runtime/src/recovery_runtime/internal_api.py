"""Internal HTTP endpoints: services answer intake's forwarded calls, never the public directly.

Intake authenticates the merchant and forwards the call with the shared internal token, the merchant id and, when
the request named one (`x-profile-id`), the profile id; the owning service answers from its own collections,
within that scope (`InternalScope`). Deployments keep these ports off the public network.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass

from fastapi import HTTPException, Request

TOKEN_HEADER = "x-internal-token"
MERCHANT_HEADER = "x-internal-merchant-id"
PROFILE_HEADER = "x-internal-profile-id"


@dataclass(frozen=True)
class InternalScope:
    """Whose resources a forwarded call reaches: the merchant's, or only one profile's of it.

    As in Hyperswitch v2, a profile-level call (`x-profile-id`) sees only that profile's resources: another
    profile's payment or event answers exactly as one that does not exist. Without a profile (merchant-level calls,
    the console) every profile of the merchant is seen.
    """

    merchant_id: str
    profile_id: str | None = None

    def owns(self, merchant_id: str | None, profile_id: str | None) -> bool:
        """Whether a resource of `merchant_id` held by `profile_id` is within the scope."""
        return merchant_id == self.merchant_id and (self.profile_id is None or profile_id == self.profile_id)

    def list_profile(self, asked: str | None) -> str | None:
        """The profile a list is filtered to: the one asked for (a `profile_id` filter of the request), else the
        scope's (None: every profile). A profile-level call asking for another profile gets that profile, which
        the scope does not own: its list is empty, as for a profile that does not exist (see `owns`)."""
        return asked if asked is not None else self.profile_id


class InternalCaller:
    """A FastAPI dependency: the scope a forwarded call acts in, after checking the internal token."""

    def __init__(self, token: str) -> None:
        self._token = token

    def __call__(self, request: Request) -> InternalScope:
        given = request.headers.get(TOKEN_HEADER, "")
        if not hmac.compare_digest(given.encode(), self._token.encode()):
            raise HTTPException(status_code=403, detail="internal endpoint: missing or wrong internal token")
        merchant_id = request.headers.get(MERCHANT_HEADER)
        if not merchant_id:
            raise HTTPException(status_code=400, detail=f"internal endpoint: {MERCHANT_HEADER} is required")
        return InternalScope(merchant_id, request.headers.get(PROFILE_HEADER) or None)
