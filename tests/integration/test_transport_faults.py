"""Hostile or broken servers, through the BUILT inputs: trickled bodies, gzip bombs, a nextLink
pointing at itself, odd token answers, an HTML 200, hostile error bodies.

Each test asserts the exact multiset of (id, lastUpdateDateTime) written across its runs, as
``test_faults.py`` does (its helpers and fixtures are reused). The trickle and the gzip bomb run
on Python 3.9 and 3.13 (urllib3 1.26 reads the body on both); the rest on 3.13 only.
"""

from __future__ import annotations

import time
from collections import Counter
from typing import Iterator

import pytest

from defender_lineage_core.timestamps import parse_instant
from tests.harness.graph_sim import GraphSimulator, SyntheticTenant
from tests.harness.graph_sim.faults import FAKE_JWT, hostile_entra_error, hostile_graph_error
from tests.harness.pipeline import log_lines, seed_account
from tests.integration.conftest import INTERPRETERS
from tests.integration.test_account_handler import account_payload, run_handler
from tests.integration.test_faults import (
    _abort_then_complete,
    all_alerts,
    cursor_of,
    failures,
    run,
    summaries,
    written,
)
from tools.bench import PeakRss

GRACE = 5.0  # graph_client.DEADLINE_GRACE_SECONDS


@pytest.fixture
def sim() -> Iterator[GraphSimulator]:
    """test_faults.py's tenant: 3000 alerts, one version each (three pages of 1000)."""
    with GraphSimulator(SyntheticTenant.bulk(3000, seed=11, single_version=True), max_lifetime=600.0) as server:
        yield server


@pytest.fixture
def py313() -> str:
    if not INTERPRETERS["py313"]:
        pytest.skip("*** Python 3.13 NOT FOUND: runtime test skipped ***")
    return INTERPRETERS["py313"]


def test_a_trickled_body_is_cut_and_retried(addon, python, sim, splunkd, tmp_path):
    seed_account(splunkd, sim, "acme")
    # Page 2 (about 1 MB) at 2 kB/s: every read is quick, the whole would take eight minutes.
    sim.faults.add(kind="trickle", trickle_rate=2000, resource="alerts_v2", after=1, times=1)
    result = run(splunkd, tmp_path, python, env={"TA_DEFENDER_LINEAGE_HTTP_TIMEOUT": "1"})  # 5 s an exchange
    assert result.returncode == 0, result.stderr[-2000:]
    assert written(result) == all_alerts(sim)
    assert any("graph_retry" in line and "reason=ExchangeTimeout" in line for line in log_lines(tmp_path))
    summary = summaries(tmp_path)[-1]
    assert summary["status"] == "ok" and summary["retries"] == "1"


def test_a_run_facing_a_trickled_body_ends_within_its_interval_plus_the_grace(addon, py313, sim, splunkd, tmp_path):
    seed_account(splunkd, sim, "acme")
    sim.faults.add(kind="trickle", trickle_rate=100, resource="alerts_v2", after=1, times=None)
    started = time.monotonic()
    first = run(splunkd, tmp_path, py313, params={"interval": "60"})
    elapsed = time.monotonic() - started
    # Start-up and the first page take a few seconds of the interval; writing adds little.
    assert elapsed < 60 + GRACE + 10, elapsed
    assert first.returncode == 0 and not first.killed
    assert written(first) == Counter(sim.tenant.alert_version_keys()[:1000])
    summary = summaries(tmp_path)[-1]
    assert summary["status"] == "ok" and summary["stopped_early"] == "True"
    assert any("run_deadline" in line and "sending very slowly" in line for line in log_lines(tmp_path))
    sim.faults.clear()
    second = run(splunkd, tmp_path, py313, params={"interval": "60"})
    assert written(first, second) == all_alerts(sim)


def test_a_gzip_bomb_is_refused_at_the_cap_in_bounded_memory(addon, python, sim, splunkd, tmp_path):
    seed_account(splunkd, sim, "acme")
    sim.faults.add(kind="gzip_bomb", resource="alerts_v2", after=1, times=None)  # 1 MB inflating to 1 GiB

    def check(line: str) -> None:
        assert "ResponseTooLarge" in line and "larger than 64 MiB once decompressed" in line

    with PeakRss("defender_alerts.py") as probe:
        _abort_then_complete(splunkd, sim, tmp_path, python, check)
    # Before: 2.1 GB. Now about 130 MB: the cap (64 MiB), the interpreter and one page.
    assert 0 < probe.peak_kb < 256 * 1024, probe.peak_kb


