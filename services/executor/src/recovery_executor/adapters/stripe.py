"""Stripe as the payment connector: off-session PaymentIntent charges with idempotency keys, and PSYNC."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlencode

import httpx

from recovery_contracts.messages import PAYMENT_METHOD_UNUSABLE
from recovery_executor.domain.connector import REFUSED_CALLER, ChargeOutcome, ChargeOutcomeKind, ChargeRequest
from recovery_runtime.connector_apis import STRIPE_VERSION

log = logging.getLogger(__name__)

# How far PSYNC pages through a customer's PaymentIntents when search finds nothing (search can lag writes).
SYNC_LIST_PAGES = 3


def charge_form(request: ChargeRequest) -> list[tuple[str, str]]:
    """The PaymentIntent create call's form fields; the attempt's identity goes into metadata, for PSYNC."""
    metadata = {
        **request.metadata,
        "payment_id": request.payment_id,
        "attempt_number": str(request.attempt_number),
        "idempotency_key": request.idempotency_key,
    }
    fields = [
        ("amount", str(request.amount)),
        ("currency", request.currency.lower()),
        ("payment_method", request.payment_method),
        ("confirm", "true"),
        # A merchant-initiated retry of a saved card: the customer is not there to authenticate.
        ("off_session", "true"),
    ]
    if request.customer:
        fields.append(("customer", request.customer))
    if request.description:
        fields.append(("description", request.description))
    fields.extend((f"metadata[{key}]", value) for key, value in sorted(metadata.items()))
    return fields


def attempt_search_query(request: ChargeRequest) -> str:
    return (
        f"metadata['payment_id']:'{_quote(request.payment_id)}' AND "
        f"metadata['attempt_number']:'{request.attempt_number}'"
    )


def _quote(value: str) -> str:
    return value.replace("\\", "\\\\").replace("'", "\\'")


def outcome_from_payment_intent(intent: Mapping[str, Any], http_status: int | None = 200) -> ChargeOutcome:
    """A PaymentIntent object read back from Stripe, mapped by its status."""
    status = intent.get("status")
    common: dict[str, Any] = {
        "connector_transaction_id": intent.get("id"),
        "charge_id": intent.get("latest_charge") if isinstance(intent.get("latest_charge"), str) else None,
        "raw_status": status,
        "http_status": http_status,
    }
    if status == "succeeded":
        return ChargeOutcome(ChargeOutcomeKind.SUCCEEDED, amount_received=intent.get("amount_received"), **common)
    if status in ("processing", "requires_capture"):
        # requires_capture would mean an authorisation waiting for capture; we only create automatic-capture
        # intents, so it is a transient state here, to sync again.
        return ChargeOutcome(ChargeOutcomeKind.PROCESSING, **common)
    error = intent.get("last_payment_error")
    if status == "requires_payment_method" and isinstance(error, Mapping):
        return ChargeOutcome(ChargeOutcomeKind.DECLINED, **_error_fields(error), **common)
    if status == "requires_action":
        # Off-session nobody can complete 3-D Secure: for a recovery retry this is a decline.
        return ChargeOutcome(
            ChargeOutcomeKind.DECLINED,
            error_code="authentication_required",
            decline_code="authentication_required",
            message="The payment requires customer authentication.",
            **common,
        )
    if status == "canceled":
        return ChargeOutcome(
            ChargeOutcomeKind.DECLINED,
            error_code="payment_intent_canceled",
            message=f"The PaymentIntent was canceled ({intent.get('cancellation_reason')}).",
            **common,
        )
    # requires_confirmation, or requires_payment_method without an error: created but never confirmed.
    return ChargeOutcome(
        ChargeOutcomeKind.UNKNOWN, message=f"PaymentIntent in status {status} was never confirmed", **common
    )


def _error_fields(error: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "decline_code": error.get("decline_code"),
        "error_code": error.get("code"),
        "error_type": error.get("type"),
        "message": error.get("message"),
        "advice_code": error.get("advice_code"),
        "network_decline_code": error.get("network_decline_code"),
        "network_advice_code": error.get("network_advice_code"),
    }


def outcome_from_error(http_status: int, body: Any) -> ChargeOutcome:
    """A non-2xx answer, mapped by Stripe's error type and HTTP status (docs.stripe.com/api/errors)."""
    error = body.get("error") if isinstance(body, Mapping) else None
    if not isinstance(error, Mapping):
        kind = (
            ChargeOutcomeKind.UNKNOWN
            if http_status >= 500 or http_status in (408, 409, 429)
            else (ChargeOutcomeKind.CONFIG_ERROR)
        )
        return ChargeOutcome(kind, http_status=http_status, message=f"HTTP {http_status} without a Stripe error body")
    fields = _error_fields(error)
    intent = error.get("payment_intent")
    intent_fields: dict[str, Any] = {}
    if isinstance(intent, Mapping):
        intent_fields = {
            "connector_transaction_id": intent.get("id"),
            "raw_status": intent.get("status"),
        }
    charge = error.get("charge")
    if http_status == 402 or error.get("type") == "card_error":
        # The card was tried and refused: a charge attempt with a final answer.
        return ChargeOutcome(
            ChargeOutcomeKind.DECLINED,
            charge_id=charge if isinstance(charge, str) else None,
            http_status=http_status,
            **fields,
            **intent_fields,
        )
    if http_status >= 500 or http_status in (409, 429) or error.get("type") == "idempotency_error":
        # 5xx: Stripe may or may not have acted. 409: another request holds the idempotency key right now.
        # 429: rate limited, not acted on, but the caller must come back later all the same.
        # idempotency_error (a 400): the key was first used with other parameters, and that first request may
        # have charged. Only a sync can tell; a final error would let the next attempt charge under a new key.
        kind = ChargeOutcomeKind.UNKNOWN
    else:
        # 400, 401, 403, 404: the request itself is wrong.
        kind = ChargeOutcomeKind.CONFIG_ERROR
        if http_status == 400 and _refuses_the_payment_method(error):
            fields["error_code"] = PAYMENT_METHOD_UNUSABLE
    return ChargeOutcome(kind, http_status=http_status, **fields, **intent_fields)


