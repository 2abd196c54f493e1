"""A merchant's webhook endpoint for development: checks signatures, records deliveries, answers as told."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import threading
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field

from recovery_sandbox.receiver.verification import (
    check_whsec_secret,
    verify_signature_512,
    verify_standard_webhooks,
)


class Behaviour(BaseModel):
    """How to answer the next `times` deliveries (to `path`, or to any path): a status, optional headers and body,
    an optional stall."""

    model_config = ConfigDict(extra="forbid")

    path: str | None = Field(None, description="only deliveries to this path (e.g. one merchant's); null: any path")
    status: int = Field(200, ge=100, le=599)
    times: int = Field(1, ge=1)
    sleep_seconds: float = Field(0.0, ge=0, description="wait this long before answering (client timeouts)")
    headers: dict[str, str] = Field(default_factory=dict)
    body: str | None = None
    location: str | None = Field(None, description="Location header, for 3xx answers")
    retry_after: str | None = Field(None, description="Retry-After header, for 429 or 503 answers")


class ReceiverConfig(BaseModel):
    """A field left out keeps its value; `null` clears it. `behaviours` replaces the queue unless `append`."""

    model_config = ConfigDict(extra="forbid")

    hash_key: str | None = None
    whsec_secret: str | None = None
    behaviours: list[Behaviour] | None = None
    append: bool = False


class ReceiverState:
    def __init__(
        self,
        hash_key: str | None,
        whsec_secret: str | None,
        log_path: Path | None,
        behaviours: Sequence[Behaviour],
    ) -> None:
        self._lock = threading.Lock()
        self.hash_key = hash_key
        self.whsec_secret = whsec_secret
        self.log_path = log_path
        self.behaviours: list[Behaviour] = list(behaviours)
        self.deliveries: list[dict[str, Any]] = []

    def next_behaviour(self, path: str) -> Behaviour:
        """The first queued behaviour for `path` (one of its `times` used up), else a plain 200."""
        with self._lock:
            index = next((i for i, b in enumerate(self.behaviours) if b.path in (None, path)), None)
            if index is None:
                return Behaviour()
            head = self.behaviours[index]
            if head.times <= 1:
                self.behaviours.pop(index)
            else:
                self.behaviours[index] = head.model_copy(update={"times": head.times - 1})
            return head

    def record(self, delivery: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            delivery["sequence"] = len(self.deliveries) + 1
            self.deliveries.append(delivery)
            if self.log_path is not None:
                self.log_path.parent.mkdir(parents=True, exist_ok=True)
                with self.log_path.open("a", encoding="utf-8") as log:
                    log.write(json.dumps(delivery) + "\n")
            return delivery


def _now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def create_app(
    hash_key: str | None = None,
    whsec_secret: str | None = None,
    log_path: Path | None = None,
    behaviours: Sequence[Behaviour] = (),
) -> FastAPI:
    """Keys may be given now or later via POST /_receiver/config (the demo makes the profile after start)."""
    if whsec_secret is not None:
        check_whsec_secret(whsec_secret)
    app = FastAPI(title="Merchant webhook receiver", docs_url=None, redoc_url=None, openapi_url=None)
    state = ReceiverState(hash_key, whsec_secret, log_path, behaviours)
    app.state.receiver = state

    @app.get("/received")
    async def received(since: int = 0, path: str | None = None) -> list[dict[str, Any]]:
        return [d for d in list(state.deliveries) if d["sequence"] > since and path in (None, d["path"])]

    @app.delete("/received")
    async def clear_received() -> dict[str, bool]:
        state.deliveries.clear()
        return {"cleared": True}

    @app.get("/_receiver/config")
    async def get_config() -> dict[str, Any]:
        # The keys themselves stay here; whether they are set is what a test needs to know.
        return {
            "hash_key_set": state.hash_key is not None,
            "whsec_secret_set": state.whsec_secret is not None,
            "behaviours": [b.model_dump() for b in state.behaviours],
        }

    @app.post("/_receiver/config")
    async def set_config(config: ReceiverConfig) -> dict[str, Any]:
        given = config.model_fields_set
        if "whsec_secret" in given and config.whsec_secret is not None:
            try:
                check_whsec_secret(config.whsec_secret)
            except ValueError as exc:
                raise HTTPException(400, str(exc)) from exc
        if "hash_key" in given:
            state.hash_key = config.hash_key
        if "whsec_secret" in given:
            state.whsec_secret = config.whsec_secret
        if "behaviours" in given:
            queued = list(config.behaviours or [])
            state.behaviours = [*state.behaviours, *queued] if config.append else queued
        return await get_config()

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.api_route("/{path:path}", methods=["POST", "PUT", "PATCH"])
    async def deliver(request: Request, path: str) -> Response:
        body = await request.body()
        headers = {k.lower(): v for k, v in request.headers.items()}
        behaviour = state.next_behaviour("/" + path)
        try:
            text: str | None = body.decode("utf-8")
        except UnicodeDecodeError:
            text = None
        try:
            parsed = json.loads(body) if body else None
        except (json.JSONDecodeError, UnicodeDecodeError):
            parsed = None
        # Record before stalling: a delivery whose client times out was still received. `answered_at` is added once
        # the answer goes out (after the stall), so a reader can tell a delivery still being answered.
        delivery = state.record(
            {
                "received_at": _now_iso(),
                "method": request.method,
                "path": "/" + path,
                "query": request.url.query,
                "headers": [[k, v] for k, v in request.headers.items()],
                "body": text,
                "body_base64": base64.b64encode(body).decode() if text is None else None,
                "body_sha256": hashlib.sha256(body).hexdigest(),
                "json": parsed,
                "signature_512": verify_signature_512(state.hash_key, body, headers).as_json(),
                "standard_webhooks": verify_standard_webhooks(state.whsec_secret, body, headers).as_json(),
                "response": {"status": behaviour.status, "sleep_seconds": behaviour.sleep_seconds},
            }
        )
        if behaviour.sleep_seconds:
            await asyncio.sleep(behaviour.sleep_seconds)
        delivery["answered_at"] = _now_iso()
        response_headers = dict(behaviour.headers)
        if behaviour.location is not None:
            response_headers["Location"] = behaviour.location
        if behaviour.retry_after is not None:
            response_headers["Retry-After"] = behaviour.retry_after
        content = behaviour.body if behaviour.body is not None else json.dumps({"received": True})
        return Response(content, status_code=behaviour.status, headers=response_headers, media_type="application/json")

    return app
