"""Hostile items through the BUILT alerts input (issue 12, items 2 and 3): exact bytes served by the
simulator (``SyntheticTenant.add_raw``), exact multisets of what each run writes.

An item stamped in year 9999 or past it, one with invalid UTF-8 bytes, one nested 100,000 levels
deep, one that is not an object and one whose ``id`` is a JSON number, each beside the ordinary
alerts of a small tenant. The item-by-item test runs on Python 3.9 and 3.13 (their JSON parsers
differ in how deep they go); the rest on 3.13.
"""

from __future__ import annotations

import json
from collections import Counter
from typing import Any, Dict, Iterator

import pytest

from defender_lineage_core.timestamps import TICKS_PER_SECOND, format_instant
from tests.harness.graph_sim import GraphSimulator, SyntheticTenant
from tests.harness.pipeline import log_lines, seed_account
from tests.integration.test_faults import all_alerts, cursor_of, failures, py313, run, summaries, written

__all__ = ["py313"]  # a fixture, imported for the tests below

FAR_FUTURE = "9999-12-31T23:59:59.9999999Z"
PAST_9999 = "9999-12-31T23:59:59.9999999-14:00"


@pytest.fixture
def sim() -> Iterator[GraphSimulator]:
    with GraphSimulator(SyntheticTenant.bulk(300, seed=11, single_version=True), max_lifetime=600.0) as server:
        yield server


def alert_like(sim: GraphSimulator, **change: Any) -> Dict[str, Any]:
    """An ordinary alert of the tenant with some fields changed."""
    item = dict(sim.tenant.alert_versions()[0][2])
    item.update(change)
    return item


