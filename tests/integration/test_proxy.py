"""A proxy that works (issue 12, item 6): the BUILT inputs collect through a real proxy server
(pproxy, HTTP and SOCKS5 with authentication, on loopback), the account check works through it, and
a wrong proxy password gives the README's 407 message. The splunkd fixture then proves that the
proxy password (stored in storage/passwords) reached no log, event or process output.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections import Counter
from pathlib import Path
from typing import Iterator
from urllib.parse import urlsplit

import pytest

from tests.harness.graph_sim import GraphSimulator
from tests.harness.pipeline import log_lines, run_input, seed_account
from tests.harness.proxy_server import PProxy, serve_refusing_socks5
from tests.harness.splunkd_standin import SplunkdStandin
from tests.integration.test_account_handler import STUB, account_payload, run_handler
from tests.integration.test_inputs import FAR_BACK, latest_visible, written

USER = "squid-user"
PASSWORD = "pr0xy-pa55word-never-shown"


@pytest.fixture
def proxy() -> Iterator[PProxy]:
    with PProxy("http+socks5", USER, PASSWORD, max_lifetime=300.0) as server:
        yield server


def use_proxy(splunkd: SplunkdStandin, port: int, kind: str, password: str = PASSWORD) -> None:
    splunkd.set_ucc_settings(
        "proxy",
        {
            "proxy_enabled": "1",
            "proxy_type": kind,
            "proxy_url": "127.0.0.1",
            "proxy_port": str(port),
            "proxy_username": USER,
            "proxy_password": password,
        },
        encrypted=["proxy_password"],
    )


def sim_address(sim: GraphSimulator) -> str:
    return urlsplit(sim.base_url).netloc


@pytest.mark.integration
@pytest.mark.parametrize("kind", ["http", "socks5"])
def test_the_input_collects_through_the_proxy(
    addon, python, sim: GraphSimulator, splunkd: SplunkdStandin, proxy: PProxy, tmp_path: Path, kind: str
):
    seed_account(splunkd, sim, "acme")
    use_proxy(splunkd, proxy.port, kind)
    params = {"account": "acme", "start_date": FAR_BACK}
    result = run_input(splunkd, tmp_path, "defender_alerts", "via_proxy", params, python, addon=addon)
    assert result.returncode == 0, result.stderr[-2000:]
    expected = Counter(latest_visible(sim.tenant.alert_versions(), sim.tenant.anchor_ticks).items())
    assert written(result.events) == expected
    # Every connection to the simulator was relayed by the proxy, with the chosen protocol.
    relayed = proxy.connections
    assert relayed and all(c == (kind, sim_address(sim)) for c in relayed), proxy.lines[-10:]
    summary = [line for line in log_lines(tmp_path) if "run_summary" in line]
    assert summary and "status=ok" in summary[-1]


@pytest.mark.integration
def test_a_wrong_proxy_password_fails_the_run_with_the_407_advice(
    addon, python, sim: GraphSimulator, splunkd: SplunkdStandin, proxy: PProxy, tmp_path: Path
):
    seed_account(splunkd, sim, "acme")
    use_proxy(splunkd, proxy.port, "http", password="not-the-proxy-password")
    result = run_input(splunkd, tmp_path, "defender_alerts", "bad_proxy", {"account": "acme"}, python, addon=addon)
    assert result.events == [] and sim.requests == []
    failures = [line for line in log_lines(tmp_path) if "run_failed" in line]
    assert len(failures) == 1, failures
    # The README's 407 row, not "check the account's tenant, client id, credential and cloud".
    assert "requires authentication or refused its credentials (HTTP 407)" in failures[0], failures
    assert "Configuration > Proxy tab" in failures[0] and "tenant" not in failures[0]


@pytest.mark.integration
def test_the_account_check_works_through_the_proxy(
    addon, python, sim: GraphSimulator, splunkd: SplunkdStandin, proxy: PProxy, tmp_path: Path
):
    use_proxy(splunkd, proxy.port, "http")
    results, output = run_handler(
        addon, python, splunkd, tmp_path, [{"action": "create", "name": "acme", "payload": account_payload(sim)}]
    )
    assert results == [{"ok": "created"}], output[-2000:]
    assert sim.requests and proxy.connections and all(c == ("http", sim_address(sim)) for c in proxy.connections)
    # A wrong proxy password: the README's "proxy 407" row, naming the proxy and the Proxy tab.
    use_proxy(splunkd, proxy.port, "http", password="not-the-proxy-password")
    results, output = run_handler(
        addon, python, splunkd, tmp_path, [{"action": "create", "name": "acme2", "payload": account_payload(sim)}]
    )
    (refused,) = results
    assert refused["status"] == 400, refused
    assert (
        f"The proxy 127.0.0.1:{proxy.port} requires authentication or refused its credentials (HTTP 407)"
        in (refused["message"])
    )
    assert "Proxy tab" in refused["message"] and PASSWORD not in output


@pytest.mark.integration
def test_a_wrong_socks5_password_is_named_as_such_by_the_account_check(
    addon, python, sim: GraphSimulator, splunkd: SplunkdStandin, proxy: PProxy, tmp_path: Path
):
    # pproxy closes the connection on bad SOCKS5 credentials (no RFC 1929 status)...
    use_proxy(splunkd, proxy.port, "socks5", password="not-the-proxy-password")
    cases = [{"action": "create", "name": "acme", "payload": account_payload(sim)}]
    (closed,), _ = run_handler(addon, python, splunkd, tmp_path, cases)
    assert closed["status"] == 400, closed
    assert f"The proxy 127.0.0.1:{proxy.port} closed the connection during the SOCKS5 handshake" in closed["message"]
    assert "username and password" in closed["message"], closed
    # ... a server that follows RFC 1929 answers with a failure status.
    server = serve_refusing_socks5()
    port = next(server)
    try:
        use_proxy(splunkd, port, "socks5", password="not-the-proxy-password")
        (refused,), _ = run_handler(addon, python, splunkd, tmp_path, cases)
    finally:
        server.close()
    expected = f"The proxy 127.0.0.1:{port} requires authentication or refused its credentials (SOCKS5 authentication"
    assert refused["status"] == 400 and expected in refused["message"], refused
    assert sim.requests == []


MODEL_PROBE = r"""
import json, sys
import import_declare_test
from splunktaucclib.rest_handler.error import RestError
import ta_defender_lineage_rh_settings as settings

