"""The SSRF guard: which webhook URLs spamq will post to, and the addresses it may connect to.

https only (http with ``webhook_allow_http``, for development); no userinfo; the host's every
address (getaddrinfo) must be global unicast: loopback, link-local (the 169.254.169.254
metadata service), private, unique-local, multicast, unspecified and reserved addresses are
refused unless ``webhook_allow_hosts`` names the host. The deliverer checks again before each
attempt and connects to an address it checked (a DNS answer that changed in between, DNS
rebinding, gains nothing).

A refusal states the rule only: never the address a name resolved to, and a name that does not
resolve is told the same as one that resolves inside, so the guard is no resolver oracle. A URL
that is not valid Unicode (a lone surrogate) is refused; non-ASCII characters in the path or
query are sent percent-encoded as UTF-8 (RFC 3987's mapping of an IRI to a URI, what browsers
send), so every URL accepted can be sent as it was given.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import quote, urlsplit

from spamq.errors import InvalidRequest
from spamq.settings import Settings

MAX_URL_CHARS = 2048
#: (host, port) -> the addresses it resolves to
Resolver = Callable[[str, int], list[str]]
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
#: the one answer for a host spamq will not post to, whatever it resolved to (or did not)
NOT_PUBLIC = ("the webhook host must resolve, and only to public addresses (private, loopback, "
              "link-local and reserved addresses are not allowed)")
_NON_ASCII = re.compile(r"[^\x00-\x7f]+")


class UrlRefused(InvalidRequest, ValueError):
    """A URL spamq will not post to; the message says why (never the URL's query). At the API
    it is the request's ``webhook.url`` at fault: a 422 naming that field."""

    def __init__(self, message: str) -> None:
        super().__init__("webhook.url", message)


@dataclass(frozen=True)
class Target:
    """A checked URL: where to connect (``addresses``) and what to ask for (``path``)."""

    scheme: str
    host: str
    port: int
    path: str  # path and query, as sent in the request line
    addresses: tuple[str, ...]

    @property
    def origin(self) -> str:
        """``scheme://host:port``: what may be logged of the URL."""
        return f"{self.scheme}://{self.host}:{self.port}"


def system_resolver(host: str, port: int) -> list[str]:
    """Every address of ``host`` (getaddrinfo), in its order, without repeats."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def address_refusal(address: str) -> str | None:
    """Why spamq will not connect to ``address`` (loopback, private, ...), or None."""
    ip: IPAddress = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address):  # an IPv4 address inside: judge that one
        if ip in _NAT64:
            ip = ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
        else:
            ip = ip.ipv4_mapped or ip.sixtofour or (ip.teredo[1] if ip.teredo else None) or ip
    for reason, hit in (("loopback", ip.is_loopback), ("unspecified", ip.is_unspecified),
                        ("link-local", ip.is_link_local), ("multicast", ip.is_multicast),
                        ("reserved", ip.is_reserved), ("private", ip.is_private)):
        if hit:
            return reason
    return None if ip.is_global else "not globally routable"


def check_url(url: object, settings: Settings, resolver: Resolver = system_resolver) -> Target:
    """The URL's :class:`Target` if spamq may post to it, else UrlRefused."""
    if not isinstance(url, str) or not url:
        raise UrlRefused("expected a URL string")
    if len(url) > MAX_URL_CHARS:
        raise UrlRefused(f"longer than {MAX_URL_CHARS} characters")
    if any(ch <= " " or ch == "\x7f" for ch in url):
        raise UrlRefused("white space or control characters in the URL")
    try:
        url.encode("utf-8")
    except UnicodeEncodeError:
        raise UrlRefused("the URL is not valid Unicode text (a lone surrogate)") from None
    parts = urlsplit(url)
    schemes = ("https", "http") if settings.webhook_allow_http else ("https",)
    if parts.scheme.lower() not in schemes:
        raise UrlRefused(f"scheme must be {' or '.join(schemes)}")
    if "@" in parts.netloc:
        raise UrlRefused("user name or password in the URL")
    host = (parts.hostname or "").rstrip(".")
    if not host:
        raise UrlRefused("no host")
    try:
        host.encode("ascii")
        port = parts.port or (443 if parts.scheme.lower() == "https" else 80)
    except (UnicodeError, ValueError):
        raise UrlRefused("host or port not valid (use the ASCII/punycode host name)") from None
    path = _NON_ASCII.sub(lambda m: quote(m.group(), safe=""),
                          (parts.path or "/") + (f"?{parts.query}" if parts.query else ""))
    try:
        addresses = tuple(resolver(host, port))
    except (OSError, UnicodeError):
        raise UrlRefused(NOT_PUBLIC) from None
    allowed = {h.lower().rstrip(".") for h in settings.webhook_allow_hosts}
    if not addresses or (host not in allowed and any(map(address_refusal, addresses))):
        raise UrlRefused(NOT_PUBLIC)
    return Target(parts.scheme.lower(), host, port, path, addresses)
