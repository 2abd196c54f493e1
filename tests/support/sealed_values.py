"""Finding sealed values (`recovery_runtime.secrets`) wherever a document holds them, to check
`recovery_cli.sealed_fields` against what the services write."""

from __future__ import annotations

from typing import Any

from recovery_cli.sealed_fields import SEALED_FIELDS
from recovery_runtime.secrets import is_sealed


def sealed_paths(value: Any, path: str = "") -> set[str]:
    """The dotted paths in `value` that hold a sealed string (a list's items count as the list's path)."""
    if isinstance(value, dict):
        return {found for key, item in value.items() for found in sealed_paths(item, f"{path}.{key}".lstrip("."))}
    if isinstance(value, list):
        return {found for item in value for found in sealed_paths(item, path)}
    return {path} if is_sealed(value) else set()


def listed_paths(collection: str) -> set[str]:
    """The paths `recovery_cli.sealed_fields` names in `collection`; `path.*` for the values of a dict."""
    return {sealed.name.removeprefix(f"{collection}.") for sealed in SEALED_FIELDS if sealed.collection == collection}


def as_listed(paths: set[str], collection: str) -> set[str]:
    """`paths` (from `sealed_paths`) with a dict's value paths (`path.<name>`) as the list names them (`path.*`)."""
    patterns = [listed for listed in listed_paths(collection) if listed.endswith(".*")]
    return {next((p for p in patterns if path.startswith(p.removesuffix("*"))), path) for path in paths}
