"""The operator's pages (the admin key only): Dead letters, with a queue's replay, and Services (readiness)."""

from __future__ import annotations

from collections.abc import Mapping

import structlog
from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from recovery_intake.console.pages import PREFIX, Console, Refused
from recovery_intake.console.ports import ConsoleAdapters
from recovery_runtime.dead_letters import dead_letter_queues

log = structlog.get_logger(__name__)


def replay_notice(query: Mapping[str, str]) -> dict[str, str]:
    """What the page says after a replay (its redirect's query): only a known queue's name and counts, never other
    text from the query (a crafted link would put its words in the page's own notice)."""
    queue, replayed, failed = query.get("queue", ""), query.get("replayed", ""), query.get("failed", "")
    try:
        dead_letter_queues([queue])
    except ValueError:
        return {}
    if not (replayed.isascii() and replayed.isdigit() and failed.isascii() and failed.isdigit()):
        return {}
    return {"queue": queue, "replayed": replayed, "failed": failed}


def router(console: Console, adapters: ConsoleAdapters) -> APIRouter:
    api = APIRouter(prefix=PREFIX, include_in_schema=False)
    operations = adapters.operations

    # ---- operator pages ------------------------------------------------------------------------------------

    @api.get("/dead-letters")
    @console.guarded
    async def dead_letters(request: Request) -> Response:
        visitor = await console.required(request, operator=True)
        counts = await operations.dead_letter_counts()
        return console.page(
            request,
            "dead_letters.html",
            visitor,
            nav="dead-letters",
            counts=counts,
            replayed=replay_notice(request.query_params),
        )

    @api.post("/dead-letters/{queue}/replay")
    @console.guarded
    async def replay(request: Request, queue: str) -> Response:
        await console.checked_post(request, operator=True)
        try:
            dead_letter_queues([queue])
        except ValueError as error:
            raise Refused(404, str(error)) from error
        outcome = await operations.replay(queue)
        log.info("console.dead_letters_replayed", queue=queue, replayed=outcome.replayed, failed=outcome.failed)
        return RedirectResponse(
            f"{PREFIX}/dead-letters?queue={queue}&replayed={outcome.replayed}&failed={outcome.failed}",
            status_code=303,
        )

    @api.get("/services")
    @console.guarded
    async def services(request: Request) -> Response:
        visitor = await console.required(request, operator=True)
        return console.page(request, "services.html", visitor, nav="services", services=await operations.readiness())

    return api
