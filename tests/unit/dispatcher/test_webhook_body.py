"""The webhook body is byte-for-byte Hyperswitch's: key order, compact JSON, millisecond Z timestamps."""

import json
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from recovery_dispatcher.domain.outgoing_webhook import build_body, format_timestamp

pytestmark = pytest.mark.unit

REPO_ROOT = Path(__file__).resolve().parents[3]
SAMPLE_CANDIDATES = (
    REPO_ROOT.parent / "shared" / "fixtures" / "seed" / "webhook-sample.json",
    Path("/work/shared/fixtures/seed/webhook-sample.json"),
)


@pytest.fixture(scope="module")
def sample() -> dict:
    for path in SAMPLE_CANDIDATES:
        if path.is_file():
            return json.loads(path.read_text(encoding="utf-8"))
    pytest.skip("the seed's webhook-sample.json is not next to the repository (../shared)")


def _parse(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def test_body_reproduces_the_hyperswitch_sample_byte_for_byte(sample: dict) -> None:
    body = build_body(
        merchant_id=sample["merchant_id"],
        event_id=sample["event_id"],
        event_type=sample["event_type"],
        content_type=sample["content"]["type"],
        content_object=sample["content"]["object"],
        timestamp=_parse(sample["timestamp"]),
    )

    assert body == json.dumps(sample, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    parsed = json.loads(body)
    assert list(parsed) == ["merchant_id", "event_id", "event_type", "content", "timestamp"]
    assert list(parsed["content"]) == ["type", "object"]
    assert list(parsed["content"]["object"]) == list(sample["content"]["object"])


def test_body_is_compact_utf8_and_keeps_non_ascii() -> None:
    body = build_body(
        merchant_id="m",
        event_id="evt_1",
        event_type="payment_failed",
        content_type="payment_details",
        content_object={"z": 1, "a": "Café"},
        timestamp=datetime(2025, 1, 2, 3, 4, 5, 678901, tzinfo=UTC),
    )

    assert (
        body
        == (
            '{"merchant_id":"m","event_id":"evt_1","event_type":"payment_failed",'
            '"content":{"type":"payment_details","object":{"z":1,"a":"Café"}},'
            '"timestamp":"2025-01-02T03:04:05.678Z"}'
        ).encode()
    )


@pytest.mark.parametrize(
    ("moment", "expected"),
    [
        (datetime(2025, 9, 7, 20, 5, 2, 792000, tzinfo=UTC), "2025-09-07T20:05:02.792Z"),
        (datetime(2025, 9, 7, 20, 5, 2, tzinfo=UTC), "2025-09-07T20:05:02.000Z"),
        (datetime(2025, 9, 7, 20, 5, 2, 999999, tzinfo=UTC), "2025-09-07T20:05:02.999Z"),
        (
            datetime(2025, 9, 7, 22, 5, 2, 1000, tzinfo=timezone(timedelta(hours=2))),
            "2025-09-07T20:05:02.001Z",
        ),
    ],
)
def test_timestamp_is_utc_with_milliseconds_and_z(moment: datetime, expected: str) -> None:
    assert format_timestamp(moment) == expected


def test_naive_timestamp_is_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        format_timestamp(datetime(2025, 1, 1))


def test_a_payment_serialized_by_pydantic_gives_the_same_body_as_its_json_ready_dict() -> None:
    """The dispatcher passes `model_dump_json()` bytes (the cheap path); the body must not depend on it."""
    from support.payments import payment_succeeded, recovery_payment

    payment = recovery_payment(
        merchant_reference_id="facture_Nº_42_für_Zoë ✓",
        metadata={"big": 2**63 - 1, "ratio": 0.1, "nested": {"ünïcode": ["a", None, True]}},
    )
    obj = payment_succeeded(payment).payload.payment
    moment = datetime(2026, 11, 27, 6, 30, 1, 234567, tzinfo=UTC)
    fields = {
        "merchant_id": "merchant_é",
        "event_id": "evt_1",
        "event_type": "payment_succeeded",
        "content_type": "payment_details",
        "timestamp": moment,
    }

    from_json = build_body(**fields, content_object=obj.model_dump_json().encode())
    from_dict = build_body(**fields, content_object=obj.model_dump(mode="json"))

    assert from_json == from_dict
    assert json.loads(from_json)["content"]["object"] == obj.model_dump(mode="json")
    assert "Zoë ✓".encode() in from_json  # non-ASCII kept as UTF-8, not escaped
