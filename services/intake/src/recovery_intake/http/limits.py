"""Abuse limits in front of every API route: the request body size (413) and a per-API-key rate (429).

Both answer in Hyperswitch's error body. The rate limit is a token bucket per API key held in this process:
with N intake instances behind a load balancer a key gets up to N times the configured rate (docs/security.md).
"""

from __future__ import annotations

import hashlib
import math
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from recovery_contracts.api.errors import ApiError

# Operational routes are probed by orchestrators and scrapers, not merchants: never limited.
_UNLIMITED_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})
_MAX_BUCKETS = 100_000


@dataclass
class _Bucket:
    tokens: float
    updated: float


class TokenBuckets:
    """Token buckets by caller, least recently used dropped beyond `_MAX_BUCKETS` (memory stays bounded)."""

    def __init__(self, per_second: float, burst: int, now: Callable[[], float] = time.monotonic) -> None:
        self._rate = per_second
        self._burst = float(burst)
        self._now = now
        self._buckets: OrderedDict[str, _Bucket] = OrderedDict()

    def take(self, caller: str) -> float:
        """0 when the request may pass, else the seconds until a token is available."""
        now = self._now()
        bucket = self._buckets.pop(caller, None) or _Bucket(self._burst, now)
        bucket.tokens = min(self._burst, bucket.tokens + (now - bucket.updated) * self._rate)
        bucket.updated = now
        self._buckets[caller] = bucket
        if len(self._buckets) > _MAX_BUCKETS:
            self._buckets.popitem(last=False)
        if bucket.tokens >= 1.0:
            bucket.tokens -= 1.0
            return 0.0
        return (1.0 - bucket.tokens) / self._rate


def caller_of(scope: Scope) -> str:
    """The API key presented (as a hash: raw keys are never held), else the client address."""
    headers = {k.decode("latin-1").lower(): v for k, v in scope.get("headers", ())}
    key = headers.get("api-key")
    authorization = headers.get("authorization", b"")
    if not key and authorization.lower().startswith(b"api-key="):
        key = authorization.split(b"=", 1)[1]
    if key:
        return "key:" + hashlib.sha256(key.strip()).hexdigest()
    client = scope.get("client") or ("unknown", 0)
    return f"addr:{client[0]}"


async def _answer(send: Send, error: ApiError, headers: dict[str, str] | None = None, **params: object) -> None:
    body = error.response(**params).model_dump_json(exclude_none=True).encode()
    raw_headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    raw_headers += [(k.encode(), v.encode()) for k, v in (headers or {}).items()]
    await send({"type": "http.response.start", "status": error.status_code, "headers": raw_headers})
    await send({"type": "http.response.body", "body": body})


class AbuseLimits:
    """ASGI middleware: rate limit first (cheap), then the body read into memory up to `max_body_bytes`."""

    def __init__(self, app: ASGIApp, *, max_body_bytes: int, per_second: float, burst: int) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.buckets = TokenBuckets(per_second, burst) if per_second > 0 else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in _UNLIMITED_PATHS:
            await self.app(scope, receive, send)
            return
        if self.buckets is not None:
            wait = self.buckets.take(caller_of(scope))
            if wait > 0:
                retry_after = max(1, math.ceil(wait))
                await _answer(send, ApiError.RATE_LIMITED, {"retry-after": str(retry_after)}, retry_after=retry_after)
                return
        limit = self.max_body_bytes
        declared = dict(scope.get("headers", ())).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            await _answer(send, ApiError.PAYLOAD_TOO_LARGE, limit=limit)
            return
        # A chunked body has no length up front: read it (at most `limit` bytes kept), then replay it.
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                break
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                await _answer(send, ApiError.PAYLOAD_TOO_LARGE, limit=limit)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)
