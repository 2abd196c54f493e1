"""Internal HTTP endpoints: services answer intake's forwarded calls, never the public directly.

Intake authenticates the merchant and forwards the call with the shared internal token and the merchant id;
the owning service answers from its own collections. Deployments keep these ports off the public network.
"""

from __future__ import annotations

import hmac

from fastapi import HTTPException, Request

TOKEN_HEADER = "x-internal-token"
MERCHANT_HEADER = "x-internal-merchant-id"
PROFILE_HEADER = "x-internal-profile-id"


class InternalCaller:
    """A FastAPI dependency: the merchant a forwarded call acts for, after checking the internal token."""

    def __init__(self, token: str) -> None:
        self._token = token

    def __call__(self, request: Request) -> str:
        given = request.headers.get(TOKEN_HEADER, "")
        if not hmac.compare_digest(given.encode(), self._token.encode()):
            raise HTTPException(status_code=403, detail="internal endpoint: missing or wrong internal token")
        merchant_id = request.headers.get(MERCHANT_HEADER)
        if not merchant_id:
            raise HTTPException(status_code=400, detail=f"internal endpoint: {MERCHANT_HEADER} is required")
        return merchant_id
