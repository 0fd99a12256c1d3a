"""Every Graph fault mode, through the BUILT inputs, the splunkd stand-in and the simulator.

Each test asserts the exact multiset of (id, lastUpdateDateTime) written across its runs. The
429/abort/malformed tests run on Python 3.9 and 3.13 (the `python` fixture); the rest on 3.13 only
(`py313`), to keep the suite short: the code paths are the same on both interpreters.
"""

from __future__ import annotations

import json
import re
import time
from collections import Counter
from pathlib import Path
from typing import Any, Dict, Iterator, List, Mapping, Optional, Tuple

import pytest

from defender_lineage_core.timestamps import TICKS_PER_SECOND, format_instant, parse_instant
from tests.harness.graph_sim import FaultContext, GraphSimulator, SyntheticTenant
from tests.harness.modinput_runner import ModinputResult
from tests.harness.pipeline import log_lines, run_input, seed_account
from tests.harness.splunkd_standin import SplunkdStandin
from tests.integration.conftest import INTERPRETERS

FAR_BACK = "2020-01-01T00:00:00Z"
PARAMS = {"account": "acme", "start_date": FAR_BACK, "index": "defender"}
CHECKPOINTS = "ta_defender_lineage_checkpoints"


@pytest.fixture
def sim(request: pytest.FixtureRequest) -> Iterator[GraphSimulator]:
    """A bulk tenant with one version per alert (several pages of alerts and of incidents)."""
    options: Dict[str, Any] = {"single_version": True, **getattr(request, "param", {})}
    n = options.pop("n", 3000)
    with GraphSimulator(SyntheticTenant.bulk(n, seed=11, **options), max_lifetime=600.0) as server:
        yield server


@pytest.fixture
def py313() -> str:
    if not INTERPRETERS["py313"]:
        pytest.skip("*** Python 3.13 NOT FOUND: runtime test skipped ***")
    return INTERPRETERS["py313"]


def run(
    splunkd: SplunkdStandin,
    workdir: Path,
    python: str,
    input_type: str = "defender_alerts",
    name: str = "f",
    params: Optional[Mapping[str, str]] = None,
    env: Optional[Mapping[str, str]] = None,
    kill_after: Optional[float] = None,
) -> ModinputResult:
    result = run_input(
        splunkd,
        workdir,
        input_type,
        name,
        {**PARAMS, **(params or {})},
        python,
        timeout=120.0,
        kill_after=kill_after,
        env=dict(env) if env else None,
    )
    assert result.stream_error is None or result.killed, result.stream_error
    return result


def written(*results: ModinputResult) -> Counter:
    out: Counter = Counter()
    for result in results:
        for event in result.events:
            item = json.loads(event.data)
            out[(item["id"], item["lastUpdateDateTime"])] += 1
    return out


def summaries(workdir: Path) -> List[Dict[str, str]]:
    return [
        dict(re.findall(r"(\w+)=(\S+)", line.split("run_summary", 1)[1]))
        for line in log_lines(workdir)
        if "run_summary" in line
    ]


def failures(workdir: Path) -> List[str]:
    return [line for line in log_lines(workdir) if "run_failed" in line]


def all_alerts(sim: GraphSimulator) -> Counter:
    return Counter(sim.tenant.alert_version_keys())


def listing_requests(sim: GraphSimulator, resource: str = "alerts_v2") -> list:
    return [r for r in sim.requests if r.resource == resource]


def page_of(sim: GraphSimulator, number: int) -> List[Tuple[str, str]]:
    """(id, lud) on the n-th page (1-based) of a full ascending listing at the anchor."""
    keys = sim.tenant.alert_version_keys()
    return keys[(number - 1) * 1000 : number * 1000]


def cursor_of(splunkd: SplunkdStandin) -> Optional[int]:
    records = splunkd.kv_records(CHECKPOINTS)
    assert len(records) == 1
    state = records[0].get("state", records[0])
    if isinstance(state, str):
        state = json.loads(state)
    return parse_instant(state.get("cursor"))


