"""SSRF guard: webhooks only reach global addresses (or an allow-list), checked at connect time.

How the checked address is the one connected to (no DNS-rebinding gap): the delivery client's aiohttp
connector is given `GuardedResolver`, so the only name resolution that ever feeds a connection is ours;
it resolves once (getaddrinfo in a worker thread, off the event loop), drops every address the policy
refuses, and hands aiohttp only the checked addresses. aiohttp then connects to that IP while the URL's
host name stays in the Host header and the TLS SNI/certificate check. aiohttp skips the resolver for IP
literals, so `WebhookSender` checks a literal host with `SsrfGuard.check_ip` before sending. Redirects are
never followed, and environment proxies are ignored (a proxy would connect on our behalf, unchecked).
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterable
from dataclasses import dataclass

from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import ThreadedResolver

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

ALLOWED_CIDRS_SETTING = "WEBHOOK_ALLOWED_CIDRS"

# Cloud instance metadata endpoints (AWS/GCP/Azure/OCI IPv4, AWS IPv6): named in the reason because they
# are the classic SSRF prize.
_METADATA_ADDRESSES = frozenset(
    ipaddress.ip_address(value) for value in ("169.254.169.254", "169.254.170.2", "fd00:ec2::254")
)
_CGNAT = ipaddress.IPv4Network("100.64.0.0/10")
_UNIQUE_LOCAL = ipaddress.IPv6Network("fc00::/7")
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
_RFC1918 = tuple(ipaddress.IPv4Network(cidr) for cidr in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"))


class DestinationBlocked(OSError):
    """The SSRF guard refused every address of a destination.

    An OSError so that aiohttp wraps it (ClientConnectorDNSError) like any resolution failure and
    `WebhookSender` can find it in the exception chain.
    """

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason

    def __str__(self) -> str:
        return self.reason


def _embedded_ipv4(ip: IPAddress) -> ipaddress.IPv4Address | None:
    if not isinstance(ip, ipaddress.IPv6Address):
        return None
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip in _NAT64:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def address_kind(ip: IPAddress) -> str | None:
    """Why an address is not a public destination ("a private address", ...), or None when it is global."""
    embedded = _embedded_ipv4(ip)
    if embedded is not None:
        # ::ffff:10.0.0.1, 64:ff9b::a00:1 (NAT64) and 2002:a00:1:: (6to4) all lead to 10.0.0.1.
        return address_kind(embedded)
    if ip in _METADATA_ADDRESSES:
        return "a cloud metadata address"
    if ip.is_unspecified:
        return "an unspecified address"
    if ip.is_loopback:
        return "a loopback address"
    if ip.is_link_local:
        return "a link-local address"
    if ip.is_multicast:
        return "a multicast address"
    if isinstance(ip, ipaddress.IPv4Address) and ip in _CGNAT:
        return "a shared (CGNAT) address"
    if isinstance(ip, ipaddress.IPv6Address) and ip in _UNIQUE_LOCAL:
        return "a unique-local address"
    if ip.is_reserved:
        return "a reserved address"
    if isinstance(ip, ipaddress.IPv4Address) and any(ip in network for network in _RFC1918):
        return "a private address"
    if ip.is_private or not ip.is_global:
        # Documentation, benchmarking, IETF protocol ranges and the like (IANA special-purpose registry).
        return "a special-purpose address"
    return None


def parse_cidrs(value: str | Iterable[str] | None) -> tuple[IPNetwork, ...]:
    """The allow-list from settings: a comma- or space-separated string, or a list of CIDRs."""
    if value is None:
        return ()
    items = value.replace(",", " ").split() if isinstance(value, str) else value
    return tuple(ipaddress.ip_network(item.strip(), strict=False) for item in items if item.strip())


@dataclass(frozen=True, slots=True)
class SsrfPolicy:
    """Which destinations webhooks may reach: global addresses, plus the allow-listed networks."""

    allowed_networks: tuple[IPNetwork, ...] = ()
    setting_name: str = ALLOWED_CIDRS_SETTING

    @classmethod
    def from_setting(cls, value: str | Iterable[str] | None) -> SsrfPolicy:
        return cls(allowed_networks=parse_cidrs(value))

    def refusal(self, ip: IPAddress) -> str | None:
        """The reason this address is refused, or None when it may be reached."""
        kind = address_kind(ip)
        if kind is None:
            return None
        candidates = (ip, _embedded_ipv4(ip))
        if any(
            candidate is not None and candidate.version == network.version and candidate in network
            for candidate in candidates
            for network in self.allowed_networks
        ):
            return None
        return f"blocked: {ip} is {kind} (not in {self.setting_name})"


def parse_ip(host: str) -> IPAddress | None:
    """The host as an IP address when it is a literal (brackets and IPv6 zone allowed), else None."""
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None


class SsrfGuard:
    """Applies an `SsrfPolicy` to IP literals and to resolved host names."""

    def __init__(self, policy: SsrfPolicy) -> None:
        self.policy = policy

    def check_ip(self, ip: IPAddress) -> None:
        reason = self.policy.refusal(ip)
        if reason is not None:
            raise DestinationBlocked(reason)

    def filter_resolved(self, host: str, results: list[ResolveResult]) -> list[ResolveResult]:
        """Keep only the addresses the policy allows; refuse the host when none is left."""
        allowed: list[ResolveResult] = []
        first_refusal: str | None = None
        for result in results:
            reason = self.policy.refusal(ipaddress.ip_address(result["host"]))
            if reason is None:
                allowed.append(result)
            elif first_refusal is None:
                first_refusal = reason
        if not allowed:
            if first_refusal is None:
                raise DestinationBlocked(f"blocked: {host} has no address")
            raise DestinationBlocked(f"{first_refusal} (resolved from {host})")
        return allowed


class GuardedResolver(AbstractResolver):
    """An aiohttp resolver that only ever returns addresses the SSRF guard checked.

    Resolution runs getaddrinfo in the loop's executor (aiohttp's ThreadedResolver), so a slow DNS server
    never blocks the event loop. Must be created inside a running event loop.
    """

    def __init__(self, guard: SsrfGuard, resolver: AbstractResolver | None = None) -> None:
        self._guard = guard
        self._resolver = resolver or ThreadedResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        results = await self._resolver.resolve(host, port, family)
        return self._guard.filter_resolved(host, results)

    async def close(self) -> None:
        await self._resolver.close()

    def __repr__(self) -> str:  # pragma: no cover - debugging aid
        return f"GuardedResolver({self._guard.policy!r})"
