"""A merchant's pages: Overview (the analytics, and the disputes waiting for an answer), Recoveries (the list), Payment
(timeline, intent, workflow and deliveries, with a webhook's retry and the recovery's cancel; the answer to an open
dispute is dispute_pages'), Webhooks (endpoints, their health, recent events), Retries (when the retries succeed: the
scheduler's retry statistics) and Card data (the data backfill's upload, a customer's kept cards, which it may forget,
a card's status, and the merchant's word on a card: hard-declined, or cleared).

Thin, as every route here: read the session, ask a port, hand the answer to `views`, render.
"""

from __future__ import annotations

import asyncio
from collections.abc import Collection
from dataclasses import replace
from typing import Any
from urllib.parse import urlencode

import structlog
from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response
from starlette.datastructures import UploadFile

from recovery_contracts.payments import IntentStatus
from recovery_intake.console import card_views, payment_view, retry_views, views, webhook_views
from recovery_intake.console.pages import PREFIX, Console, Refused, Visitor, day, valid_id
from recovery_intake.console.ports import ConsoleAdapters, Document, OwnerRefused, OwnerUnavailable, RecoveryFilter
from recovery_intake.domain.card_backfill import BackfillRefused
from recovery_intake.handlers.card_backfill import CardDataBackfill
from recovery_intake.handlers.recovery import CancelDeferred
from recovery_intake.http import data_backfill

log = structlog.get_logger(__name__)

PAGE_SIZE = 20
# The console's upload of card data: its path, which has the data backfill's body bound (app.py).
CARD_DATA = "/card-data"
CARD_DATA_UPLOAD = f"{PREFIX}{CARD_DATA}"


