"""The SSRF guard, with patched resolvers: schemes, userinfo, every refused address range."""

from __future__ import annotations

import socket

import pytest

from api.requests import RequestModels, validate
from spamq.errors import InvalidRequest
from spamq.settings import Settings
from spamq.webhooks.request import Webhook, check_webhook
from spamq.webhooks.urls import (
    NOT_PUBLIC,
    UrlRefused,
    address_refusal,
    check_url,
    system_resolver,
)


def resolver_to(*addresses: str):
    return lambda host, port: list(addresses)


PUBLIC = resolver_to("93.184.216.34")
MODELS = RequestModels.for_settings(Settings())


def hook(obj: object) -> Webhook:
    """The ``webhook`` of a texts body, as the API parses it: the model, then the URL check
    (with a patched resolver)."""
    parsed = validate(MODELS.texts, {"texts": ["hi"], "webhook": obj}, Settings()).webhook
    assert parsed is not None
    return check_webhook(parsed, Settings(), resolver=PUBLIC)


@pytest.mark.parametrize(("address", "reason"), [
    ("127.0.0.1", "loopback"), ("127.9.9.9", "loopback"), ("::1", "loopback"),
    ("169.254.169.254", "link-local"), ("fe80::1", "link-local"),
    ("fe80::1%eth0", "link-local"),
    ("10.0.0.1", "private"), ("10.255.255.255", "private"),
    ("172.16.0.1", "private"), ("172.31.255.254", "private"),
    ("192.168.1.1", "private"), ("fc00::1", "private"), ("fd12:3456::1", "private"),
    ("224.0.0.1", "multicast"), ("ff02::1", "multicast"),
    ("0.0.0.0", "unspecified"), ("::", "unspecified"), ("240.0.0.1", "reserved"),
    ("100.64.0.1", "not globally routable"),  # carrier-grade NAT
    ("::ffff:127.0.0.1", "loopback"), ("::ffff:10.1.2.3", "private"),  # IPv4-mapped
    ("64:ff9b::a9fe:a9fe", "link-local"),  # NAT64 of 169.254.169.254
    ("2002:7f00:1::", "loopback"),  # 6to4 of 127.0.0.1
])
def test_refused_addresses(address, reason):
    assert address_refusal(address) == reason
    with pytest.raises(UrlRefused, match="only to public addresses") as err:
        check_url("https://hooks.example.com/x", Settings(), resolver_to(address))
    assert str(err.value) == NOT_PUBLIC  # the rule only: never the address (a resolver oracle)
    assert address.split("%")[0] not in str(err.value)


@pytest.mark.parametrize("address", ["93.184.216.34", "8.8.8.8", "2606:4700::1111"])
def test_public_addresses_pass(address):
    target = check_url("https://Hooks.Example.com./in?token=abc", Settings(),
                       resolver_to(address))
    assert (target.scheme, target.host, target.port) == ("https", "hooks.example.com", 443)
    assert target.path == "/in?token=abc" and target.addresses == (address,)
    assert "token" not in target.origin


def test_one_bad_address_among_good_ones_refuses():
    with pytest.raises(UrlRefused, match="public addresses"):
        check_url("https://x.example/", Settings(), resolver_to("8.8.8.8", "10.0.0.7"))


def test_a_dns_name_resolving_to_the_metadata_service(monkeypatch):
    """The real resolver (getaddrinfo) patched: a name, not a literal, points inside."""
    def getaddrinfo(host, port, *args, **kwargs):
        assert host == "evil.example.com"
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("169.254.169.254", port)),
                (socket.AF_INET6, socket.SOCK_STREAM, 6, "", ("::1", port, 0, 0))]

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    assert system_resolver("evil.example.com", 443) == ["169.254.169.254", "::1"]
    with pytest.raises(UrlRefused, match="public addresses") as err:
        check_url("https://evil.example.com/hook", Settings())
    assert "169.254" not in str(err.value) and "::1" not in str(err.value)


def test_unresolvable_host(monkeypatch):
    def fail(*args, **kwargs):
        raise socket.gaierror("no such name")

    monkeypatch.setattr(socket, "getaddrinfo", fail)
    with pytest.raises(UrlRefused) as err:
        check_url("https://nowhere.invalid/", Settings())
    assert str(err.value) == NOT_PUBLIC  # told as a name that resolves inside: no DNS oracle


