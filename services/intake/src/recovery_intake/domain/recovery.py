"""From an accepted recovery request to the recovery snapshot every later service works from."""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime
from typing import Any

from recovery_contracts.api.connector_accounts import ConnectorType
from recovery_contracts.api.errors import ApiError
from recovery_contracts.api.recovery import RecoveryAction, RecoveryAttemptStatus, RecoveryPaymentsCreate
from recovery_contracts.recovery import PaymentToken, RecoveryPayment, RetryAlgorithm, RetrySettings

from .card_backfill import SavedCard, with_saved_card
from .profiles import monitoring_configured_at, retry_algorithm
from .rejection import Rejection


def check_acceptable(request: RecoveryPaymentsCreate) -> None:
    """Refuses (`Rejection`) a well-formed request that cannot be applied to an invoice."""
    if (
        request.action is RecoveryAction.SCHEDULE_FAILED_PAYMENT
        and request.recovery_status is not RecoveryAttemptStatus.FAILED
    ):
        raise Rejection(
            ApiError.INVALID_REQUEST_DATA,
            message=(
                f"action schedule_failed_payment needs a failed attempt_status; got {request.attempt_status.value}"
            ),
        )
    if request.action is RecoveryAction.INVALID_ACTION:
        raise Rejection(
            ApiError.NOT_SUPPORTED,
            message="action invalid_action cannot be applied to an invoice (see docs/retry-engine.md)",
        )


# The request field naming the account of each kind a recovery needs.
ACCOUNT_FIELDS = {
    ConnectorType.BILLING_PROCESSOR: "billing_merchant_connector_id",
    ConnectorType.PAYMENT_PROCESSOR: "payment_merchant_connector_id",
}


def check_connector_account(
    account: dict[str, Any] | None, account_id: str, profile_id: str, kind: ConnectorType
) -> dict[str, Any]:
    """The account a request names for `kind`, if it may serve the recovery: the profile's, of `kind`, enabled."""
    field = ACCOUNT_FIELDS[kind]
    if account is None or account["profile_id"] != profile_id:
        raise Rejection(
            ApiError.CONNECTOR_ACCOUNT_NOT_FOUND,
            reason=f"{field} {account_id!r} is not a connector account of profile {profile_id}",
        )
    if account["connector_type"] != kind.value:
        raise Rejection(
            ApiError.INVALID_REQUEST_DATA,
            message=f"{field} {account_id!r} is a {account['connector_type']}, not a {kind.value}",
        )
    if account.get("disabled"):
        raise Rejection(ApiError.CONNECTOR_ACCOUNT_DISABLED, reason=f"{field} {account_id!r}")
    return account


def retry_settings(
    profile: dict[str, Any], billing_account: dict[str, Any], monitoring_threshold_seconds: int
) -> RetrySettings:
    recovery = _revenue_recovery(billing_account)
    switch = recovery.get("switch_payment_method_config") or {}
    jitter = {
        key: recovery[key] for key in ("min_jitter_seconds", "max_jitter_seconds") if recovery.get(key) is not None
    }
    if "max_jitter_seconds" in jitter and "min_jitter_seconds" not in jitter:
        # Hyperswitch's lower bound is 1 s; a smaller upper bound (0: no jitter) lowers it too.
        jitter["min_jitter_seconds"] = min(1, jitter["max_jitter_seconds"])
    return RetrySettings(
        **jitter,
        algorithm=retry_algorithm(profile),
        active_algorithm=RetryAlgorithm.CASCADING,
        ladder_seconds=tuple(recovery["retry_ladder_seconds"]) if recovery.get("retry_ladder_seconds") else None,
        max_retry_count=recovery.get("max_retry_count"),
        billing_connector_retry_threshold=recovery.get("billing_connector_retry_threshold", 0),
        switch_retry_threshold=switch.get("retry_threshold", 0),
        switch_time_threshold_after_creation_seconds=switch.get("time_threshold_after_creation", 0),
        monitoring_threshold_seconds=monitoring_threshold_seconds,
        profile_created_at=profile.get("created_at"),
        monitoring_configured_at=monitoring_configured_at(profile),
    )