def _refuses_the_payment_method(error: Mapping[str, Any]) -> bool:
    """Stripe refused the saved payment method itself, which exists: detached from the customer ("... was
    detached from a Customer. It may not be used again"), or another customer's. Not `resource_missing`: a
    connector account set up with another Stripe account's key answers that for every method, and that is the
    merchant's configuration to mend, not the card."""
    return (
        error.get("type") == "invalid_request_error"
        and error.get("param") == "payment_method"
        and error.get("code") != "resource_missing"
    )


def outcome_from_response(http_status: int, body: Any) -> ChargeOutcome:
    if 200 <= http_status < 300 and isinstance(body, Mapping) and body.get("object") == "payment_intent":
        return outcome_from_payment_intent(body, http_status)
    if 200 <= http_status < 300:
        return ChargeOutcome(
            ChargeOutcomeKind.UNKNOWN,
            http_status=http_status,
            message="a 2xx answer that is not a PaymentIntent",
        )
    return outcome_from_error(http_status, body)


def _attempt_matches(intent: Mapping[str, Any], request: ChargeRequest) -> bool:
    metadata = intent.get("metadata") or {}
    same_payment = metadata.get("payment_id") == request.payment_id
    return same_payment and metadata.get("attempt_number") == str(request.attempt_number)


def _most_settled(intents: list[Mapping[str, Any]]) -> Mapping[str, Any]:
    """One intent per attempt; if more (an expired idempotency key), money moved wins."""
    rank = {"succeeded": 0, "processing": 1, "requires_capture": 1}
    return min(enumerate(intents), key=lambda pair: (rank.get(str(pair[1].get("status")), 2), pair[0]))[1]