def raw(item: Dict[str, Any]) -> bytes:
    return json.dumps(item, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def newest_generated(sim: GraphSimulator) -> int:
    return max(v.ticks for v in sim.tenant.alerts.versions)


def warnings(workdir, name: str) -> list:
    return [line for line in log_lines(workdir) if f" {name} " in line or f"{name} resource=" in line]


def test_an_alert_stamped_in_year_9999_does_not_stop_collection(addon, py313, sim, splunkd, tmp_path):
    seed_account(splunkd, sim, "acme")
    sim.tenant.add_raw(
        "alerts_v2", raw(alert_like(sim, id="doomsday", lastUpdateDateTime=FAR_FUTURE)), "doomsday", FAR_FUTURE
    )
    first = run(splunkd, tmp_path, py313)
    assert written(first) == all_alerts(sim) + Counter({("doomsday", FAR_FUTURE): 1})
    assert cursor_of(splunkd) == newest_generated(sim)  # today: year 9999
    assert len(warnings(tmp_path, "item_in_future")) == 1
    # An alert updated after the first run: today it is never collected, silently.
    later = format_instant(sim.tenant.anchor_ticks)
    sim.tenant.add_version("alerts_v2", alert_like(sim, id="after-doomsday", lastUpdateDateTime=later))
    second = run(splunkd, tmp_path, py313)
    assert written(second) == Counter({("after-doomsday", later): 1})
    assert [s["status"] for s in summaries(tmp_path)] == ["ok", "ok"]


def test_a_stamp_past_year_9999_is_refused_and_the_cursor_is_saved(addon, py313, sim, splunkd, tmp_path):
    seed_account(splunkd, sim, "acme")
    sim.tenant.add_raw(
        "alerts_v2", raw(alert_like(sim, id="overflow", lastUpdateDateTime=PAST_9999)), "overflow", PAST_9999
    )
    first = run(splunkd, tmp_path, py313)
    second = run(splunkd, tmp_path, py313)
    # Today: OverflowError while saving the cursor after the page was written, on every run.
    assert failures(tmp_path) == []
    assert [s["status"] for s in summaries(tmp_path)] == ["ok", "ok"]
    assert written(first) == all_alerts(sim) + Counter({("overflow", PAST_9999): 1})
    assert written(second) == Counter()
    assert cursor_of(splunkd) == newest_generated(sim)
    assert summaries(tmp_path)[0]["out_of_range"] == "1"
    assert len(warnings(tmp_path, "timestamp_out_of_range")) == 1


def test_a_page_is_collected_item_by_item(addon, python, sim, splunkd, tmp_path):
    seed_account(splunkd, sim, "acme")
    versions = sim.tenant.alerts.versions
    # The bad items share the newest instant, among the good items of the page: the next run's
    # overlap reads them again.
    newest = versions[-1]
    stamp = newest.lud
    bytes_item = raw(alert_like(sim, id="bytes-1", lastUpdateDateTime=stamp, title="@@")).replace(
        b"@@", b"caf\xe9 \xff"
    )
    deep_item = raw(alert_like(sim, id="deep-1", lastUpdateDateTime=stamp, evidence="@@")).replace(
        b'"@@"', b"[" * 100_000 + b"]" * 100_000
    )
    numeric_item = raw(alert_like(sim, id=424242, lastUpdateDateTime=stamp))
    for sort_id, body in (("bytes-1", bytes_item), ("deep-1", deep_item), ("n", b"42"), ("424242", numeric_item)):
        sim.tenant.add_raw("alerts_v2", body, sort_id, stamp, ticks=newest.ticks)
    first = run(splunkd, tmp_path, python)
    # Today: the page is refused (invalid bytes) or the run dies (RecursionError); the numeric id
    # is written as "item without key" and again on every run.
    assert written(first) == all_alerts(sim) + Counter({("bytes-1", stamp): 1, (424242, stamp): 1})
    repaired = [json.loads(e.data) for e in first.events if json.loads(e.data)["id"] == "bytes-1"]
    assert repaired[0]["title"] == "caf\ufffd \ufffd"
    summary = summaries(tmp_path)[-1]
    assert (summary["status"], summary["bad_items_skipped"], summary["bad_items_repaired"]) == ("ok", "2", "1")
    assert summary["without_key"] == "0"
    lines = warnings(tmp_path, "bad_item")
    assert len(lines) == 3
    assert any('id="deep-1" reason=nesting_too_deep' in line for line in lines)
    assert any('id="bytes-1" reason=invalid_utf8' in line for line in lines)
    assert any("reason=not_an_object" in line for line in lines)
    assert cursor_of(splunkd) == newest_generated(sim)
    # The next run reads the overlap again: nothing is written twice, and of the items left out
    # only the one with no id to remember it by ("42") is logged again.
    second = run(splunkd, tmp_path, python)
    assert written(second) == Counter()
    assert summaries(tmp_path)[-1]["status"] == "ok" and summaries(tmp_path)[-1]["skipped_duplicates"] == str(
        sum(1 for v in versions if v.ticks >= newest.ticks - 120 * TICKS_PER_SECOND) + 2
    )
    assert len(warnings(tmp_path, "bad_item")) == 4


def test_incidents_with_a_numeric_id_and_invalid_bytes_reach_the_incident_store_once(
    addon, py313, sim, splunkd, tmp_path
):
    seed_account(splunkd, sim, "acme")
    newest = sim.tenant.incidents.versions[-1]
    template = dict(sim.tenant.incident_versions()[-1][2])
    numeric = raw({**template, "id": 31337, "displayName": "numeric", "lastUpdateDateTime": newest.lud})
    garbled = raw({**template, "id": "inc-bytes", "displayName": "@@", "lastUpdateDateTime": newest.lud})
    garbled = garbled.replace(b'"@@"', b'"caf\xe9"')
    sim.tenant.add_raw("incidents", numeric, "31337", newest.lud, ticks=newest.ticks)
    sim.tenant.add_raw("incidents", garbled, "inc-bytes", newest.lud, ticks=newest.ticks)
    params = {"start_date": "2020-01-01T00:00:00Z"}
    first = run(splunkd, tmp_path, py313, input_type="defender_incidents", params=params)
    second = run(splunkd, tmp_path, py313, input_type="defender_incidents", params=params)
    expected = Counter(sim.tenant.incident_version_keys()) + Counter(
        {(31337, newest.lud): 1, ("inc-bytes", newest.lud): 1}
    )
    assert written(first) == expected  # today: the page is refused and the run fails
    assert written(second) == Counter()
    summaries_ = summaries(tmp_path)
    assert [s["status"] for s in summaries_] == ["ok", "ok"] and summaries_[0]["bad_items_repaired"] == "1"
    docs = splunkd.kv_records("ta_defender_lineage_incidents")
    summary_docs = {d["incident_id"]: d for d in docs if d.get("doc_type") == "incident"}
    assert summary_docs["31337"]["incident_key"].endswith(":31337")  # keyed by the id's JSON text
    assert summary_docs["inc-bytes"]["title"] == "caf\ufffd"
