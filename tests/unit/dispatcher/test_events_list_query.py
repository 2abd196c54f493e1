"""How an events list request becomes a records query: the merchant's `_id` range, its time bounds, and the
object filter (a payment through its claims' event ids, an attempt from its creation time)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from recovery_contracts.api.events import EventListConstraints
from recovery_contracts.ids import new_attempt_id
from recovery_dispatcher.adapters.event_queries import merchant_range
from recovery_dispatcher.domain.ids import CLOCK_SKEW, created_at_of, record_key
from recovery_dispatcher.http import _list_query

T0 = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)


def test_time_bounds_are_the_range_and_an_exact_filter() -> None:
    query = _list_query("m1", EventListConstraints(created_after=T0, created_before=T0 + timedelta(hours=1)))
    assert query.filters == {"created_at": {"$gte": T0, "$lte": T0 + timedelta(hours=1)}}
    assert (query.after, query.before) == (T0, T0 + timedelta(hours=1))
    low, high = merchant_range("m1", query.after, query.before).values()
    assert low == f"m1/evt_{int(T0.timestamp() * 1000):012x}"
    assert high == f"m1/evt_{int(T0.timestamp() * 1000) + 3_600_001:012x}"


def test_a_payment_is_looked_up_by_the_keys_of_its_claimed_events_in_this_merchants_records() -> None:
    query = _list_query("m1", EventListConstraints(object_id="12345_pay_x"), ["evt_b", "evt_a"])
    assert query.filters == {"_id": {"$in": [record_key("m1", "evt_a"), record_key("m1", "evt_b")]}}
    both = _list_query("m1", EventListConstraints(object_id="12345_pay_x", event_id="evt_b"), ["evt_b", "evt_a"])
    assert both.filters == {"_id": {"$in": [record_key("m1", "evt_b")]}}


def test_an_attempt_is_looked_for_from_its_creation_less_the_clock_skew() -> None:
    attempt = new_attempt_id("12345")
    created = created_at_of(attempt, datetime.now(UTC))
    assert created is not None
    query = _list_query("m1", EventListConstraints(object_id=attempt), [])
    assert query.filters == {"primary_object_id": attempt}
    assert query.after == created - CLOCK_SKEW and query.before is None
    # A later created_after wins; an id that is not time-ordered leaves the range whole.
    later = created + timedelta(minutes=1)
    assert _list_query("m1", EventListConstraints(object_id=attempt, created_after=later)).after == later
    assert _list_query("m1", EventListConstraints(object_id="att_2")).after is None