@pytest.mark.parametrize(("url", "why"), [
    ("ftp://hooks.example.com/x", "scheme must be https"),
    ("file:///etc/passwd", "scheme must be https"),
    ("gopher://hooks.example.com/", "scheme must be https"),
    ("http://hooks.example.com/x", "scheme must be https"),  # http needs the setting
    ("hooks.example.com/x", "scheme must be https"),
    ("https://user:pw@hooks.example.com/", "user name or password"),
    ("https://user@hooks.example.com/", "user name or password"),
    ("https:///path", "no host"),
    ("https://hooks.example.com:99999/", "not valid"),
    ("https://hooks.example.com/a b", "white space"),
    ("https://hooks.example.com/\nx", "white space"),
    ("https://bücher.example/", "ASCII"),
    ("https://hooks.example.com/" + "a" * 2100, "longer than"),
    (None, "expected a URL"),
])
def test_refused_urls(url, why):
    with pytest.raises(UrlRefused, match=why):
        check_url(url, Settings(), PUBLIC)


def test_http_only_with_the_setting():
    target = check_url("http://hooks.example.com/x", Settings(webhook_allow_http=True), PUBLIC)
    assert (target.scheme, target.port) == ("http", 80)
    with pytest.raises(UrlRefused, match="https or http"):
        check_url("ftp://hooks.example.com/", Settings(webhook_allow_http=True), PUBLIC)


def test_the_allow_list_exempts_named_hosts_only():
    s = Settings(webhook_allow_hosts=["127.0.0.1", "Internal.Example."])
    assert check_url("https://127.0.0.1:8443/h", s, resolver_to("127.0.0.1")).port == 8443
    assert check_url("https://internal.example/h", s, resolver_to("10.1.1.1")).host == (
        "internal.example")
    with pytest.raises(UrlRefused, match="public addresses"):
        check_url("https://localhost/h", s, resolver_to("127.0.0.1"))
    with pytest.raises(UrlRefused, match="scheme"):  # the allow list does not allow http
        check_url("http://127.0.0.1/h", s, resolver_to("127.0.0.1"))


@pytest.mark.parametrize(("obj", "field", "message"), [
    ("https://x.example/", "webhook", "must be an object"),
    ({"url": "https://x.example/", "events": ["job.completed"], "x": 1}, "webhook", "unknown"),
    ({"events": ["job.completed"]}, "webhook.url", "is required"),
    ({"url": "http://x.example/", "events": ["job.completed"]}, "webhook.url", "scheme"),
    ({"url": "https://x.example/"}, "webhook.events", "is required"),
    ({"url": "https://x.example/", "events": []}, "webhook.events", "must not be empty"),
    ({"url": "https://x.example/", "events": ["job.completed", "job.done"]},
     "webhook.events[1]", "job.completed"),
    ({"url": "https://x.example/", "events": ["job.failed", 3]}, "webhook.events[1]", "job."),
])
def test_a_webhook_is_parsed_with_the_body_naming_the_field(obj, field, message):
    with pytest.raises(InvalidRequest) as err:
        hook(obj)
    assert err.value.field == field and message in err.value.message
    assert err.value.status == 422


def test_the_url_check_refuses_internal_targets_as_webhook_url():
    with pytest.raises(UrlRefused) as err:
        check_webhook(Webhook("https://x.example/", ("job.completed",)), Settings(),
                      resolver=resolver_to("192.168.0.10"))
    assert err.value.field == "webhook.url" and err.value.message == NOT_PUBLIC
    assert "192.168" not in err.value.message


@pytest.mark.parametrize("url", ["https://hooks.example.com/\ud800", "https://x.example/?q=\udfff",
                                 "https://hooks.example.com/a\ud83d"])
def test_a_lone_surrogate_is_refused(url):
    """Not valid Unicode: it could be neither stored (Redis wants UTF-8) nor sent."""
    with pytest.raises(UrlRefused, match="not valid Unicode"):
        check_url(url, Settings(), PUBLIC)
    with pytest.raises(InvalidRequest) as err:
        hook({"url": url, "events": ["job.completed"]})
    assert err.value.field == "webhook.url"


def test_a_non_ascii_path_and_query_are_sent_percent_encoded():
    """RFC 3987's mapping of an IRI to a URI: UTF-8, percent-encoded; ASCII and escapes that
    were there already are left as they are, so the request line is ASCII."""
    target = check_url("https://hooks.example.com/h\u00e9/\u6f22?q=\u00fc&a=%41#frag", Settings(),
                       PUBLIC)
    assert target.path == "/h%C3%A9/%E6%BC%A2?q=%C3%BC&a=%41"
    target.path.encode("ascii")


def test_parse_webhook_accepts_and_dedupes():
    parsed = hook({"url": "https://x.example/in", "events": [
        "job.completed", "job.failed", "job.completed", "job.progress"]})
    assert parsed == Webhook("https://x.example/in", ("job.completed", "job.failed",
                                                      "job.progress"))  # one shape, deduped
