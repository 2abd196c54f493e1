"""The console's session cookie and CSRF tokens: signed, expiring, tied to one sign-in.

The cookie holds who signed in (the merchant, the API key's id or the admin, a fingerprint of the admin key),
when the session ends, and a random nonce, signed with HMAC-SHA256 under a key derived from
API_KEY_HASH_SECRET: any intake instance can read it, nobody can forge or extend it, and the API key itself
never leaves the sign-in request. The CSRF token of a session is an HMAC of its nonce (a synchronizer token
that needs no server-side state); every state-changing request must carry it, in the `csrf_token` form field
or the `X-CSRF-Token` header (htmx). Before sign-in a short pre-session cookie carries a nonce for the sign-in
form's token (login CSRF). docs/console.md.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

SESSION_COOKIE = "console_session"
PRE_SESSION_COOKIE = "console_pre_session"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "x-csrf-token"
SESSION_LIFETIME = timedelta(hours=8)
PRE_SESSION_LIFETIME = timedelta(minutes=30)

_SESSION = b"session"
_PRE_SESSION = b"pre-session"
_CSRF = b"csrf"
_ADMIN = b"admin-key"


@dataclass(frozen=True)
class ConsoleSession:
    """One sign-in. `merchant_id` is the merchant shown (an operator may have none chosen yet)."""

    merchant_id: str | None
    is_admin: bool
    expires_at: datetime
    nonce: str
    # The merchant API key signed in with (checked on every request: a revoked key ends the session).
    key_id: str | None = None
    # The admin key's fingerprint at sign-in: a changed admin key ends every operator session.
    admin_mark: str | None = None

    def viewing(self, merchant_id: str | None) -> ConsoleSession:
        """The same sign-in showing another merchant (operators only)."""
        return ConsoleSession(merchant_id, self.is_admin, self.expires_at, self.nonce, self.key_id, self.admin_mark)


class SessionSigner:
    """Signs and reads session and pre-session cookies; issues and checks CSRF tokens."""

    def __init__(self, secret: str, lifetime: timedelta = SESSION_LIFETIME) -> None:
        # A key of its own, derived from the server-side secret (never the secret itself, which hashes API keys).
        self._key = hmac.new(secret.encode(), b"recovery-console/v1", hashlib.sha256).digest()
        self.lifetime = lifetime

    def _mac(self, purpose: bytes, payload: bytes) -> bytes:
        return hmac.new(self._key, purpose + b"\x00" + payload, hashlib.sha256).digest()

    def _sign(self, purpose: bytes, payload: dict[str, object]) -> str:
        raw = json.dumps(payload, separators=(",", ":"), sort_keys=True).encode()
        return f"{_b64(raw)}.{_b64(self._mac(purpose, raw))}"

    def _unsign(self, purpose: bytes, value: str | None, now: datetime) -> dict[str, object] | None:
        """The payload of a value this signer signed for `purpose` that has not expired, else None."""
        if not value or value.count(".") != 1:
            return None
        body, mac = value.split(".")
        try:
            raw, given = _unb64(body), _unb64(mac)
        except ValueError:
            return None
        if not hmac.compare_digest(given, self._mac(purpose, raw)):
            return None
        try:
            payload = json.loads(raw)
            expires = datetime.fromtimestamp(float(payload["exp"]), UTC)
        except (ValueError, KeyError, TypeError):
            return None
        return payload if isinstance(payload, dict) and expires > now else None

    def admin_mark(self, admin_key: str) -> str:
        return _b64(self._mac(_ADMIN, admin_key.encode()))[:22]

    def start(
        self, now: datetime, *, merchant_id: str | None, key_id: str | None = None, admin_key: str | None = None
    ) -> ConsoleSession:
        """A new session (a fresh nonce, so a fresh CSRF token) for a merchant key or, with `admin_key`, the admin."""
        return ConsoleSession(
            merchant_id=merchant_id,
            is_admin=admin_key is not None,
            expires_at=now + self.lifetime,
            nonce=secrets.token_urlsafe(18),
            key_id=key_id,
            admin_mark=self.admin_mark(admin_key) if admin_key is not None else None,
        )

    def encode(self, session: ConsoleSession) -> str:
        return self._sign(
            _SESSION,
            {
                "m": session.merchant_id,
                "a": session.is_admin,
                "k": session.key_id,
                "f": session.admin_mark,
                "n": session.nonce,
                "exp": session.expires_at.timestamp(),
            },
        )

    def decode(self, cookie: str | None, now: datetime) -> ConsoleSession | None:
        """The session of a cookie this signer made and that has not expired; None for anything else."""
        payload = self._unsign(_SESSION, cookie, now)
        if payload is None:
            return None
        merchant, key_id, mark, nonce = payload.get("m"), payload.get("k"), payload.get("f"), payload.get("n")
        if not isinstance(nonce, str) or not all(v is None or isinstance(v, str) for v in (merchant, key_id, mark)):
            return None
        return ConsoleSession(
            merchant_id=merchant,  # type: ignore[arg-type]
            is_admin=payload.get("a") is True,
            expires_at=datetime.fromtimestamp(float(payload["exp"]), UTC),  # type: ignore[arg-type]
            nonce=nonce,
            key_id=key_id,  # type: ignore[arg-type]
            admin_mark=mark,  # type: ignore[arg-type]
        )

    def pre_session(self, now: datetime) -> tuple[str, str]:
        """A pre-session cookie and its nonce, for the sign-in form's CSRF token."""
        nonce = secrets.token_urlsafe(18)
        return self._sign(_PRE_SESSION, {"n": nonce, "exp": (now + PRE_SESSION_LIFETIME).timestamp()}), nonce

    def pre_session_nonce(self, cookie: str | None, now: datetime) -> str | None:
        payload = self._unsign(_PRE_SESSION, cookie, now)
        nonce = payload.get("n") if payload else None
        return nonce if isinstance(nonce, str) else None

    def csrf_token(self, nonce: str) -> str:
        return _b64(self._mac(_CSRF, nonce.encode()))

    def csrf_valid(self, nonce: str | None, token: str | None) -> bool:
        """True only for the token of this nonce (compared in constant time)."""
        if not nonce or not token:
            return False
        return hmac.compare_digest(token.encode(), self.csrf_token(nonce).encode())


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (ValueError, TypeError) as error:
        raise ValueError("not base64url") from error
