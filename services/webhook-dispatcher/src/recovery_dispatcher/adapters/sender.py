"""Sends one signed webhook over HTTP and reports what happened; short in-process retries with tenacity.

Long retries are not made here: they are durable timers (the scheduler), on the domain's retry schedule.
"""

from __future__ import annotations

import asyncio
import os
import random
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

import aiohttp
import httpx
from multidict import CIMultiDict
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_result,
    stop_after_attempt,
    stop_before_delay,
)
from yarl import URL

from recovery_dispatcher.domain.attempt import DeliveryResult, HeaderList
from recovery_dispatcher.domain.policy import classify_response, parse_retry_after
from recovery_runtime.egress import DestinationBlocked, EgressGuard, GuardedResolver

TRANSPORT_ERROR_PREFIX = "Unable to send request to merchant server"
RESPONSE_BODY_LIMIT = 20 * 1024  # bytes kept of a receiver's answer, as Svix does


@dataclass(frozen=True, slots=True)
class DeliveryTimeouts:
    """Seconds. `connect` bounds the TCP/TLS connect, `total` the whole attempt (connect, send, answer)."""

    connect: float = 5.0
    total: float = 15.0


@dataclass(frozen=True, slots=True)
class InProcessRetry:
    """Short retries inside one delivery, for blips (transport errors, 5xx, 429). Seconds.

    `budget` bounds the whole `send_with_retries` call, attempts included: a retry whose wait would cross it
    is not made, and the caller schedules a durable retry instead.
    """

    max_attempts: int = 3
    initial_wait: float = 0.25
    max_wait: float = 2.0
    jitter: float = 0.25
    budget: float = 5.0


@dataclass(frozen=True, slots=True)
class SenderConfig:
    timeouts: DeliveryTimeouts = field(default_factory=DeliveryTimeouts)
    in_process_retry: InProcessRetry = field(default_factory=InProcessRetry)
    max_connections: int = 512
    max_connections_per_host: int = 64
    dns_cache_seconds: int = 10
    response_body_limit: int = RESPONSE_BODY_LIMIT


def _utc_now() -> datetime:
    return datetime.now(UTC)


def _blocked_reason(error: BaseException) -> str | None:
    """The egress guard's reason when it is somewhere in the exception chain (aiohttp wraps it, also as the
    `os_error` of its connector errors)."""
    for item in _chain(error):
        if isinstance(item, DestinationBlocked):
            return item.reason
        os_error = getattr(item, "os_error", None)
        if isinstance(os_error, DestinationBlocked):
            return os_error.reason
    return None


def _chain(error: BaseException) -> list[BaseException]:
    chain: list[BaseException] = []
    current: BaseException | None = error
    while current is not None and all(current is not seen for seen in chain):
        chain.append(current)
        current = current.__cause__ or current.__context__
    return chain


def _describe(error: BaseException) -> str:
    """A short human reason for a transport failure.

    Read from aiohttp's error classes (connector, certificate, DNS) and the OS error they carry.
    """
    chain = _chain(error)
    client_error = next((item for item in chain if isinstance(item, aiohttp.ClientError)), None)
    if isinstance(client_error, aiohttp.ClientConnectorCertificateError):
        return f"TLS certificate of {client_error.host} refused: {client_error.certificate_error}"
    if isinstance(client_error, aiohttp.ClientConnectorDNSError):
        return f"cannot resolve {client_error.host}: {_os_detail(client_error.os_error)}"
    if isinstance(client_error, aiohttp.ClientConnectorError):
        detail = _os_detail(client_error.os_error)
        return f"cannot connect to {client_error.host}:{client_error.port}: {detail}"
    if any(isinstance(item, TimeoutError) for item in chain):
        return f"timed out ({client_error or error})"
    root = client_error or chain[-1]
    text = str(root)
    return f"{type(root).__name__}: {text}" if text else type(root).__name__


