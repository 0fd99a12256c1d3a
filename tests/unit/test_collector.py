"""The cursor, overlap and de-duplication rules, against an in-memory Graph listing."""

from __future__ import annotations

import dataclasses
import random
import re
from collections import Counter
from typing import Callable, Optional

import pytest

from defender_lineage_core.budget import DeadlineReached
from defender_lineage_core.collector import ALERTS, INCIDENTS, Collection, CursorState, Version
from defender_lineage_core.errors import GraphError
from defender_lineage_core.graph_client import Page, follow_next_link
from defender_lineage_core.timestamps import TICKS_PER_SECOND, format_instant, parse_instant

T0 = parse_instant("2026-11-20T00:00:00Z") or 0
TENANT = "4a1f0c2e-9b7d-4c3a-8e55-2f6d1b0a9c31"


class FakeGraph:
    """Serves `lastUpdateDateTime ge X [and le Y]` in ascending order with $skip-based nextLinks, like Graph.

    `hook(n, graph)` runs after the n-th request (1-based) is answered: a change made there happens
    between two pages of a listing, as an analyst's update does in Graph.
    """

    def __init__(
        self,
        items: list[dict],
        ascending: bool = True,
        fail_expand: bool = False,
        hook: Optional[Callable[[int, FakeGraph], None]] = None,
    ) -> None:
        self.items = items
        self.ascending = ascending
        self.fail_expand = fail_expand
        self.hook = hook
        self.requests: list[dict] = []
        self.links: list[dict] = []

    def resource_url(self, resource: str) -> str:
        return f"https://graph.test/v1.0/security/{resource}"

    def update(self, item: dict) -> None:
        """Graph shows only an item's latest version."""
        self.items = [i for i in self.items if i.get("id") != item["id"]] + [item]

    def _serve(self, resource: str, params: dict) -> Page:
        self.requests.append(dict(params))
        if self.fail_expand and "$expand" in params:
            raise GraphError("boom", status=500, resource=resource)
        clauses = dict(re.findall(r"lastUpdateDateTime (ge|le) (\S+)", params["$filter"]))
        since = parse_instant(clauses["ge"]) or 0
        until = parse_instant(clauses["le"]) if "le" in clauses else None
        top, skip = int(params["$top"]), int(params.get("$skip", 0))

        def at(i: dict) -> int:
            # An item without a usable time is served anyway: the collector must cope with what Graph sends.
            return parse_instant(i.get("lastUpdateDateTime")) or since

        visible = [i for i in self.items if at(i) >= since and (until is None or at(i) <= until)]
        visible.sort(key=lambda i: (at(i), str(i.get("id"))), reverse=not self.ascending)
        link = None
        if skip + top < len(visible):
            self.links.append({**params, "$skip": str(skip + top)})
            link = f"https://graph.test/v1.0/security/{resource}?$skiptoken={len(self.links) - 1}"
        page = Page(visible[skip : skip + top], link)
        if self.hook:
            self.hook(len(self.requests), self)
        return page

    def pages(self, resource: str, params: dict, follow=follow_next_link, fail_fast=frozenset(), recycle=False):
        page = self._serve(resource, params)
        while True:
            following = follow(page)
            yield page
            if following is None:
                return
            url, options = following
            if recycle:  # as GraphClient.pages: the caller is done with a page once it asks for the next
                page.items.clear()
            page = self._serve(resource, options if options is not None else self.links[int(url.rsplit("=", 1)[1])])


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
    small = dataclasses.replace(ALERTS, page_size=3)
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
    small = dataclasses.replace(ALERTS, page_size=10)
    items = [version(f"a{n}", n // 3) for n in range(95)]
    written: list = []
    saved: list = []
    state = CursorState(TENANT)

    class Crash(Exception):
        pass

    pages_before_crash = 4
    emitted = [0]

    def emit(batch: list[Version]) -> None:
        written.extend((v.item["id"], v.item["lastUpdateDateTime"]) for v in batch)
        emitted[0] += 1
        if emitted[0] >= pages_before_crash:
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
    small = dataclasses.replace(ALERTS, page_size=2)
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
    spec = dataclasses.replace(INCIDENTS, page_size=50, expand="alerts")
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
    small = dataclasses.replace(ALERTS, page_size=4)
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


def naive_skip_listing(graph: FakeGraph, since: int, top: int) -> list:
    """What a reader following Graph's $skip links to the end would see (the control for the tests below)."""
    seen: list = []
    params = {"$filter": f"lastUpdateDateTime ge {format_instant(since)}", "$top": str(top)}
    for page in graph.pages("alerts_v2", params):
        seen.extend((i["id"], i["lastUpdateDateTime"]) for i in page.items)
    return seen


def updater(after_request: int, *updates: dict) -> Callable[[int, FakeGraph], None]:
    def hook(n: int, graph: FakeGraph) -> None:
        if n == after_request:
            for item in updates:
                graph.update(item)

    return hook


def test_an_update_while_paging_cannot_push_another_alert_past_the_reader():
    small = dataclasses.replace(ALERTS, page_size=10)
    items = [version(f"a{n:02d}", n) for n in range(30)]
    moved = version("a03", 100)  # a03 was on page 1; its update moves it to the end of the listing
    # The control: $skip paging loses a10, which slides from page 2 onto page 1 (already read).
    control = naive_skip_listing(FakeGraph(list(items), hook=updater(1, moved)), T0, 10)
    lost = set(keys(items)) - set(control) - {("a03", items[3]["lastUpdateDateTime"])}
    assert lost == {("a10", items[10]["lastUpdateDateTime"])}

    graph = FakeGraph(list(items), hook=updater(1, moved))
    state = CursorState(TENANT)
    written: list = []
    c = run(graph, state, written, [], spec=small)
    # Everything still visible at the end, plus a03's first version (read before the update), once each.
    assert Counter(written) == keys([*items, moved])
    assert c.stats.restarts >= 2 and all("$skip" not in r for r in graph.requests)
    assert state.cursor == parse_instant(moved["lastUpdateDateTime"])
    run(graph, state, written, [], spec=small)
    assert Counter(written) == keys([*items, moved])


def test_a_tie_wider_than_a_page_is_read_again_when_a_member_changes_meanwhile():
    small = dataclasses.replace(ALERTS, page_size=10)
    tie = [version(f"t{n:02d}", 5) for n in range(25)]  # 25 versions share one instant
    items = [version("before", 1), *tie, version("after", 9)]
    moved = version("t02", 50)
    graph = FakeGraph(list(items), hook=updater(2, moved))  # after the first page inside the tie
    state = CursorState(TENANT)
    written: list = []
    c = run(graph, state, written, [], spec=small)
    assert c.stats.tie_rechecks == 1
    assert Counter(written) == keys([*items, moved])
    # Without the re-read, the member that slid onto the page already read is lost: prove the fixture bites.
    graph2 = FakeGraph(list(items), hook=updater(2, moved))
    written2: list = []
    c2 = Collection(graph2, small, CursorState(TENANT), lambda b: written2.extend(b), lambda s: None, T0)
    c2._recheck_unstable_ties = lambda expand: None  # type: ignore[method-assign]
    c2.run()
    assert len(written2) == len(items)  # one tie member short (a03's old version is counted instead)


def test_updates_at_random_moments_while_paging_lose_nothing_still_visible():
    rng = random.Random(11)
    small = dataclasses.replace(ALERTS, page_size=5)
    state = CursorState(TENANT)
    written: list = []
    clock = [0.0]

    def fresh(n: int) -> dict:
        clock[0] += rng.choice([0, 0, 0, 0.0000001, 0.5, 2])
        return version(f"a{rng.randint(0, 40)}", clock[0] + n * 0)

    def hook(n: int, graph: FakeGraph) -> None:
        for _ in range(rng.choice([0, 0, 1, 3])):
            graph.update(fresh(n))

    graph = FakeGraph([], hook=hook)
    for _ in range(60):
        graph.hook = None
        for _ in range(rng.randint(0, 12)):
            graph.update(fresh(0))
        start = set(keys(graph.items))
        graph.hook = hook
        run(graph, state, written, [], spec=small)
        end = set(keys(graph.items))
        # A version visible when the run started and still visible when it ended was written.
        assert start & end <= set(written)
    graph.hook = None
    run(graph, state, written, [], spec=small)
    counts = Counter(written)
    assert all(n == 1 for n in counts.values()), "a version was written twice"
    assert set(keys(graph.items)) <= set(counts)


def test_expand_falls_back_mid_listing_and_continues_from_the_failed_boundary():
    spec = dataclasses.replace(INCIDENTS, page_size=2, expand="alerts")
    items = [version(str(n), n) for n in range(7)]

    class FailsLater(FakeGraph):
        def _serve(self, resource: str, params: dict) -> Page:
            if "$expand" in params and len(self.requests) >= 2:
                self.requests.append(dict(params))
                raise GraphError("Graph answered incidents with HTTP 500", status=500, resource=resource)
            return super()._serve(resource, params)

    graph = FailsLater(items)
    written: list = []
    c = run(graph, CursorState(TENANT), written, [], spec=spec)
    assert c.stats.expand_fallback
    assert Counter(written) == keys(items)
    plain = [r for r in graph.requests if "$expand" not in r]
    # The plain listing starts where the failed expanded request did, not from the beginning.
    assert plain[0]["$filter"] == graph.requests[2]["$filter"]


def test_a_deadline_inside_the_client_stops_cleanly_and_keeps_the_cursor():
    small = dataclasses.replace(ALERTS, page_size=3)
    items = [version(f"a{n}", n) for n in range(10)]

    class Throttled(FakeGraph):
        def _serve(self, resource: str, params: dict) -> Page:
            if len(self.requests) == 2:
                raise DeadlineReached("alerts_v2: waiting 30.0s before retrying would pass the run's deadline")
            return super()._serve(resource, params)

    state = CursorState(TENANT)
    saves: list = []
    written: list = []
    c = run(Throttled(items), state, written, saves, spec=small)
    assert c.stats.stopped_early and c.stats.pages == 2
    assert state.cursor == parse_instant(written[-1][1])
    run(FakeGraph(items), state, written, [], spec=small)
    assert Counter(written) == keys(items)


def test_the_deadline_between_pages_stops_before_the_next_request():
    small = dataclasses.replace(ALERTS, page_size=3)
    items = [version(f"a{n}", n) for n in range(10)]
    graph = FakeGraph(items)
    calls = [0]

    def deadline() -> bool:
        calls[0] += 1
        return calls[0] >= 2

    written: list = []
    state = CursorState(TENANT)
    c = run(graph, state, written, [], spec=small, deadline=deadline)
    # Page 2 restarts at a2's instant (a2 is read again and skipped): a0..a4 are written.
    assert c.stats.stopped_early and c.stats.pages == 2 and len(written) == 5 and len(graph.requests) == 2
    assert state.cursor == parse_instant(items[4]["lastUpdateDateTime"])
