"""The BUILT defender_hunting input, through the splunkd stand-in and the Graph simulator: window
splitting on the row and size caps, the execution timeout, the CPU-quota wait, overlap
de-duplication across runs, SIGKILL mid-run, a bad query, and defenderlineage on the rows.

The simulator's caps are made small (500 rows, 100 KB) and the input is told the same through its
test knobs, so a split shows in a few seconds. The hunting budget (30 calls a minute) is turned off
except where it is the subject; everything else is the shipped code path. Python 3.13 only except
the bad-query test (both interpreters), to keep the suite short.
"""

from __future__ import annotations

import json
import random
import re
import time
from collections import Counter
from pathlib import Path
from typing import Dict, Iterator, List, Mapping, Optional

import pytest

from defender_lineage_core.timestamps import TICKS_PER_SECOND, format_instant, now_ticks
from tests.harness.graph_sim import GraphSimulator, SyntheticTenant
from tests.harness.graph_sim.hunting import HuntingSettings, HuntingTables
from tests.harness.modinput_runner import ModinputResult
from tests.harness.pipeline import events_to_records, log_lines, run_input, seed_account
from tests.harness.scp_driver import run_command
from tests.harness.splunkd_standin import SplunkdStandin
from tests.integration.conftest import INTERPRETERS

FAST = {"TA_DEFENDER_LINEAGE_HUNTING_PER_MINUTE": "0"}
CAPS = {**FAST, "TA_DEFENDER_LINEAGE_HUNTING_ROW_CAP": "500"}


@pytest.fixture
def py313() -> str:
    if not INTERPRETERS["py313"]:
        pytest.skip("*** Python 3.13 NOT FOUND: runtime test skipped ***")
    return INTERPRETERS["py313"]


@pytest.fixture
def sim() -> Iterator[GraphSimulator]:
    with GraphSimulator(SyntheticTenant.generate(seed=7), max_lifetime=600.0) as server:
        server.hunting.row_cap = 500
        yield server


def run(
    splunkd: SplunkdStandin,
    workdir: Path,
    python: str,
    name: str = "h",
    query: str = "DeviceProcessEvents | project Timestamp, DeviceName, ReportId",
    lookback: str = "PT6H",
    env: Optional[Mapping[str, str]] = None,
    kill_after: Optional[float] = None,
    interval: str = "300",
) -> ModinputResult:
    result = run_input(
        splunkd,
        workdir,
        "defender_hunting",
        name,
        {"account": "acme", "query": query, "lookback": lookback, "index": "hunting", "interval": interval},
        python,
        timeout=150.0,
        kill_after=kill_after,
        env=dict(env if env is not None else CAPS),
    )
    assert result.stream_error is None or result.killed, result.stream_error
    return result


def rows(*results: ModinputResult) -> List[Dict[str, object]]:
    return [json.loads(e.data) for r in results for e in r.events]


def summaries(workdir: Path) -> List[Dict[str, str]]:
    return [
        dict(re.findall(r"(\w+)=(\S+)", line.split("run_summary", 1)[1]))
        for line in log_lines(workdir)
        if "run_summary" in line and "defender_hunting" in line
    ]


def expected_report_ids(sim: GraphSimulator, table: str, timespan: str) -> Counter:
    """Every row of ``table`` in the first request's whole window, from an uncapped copy of the tables."""
    uncapped = HuntingTables(sim.tenant, HuntingSettings(density=dict(sim.hunting.density)))
    body = json.loads(uncapped.run({"Query": table, "Timespan": timespan}, sim.tenant.anchor_ticks, sim.base_url))
    return Counter(r["ReportId"] for r in body["results"])


def first_window(sim: GraphSimulator) -> str:
    return sim.hunting_requests()[0].query["Timespan"]


# ---- caps -------------------------------------------------------------------------------------------


def test_row_cap_splits_windows_no_row_lost_none_repeated(addon, py313, sim, splunkd, tmp_path):
    seed_account(splunkd, sim, "acme")
    result = run(splunkd, tmp_path, py313)
    assert result.returncode == 0, result.stderr[-2000:]
    written = Counter(r["ReportId"] for r in rows(result))
    expected = expected_report_ids(sim, "DeviceProcessEvents", first_window(sim))
    assert len(expected) > 3000 and written == expected
    summary = summaries(tmp_path)[-1]
    assert summary["status"] == "ok" and int(summary["splits"]) >= 7 and summary["truncated"] == "0"
    event = result.events[0]
    assert event.sourcetype == "ms:defender:graph:hunting" and event.index == "hunting"
    assert event.source == f"ms_graph://{sim.tenant_id}/security/runHuntingQuery/h"
    first = json.loads(event.data)
    assert first["QueryName"] == "h"
    assert float(event.time) == pytest.approx(_epoch(first["Timestamp"]))
    statuses = [r.status for r in sim.hunting_requests()]
    assert set(statuses) == {200} and len(statuses) == 2 * int(summary["splits"]) + 1


