"""The console's session cookie and CSRF tokens: what a browser holds cannot be forged, extended or reused."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from recovery_intake.console.session import SESSION_LIFETIME, SessionSigner

NOW = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)
SECRET = "a-server-side-secret-of-enough-length"


def test_a_merchant_session_reads_back_until_it_expires() -> None:
    signer = SessionSigner(SECRET)
    session = signer.start(NOW, merchant_id="merchant_1", key_id="key_1")
    cookie = signer.encode(session)

    read = signer.decode(cookie, NOW + SESSION_LIFETIME - timedelta(seconds=1))
    assert read == session
    assert read is not None and not read.is_admin and read.key_id == "key_1"
    assert signer.decode(cookie, NOW + SESSION_LIFETIME) is None


def test_the_api_key_is_not_in_the_cookie() -> None:
    signer = SessionSigner(SECRET)
    admin_key = "the-admin-key-itself"
    cookie = signer.encode(signer.start(NOW, merchant_id=None, admin_key=admin_key))
    assert admin_key not in cookie
    read = signer.decode(cookie, NOW)
    assert read is not None and read.is_admin and read.admin_mark == signer.admin_mark(admin_key)
    assert read.admin_mark != signer.admin_mark("another-admin-key")


def test_a_changed_cookie_is_refused() -> None:
    signer = SessionSigner(SECRET)
    cookie = signer.encode(signer.start(NOW, merchant_id="merchant_1", key_id="key_1"))
    body, mac = cookie.split(".")
    # Another merchant, or an admin flag, written into the body: the signature no longer matches.
    forged_body = body[:-2] + ("AA" if body[-2:] != "AA" else "BB")
    for forged in (f"{forged_body}.{mac}", f"{body}.{mac[:-2]}xx", body, "", "a.b.c", "!!.??"):
        assert signer.decode(forged, NOW) is None


def test_a_cookie_of_another_secret_is_refused() -> None:
    cookie = SessionSigner("another-secret-of-enough-length").encode(
        SessionSigner("another-secret-of-enough-length").start(NOW, merchant_id="m", key_id="k")
    )
    assert SessionSigner(SECRET).decode(cookie, NOW) is None


def test_a_pre_session_cookie_is_not_a_session() -> None:
    signer = SessionSigner(SECRET)
    cookie, nonce = signer.pre_session(NOW)
    assert signer.decode(cookie, NOW) is None
    assert signer.pre_session_nonce(cookie, NOW) == nonce
    session_cookie = signer.encode(signer.start(NOW, merchant_id="m", key_id="k"))
    assert signer.pre_session_nonce(session_cookie, NOW) is None
    assert signer.pre_session_nonce(cookie, NOW + timedelta(hours=1)) is None


def test_the_csrf_token_belongs_to_its_session() -> None:
    signer = SessionSigner(SECRET)
    first = signer.start(NOW, merchant_id="m", key_id="k")
    second = signer.start(NOW, merchant_id="m", key_id="k")
    token = signer.csrf_token(first.nonce)

    assert signer.csrf_valid(first.nonce, token)
    assert not signer.csrf_valid(second.nonce, token)  # each sign-in has its own
    assert not signer.csrf_valid(first.nonce, None)
    assert not signer.csrf_valid(first.nonce, "")
    assert not signer.csrf_valid(None, token)
    assert not SessionSigner("another-secret-of-enough-length").csrf_valid(first.nonce, token)


def test_an_operator_switching_merchant_keeps_the_sign_in() -> None:
    signer = SessionSigner(SECRET)
    session = signer.start(NOW, merchant_id=None, admin_key="admin-key-000")
    viewing = session.viewing("merchant_2")
    assert viewing.merchant_id == "merchant_2"
    assert (viewing.nonce, viewing.expires_at, viewing.is_admin) == (session.nonce, session.expires_at, True)
    assert signer.decode(signer.encode(viewing), NOW) == viewing
