"""Abuse limits and outbound URL rules, as pure behaviour."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from recovery_intake.domain.outbound_urls import outbound_url_problem
from recovery_intake.domain.webhook_secrets import MAX_SECRETS, SecretSet
from recovery_intake.http.auth import read_credentials
from recovery_intake.http.errors import ApiProblem
from recovery_intake.http.limits import AuthFailures, TokenBuckets, bucket_of
from recovery_runtime.logging import _redact, redact_text

LOOPBACK = frozenset({"127.0.0.1", "localhost"})


def test_a_key_gets_its_burst_then_waits_for_the_refill() -> None:
    now = [0.0]
    buckets = TokenBuckets(per_second=2.0, burst=3, now=lambda: now[0])
    assert [buckets.take("k") for _ in range(3)] == [0.0, 0.0, 0.0]
    assert buckets.take("k") == 0.5
    assert buckets.take("other") == 0.0  # per key
    now[0] = 0.5
    assert buckets.take("k") == 0.0


def test_callers_are_told_apart_by_a_hash_of_their_key_never_the_key() -> None:
    def bucket(headers: list[tuple[bytes, bytes]]) -> str:
        return bucket_of(read_credentials({"headers": headers, "client": ("10.0.0.1", 1)}))

    by_key = bucket([(b"api-key", b"snd_secretkey")])
    assert by_key.startswith("key:") and "snd_secretkey" not in by_key
    assert bucket([(b"authorization", b"api-key=snd_secretkey")]) == by_key
    assert bucket([(b"api-key", b" snd_secretkey ")]) == by_key
    assert bucket([]) == bucket([(b"api-key", b"")]) == "addr:10.0.0.1"


def test_waiting_peeks_without_taking_a_token() -> None:
    now = [0.0]
    buckets = TokenBuckets(per_second=1.0, burst=2, now=lambda: now[0])
    assert buckets.waiting("addr") == 0.0  # unknown: nothing is kept for it
    assert buckets.take("addr") == buckets.take("addr") == 0.0
    assert buckets.waiting("addr") == buckets.waiting("addr") == 1.0
    now[0] = 1.0
    assert buckets.waiting("addr") == 0.0 and buckets.take("addr") == 0.0


def test_a_refusal_the_shared_budget_names_holds_the_local_bucket_that_long() -> None:
    now = [0.0]
    buckets = TokenBuckets(per_second=2.0, burst=3, now=lambda: now[0])
    buckets.hold("k", 4.0)
    assert buckets.take("k") == 4.0  # no database is asked until then
    now[0] = 4.0
    assert buckets.take("k") == 0.0


class SharedBudget:
    """Another instance's failures spent the address's shared budget: every take names a wait of 30 s."""

    def __init__(self) -> None:
        self.taken: list[tuple[str, float, int]] = []

    async def take(self, caller: str, per_second: float, burst: int) -> float:
        self.taken.append((caller, per_second, burst))
        return 30.0


async def test_a_failure_past_the_shared_budget_blocks_the_address_here_too() -> None:
    now = [0.0]
    shared = SharedBudget()
    failures = AuthFailures(per_second=1.0, burst=5, now=lambda: now[0], shared=shared)
    failures.check("10.0.0.1")  # 4 failures left in this process's own bucket

    await failures.failed("10.0.0.1")

    assert shared.taken == [("failed:10.0.0.1", 1.0, 5)]
    with pytest.raises(ApiProblem) as refused:
        failures.check("10.0.0.1")
    assert refused.value.reason is not None and "failed authentications" in refused.value.reason
    failures.check("10.0.0.2")  # others are not
    now[0] = 30.0
    failures.check("10.0.0.1")


def test_webhook_urls_are_https_unless_the_host_is_allowed_plain_http() -> None:
    assert outbound_url_problem("https://merchant.example/hooks", frozenset()) is None
    assert outbound_url_problem("http://127.0.0.1:9000/hooks", LOOPBACK) is None
    assert outbound_url_problem("http://merchant.example/hooks", LOOPBACK)
    assert outbound_url_problem("http://127.0.0.1:9000/hooks", frozenset())
    assert outbound_url_problem("ftp://merchant.example/", LOOPBACK)


def test_rotation_keeps_previous_secrets_for_the_overlap_then_only_the_new_one() -> None:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    one = SecretSet(("s1",))
    two = one.rotated("s2", now, timedelta(hours=1))
    assert two.secrets == ("s2", "s1") and two.retire_at == now + timedelta(hours=1)
    assert not two.due(now) and two.due(now + timedelta(hours=1))
    assert two.retired() == SecretSet(("s2",))
    many = two.rotated("s3", now, timedelta(hours=1)).rotated("s4", now, timedelta(hours=1))
    assert len(many.secrets) == MAX_SECRETS and many.secrets[0] == "s4"
    assert one.rotated("s2", now, timedelta(0)) == SecretSet(("s2",))


def test_log_lines_lose_secrets_under_any_key() -> None:
    event = {
        "event": "called with snd_" + "x" * 43,
        "api_key": "anything",
        "headers": {"Authorization": "Bearer sk_live_abcdef", "x-ok": "fine"},
        "exception": "Traceback ... whsec_" + "A" * 44 + " card 4111 1111 1111 1111 at 1735689600000",
    }
    out = _redact(None, "info", event)
    text = repr(out)
    for secret in ("snd_xxxx", "anything", "sk_live_abcdef", "whsec_AAAA", "4111 1111"):
        assert secret not in text
    assert "fine" in text and "1735689600000" in text
    assert redact_text("amqp://user:pw@rabbitmq:5672/") == "amqp://***@rabbitmq:5672/"
