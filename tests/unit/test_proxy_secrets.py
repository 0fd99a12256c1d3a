"""The proxy password never sits in a URL, and no log line shows a URL's userinfo."""

from __future__ import annotations

import base64
import io
import logging
from typing import Iterator

import pytest
import requests

from defender_lineage_core.graph_client import account_session
from defender_lineage_core.redaction import RedactUserinfo, install_redaction, redact_userinfo
from defender_lineage_core.settings import proxies_from_settings
from tests.harness.proxy_server import Refusing407Proxy, closed_port, serve_refusing_proxy

PASSWORD = "pr0xy-Pa55:w@rd/never-logged"


def settings(port: int, **change: str):
    values = {
        "proxy_enabled": "1",
        "proxy_type": "http",
        "proxy_url": "127.0.0.1",
        "proxy_port": str(port),
        "proxy_username": "squid-user",
        "proxy_password": PASSWORD,
    }
    values.update(change)
    return proxies_from_settings(values)


@pytest.fixture
def proxy407() -> Iterator[int]:
    yield from serve_refusing_proxy()


def texts_of(error: BaseException) -> str:
    """Everything an exception can show: its text, repr, and those of its whole chain."""
    out, todo, seen = [], [error], set()
    while todo:
        current = todo.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        out += [str(current), repr(current)]
        todo += [e for e in (current.__cause__, current.__context__, *current.args) if isinstance(e, BaseException)]
    return "\n".join(out)


@pytest.mark.parametrize("target", ["http://127.0.0.1:9/x", "https://127.0.0.1:9/x"])
def test_the_proxy_gets_its_credentials_from_the_adapter(proxy407, target):
    session = account_session(settings(proxy407), "test")
    assert all(PASSWORD not in url and "squid-user" not in url for url in session.proxies.values())
    try:
        response = session.get(target, timeout=5)
        assert response.status_code == 407
    except requests.exceptions.ProxyError as exc:  # CONNECT refused
        assert PASSWORD not in texts_of(exc)
    expected = "Basic " + base64.b64encode(f"squid-user:{PASSWORD}".encode()).decode()
    assert Refusing407Proxy.seen == [expected]  # plain request or CONNECT: the header went to the proxy


def test_an_unreachable_proxy_error_carries_no_password():
    session = account_session(settings(closed_port()), "test")
    with pytest.raises(requests.RequestException) as caught:
        session.get("https://127.0.0.1:9/x", timeout=5)
    assert PASSWORD not in texts_of(caught.value) and "Pa55" not in texts_of(caught.value)


def test_without_a_username_no_password_is_sent(proxy407):
    session = account_session(settings(proxy407, proxy_username=""), "test")
    assert session.get("http://127.0.0.1:9/x", timeout=5).status_code == 407
    assert Refusing407Proxy.seen == [""]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("http://u:secret@h:1/x", "http://***@h:1/x"),
        ("socks5h://u:p@ss@h:1", "socks5h://***@h:1"),
        ("ProxyError('https://user:pw@proxy:3128')", "ProxyError('https://***@proxy:3128')"),
        ("mail me@example.com at http://h/x", "mail me@example.com at http://h/x"),
    ],
)
def test_userinfo_is_redacted(text, expected):
    assert redact_userinfo(text) == expected


def test_log_records_lose_userinfo_in_message_args_and_traceback():
    stream = io.StringIO()
    logger = logging.getLogger("test.redaction")
    logger.propagate = False
    handler = logging.StreamHandler(stream)
    logger.handlers = [handler]
    install_redaction(logger)
    install_redaction(logger)  # idempotent
    assert sum(isinstance(f, RedactUserinfo) for f in logger.filters) == 1
    logger.warning("proxy %s failed", f"http://squid-user:{PASSWORD}@proxy:3128")
    try:
        raise ValueError(f"Invalid URL 'http://squid-user:{PASSWORD}@proxy:x'")
    except ValueError:
        logger.exception("run_failed")
    # a record from another logger reaching the same handler (urllib3 propagating to root's handler)
    other = logging.LogRecord("urllib3", logging.WARNING, __file__, 1, "retry via %s", ("http://a:b@c",), None)
    handler.handle(other)
    out = stream.getvalue()
    assert PASSWORD not in out and "Pa55" not in out and "a:b@" not in out
    assert "http://***@proxy:3128" in out and "ValueError" in out and "http://***@c" in out


def test_an_ipv6_proxy_is_named_with_its_brackets():
    from defender_lineage_core.account_check import AccountCheckError, check_account
    from defender_lineage_core.settings import account_from_conf

    guid = "11111111-2222-4333-8444-555555555555"
    account = account_from_conf(
        "acme",
        {
            "tenant_id": guid,
            "client_id": guid,
            "client_secret": "an-unused-secret-value",
            "cloud": "custom",
            "login_url": "http://127.0.0.1:9",
            "graph_url": "http://127.0.0.1:9",
        },
    )
    port = closed_port()
    with pytest.raises(AccountCheckError) as caught:
        check_account(account, proxies=settings(port, proxy_url="[::1]"), timeout=5.0)
    assert f"[::1]:{port}" in str(caught.value) and PASSWORD not in str(caught.value)
