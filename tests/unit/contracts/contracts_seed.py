"""The seed's bodies (tests/fixtures/seed/) with their `{{placeholders}}` filled as a tester would."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

SEED_DIR = Path(__file__).resolve().parents[2] / "fixtures" / "seed"

PLACEHOLDERS = {
    "{{api_key}}": "sk_test_51ExampleKeyForTestsOnly0000000000",
    "{{profile_id}}": "pro_3mR8Jq2LxYp7TzWc0KdN",
    "{{payment_mca}}": "mca_MbQwWzi4tFItmgYAmshC",
    "{{billing_mca}}": "mca_ppEVMjRWgTiGyCiwFtg9",
    "{{customer_id_from_stripe}}": "cus_T0qSE723C5Xxic",
    "{{payment_method_id_from_stripe}}": "pm_1S4olu2KXBHSNjodBbiedqY9",
}


def load_seed(name: str, *, fill: bool = True) -> Any:
    text = (SEED_DIR / name).read_text()
    if fill:
        for placeholder, value in PLACEHOLDERS.items():
            text = text.replace(placeholder, value)
    return json.loads(text)
