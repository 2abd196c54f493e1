"""`recovery verify`: an operator checks a received webhook's signatures; exit 0 verified, 1 with the reason."""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from pathlib import Path

import pytest

from recovery_cli.main import main

BODY = b'{"event_id":"evt_1","event_type":"payment_succeeded"}'
HASH_KEY = "hash-key-of-the-profile"
WHSEC = "whsec_" + base64.b64encode(b"0123456789abcdef0123456789abcdef").decode()


def _hyperswitch(body: bytes) -> str:
    return hmac.new(HASH_KEY.encode(), body, hashlib.sha512).hexdigest()


def _standard_headers(body: bytes, timestamp: int | None = None) -> list[str]:
    stamp = str(timestamp or int(time.time()))
    key = base64.b64decode(WHSEC.removeprefix("whsec_"))
    signature = base64.b64encode(hmac.new(key, b"msg_1." + stamp.encode() + b"." + body, hashlib.sha256).digest())
    return [
        "--header",
        "webhook-id: msg_1",
        "--header",
        f"webhook-timestamp: {stamp}",
        "--header",
        f"webhook-signature: v1,{signature.decode()}",
    ]


@pytest.fixture
def body_file(tmp_path: Path) -> Path:
    path = tmp_path / "body.json"
    path.write_bytes(BODY)
    return path


def test_a_valid_hyperswitch_signature_verifies(body_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status = main(["verify", "--hash-key", HASH_KEY, "--body", str(body_file), "--signature", _hyperswitch(BODY)])
    assert status == 0
    assert "hyperswitch: verified" in capsys.readouterr().out


def test_the_signature_may_come_as_the_received_header(body_file: Path) -> None:
    header = f"X-Webhook-Signature-512: {_hyperswitch(BODY)}"
    assert main(["verify", "--hash-key", HASH_KEY, "--body", str(body_file), "--header", header]) == 0


def test_a_changed_body_fails_with_the_reason(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    tampered = tmp_path / "tampered.json"
    tampered.write_bytes(BODY.replace(b"succeeded", b"failed"))
    status = main(["verify", "--hash-key", HASH_KEY, "--body", str(tampered), "--signature", _hyperswitch(BODY)])
    assert status == 1
    assert "does not match" in capsys.readouterr().out


def test_standard_webhooks_signature_verifies(body_file: Path) -> None:
    assert main(["verify", "--whsec", WHSEC, "--body", str(body_file), *_standard_headers(BODY)]) == 0


def test_both_schemes_must_pass(body_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    old = int(time.time()) - 3600
    arguments = ["verify", "--hash-key", HASH_KEY, "--signature", _hyperswitch(BODY), "--whsec", WHSEC]
    status = main([*arguments, "--body", str(body_file), *_standard_headers(BODY, old)])
    assert status == 1
    out = capsys.readouterr().out
    assert "hyperswitch: verified" in out and "standard-webhooks: FAILED (webhook-timestamp too old)" in out


def test_missing_headers_are_named(body_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["verify", "--whsec", WHSEC, "--body", str(body_file)]) == 1
    assert "missing webhook-id header" in capsys.readouterr().out


def test_without_a_key_there_is_nothing_to_verify(body_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["verify", "--body", str(body_file)]) == 1
    assert "--hash-key" in capsys.readouterr().err
