"""How secrets are shown in responses: Hyperswitch's masking of header values and connector credentials."""

from __future__ import annotations

_VISIBLE = 2


def mask_secret(value: str) -> str:
    """`sk_test_abc123xyz` -> `sk*************yz`: first and last two characters, the rest `*`.

    Values of four characters or fewer are masked completely, so a short secret is never half shown.
    """
    if len(value) <= 2 * _VISIBLE:
        return "*" * len(value)
    return value[:_VISIBLE] + "*" * (len(value) - 2 * _VISIBLE) + value[-_VISIBLE:]


def mask_headers(headers: dict[str, str]) -> dict[str, str]:
    return {name: mask_secret(value) for name, value in headers.items()}
