"""Structured JSON logs on stdout with the service name and message context bound per message."""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import MutableMapping
from typing import Any

import structlog

# Keys whose values never reach a log line, whatever a caller binds.
_SECRET_KEYS = frozenset(
    {
        "api_key",
        "api-key",
        "authorization",
        "payment_response_hash_key",
        "hash_key",
        "secret",
        "password",
        "webhook_password",
        "standard_webhooks_secret",
        "whsec_secret",
        "merchant_secret",
        "key1",
        "key2",
        "api_secret",
        "private_key",
        "whsec_secrets",
        "standard_webhooks_secrets",
        "internal_api_token",
        "x-internal-token",
        "admin_api_key",
        "card_number",
    }
)

# Values that are secrets whatever key they are logged under (an exception text, a URL, a repr):
# merchant API keys, Standard Webhooks secrets, connector keys, URL passwords, and card numbers (13-19 digits).
_SECRET_VALUES = re.compile(
    r"\b(?:snd|prd)_[A-Za-z0-9_-]{20,}"
    r"|whsec_[A-Za-z0-9+/=]{16,}"
    r"|\b(?:sk|rk|pk)_(?:test|live)_[A-Za-z0-9_]{4,}"
    r"|(?<=://)[^/\s:@]+:[^/\s@]+(?=@)"
    r"|(?P<digits>(?<![\d.])\d(?:[ -]?\d){12,18}(?![\d.]))"
)


class _CurrentStdout:
    """`sys.stdout` as it is at each write: a stream bound once would outlive a replaced (and closed) one."""

    def write(self, text: str) -> int:
        return sys.stdout.write(text)

    def flush(self) -> None:
        sys.stdout.flush()


_STDOUT: Any = _CurrentStdout()


def _luhn_valid(digits: str) -> bool:
    total = 0
    for position, char in enumerate(reversed(digits)):
        digit = int(char)
        if position % 2:
            digit = digit * 2 - 9 if digit > 4 else digit * 2
        total += digit
    return total % 10 == 0


def _mask(match: re.Match[str]) -> str:
    digits = match.group("digits")
    # A digit run is a card number only if it passes the Luhn check: timestamps and amounts stay readable.
    if digits is not None and not _luhn_valid(re.sub(r"\D", "", digits)):
        return digits
    return "***"


def redact_text(text: str) -> str:
    return _SECRET_VALUES.sub(_mask, text)


def _scrub(value: object) -> object:
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, dict):
        return {k: "***" if str(k).lower() in _SECRET_KEYS else _scrub(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_scrub(v) for v in value]
    return value


def _redact(_: object, __: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    for key in list(event_dict):
        if key.lower() in _SECRET_KEYS:
            event_dict[key] = "***"
        else:
            event_dict[key] = _scrub(event_dict[key])
    return event_dict


def configure_logging(service: str, level: str = "INFO") -> None:
    # Lines from the standard library's loggers (FastStream, uvicorn, PyMongo, ...) are rendered as the same
    # JSON as structlog's own, with the bound context (service, payment_id, message_id) and the redaction.
    handler = logging.StreamHandler(_STDOUT)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[
                structlog.contextvars.merge_contextvars,
                structlog.stdlib.add_logger_name,
                structlog.processors.add_log_level,
                structlog.processors.TimeStamper(fmt="iso", utc=True),
            ],
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                structlog.processors.format_exc_info,
                _redact,
                structlog.processors.JSONRenderer(),
            ],
        )
    )
    logging.basicConfig(handlers=[handler], level=level.upper(), force=True)
    for noisy in ("aiormq", "aio_pika", "pymongo", "httpx", "uvicorn.access"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            # After format_exc_info, so that exception texts are scrubbed too.
            _redact,
            structlog.processors.JSONRenderer(),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level.upper())),
        logger_factory=structlog.PrintLoggerFactory(_STDOUT),
        cache_logger_on_first_use=True,
    )
    structlog.contextvars.bind_contextvars(service=service)
