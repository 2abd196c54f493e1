"""Webhooks never reach internal addresses unless allow-listed; blocked deliveries say why (the runtime's egress
policy, as the dispatcher's sender applies it)."""

import ipaddress
import socket

import pytest

from recovery_runtime.egress import (
    DestinationBlocked,
    EgressGuard,
    EgressPolicy,
    GuardedResolver,
    parse_cidrs,
    parse_ip,
)

pytestmark = pytest.mark.unit

DEFAULT = EgressPolicy()


@pytest.mark.parametrize(
    ("address", "kind"),
    [
        ("169.254.169.254", "a cloud metadata address"),
        ("169.254.1.1", "a link-local address"),
        ("10.0.0.1", "a private address"),
        ("172.16.5.4", "a private address"),
        ("192.168.1.1", "a private address"),
        ("100.64.0.1", "a shared (CGNAT) address"),
        ("127.0.0.1", "a loopback address"),
        ("0.0.0.0", "an unspecified address"),
        ("224.0.0.1", "a multicast address"),
        ("240.0.0.1", "a reserved address"),
        ("192.0.2.1", "a special-purpose address"),
        ("198.18.0.1", "a special-purpose address"),
        ("2001:db8::1", "a special-purpose address"),
        ("::1", "a loopback address"),
        ("::", "an unspecified address"),
        ("fd00::1", "a unique-local address"),
        ("fe80::1", "a link-local address"),
        ("ff02::1", "a multicast address"),
        ("fd00:ec2::254", "a cloud metadata address"),
        ("::ffff:10.0.0.1", "a private address"),
        ("::ffff:127.0.0.1", "a loopback address"),
        ("64:ff9b::a00:1", "a private address"),  # NAT64 of 10.0.0.1
        ("2002:a9fe:a9fe::", "a cloud metadata address"),  # 6to4 of 169.254.169.254
    ],
)
def test_non_global_addresses_are_blocked_with_a_clear_reason(address: str, kind: str) -> None:
    ip = ipaddress.ip_address(address)
    assert DEFAULT.refusal(ip) == f"blocked: {ip} is {kind} (not in OUTBOUND_ALLOWED_CIDRS)"


@pytest.mark.parametrize("address", ["8.8.8.8", "1.1.1.1", "2606:4700:4700::1111", "::ffff:8.8.8.8"])
def test_global_addresses_are_allowed(address: str) -> None:
    assert DEFAULT.refusal(ipaddress.ip_address(address)) is None


@pytest.mark.parametrize(
    ("address", "allowed"),
    [
        ("127.0.0.1", "127.0.0.0/8"),
        ("::1", "::1/128"),
        ("10.0.0.1", "10.0.0.0/8"),
        ("169.254.169.254", "169.254.169.254/32"),
        ("fd00::1", "fd00::/8"),
        ("fe80::1", "fe80::/10"),
        ("100.64.0.1", "100.64.0.0/10"),
        ("::ffff:127.0.0.1", "127.0.0.0/8"),
    ],
)
def test_allow_list_opens_exactly_its_networks(address: str, allowed: str) -> None:
    policy = EgressPolicy.from_setting(allowed)
    assert policy.refusal(ipaddress.ip_address(address)) is None
    assert policy.refusal(ipaddress.ip_address("192.168.255.255")) is not None


def test_allow_list_setting_parses_commas_and_spaces() -> None:
    assert parse_cidrs("127.0.0.0/8, ::1/128 10.1.2.3") == (
        ipaddress.ip_network("127.0.0.0/8"),
        ipaddress.ip_network("::1/128"),
        ipaddress.ip_network("10.1.2.3/32"),
    )
    assert parse_cidrs(None) == ()
    assert parse_cidrs("") == ()
    with pytest.raises(ValueError):
        parse_cidrs("not-a-cidr")


@pytest.mark.parametrize(
    ("host", "expected"),
    [("10.0.0.1", "10.0.0.1"), ("[::1]", "::1"), ("::1", "::1"), ("example.com", None), ("localhost", None)],
)
def test_literal_hosts_are_recognised(host: str, expected: str | None) -> None:
    parsed = parse_ip(host)
    assert (str(parsed) if parsed else None) == expected


def test_guard_check_ip_raises_with_the_reason() -> None:
    with pytest.raises(DestinationBlocked) as refused:
        EgressGuard(DEFAULT).check_ip(ipaddress.ip_address("10.0.0.1"))
    assert str(refused.value) == "blocked: 10.0.0.1 is a private address (not in OUTBOUND_ALLOWED_CIDRS)"
    assert isinstance(refused.value, OSError)


class StaticResolver:
    """Answers a name with fixed addresses, as DNS (or a rebinding attacker) would."""

    def __init__(self, *addresses: str) -> None:
        self.addresses = addresses

    async def resolve(self, host: str, port: int = 0, family: int = socket.AF_INET) -> list[dict]:
        return [
            {
                "hostname": host,
                "host": address,
                "port": port,
                "family": socket.AF_INET6 if ":" in address else socket.AF_INET,
                "proto": 0,
                "flags": 0,
            }
            for address in self.addresses
        ]

    async def close(self) -> None:
        return None


async def test_resolver_returns_only_checked_addresses() -> None:
    resolver = GuardedResolver(EgressGuard(DEFAULT), StaticResolver("10.0.0.1", "8.8.8.8"))
    results = await resolver.resolve("mixed.example", 443)
    assert [result["host"] for result in results] == ["8.8.8.8"]


async def test_resolver_refuses_a_name_with_only_internal_addresses() -> None:
    resolver = GuardedResolver(EgressGuard(DEFAULT), StaticResolver("169.254.169.254"))
    with pytest.raises(DestinationBlocked, match=r"169\.254\.169\.254 is a cloud metadata address .*internal\.example"):
        await resolver.resolve("internal.example", 80)


async def test_resolver_uses_the_allow_list() -> None:
    resolver = GuardedResolver(EgressGuard(EgressPolicy.from_setting("127.0.0.0/8")), StaticResolver("127.0.0.1"))
    assert [result["host"] for result in await resolver.resolve("localhost", 80)] == ["127.0.0.1"]
