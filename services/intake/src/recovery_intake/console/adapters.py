"""The console's ports over the internal APIs intake's gateway forwards to, and the broker for dead letters.

Each call carries the internal token and the merchant in `x-internal-merchant-id`, as the gateway's do, so the
owner scopes it exactly as it scopes a public call; a 404 reads as "no such thing", anything else that is not
a 2xx as the owner being unavailable.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, date, datetime
from typing import Any

import httpx
import structlog

from recovery_contracts.api.data_backfill import UpdateTokenStatusRequest
from recovery_contracts.api.disputes import DisputeSort
from recovery_contracts.api.process_tracker import BusinessStatus, ProcessTrackerStatus, RevenueRecoveryTask
from recovery_contracts.disputes import DisputeStatus
from recovery_intake.console.ports import (
    ConsoleAdapters,
    Document,
    OwnerRefused,
    OwnerUnavailable,
    Readiness,
    RecoveryFilter,
    ReplayOutcome,
)
from recovery_intake.settings import IntakeSettings
from recovery_runtime.dead_letters import DeadLetters, Selection, dead_letter_queues
from recovery_runtime.internal_api import MERCHANT_HEADER, TOKEN_HEADER

log = structlog.get_logger(__name__)


class InternalApi:
    """Calls to one owner's `/internal/...` routes."""

    def __init__(self, owner: str, base_url: str, token: str, client: httpx.AsyncClient) -> None:
        self.owner = owner
        self._base = base_url.rstrip("/")
        self._token = token
        self._client = client

    async def call(
        self,
        method: str,
        path: str,
        merchant_id: str,
        *,
        params: Mapping[str, str | list[str]] | None = None,
        body: Document | None = None,
    ) -> Any | None:
        """The owner's JSON answer; None when it answered 404."""
        headers = {TOKEN_HEADER: self._token, MERCHANT_HEADER: merchant_id}
        try:
            answer = await self._client.request(
                method, f"{self._base}{path}", params=params, json=body, headers=headers
            )
        except httpx.HTTPError as error:
            log.warning("console.owner_unreachable", owner=self.owner, error=type(error).__name__)
            raise OwnerUnavailable(self.owner) from error
        if answer.status_code == 404:
            return None
        if answer.status_code in (400, 422):  # Hyperswitch's refusals of a request (IR_06 is 422)
            raise OwnerRefused(_message_of(answer))
        if not answer.is_success:
            log.warning("console.owner_error", owner=self.owner, status=answer.status_code, path=path)
            raise OwnerUnavailable(self.owner)
        return answer.json()


def _message_of(answer: httpx.Response) -> str:
    """The message of Hyperswitch's error body (what the owner found wrong with the request)."""
    try:
        return str(answer.json()["error"]["message"])
    except (ValueError, KeyError, TypeError):
        return "the request was refused"


def _params(values: Mapping[str, object | None]) -> dict[str, str]:
    return {name: str(value) for name, value in values.items() if value is not None and value != ""}


class HttpRecoveryReads:
    """`RecoveryReads` over the analytics service's internal API."""

    def __init__(self, api: InternalApi) -> None:
        self._api = api

    async def _found(self, path: str, merchant_id: str, params: Mapping[str, str | list[str]] | None = None) -> Any:
        answer = await self._api.call("GET", path, merchant_id, params=params)
        if answer is None:
            # The lists and the figures exist for every merchant: a 404 there is a missing route, not data.
            raise OwnerUnavailable(self._api.owner)
        return answer

    async def recoveries(self, merchant_id: str, where: RecoveryFilter) -> Document:
        params = _params(
            {
                "status": where.status,
                # Whole UTC days, both included.
                "created_from": f"{where.created_from}T00:00:00Z" if where.created_from else None,
                "created_to": f"{where.created_to}T23:59:59.999Z" if where.created_to else None,
                "profile_id": where.profile_id,
                "limit": where.limit,
                "offset": where.offset or None,
                "cursor": where.cursor,
            }
        )
        states: dict[str, str | list[str]] = {
            name: list(chosen)
            for name, chosen in (("record_back_state", where.record_back), ("dispute_state", where.dispute))
            if chosen
        }
        answer: Document = await self._found(f"/internal/recoveries/{merchant_id}", merchant_id, {**params, **states})
        return answer

    async def recovery(self, merchant_id: str, payment_id: str) -> Document | None:
        answer: Document | None = await self._api.call(
            "GET", f"/internal/recoveries/{merchant_id}/{payment_id}", merchant_id
        )
        return answer

    async def analytics(
        self, merchant_id: str, from_date: date | None, to_date: date | None, profile_id: str | None
    ) -> Document:
        params = _params({"from": from_date, "to": to_date, "profile_id": profile_id})
        answer: Document = await self._found(f"/internal/analytics/{merchant_id}", merchant_id, params)
        return answer

    async def timeline(self, merchant_id: str, payment_id: str) -> Document | None:
        answer: Document | None = await self._api.call(
            "GET", f"/internal/timeline/{merchant_id}/{payment_id}", merchant_id
        )
        return answer

    async def disputes_to_answer(self, merchant_id: str, limit: int) -> list[Document]:
        params = {
            "dispute_status": DisputeStatus.DISPUTE_OPENED.value,
            "sort": DisputeSort.ANSWER_BY.value,
            "limit": str(limit),
        }
        answer: list[Document] = await self._found(f"/internal/disputes/{merchant_id}", merchant_id, params)
        return answer


