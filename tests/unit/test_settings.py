"""Bad settings are refused with a message naming the field."""

import json
import re
from pathlib import Path

import pytest

from defender_lineage_core import clouds
from defender_lineage_core.errors import ConfigError, auth_error, graph_error
from defender_lineage_core.settings import (
    account_from_conf,
    check_account_fields,
    interval_seconds,
    proxies_from_settings,
    start_ticks,
)
from defender_lineage_core.timestamps import TICKS_PER_SECOND, parse_instant
from defender_lineage_splunk.inputs import checkpoint_key

ROOT = Path(__file__).resolve().parents[2]

GOOD = {
    "tenant_id": "4a1f0c2e-9b7d-4c3a-8e55-2f6d1b0a9c31",
    "client_id": "0f6c9d2a-1b3e-4c5d-8e7f-9a0b1c2d3e4f",
    "auth_type": "client_secret",
    "client_secret": "s3cr3t-value",
    "cloud": "global",
}


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"tenant_id": "contoso.onmicrosoft.com"}, "tenant_id"),
        ({"client_id": "not-a-guid"}, "client_id"),
        ({"client_secret": ""}, "client_secret"),
        ({"auth_type": "password"}, "auth_type"),
        ({"auth_type": "certificate"}, "certificate"),
        ({"cloud": "mars"}, "cloud"),
        ({"cloud": "china"}, "21Vianet"),
        ({"cloud": "custom"}, "login_url"),
        (
            {
                "cloud": "custom",
                "login_url": "http://login.example.com",
                "graph_url": "https://g.example.com",
            },
            "login_url",
        ),
    ],
)
def test_bad_accounts_are_refused_naming_the_field(change, field):
    with pytest.raises(ConfigError, match=field):
        check_account_fields({**GOOD, **change}, creating=True)


def test_secret_never_appears_in_messages_or_repr():
    account = account_from_conf("acme", GOOD)
    assert "s3cr3t" not in repr(account)
    with pytest.raises(ConfigError) as info:
        check_account_fields({**GOOD, "tenant_id": "x"}, creating=True)
    assert "s3cr3t" not in str(info.value)


def test_clouds():
    assert clouds.resolve("global").scope == "https://graph.microsoft.com/.default"
    dod = clouds.resolve("usgov_dod")
    assert (dod.login_root, dod.graph_root) == (
        "https://login.microsoftonline.us",
        "https://dod-graph.microsoft.us",
    )
    assert clouds.resolve("usgov_gcchigh").graph_root == "https://graph.microsoft.us"
    custom = clouds.resolve("custom", "http://127.0.0.1:8080/", "http://127.0.0.1:8080")
    assert custom.token_url("t") == "http://127.0.0.1:8080/t/oauth2/v2.0/token"


def test_edit_checks_only_what_changes():
    check_account_fields({"client_secret": ""}, creating=False)  # unchanged secret on edit
    with pytest.raises(ConfigError, match="tenant_id"):
        check_account_fields({"tenant_id": "bad"}, creating=False)


def test_start_date_and_interval():
    now = parse_instant("2026-11-27T00:00:00Z") or 0
    assert start_ticks("", now) == now - 7 * 86400 * TICKS_PER_SECOND
    assert start_ticks("2026-11-01", now) == parse_instant("2026-11-01T00:00:00Z")
    with pytest.raises(ConfigError, match="start_date"):
        start_ticks("last tuesday", now)
    assert interval_seconds("300") == 300
    with pytest.raises(ConfigError, match="interval"):
        interval_seconds("30")


PROXY = {
    "proxy_enabled": "1",
    "proxy_type": "http",
    "proxy_url": "proxy.local",
    "proxy_port": "3128",
    "proxy_username": "u@x",
    "proxy_password": "p:w-pr0xy-secret",
}


def test_proxy():
    assert proxies_from_settings({"proxy_enabled": "0", "proxy_url": "p"}) == {}
    p = proxies_from_settings(PROXY)
    # The password is never in the proxy URL: the session's adapter carries it (proxy.py).
    assert p == {"http": "http://proxy.local:3128", "https": "http://proxy.local:3128"}
    assert "pr0xy" not in repr(p) and "pr0xy" not in str(p)
    socks = proxies_from_settings({**PROXY, "proxy_type": "socks5"})
    assert socks["https"] == "socks5h://proxy.local:3128"  # the proxy resolves Graph's names
    with pytest.raises(ConfigError, match="proxy_port"):
        proxies_from_settings({"proxy_enabled": "true", "proxy_url": "proxy.local"})