def _os_detail(error: OSError) -> str:
    # aiohttp's happy-eyeballs errors carry the errno but a generic "Connect call failed" text.
    if error.errno and error.errno > 0:
        return os.strerror(error.errno)
    return error.strerror or str(error) or type(error).__name__


async def _read_limited(response: aiohttp.ClientResponse, limit: int) -> tuple[str, bool]:
    """Up to `limit` bytes of the body, decoded leniently; the rest is never read."""
    chunks: list[bytes] = []
    size = 0
    while size <= limit:
        chunk = await response.content.read(limit + 1 - size)
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    data = b"".join(chunks)
    return data[:limit].decode("utf-8", errors="replace"), size > limit


class WebhookSender:
    """Posts webhook bodies to merchant endpoints through one pooled client; never raises for the
    merchant's failures (they are results).

    The client is one pooled aiohttp session (the throughput path: several times cheaper per request than
    httpx on this machine), redirects off, environment proxies and cookies ignored, every connection resolved
    through the egress guard (recovery_runtime.egress). The session opens at the first send (inside the
    running event loop, as aiohttp requires); close it with `aclose()` (or `async with`).
    """

    def __init__(
        self,
        guard: EgressGuard,
        config: SenderConfig | None = None,
        *,
        clock: Callable[[], datetime] = _utc_now,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._guard = guard
        self._config = config or SenderConfig()
        self._clock = clock
        self._sleep = sleep
        self._checked: dict[str, URL] = {}
        self._session: aiohttp.ClientSession | None = None

    def _open(self) -> aiohttp.ClientSession:
        timeouts = self._config.timeouts
        connector = aiohttp.TCPConnector(
            resolver=GuardedResolver(self._guard),
            limit=self._config.max_connections,
            limit_per_host=self._config.max_connections_per_host,
            ttl_dns_cache=self._config.dns_cache_seconds,
            ssl=httpx.create_ssl_context(),  # certifi's CA bundle
        )
        self._session = aiohttp.ClientSession(
            connector=connector,
            trust_env=False,
            cookie_jar=aiohttp.DummyCookieJar(),
            # `connect` bounds the socket connect; `total`, enforced in `send`, the whole attempt (waiting for
            # a pooled connection and DNS included).
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=timeouts.connect),
            auto_decompress=True,
        )
        return self._session

    async def __aenter__(self) -> WebhookSender:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _destination(self, url: str) -> URL:
        """The parsed URL once checked (scheme, how the host is written, IP literal); cached per URL: endpoints
        are few, deliveries many."""
        checked = self._checked.get(url)
        if checked is not None:
            return checked
        target = URL(url)
        if target.scheme not in ("http", "https"):
            raise DestinationBlocked(f"blocked: scheme {target.scheme!r} is not http or https")
        # aiohttp does not run its resolver for an IP literal, so the guard checks it here.
        self._guard.check_host(target.host or "")
        if len(self._checked) >= 10_000:
            self._checked.clear()
        self._checked[url] = target
        return target

    async def send(self, url: str, body: bytes, headers: Sequence[tuple[str, str]]) -> DeliveryResult:
        """One POST of `body` with exactly `headers` (in order). Never raises for a merchant-side failure."""
        started_at = self._clock()
        started = time.perf_counter()
        status: int | None = None
        response_headers: HeaderList = ()
        response_body: str | None = None
        truncated = False
        error: str | None = None
        blocked = False
        retry_after_header: str | None = None
        total = self._config.timeouts.total
        try:
            target = self._destination(url)
            # Names go out lowercase, as hyper (and so Hyperswitch) sends them; order and values as given.
            wire_headers = CIMultiDict((name.lower(), value) for name, value in headers)
            async with (
                asyncio.timeout(total),
                (self._session or self._open()).post(
                    target, data=body, headers=wire_headers, allow_redirects=False
                ) as response,
            ):
                status = response.status
                response_headers = tuple((name.lower(), value) for name, value in response.headers.items())
                retry_after_header = response.headers.get("retry-after")
                response_body, truncated = await _read_limited(response, self._config.response_body_limit)
        except DestinationBlocked as refused:
            blocked, error = True, f"{TRANSPORT_ERROR_PREFIX}: {refused.reason}"
        except TimeoutError as timed_out:
            if isinstance(timed_out, aiohttp.ClientError):  # aiohttp's own connect or read timeout
                error = f"{TRANSPORT_ERROR_PREFIX}: {_describe(timed_out)}"
            else:
                error = f"{TRANSPORT_ERROR_PREFIX}: timed out after {total:g} s"
        except Exception as failure:  # a merchant's server can fail in any way; it is a result, not a crash
            reason = _blocked_reason(failure)
            blocked = reason is not None
            error = f"{TRANSPORT_ERROR_PREFIX}: {reason or _describe(failure)}"
        duration_ms = round((time.perf_counter() - started) * 1000)

        retry_after = parse_retry_after(retry_after_header, self._clock()) if retry_after_header else None
        return DeliveryResult(
            url=url,
            request_headers=tuple(headers),
            started_at=started_at,
            duration_ms=duration_ms,
            status_code=status,
            response_headers=response_headers,
            response_body=response_body,
            response_body_truncated=truncated,
            error_message=error,
            verdict=classify_response(status, error, retry_after=retry_after, blocked=blocked),
        )

    async def send_with_retries(
        self,
        url: str,
        body: bytes,
        headers_for_attempt: Callable[[int], Sequence[tuple[str, str]]],
        *,
        on_attempt: Callable[[DeliveryResult], Awaitable[None]] | None = None,
    ) -> list[DeliveryResult]:
        """Send, retrying in process while the failure is transient and the budget allows.

        `headers_for_attempt(n)` builds attempt n's headers (1-based): the `webhook-id` stays, the
        `webhook-timestamp` and signature are this attempt's. `on_attempt` is awaited after every attempt
        (record it as it happens); an exception from it stops the retries and propagates. Returns every
        attempt in order; the last one's verdict tells the caller whether to schedule a durable retry.
        """
        policy = self._config.in_process_retry
        results: list[DeliveryResult] = []

        def wait(state: RetryCallState) -> float:
            # Exponential backoff with full-range additive jitter, capped (tenacity's jitter strategy).
            exponential = policy.initial_wait * 2.0 ** (state.attempt_number - 1)
            delay = min(policy.max_wait, exponential) + random.uniform(0, policy.jitter)
            retry_after = results[-1].verdict.retry_after if results else None
            if retry_after is not None:
                # A receiver that asked for a pause gets it; past the budget the retry is not made here.
                delay = max(delay, retry_after.total_seconds())
            return delay

        async def attempt() -> DeliveryResult:
            result = await self.send(url, body, headers_for_attempt(len(results) + 1))
            results.append(result)
            if on_attempt is not None:
                await on_attempt(result)
            return result

        # The first attempt outside tenacity: most deliveries succeed (or fail for good) at once, and setting up
        # the retry machinery would cost about as much CPU as the request itself.
        started = time.monotonic()
        first = await attempt()
        if not first.verdict.transient or policy.max_attempts <= 1:
            return results
        replay = [first]

        async def next_attempt() -> DeliveryResult:
            # tenacity's first call gets the attempt already made; its wait then precedes the second.
            return replay.pop() if replay else await attempt()

        # tenacity: stop after `max_attempts`, or before a wait that would end past the budget (counted from
        # the first attempt's start); retry only what the verdict calls transient.
        retrying = AsyncRetrying(
            stop=stop_after_attempt(policy.max_attempts)
            | stop_before_delay(max(0.0, policy.budget - (time.monotonic() - started))),
            wait=wait,
            retry=retry_if_result(lambda result: result.verdict.transient),
            retry_error_callback=lambda state: state.outcome.result() if state.outcome else None,
            sleep=self._sleep,
            reraise=True,
        )
        await retrying(next_attempt)
        return results