class HttpWorkflows:
    """`Workflows` over the scheduler's internal process-tracker API."""

    def __init__(self, api: InternalApi) -> None:
        self._api = api

    async def workflow(self, merchant_id: str, payment_id: str) -> Document | None:
        answer: Document | None = await self._api.call(
            "GET", f"/internal/recoveries/{merchant_id}/{payment_id}", merchant_id
        )
        return answer


class HttpRetryStatistics:
    """`RetryStatistics` over the scheduler's internal retry-statistics API."""

    def __init__(self, api: InternalApi) -> None:
        self._api = api

    async def retry_stats(self, merchant_id: str) -> Document:
        answer: Document | None = await self._api.call("GET", f"/internal/retry-stats/{merchant_id}", merchant_id)
        if answer is None:
            # Every merchant has statistics (empty ones): a 404 is a missing route, not data.
            raise OwnerUnavailable(self._api.owner)
        return answer


class HttpCardStatuses:
    """`CardStatuses` over the scheduler's internal card routes."""

    def __init__(self, api: InternalApi) -> None:
        self._api = api

    async def token_status(self, merchant_id: str, token: str) -> Document:
        return await self._token_status("GET", merchant_id, params={"payment_processor_token": token})

    async def update_token_status(self, merchant_id: str, update: UpdateTokenStatusRequest) -> Document:
        body = update.model_dump(mode="json", exclude_none=True)
        return await self._token_status("PUT", merchant_id, body=body)

    async def _token_status(
        self, method: str, merchant_id: str, *, params: Mapping[str, str] | None = None, body: Document | None = None
    ) -> Document:
        path = f"/internal/cards/{merchant_id}/token-status"
        answer: Document | None = await self._api.call(method, path, merchant_id, params=params, body=body)
        if answer is None:
            # The route takes every card of the merchant: a 404 is a missing route, not data.
            raise OwnerUnavailable(self._api.owner)
        return answer


class HttpWebhookEvents:
    """`WebhookEvents` over the webhook dispatcher's internal events API."""

    def __init__(self, api: InternalApi) -> None:
        self._api = api

    async def events(
        self, merchant_id: str, *, object_id: str | None = None, profile_id: str | None = None, limit: int = 20
    ) -> Document:
        body = {k: v for k, v in {"object_id": object_id, "profile_id": profile_id, "limit": limit}.items() if v}
        answer = await self._api.call("POST", f"/internal/events/{merchant_id}/list", merchant_id, body=body)
        return answer or {"events": [], "total_count": 0}

    async def attempts(self, merchant_id: str, event_id: str) -> list[Document] | None:
        answer: list[Document] | None = await self._api.call(
            "GET", f"/internal/events/{merchant_id}/{event_id}/attempts", merchant_id
        )
        return answer

    async def retry(self, merchant_id: str, event_id: str) -> Document | None:
        answer: Document | None = await self._api.call(
            "POST", f"/internal/events/{merchant_id}/{event_id}/retry", merchant_id
        )
        return answer

    async def endpoints(self, merchant_id: str) -> list[Document]:
        answer = await self._api.call("GET", f"/internal/endpoints/{merchant_id}", merchant_id)
        return list((answer or {}).get("endpoints") or [])

    async def recover(self, merchant_id: str, since: datetime) -> Document:
        body = {"since": since.isoformat()}
        answer: Document | None = await self._api.call(
            "POST", f"/internal/events/{merchant_id}/recover", merchant_id, body=body
        )
        if answer is None:
            # The merchant's own route: a 404 is a missing route, not data.
            raise OwnerUnavailable(self._api.owner)
        return answer


