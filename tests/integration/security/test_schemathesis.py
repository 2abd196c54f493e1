"""schemathesis against intake's own OpenAPI document, with real keys: no 5xx, every answer as documented.

CI runs a seed-fixed sample (SCHEMATHESIS_EXAMPLES per operation, 25 by default: about 400 requests); the
documented full run sets SCHEMATHESIS_EXAMPLES=150 (docs/security.md records its figures).
"""

from __future__ import annotations

import os
from collections import Counter
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, seed, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from security_system import System

from recovery_intake.app import build_service
from recovery_intake.settings import IntakeSettings

EXAMPLES = int(os.environ.get("SCHEMATHESIS_EXAMPLES", "25"))
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]


@pytest.fixture(scope="module")
def intake_settings() -> dict[str, Any]:
    return {"rate_limit_per_second": 0}


def test_generated_requests_get_no_server_error_and_only_documented_answers(system: System) -> None:
    document = build_service(IntakeSettings()).app.openapi()
    schema = schemathesis.openapi.from_dict(document)
    a = system.a
    admin = system.scenario.endpoints.admin_api_key
    statuses: Counter[tuple[str, int]] = Counter()
    failures: list[str] = []
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 17

    def exercise(operation: Any, label: str, headers: dict[str, str]) -> None:
        @seed(20260101)
        @settings(
            max_examples=EXAMPLES,
            deadline=None,
            phases=[Phase.explicit, Phase.generate],
            suppress_health_check=list(HealthCheck),
            database=None,
        )
        @given(case=operation.as_strategy())
        def run(case: Any) -> None:
            # The caller's own merchant id in `/events/{merchant_id}`, so requests reach past the 404.
            if case.path_parameters and "merchant_id" in case.path_parameters:
                case.path_parameters["merchant_id"] = a.setup.merchant_id
            response = case.call(base_url=system.intake_url, headers=headers, timeout=30)
            statuses[(label, response.status_code)] += 1
            try:
                case.validate_response(response, checks=CHECKS)
            except Exception as error:  # every failure is collected, then reported together
                failures.append(f"{label} -> {response.status_code}: {str(error)[:600]}")

        run()

    for operation in operations:
        label = f"{operation.method.upper()} {operation.path}"
        admin_only = operation.path == "/v2/merchant-accounts" and operation.method.lower() == "post"
        exercise(operation, label, {"api-key": admin} if admin_only else a.headers())

    total = sum(statuses.values())
    summary = "\n".join(f"{label} {status}: {n}" for (label, status), n in sorted(statuses.items()))
    print(f"\nschemathesis: {total} requests over {len(operations)} operations\n{summary}")
    assert not failures, "\n".join(failures[:20])
    assert not [k for k in statuses if k[1] >= 500]
    assert total >= EXAMPLES * len(operations) // 2