def _epoch(text: object) -> float:
    from defender_lineage_core.timestamps import parse_instant

    ticks = parse_instant(text)
    assert ticks is not None
    return ticks / TICKS_PER_SECOND


def test_size_cap_splits_windows_and_booleans_are_json(addon, py313, sim, splunkd, tmp_path):
    seed_account(splunkd, sim, "acme")
    sim.hunting.row_cap = 100_000
    sim.hunting.size_cap = 200_000
    sim.hunting.booleans = "numbers"  # before 25 Feb 2026
    env = {**FAST, "TA_DEFENDER_LINEAGE_HUNTING_SIZE_CAP": "200000"}
    result = run(splunkd, tmp_path, py313, query="DeviceProcessEvents", env=env)
    written = Counter(r["ReportId"] for r in rows(result))
    assert written == expected_report_ids(sim, "DeviceProcessEvents", first_window(sim))
    assert int(summaries(tmp_path)[-1]["splits"]) >= 4
    assert {type(r["IsProcessRemoteSession"]) for r in rows(result)} == {bool}


def test_execution_timeout_splits_windows(addon, py313, sim, splunkd, tmp_path):
    seed_account(splunkd, sim, "acme")
    sim.hunting.timeout_rows = 400  # a window holding more "runs" past Graph's 3 minutes: 504
    result = run(splunkd, tmp_path, py313, lookback="PT3H")
    written = Counter(r["ReportId"] for r in rows(result))
    assert written == expected_report_ids(sim, "DeviceProcessEvents", first_window(sim))
    summary = summaries(tmp_path)[-1]
    assert int(summary["timeouts"]) >= 2 and summary["retries"] == "0"  # split, never retried as it stood
    assert [r.status for r in sim.hunting_requests()].count(504) == int(summary["timeouts"])


# ---- the CPU quota ----------------------------------------------------------------------------------


def _quota_body(reset_in: float) -> Dict[str, object]:
    when = format_instant(now_ticks() + int(reset_in * TICKS_PER_SECOND))
    return {
        "error": {
            "code": "TooManyRequests",
            "message": f"The tenant exceeded its advanced hunting CPU quota for the current cycle. The quota resets "
            f"at {when}.",
        }
    }


def test_cpu_quota_429_is_waited_out_without_losing_the_window(addon, py313, sim, splunkd, tmp_path):
    seed_account(splunkd, sim, "acme")
    sim.faults.add(status=429, resource="runHuntingQuery", after=1, times=1, body=_quota_body(4.0), retry_after="1")
    started = time.monotonic()
    result = run(splunkd, tmp_path, py313, lookback="PT2H")
    assert time.monotonic() - started >= 3.0
    written = Counter(r["ReportId"] for r in rows(result))
    assert written == expected_report_ids(sim, "DeviceProcessEvents", first_window(sim))
    summary = summaries(tmp_path)[-1]
    assert summary["quota_waits"] == "1" and summary["stopped_early"] == "False"
    requests = sim.hunting_requests()
    assert requests[1].status == 429 and requests[2].query["Timespan"] == requests[1].query["Timespan"]


def test_cpu_quota_past_the_interval_stops_cleanly_and_keeps_the_window(addon, py313, sim, splunkd, tmp_path):
    seed_account(splunkd, sim, "acme")
    sim.faults.add(status=429, resource="runHuntingQuery", times=1, body=_quota_body(600.0))
    started = time.monotonic()
    first = run(splunkd, tmp_path, py313, interval="60")
    assert time.monotonic() - started < 30 and first.events == []
    summary = summaries(tmp_path)[-1]
    assert summary["status"] == "ok" and summary["quota_deferred"] == "True" and summary["stopped_early"] == "True"
    state = json.loads(json.dumps(splunkd.kv_records("ta_defender_lineage_checkpoints")[0]))
    state = state.get("state", state)
    state = json.loads(state) if isinstance(state, str) else state
    assert state["end"] is None and state["quota_until"]  # the window is kept, the reset remembered
    # The next run (before the reset, deadline earlier than it) does not ask Graph at all.
    second = run(splunkd, tmp_path, py313, interval="60")
    assert second.events == [] and len(sim.hunting_requests()) == 1
    assert sum("hunting_quota" in line and "action=stop" in line for line in log_lines(tmp_path)) == 2