model = settings.endpoint.models["proxy"]
known = sorted(f.name for f in model.fields)
results = []
for case in json.loads(sys.stdin.read()):
    try:
        for rest_field in model.fields:
            rest_field.validate(case)
        results.append("ok")
    except RestError as exc:
        results.append(str(exc))
print(json.dumps({"fields": known, "results": results}))
"""


@pytest.mark.integration
def test_the_generated_proxy_rest_model_takes_real_proxies_and_checks_the_port(addon, python, tmp_path: Path):
    """What splunkd's settings endpoint (UCC's generated handler) accepts on save, server side."""
    installed = tmp_path / "etc" / "apps" / addon.name  # splunktaucclib finds the app name in the path
    shutil.copytree(addon, installed)
    (installed / "bin" / "zz_model_probe.py").write_text(MODEL_PROBE)
    good = {"proxy_enabled": "1", "proxy_type": "http", "proxy_port": "3128", "proxy_url": "proxy.corp.example.com"}
    cases = [
        good,
        {**good, "proxy_url": "10.1.2.3"},
        {**good, "proxy_url": "proxy-1"},
        {**good, "proxy_url": "[2001:db8::1]"},
        {**good, "proxy_type": "socks5"},
        {**good, "proxy_type": "socks4"},
        {**good, "proxy_url": "user:pw@proxy.corp.example.com"},
        {**good, "proxy_url": "169.254.169.254"},
        {**good, "proxy_port": "0"},
        {**good, "proxy_port": "65536"},
        {**good, "proxy_port": "3128x"},
    ]
    run = subprocess.run(
        [python, "zz_model_probe.py"],
        cwd=installed / "bin",
        env={
            "PATH": "/usr/bin:/bin",
            "PYTHONPATH": str(STUB),
            "SPLUNK_HOME": str(tmp_path),
            "PYTHONDONTWRITEBYTECODE": "1",
        },
        input=json.dumps(cases),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    answer = json.loads(run.stdout.strip().splitlines()[-1])
    assert "proxy_type" in answer["fields"]
    verdicts = answer["results"]
    assert verdicts[:5] == ["ok"] * 5, verdicts
    assert all(v != "ok" for v in verdicts[5:]), verdicts
    # Who may save accounts and proxy settings is explicit (SECURITY.md), not left to splunkd's default.
    restmap = (addon / "default" / "restmap.conf").read_text()
    stanza = restmap.split("[admin:ta_defender_lineage_configuration]", 1)[1].split("\n\n", 1)[0]
    for method in ("post", "put", "delete"):
        assert f"capability.{method} = admin_all_objects" in stanza


@pytest.mark.integration
def test_a_bad_proxy_port_fails_the_run_naming_the_field_without_the_password(
    addon, python, sim: GraphSimulator, splunkd: SplunkdStandin, tmp_path: Path
):
    """The old input built http://user:<password>@host:31x28 and logged the traceback that held it;
    the splunkd fixture's scan fails the test if the stored proxy password is in any log or output."""
    seed_account(splunkd, sim, "acme")
    splunkd.set_ucc_settings(
        "proxy",
        {
            "proxy_enabled": "1",
            "proxy_url": "proxy.corp.example.com",
            "proxy_port": "31x28",
            "proxy_username": USER,
            "proxy_password": PASSWORD,
        },
        encrypted=["proxy_password"],
    )
    result = run_input(splunkd, tmp_path, "defender_alerts", "bad_port", {"account": "acme"}, python, addon=addon)
    assert result.events == [] and sim.requests == []
    failures = [line for line in log_lines(tmp_path) if "run_failed" in line]
    assert len(failures) == 1 and "proxy_port must be a whole number from 1 to 65535" in failures[0], failures
    assert not [line for line in log_lines(tmp_path) if "Traceback" in line]
