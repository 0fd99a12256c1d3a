"""The Splunk Web stand-in itself, without a browser: what it refuses (no session, a missing or
wrong form key, an endpoint web.conf does not expose) and how the add-on's REST handlers answer
through it (on Python 3.9 and 3.13), in the shapes UCC's UI parses."""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Dict, Optional, Tuple

import pytest

from tests.harness.splunkd_standin import SplunkdStandin
from tests.harness.splunkweb_standin import SplunkWebStandin

pytestmark = pytest.mark.integration

APP_PATH = "/en-US/splunkd/__raw/servicesNS/nobody/TA-defender-lineage"
# UCC's own parser of a handler's error (entry_page.js, parseErrorMsg): the message it shows
UCC_ERROR = re.compile(
    r'.+"REST Error \[[\d]+\]:\s+.+\s+--\s+([\s\S]*)"\.\s*See splunkd\.log(\/python.log)? for more details\.'
)


class Browser:
    """Cookies and form key as the UCC page sends them."""

    def __init__(self, web: SplunkWebStandin) -> None:
        self.web = web
        self.cookies: Dict[str, str] = {}

    def open_page(self) -> None:
        with urllib.request.urlopen(self.web.page_url("configuration"), timeout=10) as resp:
            for header in resp.headers.get_all("Set-Cookie") or []:
                key, _, rest = header.partition("=")
                self.cookies[key] = rest.split(";", 1)[0]

    def call(
        self, method: str, path: str, form: Optional[Dict[str, str]] = None, form_key: Optional[str] = "cookie"
    ) -> Tuple[int, Dict]:
        headers = {"Cookie": "; ".join(f"{k}={v}" for k, v in self.cookies.items())}
        if form_key == "cookie":
            form_key = self.cookies.get(f"splunkweb_csrf_token_{self.web.port}")
        if form_key:
            headers["X-Splunk-Form-Key"] = form_key
        data = urllib.parse.urlencode(form).encode() if form is not None else None
        if data is not None:
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        url = f"{self.web.base_url}{path}{'&' if '?' in path else '?'}output_mode=json"
        request = urllib.request.Request(url, data=data, headers=headers, method=method)
        try:
            with urllib.request.urlopen(request, timeout=60) as resp:
                return resp.status, json.loads(resp.read() or b"{}")
        except urllib.error.HTTPError as exc:
            body = exc.read()
            return exc.code, json.loads(body) if body.startswith(b"{") else {"text": body.decode()}


@pytest.fixture
def web_standin(addon: Path, python: str, splunkd: SplunkdStandin, tmp_path: Path):
    with SplunkWebStandin(addon, splunkd, python, tmp_path / "splunk_home", max_lifetime=120.0) as server:
        yield server
        assert server.errors == [], "\n".join(server.errors)


def test_refuses_calls_without_session_or_form_key(web_standin: SplunkWebStandin) -> None:
    browser = Browser(web_standin)
    status, _ = browser.call("GET", f"{APP_PATH}/ta_defender_lineage_account")
    assert status == 401  # no web session yet
    browser.open_page()
    assert browser.call("GET", f"{APP_PATH}/ta_defender_lineage_account")[0] == 200
    form = {"name": "x", "tenant_id": "t"}
    assert browser.call("POST", f"{APP_PATH}/ta_defender_lineage_account", form, form_key=None)[0] == 401
    assert browser.call("POST", f"{APP_PATH}/ta_defender_lineage_account", form, form_key="0" * 32)[0] == 401
    assert [c.method for c in web_standin.csrf_failures] == ["GET", "POST", "POST"]
    assert not any(c.action == "create" for c in web_standin.handler_calls)  # refused before any handler ran


def test_refuses_what_web_conf_does_not_expose(web_standin: SplunkWebStandin) -> None:
    browser = Browser(web_standin)
    browser.open_page()
    assert browser.call("GET", "/en-US/splunkd/__raw/services/server/info")[0] == 404
    assert browser.call("DELETE", f"{APP_PATH}/data/indexes/main")[0] == 404
    assert browser.call("GET", "/en-US/manager/launcher/apps/local")[0] == 404
    assert [c.path.rsplit("/", 2)[-2:] for c in web_standin.unknown_calls] == [
        ["server", "info"],
        ["indexes", "main"],
        ["apps", "local"],
    ]


def test_handlers_answer_as_splunkd_does(web_standin: SplunkWebStandin, splunkd: SplunkdStandin) -> None:
    browser = Browser(web_standin)
    browser.open_page()
    # the generated handler's server-side validator (not the browser's) refuses a bad tenant id
    status, body = browser.call(
        "POST",
        f"{APP_PATH}/ta_defender_lineage_account",
        {"name": "acct", "tenant_id": "nope", "client_id": "nope", "auth_type": "client_secret", "cloud": "global"},
    )
    assert status == 500
    shown = UCC_ERROR.match(body["messages"][0]["text"])
    assert shown is not None and "tenant_id" in shown.group(1), body
    status, body = browser.call("POST", f"{APP_PATH}/ta_defender_lineage_settings/logging", {"bogus": "1"})
    assert status == 400 and 'Argument "bogus" is not supported by this handler.' in body["messages"][0]["text"]
    status, body = browser.call("POST", f"{APP_PATH}/ta_defender_lineage_settings/logging", {"loglevel": "ERROR"})
    assert status == 200 and body["entry"][0]["content"]["loglevel"] == "ERROR"
    assert (splunkd.conf_stanza("ta_defender_lineage_settings", "logging") or {})["loglevel"] == "ERROR"
    # an input's disabled flag is a JSON boolean, as splunkd renders it
    status, body = browser.call("GET", f"{APP_PATH}/ta_defender_lineage_defender_hunting?count=-1")
    assert status == 200 and {e["content"]["disabled"] for e in body["entry"]} == {True}


def test_proxy_password_is_not_sent_to_a_new_proxy_without_being_entered_again(
    web_standin: SplunkWebStandin, splunkd: SplunkdStandin
) -> None:
    """Through the shipped settings handler: moving the proxy with the stored password is refused."""
    browser = Browser(web_standin)
    browser.open_page()
    proxy = f"{APP_PATH}/ta_defender_lineage_settings/proxy"
    first = {
        "proxy_enabled": "0",
        "proxy_type": "http",
        "proxy_url": "proxy.corp.example.com",
        "proxy_port": "3128",
        "proxy_username": "svc",
        "proxy_password": "first-proxy-secret",
    }
    assert browser.call("POST", proxy, first)[0] == 200
    moved = {**first, "proxy_url": "proxy.attacker.example", "proxy_password": "******"}
    status, body = browser.call("POST", proxy, moved)
    shown = UCC_ERROR.match(body["messages"][0]["text"]) if status == 500 else None
    assert shown is not None and "enter the proxy password again" in shown.group(1), (status, body)
    assert "first-proxy-secret" not in json.dumps(body)
    assert (splunkd.conf_stanza("ta_defender_lineage_settings", "proxy") or {})["proxy_url"] == "proxy.corp.example.com"
    # the same proxy with the placeholder is an ordinary edit; a move with the password typed again is allowed
    assert browser.call("POST", proxy, {**first, "proxy_port": "3128", "proxy_password": "******"})[0] == 200
    assert browser.call("POST", proxy, {**moved, "proxy_password": "second-proxy-secret"})[0] == 200
    assert (splunkd.conf_stanza("ta_defender_lineage_settings", "proxy") or {})["proxy_url"] == "proxy.attacker.example"