def build_snapshot(
    request: RecoveryPaymentsCreate,
    *,
    payment_id: str,
    merchant_id: str,
    profile: dict[str, Any],
    billing_account: dict[str, Any],
    payment_account: dict[str, Any],
    now: datetime,
    monitoring_threshold_seconds: int,
    saved_card: SavedCard | None = None,
) -> RecoveryPayment:
    """`saved_card`: what the merchant's uploads said of the request's card (`with_saved_card`)."""
    data = request.payment_method_data
    info = data.additional_payment_method_info
    token = PaymentToken(
        token=data.primary_processor_payment_method_token,
        connector_customer_id=request.connector_customer_id,
        payment_method_type=request.payment_method_type.value,
        payment_method_subtype=request.payment_method_sub_type.value,
        card_network=info.card_network.value if info and info.card_network else None,
        card_issuer=info.card_issuer if info else None,
        card_type=info.card_type if info else None,
        card_exp_month=info.card_exp_month if info else None,
        card_exp_year=info.card_exp_year if info else None,
        last_four_digits=info.last_four_digits if info else None,
    )
    if saved_card is not None:
        token = with_saved_card(token, saved_card)
    return RecoveryPayment(
        payment_id=payment_id,
        merchant_id=merchant_id,
        profile_id=profile["_id"],
        merchant_reference_id=request.merchant_reference_id,
        amount=request.amount_details.order_amount,
        currency=request.amount_details.currency.value,
        created_at=now,
        billing_connector_id=billing_account["_id"],
        payment_connector_id=payment_account["_id"],
        connector=payment_account["connector_name"],
        connector_customer_id=request.connector_customer_id,
        payment_method_type=request.payment_method_type.value,
        payment_method_subtype=request.payment_method_sub_type.value,
        tokens=(token,),
        billing=request.billing,
        billing_started_at=request.billing_started_at,
        transaction_created_at=request.transaction_created_at,
        failed_connector_transaction_id=request.connector_transaction_id,
        first_error=request.error,
        billing_retry_count=1,
        return_url=profile.get("return_url"),
        retry=retry_settings(profile, billing_account, monitoring_threshold_seconds),
        metadata=request.metadata,
        billing_connector_name=billing_account.get("connector_name"),
        record_back_url=_revenue_recovery(billing_account).get("record_back_url"),
    )


def _revenue_recovery(billing_account: dict[str, Any]) -> dict[str, Any]:
    return ((billing_account.get("feature_metadata") or {}).get("revenue_recovery")) or {}


def merge_request(
    current: RecoveryPayment, incoming: RecoveryPayment, seen_transactions: Collection[str]
) -> tuple[RecoveryPayment, tuple[str, ...]]:
    """A later `schedule_failed_payment` for the same invoice, folded into the recovery's snapshot.

    Its token joins the customer's saved tokens (after the others: the first stays the one the billing system's
    first failure belongs to); a known token with new card data (a new expiry) replaces the old entry. A failure
    with a connector transaction id not seen before is one more billing-system retry (`total_retry_count`); the
    same request sent again changes nothing. Returns the new snapshot and the tokens added.
    """
    tokens = list(current.tokens)
    added: list[str] = []
    for token in incoming.tokens:
        index = next((i for i, known in enumerate(tokens) if known.token == token.token), None)
        if index is None:
            tokens.append(token)
            added.append(token.token)
        elif tokens[index] != token:
            tokens[index] = token
    transaction = incoming.failed_connector_transaction_id
    new_failure = transaction is None or transaction not in seen_transactions
    update: dict[str, Any] = {"tokens": tuple(tokens)}
    if new_failure:
        update["billing_retry_count"] = current.billing_retry_count + 1
        update["transaction_created_at"] = incoming.transaction_created_at or current.transaction_created_at
    return current.model_copy(update=update), tuple(added)
