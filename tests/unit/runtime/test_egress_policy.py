"""The egress policy's pure rules: which addresses are refused, how hosts may be spelt, what logs may show."""

from __future__ import annotations

import ipaddress

import pytest

from recovery_runtime.egress import (
    DestinationBlocked,
    EgressGuard,
    EgressPolicy,
    blocked_reason,
    is_non_canonical_ipv4,
    redact_url,
)


@pytest.mark.parametrize("host", ["2130706433", "0177.0.0.1", "127.1", "0x7f.0.0.1", "0x7f000001", "017700000001"])
def test_non_canonical_ipv4_spellings_are_refused_as_blocked(host: str) -> None:
    assert is_non_canonical_ipv4(host)
    guard = EgressGuard(EgressPolicy.from_setting("127.0.0.0/8"))  # even when the address itself is allowed
    with pytest.raises(DestinationBlocked, match="non-canonical IPv4 literal"):
        guard.check_host(host)


@pytest.mark.parametrize("host", ["127.0.0.1", "hooks.example.com", "cafe.be", "deadbeef", "::1", "[::1]", "1.2.3.4"])
def test_names_and_canonical_literals_are_not_taken_for_tricks(host: str) -> None:
    assert not is_non_canonical_ipv4(host)


@pytest.mark.parametrize(
    ("address", "kind"),
    [
        ("127.0.0.1", "a loopback address"),
        ("10.1.2.3", "a private address"),
        ("169.254.169.254", "a cloud metadata address"),
        ("::ffff:10.0.0.1", "a private address"),
        ("100.64.0.1", "a shared (CGNAT) address"),
    ],
)
def test_non_global_addresses_are_refused_unless_allow_listed(address: str, kind: str) -> None:
    ip = ipaddress.ip_address(address)
    assert EgressPolicy().refusal(ip) == f"blocked: {ip} is {kind} (not in OUTBOUND_ALLOWED_CIDRS)"
    assert EgressPolicy.from_setting(f"{address}/32" if ip.version == 4 else f"{address}/128").refusal(ip) is None


def test_a_literal_outside_the_allow_list_is_refused_and_found_in_a_wrapped_error() -> None:
    guard = EgressGuard(EgressPolicy.from_setting("127.0.0.2/32"))
    with pytest.raises(DestinationBlocked) as caught:
        guard.check_host("127.0.0.1")
    try:
        raise RuntimeError("client error") from caught.value
    except RuntimeError as wrapped:
        assert blocked_reason(wrapped) == "blocked: 127.0.0.1 is a loopback address (not in OUTBOUND_ALLOWED_CIDRS)"
    assert guard.check_host("127.0.0.2") == ipaddress.ip_address("127.0.0.2")


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("https://user:secret@hooks.example.com:8443/in?token=abc#frag", "https://hooks.example.com:8443/in"),
        ("http://[::1]:9000/a/b?x=1", "http://[::1]:9000/a/b"),
        ("https://hooks.example.com", "https://hooks.example.com"),
    ],
)
def test_logged_urls_lose_their_query_and_credentials(url: str, shown: str) -> None:
    assert redact_url(url) == shown


def test_the_one_setting_keeps_its_old_name_as_an_alias(monkeypatch: pytest.MonkeyPatch) -> None:
    from recovery_runtime.settings import ServiceSettings

    monkeypatch.setenv("WEBHOOK_ALLOWED_CIDRS", "127.0.0.0/8")
    assert ServiceSettings().outbound_allowed_cidrs == "127.0.0.0/8"
    monkeypatch.setenv("OUTBOUND_ALLOWED_CIDRS", "127.0.0.2/32")
    assert ServiceSettings().outbound_allowed_cidrs == "127.0.0.2/32"  # the new name wins
