"""What the sandbox's endpoints share in making an object from a request: ids for the new objects, and Stripe's
checks of the request's form parameters."""

from __future__ import annotations

import secrets
import string
from collections.abc import Mapping
from typing import Any

from recovery_sandbox.stripe.errors import invalid_request, unknown_param

_ALNUM = string.ascii_letters + string.digits


def new_id(prefix: str, length: int = 24) -> str:
    return prefix + "".join(secrets.choice(_ALNUM) for _ in range(length))


def check_params(params: Mapping[str, Any], allowed: set[str]) -> None:
    for name in params:
        if name not in allowed:
            raise unknown_param(name)


def parse_int(params: Mapping[str, Any], name: str) -> int | None:
    raw = params.get(name)
    if raw is None:
        return None
    if not isinstance(raw, str) or not raw.lstrip("-").isdigit():
        raise invalid_request(f"Invalid integer: {raw}", code="parameter_invalid_integer", param=name)
    return int(raw)


def parse_bool(params: Mapping[str, Any], name: str) -> bool:
    raw = params.get(name)
    if raw is None:
        return False
    if raw in ("true", "false"):
        return bool(raw == "true")
    raise invalid_request(f"Invalid boolean: {raw}", code="parameter_invalid_string_empty", param=name)


def parse_metadata(params: Mapping[str, Any], name: str = "metadata") -> dict[str, str]:
    raw = params.get(name)
    if raw is None or raw == "":
        return {}
    if not isinstance(raw, dict) or not all(isinstance(v, str) for v in raw.values()):
        raise invalid_request("Invalid object", param=name)
    if len(raw) > 50:
        raise invalid_request("Metadata can have a maximum of 50 keys.", param=name)
    for key, value in raw.items():
        if len(key) > 40:
            raise invalid_request("Metadata keys can have a maximum length of 40 characters.", param=f"{name}[{key}]")
        if len(value) > 500:
            raise invalid_request(
                "Metadata values can have a maximum length of 500 characters.", param=f"{name}[{key}]"
            )
    # An empty value unsets the key in Stripe, so it never appears on the object.
    return {k: v for k, v in raw.items() if v != ""}
