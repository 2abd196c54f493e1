"""Stripe's webhooks in the sandbox: webhook endpoints, events, and their deliveries signed as Stripe signs them
(`Stripe-Signature: t=...,v1=...`), for every object that sends events (invoices, disputes).

Shapes follow Stripe's API reference (API version 2024-06-20): https://docs.stripe.com/api/webhook_endpoints,
https://docs.stripe.com/api/events and https://docs.stripe.com/webhooks#verify-manually. An event goes to each
enabled endpoint whose `enabled_events` name its type (or `*`), delivered again while not answered 2xx
(redelivery.py). The sandbox is one Stripe account whatever `sk_test_` key is used (its PaymentIntents and
invoices are too), so endpoints are not scoped by key. Kept in memory only.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import threading
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import httpx
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from recovery_sandbox.redelivery import DEFAULT_SECONDS, Schedule, add_redelivery_routes
from recovery_sandbox.stripe.errors import missing_param, no_such
from recovery_sandbox.stripe.params import new_id, parse_bool, parse_metadata
from recovery_sandbox.stripe.store import StripeState
from recovery_sandbox.stripe.versions import STORED_API_VERSION

Response = tuple[int, dict[str, Any]]
Run = Callable[..., Awaitable[JSONResponse]]
Authenticate = Callable[[Request], str]
Form = Callable[[Request], Awaitable[dict[str, Any]]]

# Webhook endpoints' and events' version: as if every endpoint had been created pinned to the stored version.
API_VERSION = STORED_API_VERSION


def stripe_signature(secret: str, payload: bytes, timestamp: int) -> str:
    """Stripe's `Stripe-Signature` header value: `t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "t.payload")>`."""
    signed = f"{timestamp}.".encode() + payload
    digest = hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


class WebhookBook:
    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._lock = threading.RLock()
        # When an event not answered 2xx is delivered again (`POST /_sandbox/webhooks/redelivery` sets it).
        self.redelivery = Schedule()
        self.reset()

    def reset(self) -> None:
        self.endpoints: dict[str, dict[str, Any]] = {}
        self.events: dict[str, dict[str, Any]] = {}
        self.deliveries: list[dict[str, Any]] = []
        self.redelivery.seconds = DEFAULT_SECONDS
        self._sending: set[asyncio.Task[int | None]] = set()

    def create_endpoint(self, params: Mapping[str, Any]) -> Response:
        url = params.get("url")
        if not url:
            raise missing_param("url")
        enabled = params.get("enabled_events")
        if not isinstance(enabled, list) or not enabled:
            raise missing_param("enabled_events")
        endpoint: dict[str, Any] = {
            "id": new_id("we_"),
            "object": "webhook_endpoint",
            "api_version": API_VERSION,
            "created": int(self._clock()),
            "enabled_events": enabled,
            "livemode": False,
            "metadata": parse_metadata(params),
            "secret": "whsec_" + new_id("", 32),
            "status": "enabled",
            "url": url,
        }
        with self._lock:
            self.endpoints[endpoint["id"]] = endpoint
        return 200, endpoint

    def update_endpoint(self, endpoint_id: str, params: Mapping[str, Any]) -> Response:
        """Stripe's "update a webhook endpoint": `url`, `enabled_events`, `disabled`; the secret stays."""
        with self._lock:
            endpoint = self.endpoints.get(endpoint_id)
            if endpoint is None:
                raise no_such("webhook_endpoint", endpoint_id, param="id", status=404)
            if params.get("url"):
                endpoint["url"] = params["url"]
            if isinstance(params.get("enabled_events"), list):
                endpoint["enabled_events"] = params["enabled_events"]
            if "disabled" in params:
                endpoint["status"] = "disabled" if parse_bool(params, "disabled") else "enabled"
            return 200, endpoint

    def emit(self, event_type: str, obj: dict[str, Any]) -> dict[str, Any]:
        """The event of `event_type` about `obj` (a copy of it as it is now), sent to every endpoint that takes it."""
        event: dict[str, Any] = {
            "id": new_id("evt_"),
            "object": "event",
            "api_version": API_VERSION,
            "created": int(self._clock()),
            "data": {"object": json.loads(json.dumps(obj))},
            "livemode": False,
            "pending_webhooks": 0,
            "request": {"id": None, "idempotency_key": None},
            "type": event_type,
        }
        with self._lock:
            self.events[event["id"]] = event
            targets = self.takers(event_type)
            event["pending_webhooks"] = len(targets)
        for endpoint in targets:
            self._deliver_later(event, endpoint)
        return event

    def takers(self, event_type: str) -> list[dict[str, Any]]:
        """The enabled endpoints whose `enabled_events` take `event_type`."""
        with self._lock:
            return [e for e in self.endpoints.values() if _takes(e, event_type)]

    def _deliver_later(self, event: dict[str, Any], endpoint: dict[str, Any]) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        # Stripe's automatic deliveries of an event, again while not taken (a `resend` is one delivery).
        task = loop.create_task(self.redelivery.until_taken(lambda: self.deliver(event, endpoint)))
        self._sending.add(task)
        task.add_done_callback(self._sending.discard)

    async def deliver(self, event: dict[str, Any], endpoint: dict[str, Any], secret: str | None = None) -> int | None:
        """POST the event to the endpoint, signed with its secret (or `secret`) at the time of sending; the answer's
        status, if any."""
        payload = json.dumps(event).encode()
        headers = {
            "Content-Type": "application/json; charset=utf-8",
            "User-Agent": "Stripe/1.0 (+https://stripe.com/docs/webhooks)",
            "Stripe-Signature": stripe_signature(secret or endpoint["secret"], payload, int(self._clock())),
        }
        record: dict[str, Any] = {"event": event["id"], "type": event["type"], "url": endpoint["url"]}
        status: int | None = None
        try:
            async with httpx.AsyncClient(timeout=10.0, trust_env=False) as client:
                answer = await client.post(endpoint["url"], content=payload, headers=headers)
            status = answer.status_code
            record["answer"] = answer.text[:1000]
        except httpx.HTTPError as error:
            record["error"] = f"{type(error).__name__}: {error}"
        record["status"] = status
        with self._lock:
            self.deliveries.append(record)
        return status