@pytest.mark.parametrize(
    "host", ["proxy.corp.example.com", "10.1.2.3", "proxy-1", "[2001:db8::1]", "[::1]", "localhost"]
)
def test_proxy_hosts_a_soc_really_uses_are_accepted(host):
    assert proxies_from_settings({**PROXY, "proxy_url": host})["https"] == f"http://{host}:3128"
    assert re.match(proxy_tab_pattern("proxy_url"), host)  # the UI and REST validator agree


@pytest.mark.parametrize(
    ("host", "reason"),
    [
        ("user:pw@proxy.local", "proxy_url must be a host name"),
        ("http://proxy.local", "proxy_url must be a host name"),
        ("proxy.local:3128", "proxy_url must be a host name"),
        ("169.254.169.254", "metadata"),
        ("169.254.10.1", "link-local"),
        ("[fe80::1]", "link-local"),
        ("[fd00:ec2::254]", "metadata"),
        ("metadata.google.internal", "metadata"),
        ("[::ffff:169.254.169.254]", "metadata"),
        ("[not-ipv6]", "proxy_url"),
    ],
)
def test_proxy_hosts_that_are_not_a_proxy_are_refused(host, reason):
    with pytest.raises(ConfigError, match=reason):
        proxies_from_settings({**PROXY, "proxy_url": host})
    if reason != "proxy_url" and "ffff" not in host:  # the UI pattern knows the plain forms; the server all
        assert not re.match(proxy_tab_pattern("proxy_url"), host)


@pytest.mark.parametrize("port", ["0", "65536", "3128x", "-1", "", "1e3"])
def test_a_bad_proxy_port_is_refused_without_the_password(port):
    # The old code built http://user:<password>@host:<port> and requests put it in the exception.
    with pytest.raises(ConfigError, match="proxy_port") as caught:
        proxies_from_settings({**PROXY, "proxy_port": port})
    assert "pr0xy" not in str(caught.value) and "p%3Aw" not in str(caught.value)


def test_proxy_types():
    assert re.match(proxy_tab_pattern("proxy_type"), "socks5")
    for kind in ("socks4", "https", "ftp"):
        assert not re.match(proxy_tab_pattern("proxy_type"), kind)
        with pytest.raises(ConfigError, match="proxy_type"):
            proxies_from_settings({**PROXY, "proxy_type": kind})


def proxy_tab_pattern(field_name: str) -> str:
    """The regex the Proxy tab's UI and UCC's generated REST model apply to ``field_name``."""
    config = json.loads((ROOT / "globalConfig.json").read_text())
    tab = next(t for t in config["pages"]["configuration"]["tabs"] if t.get("type") == "proxyTab")
    key = {"proxy_url": "host", "proxy_type": "proxy_type"}[field_name]
    return next(v["pattern"] for v in tab[key]["validators"] if v["type"] == "regex")


def account_url_pattern(field_name: str) -> str:
    config = json.loads((ROOT / "globalConfig.json").read_text())
    tab = next(t for t in config["pages"]["configuration"]["tabs"] if t.get("name") == "account")
    entity = next(e for e in tab["entity"] if e["field"] == field_name)
    return entity["validators"][0]["pattern"]


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("https://user:pa55@login.example.com", "user name or password"),
        ("https://token@graph.example.com", "user name or password"),
        ("https://169.254.169.254", "metadata"),
        ("https://[fd00:ec2::254]", "metadata"),
        ("https://metadata.google.internal", "metadata"),
        ("https://2852039166", "metadata"),  # 169.254.169.254 as one number: connect() honours it
        ("https://169.254.1.1/graph", "link-local"),
        ("https://[fe80::1]", "link-local"),
    ],
)
@pytest.mark.parametrize("field_name", ["login_url", "graph_url"])
def test_custom_cloud_urls_that_would_redirect_the_secret_are_refused(url, reason, field_name):
    urls = {"login_url": "https://login.example.com", "graph_url": "https://graph.example.com", field_name: url}
    with pytest.raises(ConfigError, match=reason) as caught:
        check_account_fields({**GOOD, "cloud": "custom", **urls}, creating=True)
    assert field_name in str(caught.value) and "pa55" not in str(caught.value)
    if url != "https://2852039166":  # the UI pattern cannot decode every numeric form; the server does
        assert not re.match(account_url_pattern(field_name), url)


def test_checkpoint_key_is_safe_for_kv_store_paths():
    assert checkpoint_key("defender_alerts", "prod/eu tenant") == "defender_alerts__prod_eu_tenant"


def test_error_messages_are_actionable():
    body = {"error": "invalid_client", "error_description": "AADSTS7000215: Invalid client secret provided."}
    message = str(auth_error(401, body, "acme"))
    assert "AADSTS7000215" in message and "Value" in message and "acme" in message
    forbidden = graph_error(403, {"error": {"code": "Forbidden", "message": "Missing application roles."}}, "incidents")
    assert "SecurityIncident.Read.All" in str(forbidden) and "admin consent" in str(forbidden)