# ---- throttling and transient faults: one run completes despite them --------------------------


def test_429_storm_with_retry_after(addon, python, sim, splunkd, tmp_path):
    seed_account(splunkd, sim, "acme")
    sim.faults.add(status=429, retry_after="0.2", resource="alerts_v2", times=3)
    sim.faults.add(status=429, retry_after="0.2", resource="alerts_v2", after=1, times=2)  # mid-listing
    started = time.monotonic()
    result = run(splunkd, tmp_path, python)
    assert result.returncode == 0, result.stderr[-2000:]
    assert written(result) == all_alerts(sim)
    summary = summaries(tmp_path)[-1]
    assert summary["status"] == "ok" and summary["throttled"] == "5" and summary["retries"] == "5"
    assert time.monotonic() - started >= 1.0  # five waits of 0.2 s, honoured
    statuses = [r.status for r in listing_requests(sim)]
    assert statuses.count(429) == 5 and statuses[-1] == 200


def test_5xx_burst(addon, py313, sim, splunkd, tmp_path):
    seed_account(splunkd, sim, "acme")
    sim.faults.add(status=503, retry_after="0.2", resource="alerts_v2", times=1)
    sim.faults.add(status=500, resource="alerts_v2", after=1, times=1)  # no Retry-After: back-off 1-2 s
    sim.faults.add(status=504, retry_after="0.1", resource="alerts_v2", after=2, times=1)
    result = run(splunkd, tmp_path, py313)
    assert written(result) == all_alerts(sim)
    summary = summaries(tmp_path)[-1]
    assert summary["status"] == "ok" and summary["retries"] == "3"
    assert [r.status for r in listing_requests(sim)][:6] == [503, 200, 500, 200, 504, 200]


def test_connection_resets_and_cut_responses(addon, py313, sim, splunkd, tmp_path):
    seed_account(splunkd, sim, "acme")
    sim.faults.add(kind="reset", resource="alerts_v2", after=1, times=1)
    sim.faults.add(kind="truncate", resource="alerts_v2", after=2, times=1)
    sim.faults.add(kind="reset", resource="token", times=1)
    result = run(splunkd, tmp_path, py313)
    assert written(result) == all_alerts(sim)
    assert summaries(tmp_path)[-1]["retries"] == "3"
    assert len(sim.faults.log) == 3


def test_slow_response_past_the_client_timeout(addon, py313, sim, splunkd, tmp_path):
    seed_account(splunkd, sim, "acme")
    sim.faults.add(kind="delay", delay=2.5, resource="alerts_v2", after=1, times=1)
    result = run(splunkd, tmp_path, py313, env={"TA_DEFENDER_LINEAGE_HTTP_TIMEOUT": "1"})
    assert written(result) == all_alerts(sim)
    assert any("graph_retry" in line and "ReadTimeout" in line for line in log_lines(tmp_path))
    assert summaries(tmp_path)[-1]["retries"] == "1"


def test_token_expiry_mid_run_gets_one_refresh(addon, py313, sim, splunkd, tmp_path):
    seed_account(splunkd, sim, "acme")
    sim.faults.add(kind="expire_tokens", resource="alerts_v2", after=1, times=1)
    result = run(splunkd, tmp_path, py313)
    assert written(result) == all_alerts(sim)
    summary = summaries(tmp_path)[-1]
    assert summary["status"] == "ok" and summary["token_requests"] == "2"
    assert [r.status for r in listing_requests(sim)].count(401) == 1


