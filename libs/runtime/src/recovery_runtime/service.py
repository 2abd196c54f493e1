"""The shape every service shares: broker, database, consumers, background loops, health and metrics."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import timedelta
from typing import Any, Protocol, TypeVar

import structlog
import uvicorn
from aiormq.exceptions import ChannelAccessRefused
from fastapi import FastAPI, Response
from faststream.rabbit import Channel, RabbitBroker
from faststream.rabbit.prometheus import RabbitPrometheusMiddleware
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, Counter, generate_latest

from recovery_runtime.bus import Publisher
from recovery_runtime.clock import Clock, SystemClock, TimeScale
from recovery_runtime.consumer import Handler, LaneOf, Lanes, subscribe
from recovery_runtime.consumer_watchdog import consumer_problem, queue_name, restart_subscriber
from recovery_runtime.logging import configure_logging
from recovery_runtime.metrics import DeadLetterDepthProbe
from recovery_runtime.mongo import IndexSpec, connect, ensure_indexes
from recovery_runtime.serving import STOP_MARGIN_SECONDS, DrainingServer, StopDeadline
from recovery_runtime.settings import ServiceSettings
from recovery_runtime.topology import check_topology, declare_topology, deployed_queues, queues_of
from recovery_runtime.tracing import Tracing, start_tracing
from recovery_runtime.unit_of_work import OutboxRelay, UnitOfWork, UnitOfWorkPort

log = structlog.get_logger(__name__)

BackgroundLoop = Callable[[], Awaitable[None]]


class ServiceAdapters(Protocol):
    """What every service's adapter bundle carries for the `Service` itself."""

    @property
    def clock(self) -> Clock: ...

    @property
    def publisher(self) -> Publisher | None:
        """None: the service's own (confirmed publishes to RabbitMQ)."""

    @property
    def unit_of_work(self) -> UnitOfWorkPort: ...


AdaptersT = TypeVar("AdaptersT", bound=ServiceAdapters)

CONSUMERS_RESTARTED = Counter(
    "recovery_consumers_restarted_total",
    "Consumers the watchdog found gone and re-created (after a broker restart)",
    ["queue"],
)


async def wait_for(what: str, probe: Callable[[], Awaitable[Any]], *, give_up_after: float = 120.0) -> None:
    """Retry `probe` with backoff until it succeeds, saying what the service waits for."""
    delay, waited = 0.2, 0.0
    while True:
        try:
            await probe()
            return
        except Exception as error:
            if waited >= give_up_after:
                raise RuntimeError(f"gave up waiting for {what} after {waited:.0f}s: {error}") from error
            log.warning("startup.waiting", dependency=what, error=str(error), retry_in=round(delay, 2))
            await asyncio.sleep(delay)
            waited += delay
            delay = min(delay * 2, 5.0)


