"""The cursor, overlap and de-duplication rules, against an in-memory Graph listing."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from defender_lineage_core.collector import ALERTS, INCIDENTS, Collection, CursorState, Version
from defender_lineage_core.errors import GraphError
from defender_lineage_core.graph_client import Page
from defender_lineage_core.timestamps import TICKS_PER_SECOND, format_instant, parse_instant

T0 = parse_instant("2026-11-20T00:00:00Z") or 0
TENANT = "4a1f0c2e-9b7d-4c3a-8e55-2f6d1b0a9c31"


class FakeGraph:
    """Serves `lastUpdateDateTime ge X` in ascending order with skip-based pages, like Graph."""

    def __init__(self, items: list[dict], ascending: bool = True, fail_expand: bool = False) -> None:
        self.items = items
        self.ascending = ascending
        self.fail_expand = fail_expand
        self.requests: list[dict] = []

    def pages(self, resource: str, params: dict):
        self.requests.append(dict(params))
        if self.fail_expand and "$expand" in params:
            raise GraphError("boom", status=500, resource=resource)
        since = parse_instant(params["$filter"].split(" ge ")[1])
        top = int(params["$top"])
        # An item without a usable time is served anyway: the collector must cope with what Graph sends.
        visible = [i for i in self.items if (parse_instant(i.get("lastUpdateDateTime")) or since) >= since]
        visible.sort(key=lambda i: parse_instant(i.get("lastUpdateDateTime")) or 0, reverse=not self.ascending)
        for start in range(0, len(visible), top):
            chunk = visible[start : start + top]
            yield Page(chunk, "next" if start + top < len(visible) else None)


def version(key: str, second: float, **extra) -> dict:
    ticks = T0 + int(second * TICKS_PER_SECOND)
    return {"id": key, "lastUpdateDateTime": format_instant(ticks), **extra}


def run(graph: FakeGraph, state: CursorState, written: list, saves: list, spec=ALERTS, **kw) -> Collection:
    def emit(batch: list[Version]) -> None:
        written.extend((v.item.get("id"), v.item.get("lastUpdateDateTime")) for v in batch)

    def save(s: CursorState) -> None:
        saves.append(s.to_json())

    c = Collection(graph, spec, state, emit, save, start_ticks=T0 - TICKS_PER_SECOND, **kw)
    c.run()
    return c


def keys(items: list[dict]) -> Counter:
    return Counter((i["id"], i["lastUpdateDateTime"]) for i in items)


def test_every_version_once_across_runs_with_boundary_ties():
    small = ALERTS.__class__("alerts_v2", ALERTS.sourcetype, page_size=3)
    items = [version(f"a{n}", 10) for n in range(7)]  # seven alerts share one instant, across pages
    graph = FakeGraph(list(items))
    state = CursorState(TENANT)
    written: list = []
    run(graph, state, written, [], spec=small)
    assert Counter(written) == keys(items)
    # Next run: the same instant again (overlap) plus new versions of some alerts.
    newer = [version("a1", 11), version("a2", 11), version("b1", 10)]  # b1: a late arrival at the old instant
    graph.items.extend(newer)
    run(graph, state, written, [], spec=small)
    assert Counter(written) == keys(items + newer)
    run(graph, state, written, [], spec=small)  # nothing new: nothing written
    assert Counter(written) == keys(items + newer)


def test_filter_uses_cursor_minus_overlap_and_asks_for_ascending_order():
    graph = FakeGraph([version("a", 500)])
    state = CursorState(TENANT)
    run(graph, state, [], [])
    params = graph.requests[-1]
    assert params["$orderby"] == "lastUpdateDateTime asc"
    assert params["$top"] == "1000"
    assert state.cursor == T0 + 500 * TICKS_PER_SECOND
    run(graph, state, [], [], overlap_seconds=120)
    assert graph.requests[-1]["$filter"] == f"lastUpdateDateTime ge {format_instant(T0 + 380 * TICKS_PER_SECOND)}"


def test_incidents_page_at_most_50():
    graph = FakeGraph([version(str(n), n) for n in range(120)])
    written: list = []
    run(graph, CursorState(TENANT), written, [], spec=INCIDENTS)
    assert graph.requests[0]["$top"] == "50"
    assert len(written) == 120


def test_state_saved_after_each_page_and_a_crash_repeats_at_most_one_page():
    small = ALERTS.__class__("alerts_v2", ALERTS.sourcetype, page_size=10)
    items = [version(f"a{n}", n // 3) for n in range(95)]
    written: list = []
    saved: list = []
    state = CursorState(TENANT)

    class Crash(Exception):
        pass

    pages_before_crash = 4

    def emit(batch: list[Version]) -> None:
        written.extend((v.item["id"], v.item["lastUpdateDateTime"]) for v in batch)
        if len(written) >= pages_before_crash * 10:
            raise Crash

    c = Collection(FakeGraph(items), small, state, emit, lambda s: saved.append(s.to_json()), start_ticks=T0)
    with pytest.raises(Crash):
        c.run()
    assert len(saved) == pages_before_crash - 1  # the crashed page's state was never saved
    restored = CursorState.from_json(saved[-1], TENANT)
    assert restored is not None
    run(FakeGraph(items), restored, written, [], spec=small)
    counts = Counter(written)
    assert set(counts) == set(keys(items))
    duplicates = sum(n - 1 for n in counts.values())
    assert 0 < duplicates <= 10


def test_items_without_id_or_time_are_written_and_never_move_the_cursor():
    items = [
        version("a", 5),
        {"id": "no-time"},
        {"lastUpdateDateTime": format_instant(T0 + 9 * TICKS_PER_SECOND)},
    ]
    state = CursorState(TENANT)
    written: list = []
    c = run(FakeGraph(items), state, written, [])
    assert len(written) == 3
    assert c.stats.without_key == 2
    assert state.cursor == T0 + 5 * TICKS_PER_SECOND


def test_unordered_listing_moves_the_cursor_only_at_the_end():
    small = ALERTS.__class__("alerts_v2", ALERTS.sourcetype, page_size=2)
    items = [version(f"a{n}", n) for n in range(6)]
    saves: list = []
    state = CursorState(TENANT)
    written: list = []
    c = run(FakeGraph(items, ascending=False), state, written, saves, spec=small)
    assert c.stats.out_of_order
    assert Counter(written) == keys(items)
    assert saves[-1]["cursor"] == items[-1]["lastUpdateDateTime"]
    assert all(s["cursor"] in (None, items[-1]["lastUpdateDateTime"]) for s in saves)


def test_expand_falls_back_to_plain_listing_on_5xx():
    spec = INCIDENTS.__class__("incidents", INCIDENTS.sourcetype, 50, expand="alerts")
    graph = FakeGraph([version("1", 1)], fail_expand=True)
    written: list = []
    c = run(graph, CursorState(TENANT), written, [], spec=spec)
    assert c.stats.expand_fallback
    assert written == [("1", version("1", 1)["lastUpdateDateTime"])]
    assert "$expand" in graph.requests[0] and "$expand" not in graph.requests[1]


def test_state_is_per_tenant():
    state = CursorState(TENANT, T0, {("a", T0)})
    assert CursorState.from_json(state.to_json(), TENANT) == state
    assert CursorState.from_json(state.to_json(), "11111111-1111-1111-1111-111111111111") is None
    assert CursorState.from_json(None, TENANT) is None


def test_random_interleavings_of_updates_and_runs_lose_and_repeat_nothing():
    rng = random.Random(5)
    small = ALERTS.__class__("alerts_v2", ALERTS.sourcetype, page_size=4)
    graph = FakeGraph([])
    state = CursorState(TENANT)
    written: list = []
    every: list[dict] = []
    clock = 0.0
    for _ in range(40):
        for _ in range(rng.randint(0, 9)):
            clock += rng.choice([0, 0, 0.0000001, 0.5, 3])  # many ties
            item = version(f"a{rng.randint(0, 15)}", clock)
            graph.items = [i for i in graph.items if i["id"] != item["id"]] + [item]  # Graph keeps the latest
            every.append(item)
        run(graph, state, written, [], spec=small)
    # Every version visible at some poll was written exactly once; superseded-before-poll ones cannot be.
    counts = Counter(written)
    assert all(n == 1 for n in counts.values())
    latest = {i["id"]: i["lastUpdateDateTime"] for i in every}
    assert all((k, t) in counts for k, t in latest.items())
