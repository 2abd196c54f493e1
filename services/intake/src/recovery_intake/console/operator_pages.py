"""The operator's pages (the admin key only): Dead letters, with a queue's replay, and Services (readiness)."""

from __future__ import annotations

import structlog
from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from recovery_intake.console.pages import PREFIX, Console, Refused
from recovery_intake.console.ports import ConsoleAdapters
from recovery_runtime.dead_letters import dead_letter_queues

log = structlog.get_logger(__name__)


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
            request, "dead_letters.html", visitor, nav="dead-letters", counts=counts, replayed=request.query_params
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
