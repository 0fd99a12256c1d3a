"""Hostile data against the cursor and the de-duplication set (issue 12, items 2, 3 and 4).

The same in-memory Graph as ``test_collector.py``; pages with unreadable items are built by the
real page reader (``odata.parse_collection_bytes``) from exact bytes.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections import Counter
from typing import Optional

from defender_lineage_core.collector import ALERTS, MAX_REMEMBERED_VERSIONS, Collection, CursorState, Version
from defender_lineage_core.graph_client import Page
from defender_lineage_core.incident_store import docs_from_items
from defender_lineage_core.odata import parse_collection_bytes
from defender_lineage_core.timestamps import MAX_TICKS, TICKS_PER_SECOND, format_instant, parse_instant
from tests.unit.test_collector import T0, TENANT, FakeGraph, keys, run, version

FAR_FUTURE = "9999-12-31T23:59:59.9999999Z"
PAST_9999 = "9999-12-31T23:59:59.9999999-14:00"  # 14 hours after the last instant UTC can write
LOGGER = "defender_lineage_core.collector"


def warnings_of(caplog, name: str) -> list:
    return [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING and r.getMessage().startswith(name)]


# ---- item 2: the cursor only moves to a time Graph can still serve later items after -------------


def test_an_item_stamped_in_year_9999_does_not_move_the_cursor_and_later_alerts_are_collected(caplog):
    caplog.set_level(logging.WARNING, LOGGER)
    graph = FakeGraph([version("a", 5), {"id": "doomsday", "lastUpdateDateTime": FAR_FUTURE}])
    state = CursorState(TENANT)
    written: list = []
    saves: list = []
    run(graph, state, written, saves)
    assert Counter(written) == Counter({("a", version("a", 5)["lastUpdateDateTime"]): 1, ("doomsday", FAR_FUTURE): 1})
    assert state.cursor == T0 + 5 * TICKS_PER_SECOND  # not year 9999
    assert parse_instant(saves[-1]["cursor"]) == T0 + 5 * TICKS_PER_SECOND
    assert len(warnings_of(caplog, "item_in_future")) == 1 and '"doomsday"' in warnings_of(caplog, "item_in_future")[0]
    later = version("b", 60)  # an alert updated after the first run: today's code never collects it
    graph.items.append(later)
    run(graph, state, written, saves)
    assert Counter(written)[("b", later["lastUpdateDateTime"])] == 1
    assert Counter(written)[("doomsday", FAR_FUTURE)] == 1  # read again by the overlap, not written twice
    assert state.cursor == T0 + 60 * TICKS_PER_SECOND
    assert len(warnings_of(caplog, "item_in_future")) == 1


def test_a_stamp_past_year_9999_is_refused_with_a_warning_and_every_save_succeeds(caplog):
    caplog.set_level(logging.WARNING, LOGGER)
    graph = FakeGraph([version("a", 5), {"id": "overflow", "lastUpdateDateTime": PAST_9999}, version("c", 7)])
    state = CursorState(TENANT)
    written: list = []
    saves: list = []
    c = run(graph, state, written, saves)  # today: OverflowError while saving, after the events were written
    assert saves, "the cursor was saved"
    assert parse_instant(saves[-1]["cursor"]) == T0 + 7 * TICKS_PER_SECOND
    assert c.stats.out_of_range == 1
    assert len(warnings_of(caplog, "timestamp_out_of_range")) == 1
    run(graph, state, written, saves)
    assert Counter(written) == Counter(
        {
            ("a", version("a", 5)["lastUpdateDateTime"]): 1,
            ("overflow", PAST_9999): 1,
            ("c", version("c", 7)["lastUpdateDateTime"]): 1,
        }
    )
    assert all(json.dumps(s) for s in saves)
    assert CursorState.from_json(saves[-1], TENANT) is not None


def test_a_cursor_before_year_1000_is_saved_in_a_form_that_reads_back():
    early = parse_instant("0999-03-04T05:06:07.0000001Z")
    assert early is not None
    state = CursorState(TENANT, cursor=early, recent={("a", early)})
    restored = CursorState.from_json(json.loads(json.dumps(state.to_json())), TENANT)
    assert restored is not None and restored.cursor == early  # today: None, a silent fresh start
    # ... and the listing that starts from it (minus the overlap) is a literal Graph accepts.
    graph = FakeGraph([{"id": "old", "lastUpdateDateTime": "0999-03-04T05:07:00Z"}])
    written: list = []
    run(graph, restored, written, [])
    assert graph.requests[0]["$filter"] == "lastUpdateDateTime ge 0999-03-04T05:04:07.0000001Z"
    assert written == [("old", "0999-03-04T05:07:00Z")]


def test_a_saved_cursor_outside_the_range_is_a_fresh_start_not_a_crash():
    data = {"v": 1, "tenant_id": TENANT, "cursor": PAST_9999, "recent": []}
    restored = CursorState.from_json(data, TENANT)
    assert restored is not None and restored.cursor is None


# ---- item 3: numeric ids are keys; bad items are skipped one by one --------------------------------


def test_numeric_ids_are_keyed_by_their_json_text_and_written_once_across_runs():
    body = (
        b'{"value":['
        b'{"id":12345678901234567890,"lastUpdateDateTime":"2026-11-20T00:00:01Z"},'
        b'{"id":1e3,"lastUpdateDateTime":"2026-11-20T00:00:02Z"},'
        b'{"id":"1000.0","lastUpdateDateTime":"2026-11-20T00:00:02Z"}]}'
    )
    items, _, _ = parse_collection_bytes(body)
    graph = FakeGraph(items)
    state = CursorState(TENANT)
    written: list = []
    c = run(graph, state, written, [])
    assert c.stats.without_key == 0  # today: "item without key", written again on every run
    assert {key for key, _ in state.recent} == {"12345678901234567890", "1e3", "1000.0"}
    run(graph, state, written, [])
    assert len(written) == 3


def test_numeric_ids_key_the_checkpoint_and_the_incident_store_alike():
    body = b'{"value":[{"id":1e3,"incidentId":77,"lastUpdateDateTime":"2026-11-20T00:00:02Z"}]}'
    items, _, _ = parse_collection_bytes(body)
    state = CursorState(TENANT)
    run(FakeGraph(items), state, [], [])
    (doc,) = docs_from_items("alerts_v2", items, TENANT)
    assert {key for key, _ in state.recent} == {doc["alert_id"]} == {"1e3"}
    assert doc["incident_id"] == "77"


def test_an_item_with_a_time_but_no_usable_id_is_written_once_across_runs():
    items = [version("a", 5), {"id": None, "lastUpdateDateTime": format_instant(T0 + 6 * TICKS_PER_SECOND), "x": 1}]
    items.append({"id": True, "lastUpdateDateTime": format_instant(T0 + 6 * TICKS_PER_SECOND), "x": 2})
    graph = FakeGraph(items)
    state = CursorState(TENANT)
    written: list = []
    first = run(graph, state, written, [])
    assert first.stats.without_key == 2 and state.cursor == T0 + 5 * TICKS_PER_SECOND
    second = run(graph, state, written, [])  # today: both written again on every run
    assert len(written) == 3 and second.stats.without_key == 0


class RawGraph(FakeGraph):
    """One page, read from exact bytes by the real page reader (bad items reported in ``Page.bad``)."""

    def __init__(self, body: bytes) -> None:
        super().__init__([])
        self.body = body

    def pages(self, resource, params, follow=None, fail_fast=frozenset(), recycle=False):
        self.requests.append(dict(params))
        bad: list = []
        items, texts, _ = parse_collection_bytes(self.body, None, bad)
        yield Page(items, None, texts, bad)


def _raw_run(body: bytes, state: CursorState, written: list, texts: Optional[list] = None) -> Collection:
    def emit(batch: list[Version]) -> None:
        written.extend((v.item.get("id"), v.item.get("lastUpdateDateTime")) for v in batch)
        if texts is not None:
            texts.extend(v.text for v in batch)

    c = Collection(RawGraph(body), ALERTS, state, emit, lambda s: s.to_json(), start_ticks=T0)
    c.run()
    return c


BAD_PAGE = (
    b'{"value":['
    b'{"id":"good1","lastUpdateDateTime":"2026-11-20T00:00:01Z"},'
    b'{"id":"bytes","lastUpdateDateTime":"2026-11-20T00:00:02Z","title":"caf\xe9 \xff"},'
    b'{"id":"deep","lastUpdateDateTime":"2026-11-20T00:00:03Z","x":' + b"[" * 100_000 + b"]" * 100_000 + b"},"
    b'42,"text",null,'
    b'{"id":"good2","lastUpdateDateTime":"2026-11-20T00:00:04Z"}'
    b"]}"
)


def test_a_page_with_bad_items_is_collected_item_by_item(caplog):
    caplog.set_level(logging.WARNING, LOGGER)
    state = CursorState(TENANT)
    written: list = []
    texts: list = []
    c = _raw_run(BAD_PAGE, state, written, texts)
    assert Counter(written) == Counter(
        {
            ("good1", "2026-11-20T00:00:01Z"): 1,
            ("bytes", "2026-11-20T00:00:02Z"): 1,
            ("good2", "2026-11-20T00:00:04Z"): 1,
        }
    )
    assert '"title":"caf\ufffd \ufffd"' in texts[1]  # the invalid bytes, replaced
    assert state.cursor == parse_instant("2026-11-20T00:00:04Z")
    assert (c.stats.bad_repaired, c.stats.bad_skipped) == (1, 4)
    lines = warnings_of(caplog, "bad_item")
    assert len(lines) == 5
    assert any('id="bytes" reason=invalid_utf8' in line and "U+FFFD" in line for line in lines)
    assert any('id="deep" reason=nesting_too_deep' in line and "skipped" in line for line in lines)
    assert sum("reason=not_an_object" in line for line in lines) == 3
    # The next run reads the page again (the overlap): nothing is written twice, and the deep item,
    # whose id and instant could be read, is not logged again.
    caplog.clear()
    c = _raw_run(BAD_PAGE, state, written)
    assert len(written) == 3
    assert not any("deep" in line for line in warnings_of(caplog, "bad_item"))


def test_a_bad_items_id_cannot_forge_a_log_line(caplog):
    caplog.set_level(logging.WARNING, LOGGER)
    body = b'{"value":[{"id":"x\\n run_summary status=ok","lastUpdateDateTime":"2026-11-20T00:00:01Z","y":' + (
        b"[" * 50_000 + b"]" * 50_000 + b"}]}"
    )
    _raw_run(body, CursorState(TENANT), [])
    (line,) = warnings_of(caplog, "bad_item")
    assert "\n" not in line and '"x\\n run_summary status=ok"' in line


def test_a_stamp_before_year_1_is_refused_with_a_warning(caplog):
    # Graph's filter would never return it; a server that ignores the filter (RawGraph) does.
    caplog.set_level(logging.WARNING, LOGGER)
    body = (
        b'{"value":[{"id":"ancient","lastUpdateDateTime":"0001-01-01T00:00:00+14:00"},'
        b'{"id":"a","lastUpdateDateTime":"2026-11-20T00:00:05Z"}]}'
    )
    state = CursorState(TENANT)
    written: list = []
    c = _raw_run(body, state, written)
    assert c.stats.out_of_range == 1 and len(warnings_of(caplog, "timestamp_out_of_range")) == 1
    assert len(written) == 2 and state.cursor == parse_instant("2026-11-20T00:00:05Z")
    assert json.dumps(state.to_json())
    alone = CursorState(TENANT)
    _raw_run(b'{"value":[{"id":"ancient","lastUpdateDateTime":"0001-01-01T00:00:00+14:00"}]}', alone, [])
    assert alone.cursor is None  # its stamp never reaches the cursor


# ---- item 4: the checkpoint's de-duplication set stays bounded -------------------------------------


def test_a_dense_overlap_is_bounded_and_nothing_is_written_twice_or_lost_after_it(caplog):
    caplog.set_level(logging.WARNING, LOGGER)
    small = dataclasses.replace(ALERTS, page_size=100)
    cap = 250
    # 2,000 versions inside 100 seconds: all of them inside the 120-second overlap.
    items = [version(f"a{n}", n / 20) for n in range(2000)]
    graph = FakeGraph(list(items))
    state = CursorState(TENANT)
    written: list = []
    saves: list = []
    c = run(graph, state, written, saves, spec=small, max_remembered=cap)
    assert Counter(written) == keys(items)
    assert c.stats.narrowed and len(warnings_of(caplog, "overlap_narrowed")) == 1
    assert max(len(s["recent"]) for s in saves) <= cap + small.page_size  # today: 2,000 in the last save
    assert len(state.recent) <= cap
    assert state.floor is not None and state.floor > state.cursor - 120 * TICKS_PER_SECOND
    restored = CursorState.from_json(json.loads(json.dumps(saves[-1])), TENANT)
    assert restored is not None and restored.floor == state.floor and restored.recent == state.recent
    # Next run: starts at the floor (nothing forgotten is read again), writes exactly what is new,
    # including a late arrival at an instant the checkpoint still remembers.
    late = version("late", (state.floor - T0) / TICKS_PER_SECOND)
    newer = [version(f"b{n}", 200 + n) for n in range(5)] + [late]
    graph.items.extend(newer)
    first = len(graph.requests)
    run(graph, restored, written, [], spec=small, max_remembered=cap)
    assert graph.requests[first]["$filter"] == f"lastUpdateDateTime ge {format_instant(state.floor)}"
    assert Counter(written) == keys(items + newer)


def test_versions_at_the_cursors_instant_are_never_forgotten():
    small = dataclasses.replace(ALERTS, page_size=100)
    items = [version(f"t{n}", 10) for n in range(300)]  # one instant, wider than the bound
    graph = FakeGraph(list(items))
    state = CursorState(TENANT)
    written: list = []
    run(graph, state, written, [], spec=small, max_remembered=50)
    assert len(state.recent) == 300
    run(graph, state, written, [], spec=small, max_remembered=50)
    assert Counter(written) == keys(items)


def test_the_default_bound_keeps_a_dense_checkpoint_small():
    state = CursorState(TENANT)
    stamps = [T0 + n * 1000 for n in range(120_000)]  # 120,000 versions in 12 seconds
    recent = {(f"da63{n:016d}_-{n % 97:09d}", t) for n, t in enumerate(stamps)}
    c = Collection(FakeGraph([]), ALERTS, state, lambda b: None, lambda s: None, start_ticks=T0)
    state.recent, c._newest_held = recent, stamps[-1]
    c._advance(final=False)
    size = len(json.dumps(state.to_json()))
    assert len(state.recent) <= MAX_REMEMBERED_VERSIONS
    assert size < 1_000_000, size
    assert state.cursor == stamps[-1] and state.floor is not None and state.floor <= MAX_TICKS
