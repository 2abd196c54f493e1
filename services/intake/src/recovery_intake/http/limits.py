"""Abuse limits: the request body size (413), a per-API-key rate (429), failed authentications per address (429).

All answer in Hyperswitch's error body. Each limit is a token bucket held in this process, in front of the same
budget shared by every intake instance (`SharedRates`, adapters/rate_limits.py; RATE_LIMIT_SHARED): a request
the process refuses costs the database nothing, and one it lets through takes its share of the shared budget,
so N instances behind a load balancer do not give a key N times the rate (docs/security.md). A shared refusal
holds the caller's local bucket for the wait it named. The rate limit keys its bucket on the credentials the
authentication uses (`http.auth.read_credentials`), read once per request.
"""

from __future__ import annotations

import hashlib
import math
import re
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from recovery_contracts.api.errors import ApiError
from recovery_intake.dependencies import SharedRates
from recovery_intake.http.auth import Credentials, read_credentials
from recovery_intake.http.errors import ApiProblem, rejection_response

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
        self._burst_count = burst
        self._now = now
        self._buckets: OrderedDict[str, _Bucket] = OrderedDict()

    def take(self, caller: str) -> float:
        """0 when the request may pass (a token is taken), else the seconds until a token is available."""
        bucket = self._refilled(caller)
        if bucket.tokens >= 1.0:
            bucket.tokens -= 1.0
            return 0.0
        return self._wait(bucket)

    def hold(self, caller: str, seconds: float) -> None:
        """No token for `caller` for `seconds` (a refusal another instance's share named)."""
        bucket = self._refilled(caller)
        bucket.tokens = min(bucket.tokens, 1.0 - seconds * self._rate)

    async def take_shared(self, caller: str, shared: SharedRates, key: str) -> float:
        """`caller`'s share of the same budget every instance shares (as `key`): 0 when taken, else the wait, for
        which this bucket is then held too."""
        wait = await shared.take(key, self._rate, self._burst_count)
        if wait > 0:
            self.hold(caller, wait)
        return wait

    def waiting(self, caller: str) -> float:
        """0 when `caller` has a token (none is taken), else the seconds until it has one."""
        bucket = self._buckets.get(caller)
        if bucket is None:
            return 0.0
        return self._wait(self._refilled(caller))

    def _refilled(self, caller: str) -> _Bucket:
        now = self._now()
        bucket = self._buckets.pop(caller, None) or _Bucket(self._burst, now)
        bucket.tokens = min(self._burst, bucket.tokens + (now - bucket.updated) * self._rate)
        bucket.updated = now
        self._buckets[caller] = bucket
        if len(self._buckets) > _MAX_BUCKETS:
            self._buckets.popitem(last=False)
        return bucket

    def _wait(self, bucket: _Bucket) -> float:
        return 0.0 if bucket.tokens >= 1.0 else (1.0 - bucket.tokens) / self._rate


def bucket_of(credentials: Credentials) -> str:
    """The API key presented (as a hash: raw keys are never held), else the client address."""
    if credentials.api_key:
        return "key:" + hashlib.sha256(credentials.api_key.encode()).hexdigest()
    return f"addr:{credentials.address}"


def retry_after(wait: float) -> int:
    return max(1, math.ceil(wait))


class AuthFailures:
    """Failed authentications per client address: while an address's bucket is empty, it is refused (429)
    before any key it presents is checked, so guessing keys is slow and costs the database nothing. Each failure
    also takes from the address's shared budget: once that is spent, every instance refuses the address after
    its next failure there, until the wait the shared budget names."""

    def __init__(
        self,
        per_second: float,
        burst: int,
        now: Callable[[], float] = time.monotonic,
        *,
        shared: SharedRates | None = None,
    ) -> None:
        self._buckets = TokenBuckets(per_second, burst, now) if per_second > 0 else None
        self._shared = shared

    def check(self, address: str) -> None:
        wait = self._buckets.waiting(address) if self._buckets is not None else 0.0
        if wait > 0:
            seconds = retry_after(wait)
            raise ApiProblem(
                ApiError.RATE_LIMITED,
                reason="too many failed authentications from this address",
                headers={"retry-after": str(seconds)},
                retry_after=seconds,
            )

    async def failed(self, address: str) -> None:
        if self._buckets is None:
            return
        self._buckets.take(address)
        if self._shared is not None:
            await self._buckets.take_shared(address, self._shared, f"failed:{address}")


async def _answer(send: Send, error: ApiError, headers: dict[str, str] | None = None, **params: Any) -> None:
    body = error.response(**params).model_dump_json(exclude_none=True).encode()
    raw_headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    raw_headers += [(k.encode(), v.encode()) for k, v in (headers or {}).items()]
    await send({"type": "http.response.start", "status": error.status_code, "headers": raw_headers})
    await send({"type": "http.response.body", "body": body})


class AbuseLimits:
    """ASGI middleware: rate limit first (cheap), then the body read into memory up to `max_body_bytes`."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        max_body_bytes: int,
        per_second: float,
        burst: int,
        shared: SharedRates | None = None,
        body_limits: Mapping[str, int] | None = None,
    ) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        # Paths whose bodies may be larger (an upload): their own limit. A path with `{...}` segments (a template:
        # each matches one segment) is matched after the exact ones.
        limits = dict(body_limits or {})
        self.body_limits = {path: limit for path, limit in limits.items() if "{" not in path}
        self._templated = [
            (re.compile(re.sub(r"\\\{[^/]*?\\\}", "[^/]+", re.escape(path))), limit)
            for path, limit in limits.items()
            if "{" in path
        ]
        self.buckets = TokenBuckets(per_second, burst) if per_second > 0 else None
        self._shared = shared

    def _body_limit(self, path: str) -> int:
        exact = self.body_limits.get(path)
        if exact is not None:
            return exact
        return next((limit for pattern, limit in self._templated if pattern.fullmatch(path)), self.max_body_bytes)

    async def _wait(self, caller: str) -> float:
        """0 when `caller` may go on, else the seconds until it may: this process's bucket, then the shared one."""
        if self.buckets is None:
            return 0.0
        wait = self.buckets.take(caller)
        if wait == 0 and self._shared is not None:
            wait = await self.buckets.take_shared(caller, self._shared, f"rate:{caller}")
        return wait

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in _UNLIMITED_PATHS:
            await self.app(scope, receive, send)
            return
        try:
            credentials = read_credentials(scope)
        except ApiProblem as problem:
            await rejection_response(problem)(scope, receive, send)
            return
        wait = await self._wait(bucket_of(credentials))
        if wait > 0:
            seconds = retry_after(wait)
            await _answer(send, ApiError.RATE_LIMITED, {"retry-after": str(seconds)}, retry_after=seconds)
            return
        limit = self._body_limit(scope["path"])
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
