"""Running `recovery secrets ...` in a test: the environment it reads (master keys, the database) and its output."""

from __future__ import annotations

import pytest

from recovery_cli.main import main


def command_environment(
    monkeypatch: pytest.MonkeyPatch, *, master_keys: str, active_key_id: str, mongodb_url: str, database: str
) -> None:
    """Master keys as `SECRETS_MASTER_KEYS` / `SECRETS_ACTIVE_KEY_ID` only (the single-key variables and a production
    environment unset) and the test's database."""
    for single in ("SECRETS_MASTER_KEY", "SECRETS_MASTER_KEY_ID", "API_KEY_ENVIRONMENT"):
        monkeypatch.delenv(single, raising=False)
    monkeypatch.setenv("SECRETS_MASTER_KEYS", master_keys)
    monkeypatch.setenv("SECRETS_ACTIVE_KEY_ID", active_key_id)
    monkeypatch.setenv("MONGODB_URL", mongodb_url)
    monkeypatch.setenv("MONGODB_DATABASE", database)


def run(*argv: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    """`recovery secrets *argv`: exit code, stdout, stderr."""
    code = main(["secrets", *argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err