class Service:
    """A service process: build it in the service's `app.py`, add consumers and loops, then `run()`."""

    def __init__(
        self,
        name: str,
        settings: ServiceSettings,
        *,
        clock: Clock | None = None,
        publisher: Publisher | None = None,
        unit_of_work: UnitOfWorkPort | None = None,
        tracing: Tracing | None = None,
    ) -> None:
        """`publisher` and `unit_of_work` replace the real ones (unit tests pass in-memory ones, with the broker
        under FastStream's TestRabbitBroker), `tracing` the one OTEL_EXPORTER_OTLP_ENDPOINT turns on (unit tests
        pass one exporting to memory); the MongoDB client is created either way and connects only when used."""
        if name in settings.absent_services:
            raise ValueError(f"UNDEPLOYED_SERVICES names {name}, the service being started")
        self.name = name
        self.settings = settings
        # Before anything else logs (composition roots log while they build), so every line is JSON.
        configure_logging(name, settings.log_level)
        self.clock: Clock = clock or SystemClock()
        self.time_scale = TimeScale(settings.time_scale)
        # Before the broker and the HTTP app it instruments; None (off) unless OTEL_EXPORTER_OTLP_ENDPOINT is set.
        self.tracing = tracing if tracing is not None else start_tracing(name, settings)
        self.broker = RabbitBroker(
            settings.rabbitmq_url,
            graceful_timeout=settings.shutdown_grace_seconds,
            # A mandatory publish the broker returns (no queue bound) raises rather than being confirmed (Publisher).
            default_channel=Channel(
                prefetch_count=settings.prefetch_count, publisher_confirms=True, on_return_raises=True
            ),
            app_id=f"recovery-{name}",
            fail_fast=False,
            # Through the standard library (rendered as JSON by configure_logging); FastStream's per-message
            # "Received"/"Processed" lines at DEBUG: the service logs what it did with each message itself.
            logger=logging.getLogger("recovery.broker"),
            log_level=logging.DEBUG,
            # faststream_received_messages_total, ..._processing_time_seconds, ..._published_messages_total, ...
            # Tracing outermost: the consumer pipeline and everything a handler publishes run in the message's span.
            middlewares=[
                *(self.tracing.broker_middlewares() if self.tracing else ()),
                RabbitPrometheusMiddleware(registry=REGISTRY, app_name=f"recovery-{name}"),
            ],
        )
        self.mongo = connect(settings.mongodb_url, app_name=f"recovery-{name}")
        self.db = self.mongo[settings.mongodb_database]
        self.publisher = publisher or Publisher(
            self.broker,
            timeout=settings.publish_timeout_seconds,
            duplicate_for_tests=settings.duplicate_deliveries_for_tests,
            routable=frozenset(q.message_type for q in deployed_queues(settings.absent_services)),
        )
        self._indexes: list[IndexSpec] = []
        self._loops: list[BackgroundLoop] = [
            self._watch_consumers,
            DeadLetterDepthProbe(self.broker, [q.dead_letter_queue for q in queues_of(name)]).run,
        ]
        self.unit_of_work: UnitOfWorkPort
        if unit_of_work is not None:
            self.unit_of_work = unit_of_work
        else:
            store = UnitOfWork(
                self.mongo,
                self.db,
                name,
                self.publisher,
                self.clock,
                inbox_retention=timedelta(days=settings.inbox_retention_days),
            )
            self.unit_of_work = store
            self._indexes.extend(store.indexes())
            relay = OutboxRelay(store, self.clock, timedelta(seconds=settings.outbox_relay_after_seconds))
            self._loops.append(relay.run)
        self._subscribers: list[Any] = []
        self._tasks: list[asyncio.Task[None]] = []
        self._on_start: list[Callable[[], Awaitable[None]]] = []
        self._on_stop: list[Callable[[], Awaitable[None]]] = []
        self._on_drain: list[Callable[[], Awaitable[None]]] = []
        self._consuming_stopped: asyncio.Future[Any] | None = None
        self.started = False
        self.app = FastAPI(title=f"recovery {name}", lifespan=self._lifespan)
        if self.tracing is not None:
            self.tracing.instrument(self.app)
        self._add_operational_routes()

    # -- composition ---------------------------------------------------------------------------------

    @classmethod
    def on_adapters(
        cls,
        name: str,
        settings: ServiceSettings,
        adapters: AdaptersT | None,
        real: Callable[[Service], AdaptersT],
    ) -> tuple[Service, AdaptersT]:
        """The service on `adapters` (unit tests pass in-memory ones), or, with none, on the real ones `real`
        builds from the service (its database, publisher and unit of work)."""
        if adapters is None:
            service = cls(name, settings)
            return service, real(service)
        service = cls(
            name, settings, clock=adapters.clock, publisher=adapters.publisher, unit_of_work=adapters.unit_of_work
        )
        return service, adapters

    def consume(
        self, queue_name: str, handler: Handler, *, lane_of: LaneOf | None = None, lanes: Lanes | None = None
    ) -> None:
        """Consume `queue_name` through the one pipeline (recovery_runtime.consumer); with `lane_of`, messages of
        one lane key are handled in arrival order while other keys run side by side. Queues given the same
        `lanes` share their keys' turns and its in-flight bound."""
        router, subscriber = subscribe(
            queue_name, handler, self.publisher, lane_of=lane_of, lanes=lanes, declare=self.settings.declare_topology
        )
        self.broker.include_router(router)
        self._subscribers.append(subscriber)

    def add_indexes(self, specs: list[IndexSpec]) -> None:
        self._indexes.extend(specs)

    def add_loop(self, loop: BackgroundLoop) -> None:
        self._loops.append(loop)

    def on_start(self, hook: Callable[[], Awaitable[None]]) -> None:
        self._on_start.append(hook)

    def on_stop(self, hook: Callable[[], Awaitable[None]]) -> None:
        self._on_stop.append(hook)

    def on_drain(self, hook: Callable[[], Awaitable[None]]) -> None:
        """Run on shutdown after consuming stopped and before the broker connection closes (finish in-flight)."""
        self._on_drain.append(hook)

    @staticmethod
    async def _stop_quietly(subscriber: Any) -> None:
        with contextlib.suppress(Exception):
            await subscriber.stop()

    # -- lifecycle -----------------------------------------------------------------------------------

    async def start(self) -> None:
        self._consuming_stopped = None
        await wait_for("MongoDB", lambda: self.mongo.admin.command("ping"))
        await ensure_indexes(self.db, self._indexes)
        await wait_for("RabbitMQ", self.broker.connect)
        await self._topology()
        for hook in self._on_start:
            await hook()
        await self.broker.start()
        self._tasks = [asyncio.create_task(self._guard(loop)) for loop in self._loops]
        self.started = True
        log.info("service.started", instance=self.settings.service_instance_id)

    async def _topology(self) -> None:
        """Declare the topology, or (DECLARE_TOPOLOGY=false) wait until the deploy step has declared this service's
        part of it."""
        if not self.settings.declare_topology:
            own = queues_of(self.name)
            await wait_for("the broker topology", lambda: check_topology(self.settings.rabbitmq_url, own))
            return
        try:
            await declare_topology(self.broker, self.settings.absent_services)
        except ChannelAccessRefused as error:
            raise RuntimeError(
                f"RabbitMQ refused to declare the topology ({error}): this broker user has no configure rights. "
                "Declare it in a deploy step (`recovery topology declare`) and start the services with "
                "DECLARE_TOPOLOGY=false (docs/deployment.md)"
            ) from error

    async def stop_consuming(self) -> None:
        """Stop every consumer; a handler in flight finishes within the grace period. Done once: a second call
        (SIGTERM's HTTP phase started it, `stop` waits for it) waits for the first. Not started any more from
        here on: readiness answers 503 and the consumer watchdog restarts nothing."""
        self.started = False
        if self._consuming_stopped is None:
            subscribers = list(self.broker.subscribers)
            self._consuming_stopped = asyncio.ensure_future(
                asyncio.gather(*(self._stop_quietly(sub) for sub in subscribers))
            )
        await asyncio.shield(self._consuming_stopped)

    async def stop(self) -> None:
        self.started = False
        log.info("service.stopping")
        # Stop consuming first and wait up to the grace period for in-flight handlers (FastStream's
        # graceful_timeout), then let work handed off to tasks finish: acknowledgements still travel, and
        # whatever is left unacknowledged is requeued by the broker when the connection closes.
        await self.stop_consuming()
        for hook in self._on_drain:
            with contextlib.suppress(Exception):
                await hook()
        # Background loops only now: aiormq closes a channel whose RPC is cancelled, and a loop cancelled
        # mid-publish would take the consumers' channel (and their acknowledgements) with it.
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        # Messages published but still recorded would only be published once more by the relay: tidy them now.
        with contextlib.suppress(Exception):
            await self.unit_of_work.remove_published()
        await self.broker.stop()
        for hook in self._on_stop:
            with contextlib.suppress(Exception):
                await hook()
        if self.tracing is not None:
            with contextlib.suppress(Exception):
                await self.tracing.flush()
        await self.mongo.close()
        log.info("service.stopped")

    async def _guard(self, loop: BackgroundLoop) -> None:
        while True:
            try:
                await loop()
                return
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("loop.crashed", loop=getattr(loop, "__qualname__", repr(loop)))
                await asyncio.sleep(1.0)

    @contextlib.asynccontextmanager
    async def _lifespan(self, _: FastAPI) -> AsyncIterator[None]:
        await self.start()
        try:
            yield
        finally:
            await self.stop()

    # -- operations ----------------------------------------------------------------------------------

    def missing_consumers(self) -> list[str]:
        """Queues this instance should consume from but does not (each with why), as far as it can tell."""
        missing = []
        for subscriber in self._subscribers:
            problem = consumer_problem(subscriber)
            if problem is not None:
                missing.append(f"{queue_name(subscriber)}: {problem}")
        return missing

    def consumers_present(self) -> bool:
        return not self.missing_consumers()

    async def _watch_consumers(self) -> None:
        """Re-create consumers that are gone: after a broker restart aio-pika's robust reconnect does not
        always restore them (faststream#2758), and a service that holds no consumer would idle forever."""
        interval = self.settings.consumer_watchdog_seconds
        while True:
            await asyncio.sleep(interval)
            if not self.started:
                continue
            for subscriber in self._subscribers:
                problem = consumer_problem(subscriber)
                if problem is None:
                    continue
                log.warning("consumer.missing", queue=queue_name(subscriber), problem=problem)
                try:
                    await restart_subscriber(self.broker, subscriber, self.settings.shutdown_grace_seconds)
                except Exception as error:
                    # The broker may still be away: tried again on the next round.
                    log.warning("consumer.restart_failed", queue=queue_name(subscriber), error=str(error))
                else:
                    CONSUMERS_RESTARTED.labels(queue_name(subscriber)).inc()
                    log.warning("consumer.restarted", queue=queue_name(subscriber))

    async def readiness(self) -> dict[str, bool]:
        checks = {"started": self.started}
        try:
            await asyncio.wait_for(self.mongo.admin.command("ping"), 2.0)
            checks["database"] = True
        except Exception:
            checks["database"] = False
        checks["broker"] = await self.broker.ping(timeout=2.0)
        checks["consumers"] = self.consumers_present()
        return checks

    def _add_operational_routes(self) -> None:
        @self.app.get("/healthz", include_in_schema=False)
        async def healthz() -> dict[str, str]:
            return {"status": "ok", "service": self.name}

        @self.app.get("/readyz", include_in_schema=False)
        async def readyz(response: Response) -> dict[str, Any]:
            checks = await self.readiness()
            ready = all(checks.values())
            response.status_code = 200 if ready else 503
            answer: dict[str, Any] = {"ready": ready, "checks": checks, "service": self.name}
            if not checks["consumers"]:
                answer["missing_consumers"] = self.missing_consumers()
            return answer

        @self.app.get("/metrics", include_in_schema=False)
        async def prometheus_metrics() -> Response:
            return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    def run(self) -> None:
        config = uvicorn.Config(
            self.app,
            host=self.settings.http_host,
            port=self.settings.http_port,
            log_level="warning",
            access_log=False,
            timeout_graceful_shutdown=int(self.settings.shutdown_grace_seconds),
            lifespan="on",
        )
        DrainingServer(config, self, StopDeadline(self.settings.shutdown_grace_seconds + STOP_MARGIN_SECONDS)).run()
