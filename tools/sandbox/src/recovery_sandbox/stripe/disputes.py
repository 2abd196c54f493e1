"""Disputes in the sandbox, as Stripe test mode has them: a dispute (or, with `inquiry`, an inquiry) opened on a
succeeded PaymentIntent's charge (`POST /_sandbox/disputes`, standing in for Stripe's disputing test cards), read
(`GET /v1/disputes/{id}`), challenged by the merchant submitting evidence (`POST /v1/disputes/{id}` with
`submit=true`), closed by the merchant, which is accepting the loss (`POST /v1/disputes/{id}/close`), and decided
by the card network (`POST /_sandbox/disputes/{id}/decide`, standing in for the issuer), each sending its event
(`charge.dispute.created`, `charge.dispute.updated`, `charge.dispute.closed`) through webhooks.py.

Shapes follow Stripe's API reference (API version 2024-06-20): https://docs.stripe.com/api/disputes/object,
https://docs.stripe.com/api/disputes/update ("submit: whether to immediately submit evidence to the bank";
the status becomes under_review) and https://docs.stripe.com/api/disputes/close ("the status of the dispute will
change from needs_response to lost"; an inquiry's, from warning_needs_response to warning_closed). Evidence's file
fields (EVIDENCE_FILE_FIELDS) take the id of a dispute_evidence file the account uploaded (files.py), as Stripe's do.
Kept in the account's state (state.py), so a sandbox restarted with a state directory keeps its disputes.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from recovery_sandbox.stripe.errors import invalid_request, missing_param, no_such
from recovery_sandbox.stripe.files import FileCabinet
from recovery_sandbox.stripe.form import FormError, decode_form
from recovery_sandbox.stripe.params import new_id, parse_int
from recovery_sandbox.stripe.state import IdempotencySlot
from recovery_sandbox.stripe.store import StripeState
from recovery_sandbox.stripe.webhooks import Authenticate, Form, Response, Run, WebhookBook

# Stripe's dispute reasons (the Dispute object's `reason`).
REASONS = frozenset(
    {
        "bank_cannot_process",
        "check_returned",
        "credit_not_processed",
        "customer_initiated",
        "debit_not_authorized",
        "duplicate",
        "fraudulent",
        "general",
        "incorrect_account_details",
        "insufficient_funds",
        "product_not_received",
        "product_unacceptable",
        "subscription_canceled",
        "unrecognized",
    }
)
# What closing makes of an open dispute (a dispute proper, or an inquiry: Stripe's `warning_*` statuses).
CLOSED_AS = {
    "needs_response": "lost",
    "under_review": "lost",
    "warning_needs_response": "warning_closed",
    "warning_under_review": "warning_closed",
}
# What submitting evidence makes of an open dispute: the bank reviews it.
SUBMITTED_AS = {"needs_response": "under_review", "warning_needs_response": "warning_under_review"}
# What the network's decision makes of a dispute not closed yet, by outcome: a dispute is won or lost; an inquiry
# the merchant wins is closed, one it loses is escalated to a dispute (`charge.dispute.updated`, not closed).
DECIDED_AS = {
    "won": {"needs_response": "won", "under_review": "won"}
    | dict.fromkeys(("warning_needs_response", "warning_under_review"), "warning_closed"),
    "lost": {"needs_response": "lost", "under_review": "lost"}
    | dict.fromkeys(("warning_needs_response", "warning_under_review"), "needs_response"),
}
# The evidence a merchant may submit (stored as given: the sandbox judges none of it, beyond a file field naming a
# file the account uploaded).
EVIDENCE_FIELDS = (
    "access_activity_log",
    "billing_address",
    "cancellation_policy",
    "cancellation_policy_disclosure",
    "cancellation_rebuttal",
    "customer_communication",
    "customer_email_address",
    "customer_name",
    "customer_purchase_ip",
    "customer_signature",
    "duplicate_charge_documentation",
    "duplicate_charge_explanation",
    "duplicate_charge_id",
    "product_description",
    "receipt",
    "refund_policy",
    "refund_policy_disclosure",
    "refund_refusal_explanation",
    "service_date",
    "service_documentation",
    "shipping_address",
    "shipping_carrier",
    "shipping_date",
    "shipping_documentation",
    "shipping_tracking_number",
    "uncategorized_file",
    "uncategorized_text",
)
# The evidence fields that take a File id (Stripe's `evidence` shows them as file ids), the rest being text.
EVIDENCE_FILE_FIELDS = frozenset(
    {
        "cancellation_policy",
        "customer_communication",
        "customer_signature",
        "duplicate_charge_documentation",
        "receipt",
        "refund_policy",
        "service_documentation",
        "shipping_documentation",
        "uncategorized_file",
    }
)
# How long the merchant has to respond (Stripe's `evidence_details.due_by`; the network's deadline varies).
RESPONSE_SECONDS = 7 * 86_400


class DisputeDesk:
    def __init__(
        self, stripe: StripeState, webhooks: WebhookBook, files: FileCabinet, clock: Callable[[], float] = time.time
    ) -> None:
        self._stripe = stripe
        self._webhooks = webhooks
        self._files = files
        self._clock = clock
        self._lock = threading.RLock()

    def open(self, params: Mapping[str, Any]) -> dict[str, Any]:
        """A dispute (`needs_response`; with `inquiry` true, an inquiry: `warning_needs_response`) on the charge of
        the succeeded PaymentIntent `payment_intent`, for `amount` (default: the charge's) and `reason` (default
        `fraudulent`); `charge.dispute.created` is sent."""
        intent_id = params.get("payment_intent")
        if not intent_id:
            raise missing_param("payment_intent")
        reason = params.get("reason") or "fraudulent"
        if reason not in REASONS:
            raise invalid_request(f"Invalid reason: must be one of {', '.join(sorted(REASONS))}", param="reason")
        with self._lock:
            intent = self._stripe.payment_intents.get(str(intent_id))
            if intent is None:
                raise no_such("payment_intent", str(intent_id), param="payment_intent")
            if intent["status"] != "succeeded" or not intent.get("latest_charge"):
                raise invalid_request(
                    f"PaymentIntent {intent_id} has no succeeded charge to dispute.",
                    code="payment_intent_unexpected_state",
                    param="payment_intent",
                )
            charge = self._stripe.charges[intent["latest_charge"]]
            if charge.get("disputed"):
                raise invalid_request(f"Charge {charge['id']} has already been disputed.", code="charge_disputed")
            amount = parse_int(params, "amount") or charge["amount"]
            if not 1 <= amount <= charge["amount"]:
                raise invalid_request(f"Amount must be between 1 and {charge['amount']}.", param="amount")
            now = int(self._clock())
            dispute = {
                "id": new_id("dp_"),
                "object": "dispute",
                "amount": amount,
                "balance_transactions": [],
                "charge": charge["id"],
                "created": now,
                "currency": charge["currency"],
                "evidence": dict.fromkeys(EVIDENCE_FIELDS),
                "evidence_details": {
                    "due_by": now + RESPONSE_SECONDS,
                    "has_evidence": False,
                    "past_due": False,
                    "submission_count": 0,
                },
                "is_charge_refundable": False,
                "livemode": False,
                "metadata": {},
                "payment_intent": intent["id"],
                "reason": reason,
                "status": "warning_needs_response"
                if str(params.get("inquiry", "")).lower() == "true"
                else "needs_response",
            }
            self._stripe.disputes[dispute["id"]] = dispute
            charge["disputed"] = True
            self._stripe._commit(200, dispute, None)
        self._webhooks.emit("charge.dispute.created", dispute)
        return dispute

    def get(self, dispute_id: str) -> dict[str, Any]:
        with self._lock:
            dispute = self._stripe.disputes.get(dispute_id)
            if dispute is None:
                raise no_such("dispute", dispute_id, param="dispute", status=404)
            return dispute

    def update(
        self, account: str, dispute_id: str, params: Mapping[str, Any], slot: IdempotencySlot | None
    ) -> Response:
        """The merchant's evidence (`evidence[<field>]`, kept; a file field names one of `account`'s uploaded
        files) and, with `submit=true`, its submission: the bank reviews it (`under_review`) and
        `charge.dispute.updated` is sent. A dispute already decided or reviewed takes no more evidence (Stripe's
        `dispute_already_submitted` family of refusals). Nothing is kept when any of it is refused."""
        evidence = params.get("evidence") or {}
        if not isinstance(evidence, dict) or not set(evidence) <= set(EVIDENCE_FIELDS):
            raise invalid_request("Received unknown parameter: evidence", param="evidence")
        submit = params.get("submit") == "true"
        with self._lock:
            dispute = self.get(dispute_id)
            if dispute["status"] not in SUBMITTED_AS:
                raise invalid_request(f"This dispute cannot be updated: it is {dispute['status']}.", param="dispute")
            dispute["evidence"].update(self._evidence(account, evidence))
            if submit:
                dispute["status"] = SUBMITTED_AS[dispute["status"]]
                dispute["evidence_details"]["has_evidence"] = True
                dispute["evidence_details"]["submission_count"] += 1
            answer = self._stripe._commit(200, dispute, slot)
        if submit:
            self._webhooks.emit("charge.dispute.updated", dispute)
        return answer

    def _evidence(self, account: str, evidence: Mapping[str, Any]) -> dict[str, Any]:
        """The evidence as the dispute keeps it, every file field checked before any is kept: an id of the
        account's dispute_evidence file, or None for an empty value (Stripe's way to unset a field)."""
        kept = dict(evidence)
        for field in EVIDENCE_FILE_FIELDS & set(evidence):
            file_id, param = evidence[field], f"evidence[{field}]"
            if not isinstance(file_id, str):
                raise invalid_request("Invalid string", param=param)
            kept[field] = self._files.evidence(account, file_id, param=param) if file_id else None
        return kept

    def decide(self, dispute_id: str, outcome: str) -> dict[str, Any]:
        """The network decides for the merchant (`won`) or the customer (`lost`): `charge.dispute.closed` is sent
        (an inquiry lost is escalated to a dispute instead: `charge.dispute.updated`)."""
        statuses = DECIDED_AS.get(outcome)
        if statuses is None:
            raise invalid_request("outcome must be won or lost", param="outcome")
        dispute, _ = self._move(dispute_id, statuses, None)
        escalated = dispute["status"] == "needs_response"
        self._webhooks.emit("charge.dispute.updated" if escalated else "charge.dispute.closed", dispute)
        return dispute

    def close(self, dispute_id: str, slot: IdempotencySlot | None) -> Response:
        """The merchant accepts the dispute: lost (an inquiry: closed); `charge.dispute.closed` is sent."""
        dispute, answer = self._move(dispute_id, CLOSED_AS, slot)
        self._webhooks.emit("charge.dispute.closed", dispute)
        return answer

    def _move(
        self, dispute_id: str, statuses: Mapping[str, str], slot: IdempotencySlot | None
    ) -> tuple[dict[str, Any], Response]:
        """The dispute in the status `statuses` makes of its own (400 when it makes none: it is closed already),
        and the answer committed for it."""
        with self._lock:
            dispute = self.get(dispute_id)
            moved = statuses.get(dispute["status"])
            if moved is None:
                raise invalid_request(f"This dispute is already closed ({dispute['status']}).", param="dispute")
            dispute["status"] = moved
            return dispute, self._stripe._commit(200, dispute, slot)


async def _params(request: Request) -> dict[str, Any]:
    """A sandbox control's body, form-encoded or JSON (its values as the form would give them)."""
    if "json" in request.headers.get("content-type", ""):
        body = await request.json()
        if not isinstance(body, dict):
            raise invalid_request("The body must be a JSON object.")
        return {name: str(value) for name, value in body.items() if value is not None}
    try:
        return decode_form(await request.body())
    except FormError as exc:
        raise invalid_request(str(exc), param=exc.param) from exc


