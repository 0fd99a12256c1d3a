"""Bad settings are refused with a message naming the field."""

import pytest

from defender_lineage_core import clouds
from defender_lineage_core.errors import ConfigError, auth_error, graph_error
from defender_lineage_core.settings import (
    account_from_conf,
    check_account_fields,
    checkpoint_key,
    interval_seconds,
    proxies_from_settings,
    start_ticks,
)
from defender_lineage_core.timestamps import TICKS_PER_SECOND, parse_instant

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


def test_proxy():
    assert proxies_from_settings({"proxy_enabled": "0", "proxy_url": "p"}) == {}
    p = proxies_from_settings(
        {
            "proxy_enabled": "1",
            "proxy_type": "http",
            "proxy_url": "proxy.local",
            "proxy_port": "3128",
            "proxy_username": "u@x",
            "proxy_password": "p:w",
        }
    )
    assert p["https"] == "http://u%40x:p%3Aw@proxy.local:3128"
    with pytest.raises(ConfigError, match="proxy_port"):
        proxies_from_settings({"proxy_enabled": "true", "proxy_url": "proxy.local"})


def test_checkpoint_key_is_safe_for_kv_store_paths():
    assert checkpoint_key("defender_alerts", "prod/eu tenant") == "defender_alerts__prod_eu_tenant"


def test_error_messages_are_actionable():
    body = {"error": "invalid_client", "error_description": "AADSTS7000215: Invalid client secret provided."}
    message = str(auth_error(401, body, "acme"))
    assert "AADSTS7000215" in message and "Value" in message and "acme" in message
    forbidden = graph_error(403, {"error": {"code": "Forbidden", "message": "Missing application roles."}}, "incidents")
    assert "SecurityIncident.Read.All" in str(forbidden) and "admin consent" in str(forbidden)