# ---- overlap, kill, bad query -----------------------------------------------------------------------


def test_overlap_is_read_again_but_never_written_twice(addon, py313, sim, splunkd, tmp_path):
    seed_account(splunkd, sim, "acme")
    anchor = sim.tenant.anchor_ticks
    sim.set_clock(anchor - 120 * TICKS_PER_SECOND)  # the last two minutes have not reached hunting yet
    first = run(splunkd, tmp_path, py313, lookback="PT1H")
    sim.set_clock(anchor)  # they arrive: inside the next run's overlap
    second = run(splunkd, tmp_path, py313, lookback="PT1H")
    written = Counter(r["ReportId"] for r in rows(first, second))
    expected = expected_report_ids(sim, "DeviceProcessEvents", first_window(sim))
    assert written == expected and max(written.values()) == 1
    late = summaries(tmp_path)[-1]
    assert int(late["skipped_duplicates"]) > 0 and int(late["rows"]) == len(second.events) > 0
    third = run(splunkd, tmp_path, py313, lookback="PT1H")
    assert third.events == [] and int(summaries(tmp_path)[-1]["skipped_duplicates"]) > 0


def test_sigkill_mid_run_loses_no_row(addon, py313, sim, splunkd, tmp_path):
    seed_account(splunkd, sim, "acme")
    sim.faults.add(kind="delay", delay=0.25, resource="runHuntingQuery", times=None)
    rng = random.Random(6)
    results = []
    kills = 0
    for _ in range(8):
        result = run(splunkd, tmp_path, py313, lookback="PT12H", kill_after=rng.uniform(1.0, 3.0))
        results.append(result)
        kills += int(result.killed)
        if not result.killed:
            break
    final = run(splunkd, tmp_path, py313, lookback="PT12H")
    results.append(final)
    assert kills >= 3 and final.returncode == 0
    written = Counter(r["ReportId"] for r in rows(*results))
    expected = expected_report_ids(sim, "DeviceProcessEvents", first_window(sim))
    assert set(written) == set(expected)
    duplicates = sum(n - 1 for n in written.values())
    print(
        f"\nhunting kill test: {kills} kills, events per run {[len(r.events) for r in results]}, {duplicates} repeated"
    )
    assert sum(bool(r.events) for r in results if r.killed) >= 2, "kills must land while a run writes"
    assert duplicates <= 500 * kills  # at most the window in flight (its rows < the 500-row cap) per kill


def test_bad_kql_is_answered_400_and_logged_once_with_the_input_name(addon, python, sim, splunkd, tmp_path):
    seed_account(splunkd, sim, "acme")
    result = run(splunkd, tmp_path, python, name="typo_query", query="AlertInf | take 10")
    assert result.returncode == 0 and result.events == []
    requests = sim.hunting_requests()
    assert len(requests) == 1 and requests[0].status == 400  # no retry
    failed = [line for line in log_lines(tmp_path) if "run_failed" in line]
    assert len(failed) == 1
    line = failed[0]
    assert "defender_hunting://typo_query" in line and "input 'typo_query'" in line
    assert "HTTP 400 BadRequest" in line and "AlertInf" in line and "HuntingError" in line
    assert summaries(tmp_path)[-1]["status"] == "failed"


def _state(splunkd: SplunkdStandin) -> Dict[str, object]:
    state = json.loads(json.dumps(splunkd.kv_records("ta_defender_lineage_checkpoints")[0]))
    state = state.get("state", state)
    return json.loads(state) if isinstance(state, str) else state


