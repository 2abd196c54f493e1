"""JSON Schemas of every message envelope, public HTTP body and the webhook body, checked in for other teams.

python -m recovery_contracts.schemas --write   regenerate libs/contracts/schemas/
python -m recovery_contracts.schemas --check   exit 1 and list the files that drifted from the models (CI)
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel

from recovery_contracts.api import (
    analytics,
    api_keys,
    audit,
    connector_accounts,
    data_backfill,
    disputes,
    errors,
    events,
    merchants,
    process_tracker,
    profiles,
    recovery,
    retry_stats,
)
from recovery_contracts.disputes import DisputeObject
from recovery_contracts.envelope import MessageType
from recovery_contracts.messages import envelope_model
from recovery_contracts.payments import PaymentObject
from recovery_contracts.webhooks import OutgoingWebhook

DEFAULT_DIR = Path(__file__).resolve().parents[2] / "schemas"
DRAFT = "https://json-schema.org/draft/2020-12/schema"

Mode = Literal["validation", "serialization"]

# Requests are described as they are validated; responses as they are serialised.
HTTP_REQUESTS: tuple[type[BaseModel], ...] = (
    merchants.MerchantAccountCreate,
    profiles.ProfileCreate,
    profiles.ProfileUpdate,
    profiles.WebhookSecretRotate,
    api_keys.ApiKeyCreate,
    api_keys.ApiKeyUpdate,
    connector_accounts.ConnectorAccountCreate,
    connector_accounts.ConnectorAccountUpdate,
    recovery.RecoveryPaymentsCreate,
    events.EventListConstraints,
    events.EventRecoverRequest,
    process_tracker.RevenueRecoveryResumeRequest,
    data_backfill.DataBackfillRecord,
    data_backfill.UpdateTokenStatusRequest,
    disputes.DisputeEvidenceRequest,
    disputes.DisputeListConstraints,
)
HTTP_RESPONSES: tuple[type[BaseModel], ...] = (
    errors.ErrorResponse,
    merchants.MerchantAccountResponse,
    profiles.ProfileResponse,
    profiles.WebhookSecretRotation,
    api_keys.ApiKeyCreateResponse,
    api_keys.RetrieveApiKeyResponse,
    api_keys.RevokeApiKeyResponse,
    connector_accounts.ConnectorAccountResponse,
    recovery.RecoveryPaymentsResponse,
    PaymentObject,
    events.TotalEventsResponse,
    events.EventRetrieveResponse,
    events.WebhookEndpointsResponse,
    events.EventRecoverResponse,
    process_tracker.RevenueRecoveryResponse,
    process_tracker.RecoveryTimelineResponse,
    analytics.RecoveryPaymentListResponse,
    analytics.RevenueRecoveryGetIntentResponse,
    analytics.RecoveryAnalyticsResponse,
    retry_stats.RetryStatsResponse,
    data_backfill.DataBackfillResponse,
    data_backfill.SavedCardsResponse,
    data_backfill.TokenStatusResponse,
    data_backfill.UpdateTokenStatusResponse,
    DisputeObject,
    disputes.DisputeAnswerResponse,
    disputes.DisputeFileResponse,
    audit.AuditEventListResponse,
)


def _schema(model: type[BaseModel], mode: Mode, title: str | None = None) -> dict[str, Any]:
    schema = model.model_json_schema(mode=mode)
    if title:
        schema["title"] = title
    return {"$schema": DRAFT, **schema}


def render() -> dict[str, str]:
    """Relative path -> file text for every schema; deterministic (sorted keys, indent 2, final newline)."""
    schemas: dict[str, dict[str, Any]] = {}
    for message_type in MessageType:
        schemas[f"messages/{message_type.value}.json"] = _schema(
            envelope_model(message_type), "validation", title=f"Envelope[{message_type.value}]"
        )
    for model in HTTP_REQUESTS:
        schemas[f"http/{model.__name__}.json"] = _schema(model, "validation")
    for model in HTTP_RESPONSES:
        schemas[f"http/{model.__name__}.json"] = _schema(model, "serialization")
    schemas["webhooks/OutgoingWebhook.json"] = _schema(OutgoingWebhook, "serialization")
    return {
        path: json.dumps(schema, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
        for path, schema in sorted(schemas.items())
    }


def generate(out_dir: Path | str = DEFAULT_DIR) -> list[Path]:
    """Write every schema under `out_dir`, removing schema files no model produces any more."""
    out = Path(out_dir)
    rendered = render()
    for stale in _existing(out) - set(rendered):
        (out / stale).unlink()
    return write_files(out, rendered)


def drifted(out_dir: Path | str = DEFAULT_DIR) -> list[str]:
    """Relative paths whose checked-in text differs from the models (missing, changed, or stale)."""
    out = Path(out_dir)
    rendered = render()
    return sorted(changed_files(out, rendered) + list(_existing(out) - set(rendered)))


def write_files(base: Path, files: Mapping[str, str]) -> list[Path]:
    """Write each text of `files` (relative path -> text) under `base`: the files written."""
    written = []
    for relative, text in files.items():
        path = base / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written


def changed_files(base: Path, files: Mapping[str, str]) -> list[str]:
    """The relative paths of `files` whose text under `base` is missing or differs."""
    return [
        relative
        for relative, text in files.items()
        if not (base / relative).is_file() or (base / relative).read_text(encoding="utf-8") != text
    ]


def _existing(out: Path) -> set[str]:
    if not out.is_dir():
        return set()
    return {p.relative_to(out).as_posix() for p in out.rglob("*.json")}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m recovery_contracts.schemas", description=__doc__.splitlines()[0])
    action = parser.add_mutually_exclusive_group(required=True)
    action.add_argument("--check", action="store_true", help="fail when checked-in schemas differ from the models")
    action.add_argument("--write", action="store_true", help="regenerate the schema files")
    parser.add_argument("--dir", type=Path, default=DEFAULT_DIR, help=f"schema directory (default {DEFAULT_DIR})")
    args = parser.parse_args(argv)
    if args.write:
        written = generate(args.dir)
        print(f"wrote {len(written)} schemas to {args.dir}")
        return 0
    stale = drifted(args.dir)
    if stale:
        print("JSON Schemas out of date (run `python -m recovery_contracts.schemas --write`):", file=sys.stderr)
        for rel in stale:
            print(f"  {rel}", file=sys.stderr)
        return 1
    print(f"{len(render())} schemas up to date in {args.dir}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