def test_expand_500_falls_back_to_plain_listing_and_says_so(addon, py313, sim, splunkd, tmp_path):
    seed_account(splunkd, sim, "acme")
    # Large tenants: the expanded query fails persistently, here from its third page on.
    sim.faults.add(status=500, resource="incidents", when_query={"$expand": "alerts"}, after=2, times=None)
    result = run(splunkd, tmp_path, py313, "defender_incidents", params={"expand_alerts": "1"})
    assert result.returncode == 0
    assert written(result) == Counter(sim.tenant.incident_version_keys())
    incidents = [json.loads(e.data) for e in result.events]
    assert "alerts" in incidents[0] and "alerts" not in incidents[-1]
    assert any("expand_fallback" in line and "status=500" in line for line in log_lines(tmp_path))
    summary = summaries(tmp_path)[-1]
    assert summary["expand_fallback"] == "True" and summary["retries"] == "0"  # no retry storm on the 500
    assert failures(tmp_path) == []


# ---- paging under change ------------------------------------------------------------------------


@pytest.mark.parametrize("sim", [{"n": 5000, "same_timestamp_groups": True}], indirect=True)
def test_alerts_sharing_one_instant_across_page_boundaries(addon, py313, sim, splunkd, tmp_path):
    groups = sim.tenant.scenarios["same_timestamp_groups"]
    assert any(size > 1000 for _, size in groups), "a tie wider than a page is the hard case"
    keys = sim.tenant.alert_version_keys()
    boundaries = {keys[i][1] for i in range(999, len(keys) - 1, 1000) if keys[i][1] == keys[i + 1][1]}
    assert boundaries, "some page boundary must fall inside a tie"
    seed_account(splunkd, sim, "acme")
    first = run(splunkd, tmp_path, py313)
    assert written(first) == all_alerts(sim)
    again = run(splunkd, tmp_path, py313)  # the overlap re-reads the newest instants: all skipped
    assert again.events == []


def test_alerts_updated_while_the_listing_is_paged(addon, py313, sim, splunkd, tmp_path):
    seed_account(splunkd, sim, "acme")
    first_page, third_page = page_of(sim, 1), page_of(sim, 3)
    read_then_updated = [first_page[10], first_page[500]]  # already read when they change
    updated_before_read = [third_page[5]]  # changes before its page is read: its old version is never seen
    anchor = sim.tenant.anchor_ticks
    newer: List[Tuple[str, str]] = []

    def update(s: GraphSimulator, ctx: FaultContext) -> None:
        for n, (key, _) in enumerate(read_then_updated + updated_before_read):
            latest = s.tenant.alerts.latest(key, anchor)
            assert latest is not None
            item = latest.as_dict()
            item["lastUpdateDateTime"] = format_instant(anchor - (10 - n) * TICKS_PER_SECOND)
            item["status"] = "inProgress"
            s.tenant.add_version("alerts_v2", item)
            newer.append((key, item["lastUpdateDateTime"]))

    sim.faults.add(kind="call", action=update, resource="alerts_v2", after=1, times=1)  # as page 2 is asked for
    result = run(splunkd, tmp_path, py313)
    expected = Counter(sim.tenant.alert_version_keys()) - Counter(updated_before_read)
    assert len(newer) == 3 and all(k in expected for k in newer)
    assert written(result) == expected  # nothing slid past the reader; the superseded unread version is gone
    again = run(splunkd, tmp_path, py313)
    assert again.events == []
    assert all("$skip" not in json.dumps(r.query) for r in listing_requests(sim))


# ---- faults that end a run: the next run completes the set, without duplicates ----------------


def _abort_then_complete(splunkd, sim, tmp_path, python, check_failure) -> None:
    first = run(splunkd, tmp_path, python)
    assert written(first) == Counter(page_of(sim, 1)), "the first page is written before the fault"
    assert cursor_of(splunkd) == parse_instant(page_of(sim, 1)[-1][1])
    lines = failures(tmp_path)
    assert len(lines) == 1, lines
    check_failure(lines[0])
    sim.faults.clear()
    second = run(splunkd, tmp_path, python)
    assert written(first, second) == all_alerts(sim)  # every version, each exactly once


