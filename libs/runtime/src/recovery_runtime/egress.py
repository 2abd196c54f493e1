"""One egress policy for every outbound call whose destination a merchant controls (webhooks, record back,
billing-system APIs): global addresses only, plus the networks in `OUTBOUND_ALLOWED_CIDRS`.

How the checked address is the one connected to (no DNS-rebinding gap): the only name resolution that feeds a
connection is ours. It resolves once (getaddrinfo in a worker thread, off the event loop), drops every address
the policy refuses and connects to a checked address, while the URL's host name stays in the Host header and in
the TLS SNI and certificate check. Two clients share the policy: aiohttp's (the webhook hot path, through
`GuardedResolver`) and httpx's (`guarded_http_client`, everything else). Both refuse redirects and ignore
proxies from the environment (a proxy would connect on our behalf, unchecked).

IP literals are checked as they are written: a host that the C library would read as an IPv4 address but that is
not in canonical dotted-quad form (`2130706433`, `0177.0.0.1`, `127.1`, `0x7f.0.0.1`) is refused outright as
blocked: such spellings exist to slip past naive checks, and no merchant needs one.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

import httpx
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import ThreadedResolver

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

ALLOWED_CIDRS_SETTING = "OUTBOUND_ALLOWED_CIDRS"

# Cloud instance metadata endpoints (AWS/GCP/Azure/OCI IPv4, AWS IPv6): named in the reason because they are the
# classic SSRF prize.
_METADATA_ADDRESSES = frozenset(
    ipaddress.ip_address(value) for value in ("169.254.169.254", "169.254.170.2", "fd00:ec2::254")
)
_CGNAT = ipaddress.IPv4Network("100.64.0.0/10")
_UNIQUE_LOCAL = ipaddress.IPv6Network("fc00::/7")
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
_RFC1918 = tuple(ipaddress.IPv4Network(cidr) for cidr in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"))


class DestinationBlocked(OSError):
    """The egress policy refused a destination (every address it has, or how it is written).

    An OSError so that aiohttp wraps it (ClientConnectorDNSError) like any resolution failure; callers find it in
    the exception chain and classify the attempt as blocked (final), not as a network error to retry."""

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


def parse_ip(host: str) -> IPAddress | None:
    """The host as an IP address when it is a canonical literal (brackets and IPv6 zone allowed), else None."""
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None


def is_non_canonical_ipv4(host: str) -> bool:
    """True for a host the C library reads as IPv4 but that is not a dotted quad (`2130706433`, `127.1`, `0177.0.0.1`,
    `0x7f.0.0.1`); name resolution would turn it into an address without it ever looking like one."""
    if parse_ip(host) is not None:
        return False
    try:
        socket.inet_aton(host)
    except OSError:
        return False
    return True


def redact_url(url: str) -> str:
    """The URL as logs may show it: no query string, fragment or credentials (tokens travel there)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparseable url>"
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


@dataclass(frozen=True, slots=True)
class EgressPolicy:
    """Which destinations outbound calls may reach: global addresses, plus the allow-listed networks."""

    allowed_networks: tuple[IPNetwork, ...] = ()
    setting_name: str = ALLOWED_CIDRS_SETTING

    @classmethod
    def from_setting(cls, value: str | Iterable[str] | None) -> EgressPolicy:
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


class EgressGuard:
    """Applies an `EgressPolicy` to how a host is written, to IP literals and to resolved addresses."""

    def __init__(self, policy: EgressPolicy) -> None:
        self.policy = policy

    def check_host(self, host: str) -> IPAddress | None:
        """Refuse a non-canonical IPv4 spelling or a refused literal; the literal when the host is one."""
        if is_non_canonical_ipv4(host):
            raise DestinationBlocked(f"blocked: {host!r} is a non-canonical IPv4 literal")
        ip = parse_ip(host)
        if ip is not None:
            self.check_ip(ip)
        return ip

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


def blocked_reason(error: BaseException) -> str | None:
    """The egress refusal somewhere in an exception's chain (clients wrap it), or None."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, DestinationBlocked):
            return current.reason
        current = current.__cause__ or current.__context__
    return None


class GuardedResolver(AbstractResolver):
    """An aiohttp resolver that only ever returns addresses the guard checked (create it in a running loop).

    aiohttp skips the resolver for IP literals: a caller checks the URL's host with `EgressGuard.check_host`
    before sending."""

    def __init__(self, guard: EgressGuard, resolver: AbstractResolver | None = None) -> None:
        self._guard = guard
        self._resolver = resolver or ThreadedResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        results = await self._resolver.resolve(host, port, family)
        return self._guard.filter_resolved(host, results)

    async def close(self) -> None:
        await self._resolver.close()


class GuardedTransport(httpx.AsyncBaseTransport):
    """httpx's transport, connecting only to checked addresses: the request goes to the pinned IP, with the host
    name kept in the Host header and, for https, in SNI and the certificate check (`sni_hostname`)."""

    def __init__(self, guard: EgressGuard, inner: httpx.AsyncBaseTransport | None = None) -> None:
        self._guard = guard
        self._inner = inner or httpx.AsyncHTTPTransport(trust_env=False, retries=0)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        host = request.url.host
        if self._guard.check_host(host) is None:
            port = request.url.port or (443 if request.url.scheme == "https" else 80)
            infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
            results: list[ResolveResult] = [
                {"hostname": host, "host": str(info[4][0]), "port": port, "family": info[0], "proto": 0, "flags": 0}
                for info in infos
            ]
            pinned = self._guard.filter_resolved(host, results)[0]["host"]
            if request.url.scheme == "https":
                request.extensions = {**request.extensions, "sni_hostname": host}
            request.url = request.url.copy_with(host=pinned)
        return await self._inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self._inner.aclose()


def guarded_http_client(guard: EgressGuard, *, timeout: float = 10.0) -> httpx.AsyncClient:
    """An httpx client under the egress policy: checked and pinned addresses, no redirects, no proxies."""
    return httpx.AsyncClient(
        transport=GuardedTransport(guard), timeout=timeout, follow_redirects=False, trust_env=False
    )
