"""The seed's request bodies, shipped as package data, with their `{{placeholder}}`s filled in."""

from __future__ import annotations

import json
import re
from importlib import resources
from typing import Any

PAYMENT_CONNECTOR_ACCOUNT = "payment-connector-account.json"
BILLING_CONNECTOR_ACCOUNT = "billing-connector-account.json"
PROFILE_UPDATE = "profile-update.json"
RECOVERY_REQUEST = "recovery-request.json"
WEBHOOK_SAMPLE = "webhook-sample.json"

SEED_FILES = (
    PAYMENT_CONNECTOR_ACCOUNT,
    BILLING_CONNECTOR_ACCOUNT,
    PROFILE_UPDATE,
    RECOVERY_REQUEST,
    WEBHOOK_SAMPLE,
)

_PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z0-9_]+)\s*\}\}")


class UnfilledPlaceholder(KeyError):
    """A seed file names a placeholder the caller gave no value for."""


def seed_text(name: str) -> str:
    """The raw text of one seed file, exactly as the seed ships it."""
    return resources.files(__package__).joinpath(name).read_text(encoding="utf-8")


def seed_body(name: str, **values: str) -> Any:
    """One seed file parsed, every `{{placeholder}}` in keys and string values replaced from `values`.

    Only strings are touched, so numbers stay numbers (the seed sends `last_four_digits` as 1997 on purpose).
    """
    return fill_placeholders(json.loads(seed_text(name)), values)


def placeholders_in(name: str) -> set[str]:
    """The placeholder names a seed file uses."""
    return set(_PLACEHOLDER.findall(seed_text(name)))


def fill_placeholders(document: Any, values: dict[str, str]) -> Any:
    if isinstance(document, dict):
        return {_fill(key, values): fill_placeholders(item, values) for key, item in document.items()}
    if isinstance(document, list):
        return [fill_placeholders(item, values) for item in document]
    if isinstance(document, str):
        return _fill(document, values)
    return document


def _fill(text: str, values: dict[str, str]) -> str:
    def replace(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in values:
            raise UnfilledPlaceholder(f"no value for placeholder {{{{{name}}}}}")
        return values[name]

    return _PLACEHOLDER.sub(replace, text)
