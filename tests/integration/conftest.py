"""Fixtures for running the BUILT add-on: interpreters, stand-ins, and the secrets check."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import warnings
from pathlib import Path
from typing import Any, Iterator, List

import pytest

from tests.harness.graph_sim import GraphSimulator, SyntheticTenant
from tests.harness.pipeline import ADDON, OUTPUTS, ROOT, install_app
from tests.harness.splunkd_standin import SplunkdStandin
from tests.harness.splunkweb_standin import SplunkWebStandin


def _find(version: str) -> str:
    env = os.environ.get("PY" + version.replace(".", ""))
    if env:
        return env
    out = subprocess.run([str(ROOT / "tools" / "find_python.sh"), version], capture_output=True, text=True, check=False)
    return out.stdout.strip()


INTERPRETERS = {"py39": _find("3.9"), "py313": _find("3.13")}
for _name, _path in INTERPRETERS.items():
    if not _path:
        message = f"Python {_name} NOT FOUND: its runtime tests are SKIPPED"
        warnings.warn(message, stacklevel=1)
        print(f"\n*** WARNING: {message} ***", file=sys.stderr)


@pytest.fixture(scope="session")
def addon() -> Path:
    if not (ADDON / ".built").exists():
        pytest.fail("the add-on is not built: run `make build` (make test does it)")
    return ADDON


@pytest.fixture(params=sorted(INTERPRETERS), scope="session")
def python(request: pytest.FixtureRequest) -> str:
    path = INTERPRETERS[request.param]
    if not path:
        pytest.skip(f"*** Python {request.param} NOT FOUND: runtime test skipped for this interpreter ***")
    return path


@pytest.fixture
def sim() -> Iterator[GraphSimulator]:
    with GraphSimulator(SyntheticTenant.generate(seed=7), max_lifetime=600.0) as server:
        yield server


@pytest.fixture
def splunkd(addon: Path, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[SplunkdStandin]:
    """The splunkd stand-in; afterwards, proves the add-on called only endpoints it knows and that no
    secret, token or session key reached a log, a checkpoint, an event or the process output."""
    OUTPUTS.clear()
    with SplunkdStandin(tmp_path / "splunkd", max_lifetime=600.0) as server:
        install_app(server, addon)
        yield server
        assert server.unknown_calls == [], (
            f"the add-on called endpoints the stand-in does not know: {server.unknown_calls}"
        )
        secrets = [server.session_key]
        if "sim" in request.fixturenames:
            graph = request.getfixturevalue("sim")
            secrets += [graph.client_secret, *graph.issued_tokens]
        stored = "".join(str(c.get("clear_password", "")) for c in server.credentials())  # chunked JSON, in order
        secrets += re.findall(r'"(?:client_secret|private_key|certificate|proxy_password)":\s*"([^"]+)"', stored)
        places = [p for p in tmp_path.iterdir() if p.name != "splunkd"]  # the stand-in's own store holds them
        leaks = scan_for_secrets(places, list(OUTPUTS), secrets)
        assert leaks == [], f"secrets leaked: {leaks}"
        assert any(len(s) >= 6 for s in secrets)


def scan_for_secrets(places: List[Path], texts: List[str], secrets: List[str]) -> List[str]:
    """Where any secret appears: file paths or 'output #n'. Empty when clean."""
    found = []
    secrets = [s for s in secrets if s and len(s) >= 6]
    for place in places:
        for path in [place] if place.is_file() else sorted(p for p in place.rglob("*") if p.is_file()):
            data = path.read_text(errors="replace")
            found += [f"{path}: {s[:4]}..." for s in secrets if s in data]
    for n, text in enumerate(texts):
        found += [f"output #{n}: {s[:4]}..." for s in secrets if s in text]
    return found


# ---- the configuration pages in a real browser (tests marked `ui`) ------------------------------

CHROMIUM = os.environ.get("CHROMIUM") or shutil.which("chromium") or ""
UI_PYTHON = INTERPRETERS["py39"] or INTERPRETERS["py313"]
if not CHROMIUM:
    _message = "Chromium NOT FOUND (make test installs Debian's chromium as root): the UI tests are SKIPPED"
    warnings.warn(_message, stacklevel=1)
    print(f"\n*** WARNING: {_message} ***", file=sys.stderr)


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    if not CHROMIUM:
        pytest.skip("*** Chromium NOT FOUND: UI test skipped (apt-get install chromium) ***")
    if not UI_PYTHON:
        pytest.skip("*** neither Python 3.9 nor 3.13 found: the REST handlers cannot run; UI test skipped ***")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield chromium
        chromium.close()


@pytest.fixture
def web(addon: Path, splunkd: SplunkdStandin, tmp_path: Path, browser: Any) -> Iterator[SplunkWebStandin]:
    """The Splunk Web stand-in in front of ``splunkd``, handlers on Python 3.9 (else 3.13).
    Afterwards: no unknown endpoint, no CSRF failure, no handler crash."""
    with SplunkWebStandin(addon, splunkd, UI_PYTHON, tmp_path / "splunk_home", max_lifetime=240.0) as server:
        yield server
        assert server.unknown_calls == [], f"the UI called endpoints Splunk Web does not serve: {server.unknown_calls}"
        assert server.csrf_failures == [], f"requests failed Splunk Web's session/CSRF check: {server.csrf_failures}"
        assert server.errors == [], "\n".join(server.errors)