def router(console: Console, adapters: ConsoleAdapters) -> APIRouter:
    api = APIRouter(prefix=PREFIX, include_in_schema=False)
    reads, events = adapters.reads, adapters.events
    backfill = CardDataBackfill(console.ctx.stored)

    def card_page(request: Request, visitor: Visitor, status: int = 200, **shown: Any) -> Response:
        """The Card data page with what a route has to show of it."""
        return console.page(request, "card_data.html", visitor, status, nav="card-data", **shown)

    # ---- merchant pages ----------------------------------------------------------------------------------

    async def disputes_waiting(merchant_id: str) -> list[Document]:
        """The Overview's disputes to answer; none (the panel left out, the rest of the page shown) when the read side
        does not answer them or refuses the request."""
        try:
            return await reads.disputes_to_answer(merchant_id, views.DISPUTES_TO_ANSWER_SHOWN)
        except OwnerUnavailable:
            return []
        except OwnerRefused as refused:
            log.warning("console.disputes_to_answer_refused", merchant_id=merchant_id, reason=str(refused))
            return []

    @api.get("/overview")
    @console.guarded
    async def overview(request: Request) -> Response:
        visitor = await console.required(request)
        if visitor.merchant_id is None:
            return console.page(request, "choose_merchant.html", visitor, nav="overview")
        query = request.query_params
        profile_id = query.get("profile_id") or None
        # The figures, and (whatever the period) the record backs waiting to be started again and the disputes
        # waiting for an answer: read together.
        attention = RecoveryFilter(profile_id=profile_id, record_back=views.RECORD_BACK_FILTERS["attention"], limit=1)
        answer, waiting, disputes = await asyncio.gather(
            reads.analytics(visitor.merchant_id, day(query.get("from")), day(query.get("to")), profile_id),
            reads.recoveries(visitor.merchant_id, attention),
            disputes_waiting(visitor.merchant_id),
        )
        shown = views.overview(answer)
        return console.page(
            request,
            "overview.html",
            visitor,
            nav="overview",
            overview=shown,
            query=query,
            record_backs_waiting=int(waiting.get("total_count") or 0),
            disputes_to_answer=views.disputes_to_answer(disputes, console.clock.now()),
        )

    @api.get("/recoveries")
    @console.guarded
    async def recoveries(request: Request) -> Response:
        visitor = await console.required(request)
        merchant_id = console.merchant_of(visitor)
        query = request.query_params
        status = _chosen(query.get("status"), views.RECOVERY_STATUSES, "a recovery status")
        record_back = _chosen(query.get("record_back"), views.RECORD_BACK_FILTERS, "a record-back filter")
        dispute = _chosen(query.get("dispute"), views.DISPUTE_FILTERS, "a dispute filter")
        try:
            offset = max(0, int(query.get("offset") or 0))
        except ValueError as error:
            raise Refused(400, "offset must be a whole number") from error
        where = RecoveryFilter(
            status=status,
            created_from=day(query.get("created_from")),
            created_to=day(query.get("created_to")),
            profile_id=query.get("profile_id") or None,
            record_back=views.RECORD_BACK_FILTERS[record_back] if record_back is not None else (),
            dispute=views.DISPUTE_FILTERS[dispute] if dispute is not None else (),
            limit=PAGE_SIZE,
            offset=offset,
        )
        page = views.recoveries_page(await reads.recoveries(merchant_id, where), offset, PAGE_SIZE)
        filters = {k: v for k, v in query.items() if k != "offset" and v}
        return console.page(
            request,
            "recoveries.html",
            visitor,
            nav="recoveries",
            page=page,
            query=query,
            filters=filters,
            statuses=views.RECOVERY_STATUSES,
            record_back_filters=views.RECORD_BACK_FILTERS,
            dispute_filters=views.DISPUTE_FILTERS,
        )

    async def deliveries_of(merchant_id: str, payment_id: str) -> list[payment_view.Delivery]:
        listed = await events.events(merchant_id, object_id=payment_id, limit=50)
        shown = []
        for event in listed.get("events") or []:
            attempts = await events.attempts(merchant_id, str(event.get("event_id"))) or []
            shown.append(payment_view.delivery(event, attempts))
        return shown

    @api.get("/payments/{payment_id}")
    @console.guarded
    async def payment(request: Request, payment_id: str) -> Response:
        visitor = await console.required(request)
        merchant_id = console.merchant_of(visitor)
        timeline = await reads.timeline(merchant_id, payment_id) if valid_id(payment_id) else None
        if timeline is None:
            # Another merchant's payment reads as one that does not exist.
            raise Refused(404, f"No payment {payment_id[:64]!r} for this merchant.")
        # The recovery's status comes with the timeline (one moment of the read model); a timeline stored before
        # 4 Dec 2026 has none, and the recovery intent is read for it.
        intent = None if timeline.get("recovery_status") else await reads.recovery(merchant_id, payment_id)
        try:
            workflow = await adapters.workflows.workflow(merchant_id, payment_id)
        except OwnerUnavailable:
            workflow = None  # the page still shows what the read model knows
        shown = payment_view.payment_page(timeline, intent, await deliveries_of(merchant_id, payment_id), workflow)
        # Intake's own intent is the truth on a cancel (the read model has it moments later) and keeps each dispute
        # where it stands (the read model keeps records of lost ones, the others as timeline entries).
        own = await console.ctx.stored.intents.get(merchant_id, payment_id)
        cancelled = shown.open and own is not None and own.status is IntentStatus.CANCELLED
        shown = replace(shown, other_disputes=payment_view.other_disputes(own))
        done = payment_view.done_notice(request.query_params)
        return console.page(
            request, "payment.html", visitor, nav="recoveries", payment=shown, cancelled=cancelled, done=done
        )

    @api.post("/payments/{payment_id}/cancel")
    @console.guarded
    async def cancel_recovery(request: Request, payment_id: str) -> Response:
        """`POST /v2/revenue-recovery/{merchant_reference_id}/cancel` from the Payment page: the same use case, for
        a merchant key with the payments scope (the admin key does not act on payments, as on the API)."""
        visitor, _ = await console.checked_post(request)
        merchant_id = console.merchant_of(visitor)
        if visitor.session.is_admin or not visitor.can_write:
            raise Refused(403, "Cancelling a recovery needs a merchant API key with the payments scope.")
        intent = await console.ctx.stored.intents.get(merchant_id, payment_id) if valid_id(payment_id) else None
        if intent is None:
            raise Refused(404, f"No payment {payment_id[:64]!r} for this merchant.")
        try:
            await console.ctx.recovery.cancel(merchant_id, intent.profile_id, intent.merchant_reference_id)
        except CancelDeferred as deferred:
            raise Refused(409, f"Not cancelled: {deferred.reason}.") from deferred
        log.info("console.recovery_cancelled", merchant_id=merchant_id, payment_id=payment_id)
        return RedirectResponse(f"{PREFIX}/payments/{payment_id}", status_code=303)

    @api.post("/payments/{payment_id}/record-back/restart")
    @console.guarded
    async def restart_record_back(request: Request, payment_id: str) -> Response:
        """The API's `PSYNC_WORKFLOW` resume from the Payment page: an abandoned or blocked record back to the
        billing system starts again (a new round of tries, nothing charged), for a merchant key with the payments
        scope (the admin key does not act on payments)."""
        return await restart_record(request, payment_id, None)

    @api.post("/payments/{payment_id}/disputes/{dispute_id}/refund-record/restart")
    @console.guarded
    async def restart_refund_record(request: Request, payment_id: str, dispute_id: str) -> Response:
        """The same resume with the API's `dispute_id`: the abandoned or blocked refund record of a dispute lost on
        the payment starts again."""
        return await restart_record(request, payment_id, dispute_id)

    async def restart_record(request: Request, payment_id: str, dispute_id: str | None) -> Response:
        visitor, _ = await console.checked_post(request)
        merchant_id = console.merchant_of(visitor)
        what = "record back" if dispute_id is None else "refund record"
        if visitor.session.is_admin or not visitor.can_write:
            raise Refused(403, f"Starting a {what} again needs a merchant API key with the payments scope.")
        if adapters.record_backs is None:
            raise Refused(503, "Record backs cannot be started again here: EXECUTOR_INTERNAL_URL is not set.")
        ids_valid = valid_id(payment_id) and (dispute_id is None or valid_id(dispute_id))
        try:
            restarted = await adapters.record_backs.restart(merchant_id, payment_id, dispute_id) if ids_valid else None
        except OwnerRefused as refused:
            raise Refused(409, f"Not started again: {refused}.") from refused
        if restarted is None:
            raise Refused(404, f"No {what} of payment {payment_id[:64]!r} for this merchant.")
        log.info("console.record_back_restarted", merchant_id=merchant_id, payment_id=payment_id, dispute_id=dispute_id)
        done = "record-back" if dispute_id is None else "refund-record"
        return RedirectResponse(f"{PREFIX}/payments/{payment_id}?done={done}", status_code=303)

    @api.post("/payments/{payment_id}/webhooks/{event_id}/retry")
    @console.guarded
    async def retry_webhook(request: Request, payment_id: str, event_id: str) -> Response:
        visitor, _ = await console.checked_post(request)
        merchant_id = console.merchant_of(visitor)
        if not visitor.can_write:
            raise Refused(403, "This API key may only read: a retry needs the payments scope.")
        if not (valid_id(payment_id) and valid_id(event_id)):
            raise Refused(404, "No such webhook event.")
        # The event must be one of this payment's (the page's button names both).
        before = {d.event_id for d in await deliveries_of(merchant_id, payment_id)}
        if event_id not in before or await events.retry(merchant_id, event_id) is None:
            raise Refused(404, "No such webhook event for this payment.")
        log.info("console.webhook_retried", merchant_id=merchant_id, payment_id=payment_id, event_id=event_id)
        if not request.headers.get("hx-request"):
            return RedirectResponse(f"{PREFIX}/payments/{payment_id}?done=webhook-retry", status_code=303)
        after = {d.event_id: d for d in await deliveries_of(merchant_id, payment_id)}
        return console.page(request, "_delivery.html", visitor, delivery=after[event_id], payment_id=payment_id)

    @api.get("/webhooks")
    @console.guarded
    async def webhooks(request: Request) -> Response:
        visitor = await console.required(request)
        merchant_id = console.merchant_of(visitor)
        listed = (await events.events(merchant_id, limit=100)).get("events") or []
        return console.page(
            request,
            "webhooks.html",
            visitor,
            nav="webhooks",
            endpoints=webhook_views.endpoint_rows(await events.endpoints(merchant_id)),
            health=webhook_views.endpoint_health(listed),
            events=webhook_views.event_rows(listed[:PAGE_SIZE]),
            recover_windows=webhook_views.RECOVER_WINDOWS,
            recovered=webhook_views.recovered_notice(request.query_params),
        )

    @api.post("/webhooks/recover")
    @console.guarded
    async def recover_webhooks(request: Request) -> Response:
        """The events API's recover: the merchant's events whose delivery failed within the window chosen,
        delivered again (a batch; pressed again, the next)."""
        visitor, form = await console.checked_post(request)
        merchant_id = console.merchant_of(visitor)
        if not visitor.can_write:
            raise Refused(403, "This API key may only read: delivering events again needs the payments scope.")
        window = webhook_views.RECOVER_WINDOWS.get(str(form.get("within") or ""))
        if window is None:
            raise Refused(400, "Choose how far back to deliver failed events again.")
        answer = await events.recover(merchant_id, console.clock.now() - window[1])
        told = webhook_views.recover_told(answer)
        log.info("console.webhooks_recovered", merchant_id=merchant_id, **told)
        return RedirectResponse(f"{PREFIX}/webhooks?{urlencode(told)}", status_code=303)

    @api.get(CARD_DATA)
    @console.guarded
    async def card_data(request: Request) -> Response:
        """The upload's form, with `customer` what the uploads kept of that customer's cards, and with `card` that
        card's status as the merchant's recoveries see it (`GET /v2/recovery/data-backfill/token-status`'s use case,
        the scheduler's; any key that may read payments)."""
        visitor = await console.required(request)
        merchant_id = console.merchant_of(visitor)
        customer = request.query_params.get("customer", "").strip()
        if len(customer) > data_backfill.CUSTOMER_CHARS:
            raise Refused(400, f"A customer id has at most {data_backfill.CUSTOMER_CHARS} characters.")
        card = request.query_params.get("card", "").strip()
        if len(card) > card_views.TOKEN_CHARS:
            raise Refused(400, f"A card token has at most {card_views.TOKEN_CHARS} characters.")
        kept = card_views.kept_cards(await backfill.kept_cards(merchant_id, customer)) if customer else None
        status = await adapters.card_statuses.token_status(merchant_id, card) if card else None
        lookup = card_views.card_lookup(status) if status is not None else None
        return card_page(request, visitor, result=None, customer=customer, kept=kept, card=card, lookup=lookup)

    @api.post(f"{CARD_DATA}/forget")
    @console.guarded
    async def forget_cards(request: Request) -> Response:
        """`DELETE /v2/recovery/data-backfill/cards` from the console, behind the session's CSRF token."""
        visitor, form = await console.checked_post(request)
        merchant_id = console.merchant_of(visitor)
        if not visitor.can_write:
            raise Refused(403, "Forgetting card data needs an API key with the payments scope.")
        customer = form.get("customer")
        if not isinstance(customer, str) or not 0 < len(customer.strip()) <= data_backfill.CUSTOMER_CHARS:
            raise Refused(400, "Name the customer whose kept cards to forget.")
        forgot = len((await backfill.forget_cards(merchant_id, customer.strip())).cards)
        log.info("console.cards_forgotten", merchant_id=merchant_id, cards=forgot)
        return card_page(request, visitor, result=None, customer=customer.strip(), kept=[], forgotten=forgot)

    @api.post(f"{CARD_DATA}/token-status")
    @console.guarded
    async def update_token_status(request: Request) -> Response:
        """`PUT /v2/recovery/data-backfill/update-token` from the console (the scheduler's use case), for a key that
        may write payments, behind the session's CSRF token: the answer's message, or why it was not taken, shown
        on the page with the form as sent."""
        visitor, form = await console.checked_post(request)
        merchant_id = console.merchant_of(visitor)
        if not visitor.can_write:
            raise Refused(403, "Marking a card needs an API key with the payments scope.")
        sent = card_views.card_status_sent(form)
        action = form.get("hard_decline")
        try:
            update = card_views.token_status_update(sent, action if isinstance(action, str) else "")
            answer = await adapters.card_statuses.update_token_status(merchant_id, update)
        except (card_views.CardStatusRefused, OwnerRefused) as refused:
            shown = replace(sent, message=str(refused), refused=True)
            return card_page(request, visitor, 400, card_status=shown)
        log.info("console.token_status_updated", merchant_id=merchant_id, updated=answer.get("updated"))
        shown = replace(sent, message=str(answer.get("message") or ""))
        return card_page(request, visitor, card_status=shown)

    @api.post(CARD_DATA)
    @console.guarded
    async def upload_card_data(request: Request) -> Response:
        """`POST /v2/recovery/data-backfill` from the console: the same use case and file, for a key that may
        write payments (or the admin key, for the merchant it chose), behind the session's CSRF token."""
        visitor, form = await console.checked_post(request, max_part_size=data_backfill.BODY_BYTES)
        merchant_id = console.merchant_of(visitor)
        if not visitor.can_write:
            raise Refused(403, "Uploading card data needs an API key with the payments scope.")
        upload = form.get("file")
        if not isinstance(upload, UploadFile) or not upload.filename:
            raise Refused(400, "Choose a CSV file to upload.")
        try:
            result = await backfill.backfill(merchant_id, await upload.read())
        except BackfillRefused as refused:
            raise Refused(400, f"The file was not applied: {refused}.") from refused
        log.info("console.card_data", merchant_id=merchant_id, updated=result.updated_recoveries)
        return card_page(request, visitor, result=result)

    @api.get("/retries")
    @console.guarded
    async def retries(request: Request) -> Response:
        visitor = await console.required(request)
        merchant_id = console.merchant_of(visitor)
        chosen = retry_views.chosen_key(request.query_params)
        shown = retry_views.retries_page(await adapters.retry_stats.retry_stats(merchant_id), chosen)
        for name, value in chosen.items():
            if value and value not in shown.choices[name]:
                raise Refused(400, f"{value!r} is not a {name.replace('_', ' ')} of this merchant's retries.")
        return console.page(request, "retries.html", visitor, nav="retries", retries=shown)

    return api


def _chosen(value: str | None, choices: Collection[str], what: str) -> str | None:
    """A filter's choice from the page's query: one of `choices`, None for any (not given, or empty); else a 400 that
    says it is not `what`."""
    if value and value not in choices:
        raise Refused(400, f"{value!r} is not {what}.")
    return value or None
