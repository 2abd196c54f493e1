"""The read side's internal API: intake authenticates the merchant and forwards here (recovery_runtime.internal_api).

Every read is scoped to the forwarded merchant: another merchant's payment id answers 404, as one that does not
exist. A profile-level call (`x-internal-profile-id`) sees that profile only: another profile's payment answers 404
the same way, and the list and the figures are the profile's (filtered to another profile with `profile_id`: those
of nothing, as for a profile that does not exist). Paths (fixed: intake and the console rely on them):

- `GET /internal/recoveries/{merchant_id}`: Hyperswitch's recovery list;
- `GET /internal/recoveries/{merchant_id}/{payment_id}`: Hyperswitch's revenue recovery intent;
- `GET /internal/analytics/{merchant_id}`: the recovery figures;
- `GET /internal/timeline/{merchant_id}/{payment_id}`: the payment's timeline;
- `GET /internal/disputes/{merchant_id}`: the dispute list (Hyperswitch's `DisputeResponse`s);
- `GET /internal/disputes/{merchant_id}/{dispute_id}`: one dispute.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from fastapi.responses import JSONResponse

from recovery_analytics.dependencies import AnalyticsAdapters, DisputeQuery, RecoveryPage, RecoveryQuery
from recovery_analytics.domain.figures import summarise
from recovery_analytics.domain.record import ViewRecord
from recovery_contracts.api.analytics import RecoveryPaymentListResponse, RecoveryStatus
from recovery_contracts.api.cursors import decode_cursor, encode_cursor
from recovery_contracts.api.disputes import DisputeListConstraints, DisputeSort
from recovery_contracts.api.errors import ApiError
from recovery_contracts.disputes import DisputeState
from recovery_contracts.messages import RecordBackState
from recovery_runtime.internal_api import InternalCaller, InternalScope

MAX_PAGE = 100
DEFAULT_PAGE = 20
DEFAULT_DAYS = 30


def _error(error: ApiError, **params: Any) -> JSONResponse:
    body = error.response(**params).model_dump(mode="json", exclude_none=True)
    return JSONResponse(body, status_code=error.status_code)


def _invalid(message: str) -> JSONResponse:
    return _error(ApiError.INVALID_REQUEST_DATA, message=message)


def _aware(value: datetime | None) -> datetime | None:
    return value.replace(tzinfo=UTC) if value is not None and value.tzinfo is None else value


def _day(value: str | None, field: str) -> date:
    """A day given as `YYYY-MM-DD` or as a date-time (its UTC day)."""
    assert value is not None
    try:
        return date.fromisoformat(value)
    except ValueError:
        pass
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as error:
        raise ValueError(f"`{field}` must be a date (YYYY-MM-DD) or an ISO 8601 date-time, not {value!r}") from error
    return (_aware(parsed) or parsed).astimezone(UTC).date()


def router(adapters: AnalyticsAdapters, caller: InternalCaller, max_days: int) -> APIRouter:
    api = APIRouter(prefix="/internal", include_in_schema=False)

    async def record_of(scope: InternalScope, merchant_id: str, payment_id: str) -> ViewRecord | None:
        """The payment's record the call may see: another merchant's, or another profile's on a profile-level
        call, is None, as one that does not exist."""
        if scope.merchant_id != merchant_id:
            return None
        record = await adapters.views.of_merchant(scope.merchant_id, payment_id)
        return record if record is not None and scope.owns(record.merchant_id, record.profile_id) else None

    @api.get("/recoveries/{merchant_id}")
    async def recovery_list(
        merchant_id: str,
        status: RecoveryStatus | None = None,
        created_from: datetime | None = None,
        created_to: datetime | None = None,
        profile_id: str | None = None,
        record_back_state: Annotated[list[RecordBackState] | None, Query()] = None,
        dispute_state: Annotated[list[DisputeState] | None, Query()] = None,
        limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = DEFAULT_PAGE,
        offset: Annotated[int, Query(ge=0, le=100_000)] = 0,
        cursor: str | None = None,
        scope: InternalScope = Depends(caller),
    ) -> Any:
        if scope.merchant_id != merchant_id:
            return _error(ApiError.MERCHANT_ACCOUNT_NOT_FOUND)
        after = decode_cursor(cursor) if cursor else None
        if cursor and after is None:
            return _invalid("`cursor` is not one this API gave out (take `next_cursor` of the previous page)")
        profile_id = scope.list_profile(profile_id)
        query = RecoveryQuery(
            merchant_id=merchant_id,
            profile_id=profile_id,
            recovery_status=status.value if status is not None else None,
            record_back_states=tuple(state.value for state in record_back_state or ()),
            dispute_states=tuple(state.value for state in dispute_state or ()),
            created_from=_aware(created_from),
            created_to=_aware(created_to),
            limit=limit,
            offset=offset,
            after=after,
        )
        if scope.owns(merchant_id, profile_id):
            page = await adapters.views.page(query)
        else:
            # Another profile's, asked for on a profile-level call: none, as of a profile that does not exist.
            page = RecoveryPage(records=[], total=0, more=False)
        items = [record.list_item for record in page.records if record.list_item is not None]
        # A cursor only when something follows the page: a full last page gives none.
        last = page.records[-1] if page.more else None
        answer = RecoveryPaymentListResponse.model_validate(
            {
                "count": len(items),
                "total_count": page.total,
                "data": items,
                "next_cursor": encode_cursor(last.created_at, last.payment_id)
                if last is not None and last.created_at is not None
                else None,
            }
        )
        return answer.model_dump(mode="json")

    @api.get("/recoveries/{merchant_id}/{payment_id}")
    async def recovery_intent(merchant_id: str, payment_id: str, scope: InternalScope = Depends(caller)) -> Any:
        record = await record_of(scope, merchant_id, payment_id)
        if record is None or record.intent is None:
            return _error(ApiError.PAYMENT_NOT_FOUND)
        return record.intent

    @api.get("/timeline/{merchant_id}/{payment_id}")
    async def payment_timeline(merchant_id: str, payment_id: str, scope: InternalScope = Depends(caller)) -> Any:
        record = await record_of(scope, merchant_id, payment_id)
        if record is None:
            return _error(ApiError.PAYMENT_NOT_FOUND)
        return record.timeline

    @api.get("/analytics/{merchant_id}")
    async def analytics(
        merchant_id: str,
        from_: Annotated[str | None, Query(alias="from")] = None,
        to: str | None = None,
        profile_id: str | None = None,
        scope: InternalScope = Depends(caller),
    ) -> Any:
        if scope.merchant_id != merchant_id:
            return _error(ApiError.MERCHANT_ACCOUNT_NOT_FOUND)
        try:
            last = _day(to, "to") if to else adapters.clock.now().astimezone(UTC).date()
            first = _day(from_, "from") if from_ else last - timedelta(days=DEFAULT_DAYS - 1)
        except ValueError as error:
            return _invalid(str(error))
        if first > last:
            return _invalid(f"`from` ({first}) is after `to` ({last})")
        if (last - first).days + 1 > max_days:
            return _invalid(f"`from`..`to` spans more than {max_days} days")
        profile_id = scope.list_profile(profile_id)
        if not scope.owns(merchant_id, profile_id):
            # Another profile's figures, asked for on a profile-level call: those of nothing.
            return summarise(merchant_id, profile_id, first, last, [], []).model_dump(mode="json")
        days = await adapters.days.between(merchant_id, profile_id, first, last)
        start = datetime.combine(first, datetime.min.time(), tzinfo=UTC)
        end = datetime.combine(last + timedelta(days=1), datetime.min.time(), tzinfo=UTC)
        seconds = await adapters.views.seconds_to_recover(merchant_id, profile_id, start, end)
        return summarise(merchant_id, profile_id, first, last, days, seconds).model_dump(mode="json")

    @api.get("/disputes/{merchant_id}")
    async def dispute_list(
        merchant_id: str, asked: Annotated[DisputeListConstraints, Query()], scope: InternalScope = Depends(caller)
    ) -> Any:
        if scope.merchant_id != merchant_id:
            return _error(ApiError.MERCHANT_ACCOUNT_NOT_FOUND)
        profile_id = scope.list_profile(asked.profile_id)
        if not scope.owns(merchant_id, profile_id):
            # Another profile's, asked for on a profile-level call: none, as of a profile that does not exist.
            return []
        query = DisputeQuery(
            merchant_id=merchant_id,
            profile_id=profile_id,
            statuses=tuple(s.value for s in asked.dispute_status or ()),
            stages=tuple(s.value for s in asked.dispute_stage or ()),
            reasons=tuple(asked.reason or ()),
            connectors=tuple(asked.connector or ()),
            received=asked.received(),
            by_answer_by=asked.sort is DisputeSort.ANSWER_BY,
            limit=asked.limit,
        )
        return await adapters.views.disputes(query)

    @api.get("/disputes/{merchant_id}/{dispute_id}")
    async def dispute(merchant_id: str, dispute_id: str, scope: InternalScope = Depends(caller)) -> Any:
        found = None
        if scope.merchant_id == merchant_id:
            found = await adapters.views.dispute(merchant_id, scope.profile_id, dispute_id)
        return found if found is not None else _error(ApiError.DISPUTE_NOT_FOUND)

    return api