def test_a_malformed_page_stops_the_run_with_one_error_and_keeps_the_cursor(addon, python, sim, splunkd, tmp_path):
    seed_account(splunkd, sim, "acme")
    sim.faults.add(kind="malformed_json", resource="alerts_v2", after=1, times=None)

    def check(line: str) -> None:
        assert "MalformedResponse" in line and "alerts_v2" in line and "HTTP 200" in line

    _abort_then_complete(splunkd, sim, tmp_path, python, check)


def test_persistent_503_gives_up_then_the_next_run_continues(addon, python, sim, splunkd, tmp_path):
    seed_account(splunkd, sim, "acme")
    sim.faults.add(status=503, retry_after="0.05", resource="alerts_v2", after=1, times=None)

    def check(line: str) -> None:
        assert "TransientError" in line and "alerts_v2" in line and "HTTP 503" in line and "6 attempts" in line

    _abort_then_complete(splunkd, sim, tmp_path, python, check)


@pytest.mark.parametrize("sim", [{"n": 5000, "same_timestamp_groups": True}], indirect=True)
def test_a_next_link_to_another_host_is_refused(addon, py313, sim, splunkd, tmp_path):
    seed_account(splunkd, sim, "acme")
    # Graph's link is followed only across a tie wider than a page (1200 alerts share one instant
    # here); every link the simulator sends points elsewhere, so that is where the reader stops.
    sim.faults.add(kind="foreign_link", link_base="https://graph.evil.example", resource="alerts_v2", times=None)
    first = run(splunkd, tmp_path, py313)
    lines = failures(tmp_path)
    assert len(lines) == 1 and "refusing to follow" in lines[0] and "graph.evil.example" in lines[0]
    assert 0 < len(first.events) < len(sim.tenant.alert_version_keys())
    assert all(n == 1 for n in written(first).values())
    sim.faults.clear()
    second = run(splunkd, tmp_path, py313)
    assert written(first, second) == all_alerts(sim)


def test_a_retry_after_longer_than_the_interval_stops_cleanly(addon, py313, sim, splunkd, tmp_path):
    seed_account(splunkd, sim, "acme")
    sim.faults.add(status=429, retry_after="120", resource="alerts_v2", after=1, times=1)
    started = time.monotonic()
    first = run(splunkd, tmp_path, py313, params={"interval": "60"})
    assert time.monotonic() - started < 30, "the run must not wait for a Retry-After past its interval"
    assert written(first) == Counter(page_of(sim, 1))
    summary = summaries(tmp_path)[-1]
    assert summary["status"] == "ok" and summary["stopped_early"] == "True"
    assert failures(tmp_path) == []
    second = run(splunkd, tmp_path, py313, params={"interval": "60"})
    assert written(first, second) == all_alerts(sim)


# ---- the request budget -----------------------------------------------------------------------


@pytest.mark.parametrize("sim", [{"n": 3000}], indirect=True)
def test_inputs_sharing_an_account_divide_the_budget(addon, py313, sim, splunkd, tmp_path):
    seed_account(splunkd, sim, "acme")
    for stanza in ("defender_alerts://f", "defender_incidents://g", "defender_hunting://h"):
        splunkd.set_conf("inputs", stanza, {"account": "acme"})
    splunkd.set_conf("inputs", "defender_alerts://off", {"account": "acme", "disabled": "1"})
    # 90 a minute for the app; three inputs share it: 30 each, i.e. a burst of 3, then one every 2.5 s.
    result = run(splunkd, tmp_path, py313, env={"TA_DEFENDER_LINEAGE_REQUESTS_PER_MINUTE": "90"})
    assert written(result) == all_alerts(sim)
    assert any("sharing_inputs=3 requests_per_minute=30.0" in line for line in log_lines(tmp_path))
    times = [r.time for r in listing_requests(sim)]
    assert len(times) >= 4
    assert times[2] - times[0] < 1.5  # the burst
    for k in range(3, len(times)):  # then the refill rate
        assert times[k] - times[0] >= 2.5 * (k - 2) - 0.2
