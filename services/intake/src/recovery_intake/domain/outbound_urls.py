"""Where this system may send merchant data: https only, plain http only to an explicit development allow-list."""

from __future__ import annotations

from collections.abc import Collection
from urllib.parse import urlsplit


def outbound_url_problem(url: str, http_allowed_hosts: Collection[str]) -> str | None:
    """Why `url` may not receive webhooks or record-backs, or None when it may."""
    parts = urlsplit(url)
    if parts.scheme == "https":
        return None
    host = (parts.hostname or "").lower()
    if parts.scheme == "http" and host in http_allowed_hosts:
        return None
    return "must be an https URL (plain http is allowed only for the hosts in WEBHOOK_URL_ALLOW_HTTP_HOSTS)"
