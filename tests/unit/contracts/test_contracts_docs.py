"""docs/contracts.md stays true: its error table is the catalogue and its example message is valid."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from recovery_contracts.api.errors import ApiError
from recovery_contracts.envelope import MessageType
from recovery_contracts.messages import envelope_model

pytestmark = pytest.mark.unit

DOC = Path(__file__).resolve().parents[3] / "docs" / "contracts.md"


def test_error_table_lists_the_catalogue():
    rows = re.findall(r"^\| `([A-Z]{2}_\d{2})` \| (\d{3}) \| `(\w+)` \| `(\w+)` \|", DOC.read_text(), re.M)
    documented = {name: (code, int(status), kind) for code, status, kind, name in rows}
    expected = {e.name: (e.code, e.status_code, e.value.type.value) for e in ApiError}
    assert documented == expected


def test_example_recovery_requested_message_is_valid():
    text = DOC.read_text()
    block = text.split("<!-- example: recovery.requested -->", 1)[1]
    example = re.search(r"```json\n(.*?)```", block, re.S).group(1)

    envelope = envelope_model(MessageType.RECOVERY_REQUESTED).model_validate_json(example)

    assert envelope.merchant_id and envelope.profile_id
    assert envelope.payload.request.payment_method_data.additional_payment_method_info.last_four_digits == "1997"


def test_catalogue_table_names_every_message_type():
    text = DOC.read_text()
    for message_type in MessageType:
        assert f"| `{message_type.value}` |" in text