def add_dispute_routes(
    app: FastAPI,
    state: StripeState,
    webhooks: WebhookBook,
    files: FileCabinet,
    run: Run,
    authenticate: Authenticate,
    form: Form,
) -> None:
    desk = DisputeDesk(state, webhooks, files)

    @app.get("/v1/disputes/{dispute_id}")
    async def get_dispute(request: Request, dispute_id: str) -> dict[str, Any]:
        authenticate(request)
        return desk.get(dispute_id)

    @app.post("/v1/disputes/{dispute_id}")
    async def update_dispute(request: Request, dispute_id: str) -> JSONResponse:
        account = authenticate(request)  # whose files the evidence may name
        params = await form(request)
        return await run(request, params, lambda slot, _: desk.update(account, dispute_id, params, slot))

    @app.post("/v1/disputes/{dispute_id}/close")
    async def close_dispute(request: Request, dispute_id: str) -> JSONResponse:
        params = await form(request)  # Stripe's `expand` only: nothing to set
        return await run(request, params, lambda slot, _: desk.close(dispute_id, slot))

    # ----- sandbox controls (no auth: they are not Stripe's) ---------------------------------------------

    @app.post("/_sandbox/disputes")
    async def open_dispute(request: Request) -> dict[str, Any]:
        """The customer disputes a succeeded PaymentIntent's charge (Stripe's disputing test cards do it on
        their own): `payment_intent`, optional `reason` (default `fraudulent`), `amount` (default the charge's) and
        `inquiry` (`true`: an inquiry, Stripe's `warning_*` statuses)."""
        return desk.open(await _params(request))

    @app.post("/_sandbox/disputes/{dispute_id}/decide")
    async def decide_dispute(request: Request, dispute_id: str) -> dict[str, Any]:
        """The card network decides: `outcome` `won` or `lost`."""
        return desk.decide(dispute_id, str((await _params(request)).get("outcome", "")))
