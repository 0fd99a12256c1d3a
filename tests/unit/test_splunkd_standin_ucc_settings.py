"""The stand-in's read of UCC's settings handler (ucc_settings.py): what splunktaucclib's alert-action
base class asks for the log level. Encrypted fields are clear only with ``--cred--=1``."""

from __future__ import annotations

import json
import pathlib
import urllib.error
import urllib.request
from typing import Any, Dict, Iterator, Tuple

import pytest

from tests.harness.splunkd_standin import SplunkdStandin

APP = "TA-defender-lineage"
BASE = f"/servicesNS/nobody/{APP}/ta_defender_lineage_settings"


@pytest.fixture
def standin(tmp_path: pathlib.Path) -> Iterator[SplunkdStandin]:
    with SplunkdStandin(tmp_path / "splunkd", app=APP, max_lifetime=60.0) as sd:
        yield sd


def get(sd: SplunkdStandin, path: str) -> Tuple[int, Dict[str, Any]]:
    req = urllib.request.Request(sd.uri + path, headers={"Authorization": f"Splunk {sd.session_key}"})
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return int(resp.status), json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return int(exc.code), json.loads(exc.read())


def test_settings_stanza_with_and_without_cred(standin: SplunkdStandin) -> None:
    standin.set_ucc_settings("logging", {"loglevel": "DEBUG"})
    standin.set_ucc_settings(
        "proxy", {"proxy_enabled": "1", "proxy_url": "proxy.example", "proxy_password": "pw-123456"}, ["proxy_password"]
    )
    status, body = get(standin, f"{BASE}/logging?output_mode=json&count=0&--cred--=1")
    assert status == 200 and body["entry"][0]["name"] == "logging"
    assert body["entry"][0]["content"]["loglevel"] == "DEBUG"
    _, masked = get(standin, f"{BASE}/proxy?output_mode=json")
    assert masked["entry"][0]["content"]["proxy_password"] == "******"
    _, clear = get(standin, f"{BASE}/proxy?output_mode=json&--cred--=1")
    assert clear["entry"][0]["content"]["proxy_password"] == "pw-123456"
    assert standin.unknown_calls == []


def test_missing_settings_stanza_is_404(standin: SplunkdStandin) -> None:
    status, _ = get(standin, f"{BASE}/nothing?output_mode=json")
    assert status == 404 and standin.unknown_calls == []
