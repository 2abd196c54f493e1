"""`GET /v2/revenue-recovery/analytics`'s answer (`RecoveryAnalyticsResponse`): the dispute figures (lost, then open),
in total and per day, come right after the recovered ones; an answer without them (an analytics service from before
them) reads as none lost or open; the checked-in JSON Schema describes them."""

from __future__ import annotations

import json
from typing import Any

import jsonschema
import pytest

from recovery_contracts import schemas
from recovery_contracts.api.analytics import DailyFigures, RecoveryAnalyticsResponse

pytestmark = pytest.mark.unit

DAY: dict[str, Any] = {
    "date": "2026-01-15",
    "payments_total": 3,
    "payments_recovered": 2,
    "payments_failed": 1,
    "payments_in_progress": 0,
    "recovered_amount": {"USD": 3250},
}
ANSWER: dict[str, Any] = {
    "merchant_id": "merchant_1",
    "from_date": "2026-01-15",
    "to_date": "2026-01-15",
    "payments_total": 3,
    "payments_recovered": 2,
    "payments_failed": 1,
    "payments_in_progress": 0,
    "payments_cancelled": 0,
    "recovery_rate": 0.6667,
    "recovered_amount": {"USD": 3250},
    "attempts_per_recovered_payment": 1.5,
    "time_to_recover": {"p50": 600.0, "p90": 3600.0},
    "by_decline_class": {"insufficient_funds": 1},
    "by_card_network": {"Visa": {"payments": 2, "recovered": 1, "declines": 1}},
    "by_attempt_number": {"1": 1, "2": 1},
    "by_algorithm": {"cascading": {"payments": 3, "recovered": 2, "declines": 1}},
    "daily": [DAY],
}
LOST = {"payments_disputed_lost": 1, "disputed_lost_amount": {"USD": 2250}}
OPEN = {"payments_disputed_open": 1, "disputed_open_amount": {"USD": 1000}}
DISPUTED = {**LOST, **OPEN}


def test_the_dispute_figures_follow_the_recovered_ones_in_total_and_per_day() -> None:
    answer = RecoveryAnalyticsResponse.model_validate({**ANSWER, **DISPUTED, "daily": [{**DAY, **DISPUTED}]})

    body = answer.model_dump(mode="json")
    keys = list(body)
    assert keys[keys.index("recovered_amount") + 1 : keys.index("recovered_amount") + 5] == list(DISPUTED)
    assert list(body["daily"][0])[-5:] == ["recovered_amount", *DISPUTED]
    # New figures beside the old: the payment is still counted recovered, with its amount.
    assert {k: body[k] for k in ("payments_recovered", "recovered_amount", *DISPUTED)} == {
        "payments_recovered": 2,
        "recovered_amount": {"USD": 3250},
        **DISPUTED,
    }
    assert body["daily"][0] == {**DAY, **DISPUTED}


def test_an_answer_without_them_reads_as_no_dispute_lost_or_open() -> None:
    answer = RecoveryAnalyticsResponse.model_validate(ANSWER)

    assert (answer.payments_disputed_lost, answer.disputed_lost_amount) == (0, {})
    assert (answer.payments_disputed_open, answer.disputed_open_amount) == (0, {})
    assert (answer.daily[0].payments_disputed_lost, answer.daily[0].disputed_lost_amount) == (0, {})
    none = {"payments_disputed_lost": 0, "disputed_lost_amount": {}, "payments_disputed_open": 0}
    assert DailyFigures.model_validate(DAY).model_dump(mode="json") == {**DAY, **none, "disputed_open_amount": {}}


def test_the_checked_in_schema_describes_them_and_a_figure_of_another_shape_is_refused() -> None:
    document = json.loads((schemas.DEFAULT_DIR / "http" / "RecoveryAnalyticsResponse.json").read_text())
    body = {**ANSWER, **DISPUTED, "daily": [{**DAY, **DISPUTED}]}
    jsonschema.validate(body, document)
    jsonschema.validate(ANSWER, document)  # optional: an answer from before them is still valid

    for field in DISPUTED:
        assert field in document["properties"] and field not in document["required"]
        assert "dispute" in document["properties"][field]["description"]
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({**body, "disputed_lost_amount": {"USD": "22.50"}}, document)
