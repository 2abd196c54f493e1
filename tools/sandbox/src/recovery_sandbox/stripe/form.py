"""Decodes Stripe's form encoding (`metadata[key]=v`, `expand[]=x`, `items[0][p]=v`) into nested values."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import parse_qsl

_KEY = re.compile(r"^([^\[\]]+)((?:\[[^\[\]]*\])*)$")


class FormError(ValueError):
    """A parameter name Stripe would not accept (unbalanced brackets)."""

    def __init__(self, param: str) -> None:
        super().__init__(f"Invalid parameter name: {param}")
        self.param = param


def decode_form(raw: bytes | str) -> dict[str, Any]:
    text = raw.decode("utf-8") if isinstance(raw, bytes) else raw
    pairs = parse_qsl(text, keep_blank_values=True, strict_parsing=False)
    return decode_pairs(pairs)


def decode_pairs(pairs: list[tuple[str, str]]) -> dict[str, Any]:
    root: dict[str, Any] = {}
    for name, value in pairs:
        match = _KEY.match(name)
        if match is None:
            raise FormError(name)
        path = [match.group(1), *re.findall(r"\[([^\[\]]*)\]", match.group(2))]
        _assign(root, path, value)
    decoded: dict[str, Any] = _lists_from_indexed(root)
    return decoded


def _assign(node: dict[str, Any], path: list[str], value: str) -> None:
    head, rest = path[0], path[1:]
    if not rest:
        node[head] = value
        return
    if rest == [""]:
        # `expand[]=a&expand[]=b` appends, as Rails-style encoders send arrays.
        existing = node.setdefault(head, [])
        if not isinstance(existing, list):
            raise FormError(head)
        existing.append(value)
        return
    child = node.setdefault(head, {})
    if not isinstance(child, dict):
        raise FormError(head)
    _assign(child, rest, value)


def _lists_from_indexed(node: Any) -> Any:
    """`items[0][x]=..&items[1][x]=..` arrives as a dict with digit keys; Stripe treats it as an array."""
    if isinstance(node, list):
        return [_lists_from_indexed(v) for v in node]
    if not isinstance(node, dict):
        return node
    converted = {k: _lists_from_indexed(v) for k, v in node.items()}
    if converted and all(k.isdigit() for k in converted):
        return [converted[k] for k in sorted(converted, key=int)]
    return converted