class HttpRecordBacks:
    """`RecordBacks` over the executor's internal record-back routes."""

    def __init__(self, api: InternalApi) -> None:
        self._api = api

    async def restart(self, merchant_id: str, payment_id: str, dispute_id: str | None = None) -> Document | None:
        resume = {
            "revenue_recovery_task": RevenueRecoveryTask.PSYNC_WORKFLOW.value,
            "schedule_time": datetime.now(UTC).isoformat(),
            "status": ProcessTrackerStatus.FINISH.value,
            "business_status": BusinessStatus.COMPLETED_PSYNC_TASK.value,
        }
        path = f"/internal/record-backs/{merchant_id}/{payment_id}/restart"
        params = {"dispute_id": dispute_id} if dispute_id is not None else None
        answer: Document | None = await self._api.call("POST", path, merchant_id, params=params, body=resume)
        return answer


class BrokerAndProbes:
    """`Operations`: the dead-letter queues on the broker, and each service's `/readyz`."""

    def __init__(
        self,
        dead_letters: DeadLetters,
        own_readiness: Callable[[], Awaitable[dict[str, bool]]],
        services: Mapping[str, str],
        client: httpx.AsyncClient,
    ) -> None:
        """`services`: name -> base URL of every other service whose readiness the operator sees."""
        self._dead_letters = dead_letters
        self._own = own_readiness
        self._services = dict(services)
        self._client = client

    async def dead_letter_counts(self) -> dict[str, int]:
        try:
            return await self._dead_letters.counts()
        except Exception as error:  # the broker is down, or a queue is not declared yet
            log.warning("console.dead_letters_unavailable", error=f"{type(error).__name__}: {error}")
            raise OwnerUnavailable("RabbitMQ") from error

    async def replay(self, dead_letter_queue: str) -> ReplayOutcome:
        queues = dead_letter_queues([dead_letter_queue])  # ValueError for a queue that is not ours
        report = await self._dead_letters.replay(Selection(queues=tuple(queues)))
        return ReplayOutcome(replayed=len(report.replayed), failed=len(report.failed))

    async def readiness(self) -> list[Readiness]:
        async def probe(name: str, base_url: str) -> Readiness:
            try:
                answer = await self._client.get(f"{base_url.rstrip('/')}/readyz")
            except httpx.HTTPError as error:
                return Readiness(name, False, f"does not answer ({type(error).__name__})")
            try:
                checks = answer.json().get("checks") or {}
            except (ValueError, AttributeError):
                checks = {}
            return Readiness(name, answer.status_code == 200, _describe(checks, answer.status_code))

        own = await self._own()
        probed = await asyncio.gather(*(probe(name, url) for name, url in self._services.items()))
        return [Readiness("intake", all(own.values()), _describe(own, 200 if all(own.values()) else 503)), *probed]


def _describe(checks: Mapping[str, object], status: int) -> str:
    failing = [name for name, ok in checks.items() if not ok]
    if failing:
        return "not ready: " + ", ".join(failing)
    return "ready" if status == 200 else f"answered {status}"


def http_adapters(
    settings: IntakeSettings, own_readiness: Callable[[], Awaitable[dict[str, bool]]], client: httpx.AsyncClient
) -> ConsoleAdapters:
    """The console's adapters over the services' internal APIs at the URLs intake is configured with."""
    token = settings.internal_api_token
    scheduler = InternalApi("scheduler", settings.scheduler_internal_url, token, client)
    return ConsoleAdapters(
        reads=HttpRecoveryReads(InternalApi("analytics", settings.analytics_internal_url, token, client)),
        workflows=HttpWorkflows(scheduler),
        retry_stats=HttpRetryStatistics(scheduler),
        card_statuses=HttpCardStatuses(scheduler),
        events=HttpWebhookEvents(InternalApi("webhook dispatcher", settings.dispatcher_internal_url, token, client)),
        record_backs=(
            HttpRecordBacks(InternalApi("executor", settings.executor_internal_url, token, client))
            if settings.executor_internal_url
            else None
        ),
        operations=BrokerAndProbes(
            DeadLetters(settings.rabbitmq_url, absent=settings.absent_services),
            own_readiness,
            {
                name: url
                for name, url in (
                    ("scheduler", settings.scheduler_internal_url),
                    ("executor", settings.executor_internal_url),
                    ("webhook-dispatcher", settings.dispatcher_internal_url),
                    ("analytics", settings.analytics_internal_url),
                )
                if url
            },
            client,
        ),
    )