class StripeConnector:
    """One Stripe account (one secret key) over a shared httpx client."""

    def __init__(
        self,
        base_url: str,
        api_key: str,
        http_client: httpx.AsyncClient,
        timeout: float = 30.0,
    ) -> None:
        self._base_url = base_url.rstrip("/")
        self._api_key = api_key
        self._http = http_client
        self._timeout = timeout

    def __repr__(self) -> str:
        # The secret key stays out of reprs, logs and tracebacks.
        return f"StripeConnector(base_url={self._base_url!r})"

    def _headers(self, idempotency_key: str | None = None) -> dict[str, str]:
        headers = {"Authorization": f"Bearer {self._api_key}", "Stripe-Version": STRIPE_VERSION}
        if idempotency_key is not None:
            headers["Idempotency-Key"] = idempotency_key
        return headers

    async def charge(self, request: ChargeRequest) -> ChargeOutcome:
        """Creates and confirms the PaymentIntent; the same request again replays Stripe's first answer."""
        headers = self._headers(request.idempotency_key)
        headers["Content-Type"] = "application/x-www-form-urlencoded"
        outcome = await self._call(
            "POST", "/v1/payment_intents", headers=headers, content=urlencode(charge_form(request))
        )
        if isinstance(outcome, ChargeOutcome):
            self._log("charge", request, outcome)
            return outcome
        status, body = outcome
        result = outcome_from_response(status, body)
        self._log("charge", request, result)
        return result

    async def sync(self, request: ChargeRequest, connector_transaction_id: str | None = None) -> ChargeOutcome:
        """PSYNC: what became of this attempt at Stripe, without ever charging.

        By id when the PaymentIntent id is known; otherwise by the attempt's metadata, first with search and
        then, because Stripe's search index can trail a write by up to a minute, through the customer's
        PaymentIntents (a strongly consistent list). NOT_FOUND means neither saw it; soon after a lost answer
        that is not yet proof that nothing was charged.
        """
        if connector_transaction_id:
            result = await self._retrieve(connector_transaction_id)
        else:
            result = await self._find(request)
        self._log("sync", request, result)
        return result

    async def _retrieve(self, intent_id: str) -> ChargeOutcome:
        answer = await self._call("GET", f"/v1/payment_intents/{intent_id}", headers=self._headers())
        if isinstance(answer, ChargeOutcome):
            return answer
        status, body = answer
        if status == 404:
            return ChargeOutcome(
                ChargeOutcomeKind.NOT_FOUND,
                connector_transaction_id=intent_id,
                http_status=404,
                message=f"no PaymentIntent {intent_id}",
            )
        return outcome_from_response(status, body)

    async def _find(self, request: ChargeRequest) -> ChargeOutcome:
        answer = await self._call(
            "GET",
            "/v1/payment_intents/search",
            headers=self._headers(),
            params={"query": attempt_search_query(request), "limit": "10"},
        )
        if isinstance(answer, ChargeOutcome):
            return answer
        status, body = answer
        if status == 200 and isinstance(body, Mapping):
            found = [pi for pi in body.get("data") or [] if _attempt_matches(pi, request)]
            if found:
                return outcome_from_payment_intent(_most_settled(found))
        elif status >= 500 or status in (409, 429) or status in REFUSED_CALLER:
            # Not an answer about the attempt (a refused key included: charging.sync keeps the outcome unknown).
            return outcome_from_error(status, body)
        # An empty result, or search unavailable for the account (a 400): fall back to listing.
        if not request.customer:
            return ChargeOutcome(
                ChargeOutcomeKind.NOT_FOUND,
                http_status=status,
                message="no PaymentIntent found for the attempt",
            )
        return await self._scan_customer(request)

    async def _scan_customer(self, request: ChargeRequest) -> ChargeOutcome:
        params = {"customer": request.customer or "", "limit": "100"}
        found: list[Mapping[str, Any]] = []
        for _ in range(SYNC_LIST_PAGES):
            answer = await self._call("GET", "/v1/payment_intents", headers=self._headers(), params=params)
            if isinstance(answer, ChargeOutcome):
                return answer
            status, body = answer
            if status != 200 or not isinstance(body, Mapping):
                return outcome_from_error(status, body)
            page = body.get("data") or []
            found.extend(pi for pi in page if _attempt_matches(pi, request))
            if not body.get("has_more") or not page:
                break
            params = {**params, "starting_after": page[-1]["id"]}
        if found:
            return outcome_from_payment_intent(_most_settled(found))
        return ChargeOutcome(
            ChargeOutcomeKind.NOT_FOUND, http_status=200, message="no PaymentIntent found for the attempt"
        )

    async def _call(self, method: str, path: str, **kwargs: Any) -> tuple[int, Any] | ChargeOutcome:
        """The HTTP status and parsed body, or an UNKNOWN/CONFIG_ERROR outcome when no answer came back."""
        try:
            response = await self._http.request(method, self._base_url + path, timeout=self._timeout, **kwargs)
        except httpx.TimeoutException as exc:
            return ChargeOutcome(
                ChargeOutcomeKind.UNKNOWN,
                message=f"no answer within {self._timeout} s ({type(exc).__name__})",
            )
        except httpx.UnsupportedProtocol as exc:
            return ChargeOutcome(ChargeOutcomeKind.CONFIG_ERROR, message=f"bad Stripe base URL: {exc}")
        except httpx.TransportError as exc:
            # Even a refused connection stays UNKNOWN: the caller's next step (sync, or the same idempotent
            # request) is safe either way, and a proxy may have forwarded the request before failing.
            return ChargeOutcome(ChargeOutcomeKind.UNKNOWN, message=f"transport error: {type(exc).__name__}: {exc}")
        try:
            body = response.json()
        except ValueError:
            body = None
        return response.status_code, body

    def _log(self, operation: str, request: ChargeRequest, outcome: ChargeOutcome) -> None:
        log.info(
            "stripe %s payment_id=%s attempt=%s outcome=%s pi=%s http=%s code=%s decline_code=%s",
            operation,
            request.payment_id,
            request.attempt_number,
            outcome.kind.value,
            outcome.connector_transaction_id,
            outcome.http_status,
            outcome.error_code,
            outcome.decline_code,
        )