def test_rows_with_invalid_bytes_are_repaired_and_an_unreadable_row_is_skipped(addon, python, sim, splunkd, tmp_path):
    """Invalid UTF-8 in two rows of an answer, and a row no parser reads whole: the answer is not refused.
    The two rows are written with U+FFFD in place of their bytes (one warning with the count), the
    unreadable one is left out (a bad_item warning), both counted in run_summary; the cursor moves."""
    seed_account(splunkd, sim, "acme")
    sim.faults.add(kind="bad_rows", resource="runHuntingQuery", bad_rows=2, unreadable_rows=1, times=None)
    first = run(splunkd, tmp_path, python, query="AlertInfo", lookback="P30D", env=FAST)
    assert first.returncode == 0, first.stderr[-2000:]
    window = first_window(sim)
    clean = json.loads(sim.hunting_tables.run({"Query": "AlertInfo", "Timespan": window}, sim._clock, ""))["results"]
    assert len(clean) > 10
    written = rows(first)
    assert [r["AlertId"] for r in written] == [r["AlertId"] for r in clean[:2] + clean[3:]]
    assert [r["Title"] for r in written[:2]] == [str(r["Title"]) + "\ufffd\ufffd" for r in clean[:2]]
    assert not any("\ufffd" in json.dumps(r, ensure_ascii=False) for r in written[2:])
    lines = log_lines(tmp_path)
    repaired = [line for line in lines if "bad_rows input=h" in line]
    assert len(repaired) == 1 and "rows=2 reason=invalid_utf8" in repaired[0] and "WARNING" in repaired[0]
    skipped = [line for line in lines if "bad_item resource=runHuntingQuery" in line]
    assert len(skipped) == 1 and "reason=nesting_too_deep position=2" in skipped[0]
    summary = summaries(tmp_path)[-1]
    assert summary["status"] == "ok" and summary["rows"] == str(len(clean) - 1)
    assert (summary["bad_items_repaired"], summary["bad_items_skipped"]) == ("2", "1")
    assert _state(splunkd)["end"] == format_instant(_window_end(window)), "the cursor moved to the window's end"

    # The next run reads its overlap again: nothing written twice, the repaired rows not counted again.
    second = run(splunkd, tmp_path, python, query="AlertInfo", lookback="P30D", env=FAST)
    assert second.returncode == 0 and second.events == []
    again = summaries(tmp_path)[-1]
    assert again["status"] == "ok" and again["bad_items_repaired"] == "0"


def _window_end(timespan: str) -> int:
    from defender_lineage_core.timestamps import parse_instant

    ticks = parse_instant(timespan.split("/")[1])
    assert ticks is not None
    return ticks


# ---- lineage ------------------------------------------------------------------------------------------


def test_defenderlineage_places_alertinfo_rows_and_links_them_to_alerts_and_incidents(
    addon, py313, sim, splunkd, tmp_path
):
    seed_account(splunkd, sim, "acme")
    far = {"account": "acme", "start_date": "2020-01-01T00:00:00Z", "index": "defender"}
    alerts = run_input(splunkd, tmp_path, "defender_alerts", "a", far, py313)
    incidents = run_input(splunkd, tmp_path, "defender_incidents", "i", far, py313)
    hunting = run(splunkd, tmp_path, py313, name="alertinfo", query="AlertInfo", lookback="P30D")
    assert alerts.events and incidents.events and hunting.events
    info_ids = {json.loads(e.data)["AlertId"] for e in hunting.events}
    assert info_ids == {json.loads(e.data)["id"] for e in alerts.events}  # the tenant's real AlertIds
    records = events_to_records(hunting.events + alerts.events, addon)
    result = run_command(addon, py313, records, splunkd_uri=splunkd.uri, session_key=splunkd.session_key)
    assert result.error is None and result.returncode == 0, result.stderr[-3000:]
    out = result.records
    hunted = [r for r in out if r.get("sourcetype") == "ms:defender:graph:hunting"]
    placed_alerts = {r["alert_id"]: r for r in out if r.get("sourcetype") == "ms:defender:graph:alert"}
    assert len(hunted) == len(hunting.events)
    linked = 0
    for record in hunted:
        row = json.loads(str(record["_raw"]))
        assert record["lineage_layer"] == "hunting" and record["lineage_depth"] == "0"
        assert record["alert_id"] == row["AlertId"]
        assert str(record["lineage_path"]).endswith("hunting:alertinfo")
        alert = placed_alerts[row["AlertId"]]
        assert record.get("incident_id", "") == alert.get("incident_id", "")
        if alert.get("incident_id"):
            linked += 1
            for name in ("incident_title", "incident_severity", "incident_status", "incident_alert_count"):
                assert record.get(name, "") == alert.get(name, ""), name
            assert record.get("incident_severity")
    assert linked >= len(hunted) // 2