def test_a_next_link_pointing_at_itself_stops_paging_with_an_error(addon, py313, sim, splunkd, tmp_path):
    seed_account(splunkd, sim, "acme")
    # Every page's link points at the page itself. The collector restarts its filter while it can;
    # at the newest instant only the link is left, and it is followed once.
    sim.faults.add(kind="self_link", resource="alerts_v2", times=None)
    first = run(splunkd, tmp_path, py313)
    assert written(first) == all_alerts(sim)
    lines = failures(tmp_path)
    assert len(lines) == 1 and "PagingLoop" in lines[0] and "already followed" in lines[0]
    assert cursor_of(splunkd) == parse_instant(sim.tenant.alert_version_keys()[-1][1])
    sim.faults.clear()
    again = run(splunkd, tmp_path, py313)
    assert again.events == []


@pytest.mark.parametrize("expires_in", [None, '"soon"', "-60", "NaN"])
def test_an_odd_expires_in_gives_one_token_and_one_warning(addon, py313, sim, splunkd, tmp_path, expires_in):
    seed_account(splunkd, sim, "acme")
    sim.faults.add(kind="token_expires", resource="token", expires_in=expires_in, times=None)
    result = run(splunkd, tmp_path, py313)
    assert written(result) == all_alerts(sim)
    summary = summaries(tmp_path)[-1]
    assert summary["status"] == "ok" and summary["token_requests"] == "1" and int(summary["pages"]) > 1
    assert len([line for line in log_lines(tmp_path) if "token_lifetime" in line]) == 1
    assert failures(tmp_path) == []


def test_an_html_200_token_answer_is_one_clear_message(addon, py313, sim, splunkd, tmp_path):
    seed_account(splunkd, sim, "acme")
    sim.faults.add(kind="html", resource="token", times=None)
    result = run(splunkd, tmp_path, py313)
    assert result.events == []
    lines = failures(tmp_path)
    assert len(lines) == 1 and "HTTP 200 but not Entra ID's JSON token answer" in lines[0]
    assert "HTTP 200 HTTP 200" not in lines[0]


@pytest.mark.parametrize("resource", ["alerts_v2", "token"])
def test_a_hostile_error_body_forges_no_log_line_and_leaks_no_token(addon, py313, sim, splunkd, tmp_path, resource):
    seed_account(splunkd, sim, "acme")
    if resource == "token":
        sim.faults.add(status=401, resource="token", body=hostile_entra_error(), times=None)
    else:
        sim.faults.add(status=400, resource="alerts_v2", body=hostile_graph_error(), after=1, times=None)
    result = run(splunkd, tmp_path, py313)
    expected = Counter() if resource == "token" else Counter(sim.tenant.alert_version_keys()[:1000])
    assert written(result) == expected
    lines = log_lines(tmp_path)
    # One genuine summary, and nowhere a line, or a key=value field, that says the run went well.
    (summary,) = [line for line in lines if "run_summary input=" in line]
    assert "status=failed" in summary
    assert not any("status=ok" in line for line in lines)
    assert not any(FAKE_JWT in line or FAKE_JWT[:20] in line for line in lines)
    (failure,) = failures(tmp_path)
    assert "\\n" in failure and "x3d" in failure  # the payload is there, escaped
    if resource == "token":
        assert "AADSTS7000215" in failure and "trace_id=0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0" in failure
        assert "correlation_id" not in failure  # not shaped like an id: dropped
    else:
        assert "request-id=6b8e3f1a-0d9c-4e7b-9a52-1c3d4e5f6a7b" in failure


def test_the_account_rest_handler_shows_and_logs_no_hostile_body(addon, py313, splunkd, tmp_path):
    with GraphSimulator(SyntheticTenant.generate(seed=7), max_lifetime=120.0) as graph:
        # An unknown AADSTS number and an unexpected 409: refusals worded from the error's own fields.
        graph.faults.add(status=401, resource="token", body=hostile_entra_error(12345), times=1)
        graph.faults.add(status=409, resource="alerts_v2", body=hostile_graph_error(), times=1)
        cases = [{"action": "create", "name": f"a{n}", "payload": account_payload(graph)} for n in range(2)]
        results, output = run_handler(addon, py313, splunkd, tmp_path, cases)
    assert [r.get("status") for r in results] == [400, 400]
    assert "AADSTS12345" in results[0]["message"] and "HTTP 409" in results[1]["message"]
    logs = "".join(p.read_text() for p in (tmp_path / "var" / "log" / "splunk").glob("*.log"))
    for text in [r["message"] for r in results] + [output, logs]:
        assert FAKE_JWT not in text and FAKE_JWT[:20] not in text and "status=ok" not in text
    for message in (r["message"] for r in results):
        assert "\n" not in message and "\\n" in message
    assert not any(line.startswith("2026-01-01") for line in logs.splitlines())  # no forged log line
