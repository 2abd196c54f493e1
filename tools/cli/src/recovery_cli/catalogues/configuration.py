"""The configuration reference: one table per settings class, every setting's variable, default, constraint and
meaning (the field's description, else the comment above it in the class)."""

from __future__ import annotations

import functools
import inspect
import re

from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from recovery_cli.catalogues.services import services
from recovery_runtime.settings import ServiceSettings

_FIELD_LINE = re.compile(r"^    (\w+)\s*:")


# Settings whose class says nothing about them (a comment above a field is where this codebase says why; these
# are the self-explanatory ones). A setting with neither fails tests/unit/ops/test_catalogues.py.
_PLAIN_DESCRIPTIONS = {
    "rabbitmq_url": "The broker (its path is the virtual host).",
    "mongodb_url": "MongoDB; transactions need a replica set (a single node will do).",
    "mongodb_database": "The one logical database all services share (each owns its collections).",
    "http_host": "Address the HTTP server binds (`/healthz`, `/readyz`, `/metrics`, and intake's API).",
    "http_port": "Port of the HTTP server.",
    "service_instance_id": "This instance's name in logs and timer or delivery leases (default: the host name).",
    "log_level": "Level of the JSON logs on stdout.",
    "prefetch_count": "Unacknowledged messages the broker hands one consumer at a time.",
    "inbox_retention_days": "How long applied message ids are remembered for de-duplication (TTL index).",
    "cell_id": "Prefix of generated payment and attempt ids (Hyperswitch's cell id).",
    "secrets_master_key_id": "Id recorded with values sealed under SECRETS_MASTER_KEY.",
    "secrets_master_keys": "Several master keys while rotating: `id:key,id:key` (base64 of 32 bytes each).",
    "secrets_active_key_id": "Which of SECRETS_MASTER_KEYS seals new values.",
    "stripe_api_base": "The Stripe API the executor charges through (the CLI points it at its sandbox).",
    "timer_poll_seconds": "How often the timer loop looks for due timers (wall-clock seconds).",
    "timer_batch_size": "Timers claimed per poll.",
    "webhook_connect_timeout_seconds": "Connect timeout of one webhook delivery.",
    "webhook_total_timeout_seconds": "Total timeout of one webhook delivery (connect, send, answer).",
    "webhook_user_agent": "User-Agent header of webhook deliveries.",
}


@functools.cache
def _field_comments(cls: type) -> tuple[dict[str, str], dict[str, str]]:
    """The comment right above each field in the class body, and, for the fields under it up to a blank line
    or the next comment, the same comment as a fallback (one comment often covers a group of fields). Once per
    class: reading and tokenising a class's source is most of what rendering the catalogues costs."""
    direct: dict[str, str] = {}
    grouped: dict[str, str] = {}
    pending: list[str] = []
    current: str | None = None
    for line in inspect.getsource(cls).splitlines():
        stripped = line.strip()
        if stripped.startswith("#"):
            if current is not None:
                pending, current = [], None
            pending.append(stripped.lstrip("#").strip())
            continue
        match = _FIELD_LINE.match(line)
        if match and pending:
            current = " ".join(pending)
            pending = []
            direct[match.group(1)] = current
        elif match and current:
            grouped[match.group(1)] = current
        else:
            pending, current = [], None
    return direct, grouped


def _description(settings: type[BaseModel], name: str, field: FieldInfo) -> str:
    if field.description:
        return field.description
    models = [c for c in settings.__mro__ if isinstance(c, type) and issubclass(c, BaseModel) and c is not BaseModel]
    comments = [_field_comments(c) for c in models]
    for direct, _ in comments:
        if name in direct:
            return direct[name]
    if name in _PLAIN_DESCRIPTIONS:
        return _PLAIN_DESCRIPTIONS[name]
    for _, grouped in comments:
        if name in grouped:
            return grouped[name]
    return ""


def _default(field: FieldInfo) -> str:
    if field.default_factory is not None:
        return f"`{getattr(field.default_factory, '__name__', 'computed')}()`"
    if field.default is PydanticUndefined:
        return "required"
    if field.default is None:
        return "unset"
    if field.repr is False and field.default:
        return f"`{field.default}` (development only)"
    if field.default == "":
        return "empty"
    return f"`{field.default}`"


def _constraints(field: FieldInfo) -> str:
    parts = []
    for item in field.metadata:
        for attribute, symbol in (("gt", ">"), ("ge", ">="), ("lt", "<"), ("le", "<="), ("min_length", "length >=")):
            value = getattr(item, attribute, None)
            if value is not None:
                parts.append(f"{symbol} {value}")
        pattern = getattr(item, "pattern", None)
        if pattern:
            parts.append(f"matches `{pattern}`")
    return ", ".join(parts)


def _escape(text: str) -> str:
    return text.replace("|", "\\|")


def _rows(settings: type[ServiceSettings], names: list[str]) -> list[str]:
    rows = ["| variable | default | constraint | what |", "|---|---|---|---|"]
    for name in names:
        field = settings.model_fields[name]
        rows.append(
            f"| `{name.upper()}` | {_escape(_default(field))} | {_escape(_constraints(field))} "
            f"| {_escape(_description(settings, name, field))} |"
        )
    return rows


def configuration_document() -> str:
    common = list(ServiceSettings.model_fields)
    lines = [
        "# Configuration reference",
        "",
        "<!-- Generated by `recovery catalogues --write` from the settings classes; do not edit by hand. -->",
        "",
        "Every service reads its settings from environment variables: one variable per setting, its name in",
        "upper case, no prefix (pydantic-settings, case-insensitive). `recovery up` and `recovery demo` pass the",
        "same variables on; compose.yaml and the Kubernetes ConfigMap and Secrets set them in deployments",
        "(docs/deployment.md). Values marked *development only* must be replaced in production: with",
        "`API_KEY_ENVIRONMENT=prd` a service refuses to start while one is left at its default.",
        "",
        "## Every service",
        "",
        f"`{ServiceSettings.__module__}.{ServiceSettings.__qualname__}`",
        "",
        *_rows(ServiceSettings, common),
    ]
    for entry in services():
        own = [name for name in entry.settings.model_fields if name not in common]
        overridden = [
            name
            for name in common
            if _default(entry.settings.model_fields[name]) != _default(ServiceSettings.model_fields[name])
        ]
        lines += [
            "",
            f"## {entry.name}",
            "",
            f"`{entry.settings.__module__}.{entry.settings.__qualname__}`: the settings above, and",
            "",
            *_rows(entry.settings, overridden + own),
        ]
    return "\n".join(lines) + "\n"
