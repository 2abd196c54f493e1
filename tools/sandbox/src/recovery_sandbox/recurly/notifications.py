"""Recurly's webhook notifications on the wire: the `recurly-signature` header and one signed POST.

Recurly signs `f"{unix ms}.{raw body}"` with HMAC-SHA256 under the endpoint's secret and sends
`recurly-signature: <unix ms>,<hex sig>[,<hex sig>...]`, one signature per secret while a secret is rotated.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
from typing import Any

import httpx

# The whole delivery, not each phase (httpx's timeout is per read): a receiver that hangs or answers a byte at a time
# must not hold the resend that waits for it for longer.
DELIVERY_TIMEOUT_SECONDS = 5.0


def signature_header(signing_secrets: list[str], body: bytes, timestamp_ms: int) -> str:
    signed = f"{timestamp_ms}.".encode() + body
    digests = [hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest() for secret in signing_secrets]
    return ",".join([str(timestamp_ms), *digests])


async def post_notification(url: str, body: bytes, signature: str) -> dict[str, Any]:
    """The delivery's outcome: `{"status": <HTTP status>, "answer": <its body>}`, or `{"status": None, "error":
    "..."}` when no answer."""
    headers = {"Content-Type": "application/json", "User-Agent": "Recurly Webhooks", "recurly-signature": signature}
    try:
        async with asyncio.timeout(DELIVERY_TIMEOUT_SECONDS), httpx.AsyncClient(trust_env=False) as client:
            answer = await client.post(url, content=body, headers=headers)
    except TimeoutError:
        return {"status": None, "error": f"no answer within {DELIVERY_TIMEOUT_SECONDS} s"}
    except httpx.HTTPError as error:
        return {"status": None, "error": f"{type(error).__name__}: {error}"}
    return {"status": answer.status_code, "answer": answer.text[:2000]}