def _takes(endpoint: dict[str, Any], event_type: str) -> bool:
    if endpoint["status"] != "enabled":
        return False
    return event_type in endpoint["enabled_events"] or "*" in endpoint["enabled_events"]


def add_webhook_routes(
    app: FastAPI, state: StripeState, book: WebhookBook, run: Run, authenticate: Authenticate, form: Form
) -> None:
    """Stripe's webhook endpoints and events, and the sandbox's controls of their deliveries."""
    app.state.webhooks = book

    @app.post("/v1/webhook_endpoints")
    async def create_webhook_endpoint(request: Request) -> JSONResponse:
        params = await form(request)
        return await run(request, params, lambda slot, _: state._commit(*book.create_endpoint(params), slot))

    @app.post("/v1/webhook_endpoints/{endpoint_id}")
    async def update_webhook_endpoint(request: Request, endpoint_id: str) -> JSONResponse:
        params = await form(request)
        return await run(
            request, params, lambda slot, _: state._commit(*book.update_endpoint(endpoint_id, params), slot)
        )

    @app.get("/v1/events/{event_id}")
    async def get_event(request: Request, event_id: str) -> dict[str, Any]:
        authenticate(request)
        event = book.events.get(event_id)
        if event is None:
            raise no_such("event", event_id, param="id", status=404)
        return event

    # ----- sandbox controls (not Stripe's) ---------------------------------------------------------------

    @app.post("/_sandbox/events/{event_id}/resend")
    async def resend_event(event_id: str, secret: str | None = None) -> dict[str, Any]:
        """Deliver an event again to every endpoint that takes it (a replay), now, signed again; with `secret`,
        signed with that secret instead (a bad signature). Each delivery's answer is in `GET /_sandbox/events`."""
        event = book.events.get(event_id)
        if event is None:
            raise no_such("event", event_id, param="id", status=404)
        targets = book.takers(event["type"])
        return {"statuses": [await book.deliver(event, endpoint, secret) for endpoint in targets]}

    @app.get("/_sandbox/events")
    async def list_events() -> dict[str, Any]:
        return {"events": list(book.events.values()), "deliveries": list(book.deliveries)}

    add_redelivery_routes(app, "/_sandbox/webhooks/redelivery", book.redelivery)
