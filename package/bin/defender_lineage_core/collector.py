"""Incremental collection of Graph alerts_v2 and incidents: one event per item version.

The cursor is the newest ``lastUpdateDateTime`` written (an exact instant, never text). Each run
asks Graph for ``lastUpdateDateTime ge cursor - overlap`` in ascending order and skips the versions
it remembers writing inside the overlap, so boundary ties and late arrivals are written exactly
once. The state is saved after every page's events are written, so a killed process repeats at
most the page in flight.

Paging never goes deep with ``$skip``: after each page the next request is a fresh query from the
newest instant on that page (``_follow``), so alerts updated while a listing is read cannot make
another alert slide past the reader. Graph's ``@odata.nextLink`` is followed only across a run of
versions sharing one instant that is wider than a page, and such a run is read again if one of its
members changed meanwhile. A run that reaches its deadline (between pages, or when a wait for the
request budget, a ``Retry-After`` or a back-off would pass it) stops cleanly; the cursor stays.

The cursor never passes the present (the input's clock when the page is taken): a version stamped
later is written, remembered for de-duplication, and read again (and skipped) by the next runs until
the present catches up with it. So one item stamped ``9999-12-31`` cannot move the cursor past every
alert still to come; one stamped more than ``FUTURE_TOLERANCE_SECONDS`` ahead is logged. A stamp
outside what Graph's DateTimeOffset can hold (years 1 to 9999 in UTC, e.g. ``9999-12-31T23:59:59-14:00``)
is refused as an instant: the item is written once, de-duplicated at the nearest instant that can be
held, with a warning. Items of a page that cannot be read (``odata.BadItem``) are logged one line
each and counted; the rest of the page is collected.

The versions remembered for de-duplication (``recent``) are at most ``MAX_REMEMBERED_VERSIONS``
plus those at or after the cursor's instant: past that, the oldest instants are forgotten and the
next listing starts after them (``floor``), so what is forgotten is never read again (nothing is
written twice); the overlap for late arrivals then covers the newest remembered versions only.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Set, Tuple

from .budget import DeadlineReached
from .errors import GraphError, MalformedResponse
from .graph_client import GraphClient, NextRequest, Page
from .odata import BadItem, item_id_text
from .timestamps import MAX_TICKS, MIN_TICKS, TICKS_PER_SECOND, format_instant, in_range, now_ticks, parse_instant

STATE_VERSION = 1
DEFAULT_OVERLAP_SECONDS = 120
# A version stamped this far past the input's clock is logged (clock skew below it is normal).
FUTURE_TOLERANCE_SECONDS = 300
# Versions remembered for de-duplication beyond those at or after the cursor's instant: ~50 bytes of
# checkpoint each (a dense overlap of 120,000 made a 5.9 MB checkpoint, saved after every page).
MAX_REMEMBERED_VERSIONS = 10_000
# Answers to an $expand query that end it at once: the plain listing replaces it (no retry storm).
EXPAND_FAIL_FAST = frozenset({500, 502, 504})


@dataclass(frozen=True)
class ResourceSpec:
    """A Graph collection as the collector lists it (what Splunk calls its events is the adapter's business:
    ``defender_lineage_splunk/inputs.py``)."""

    name: str  # Graph collection under /security
    page_size: int
    expand: Optional[str] = None


ALERTS = ResourceSpec("alerts_v2", page_size=1000)
# Graph refuses $top above 50 on incidents.
INCIDENTS = ResourceSpec("incidents", page_size=50)


@dataclass
class Version:
    item: Dict[str, Any]
    ticks: Optional[int]  # lastUpdateDateTime; None when the item lacks a usable one
    text: Optional[str] = None  # the item's JSON as Graph sent it, when known


@dataclass
class CursorState:
    tenant_id: str
    cursor: Optional[int] = None
    recent: Set[Tuple[str, int]] = field(default_factory=set)
    # Where the next listing starts at the earliest when ``recent`` was bounded (see the module
    # docstring); None when the overlap is whole.
    floor: Optional[int] = None

    def to_json(self) -> Dict[str, Any]:
        data = {
            "v": STATE_VERSION,
            "tenant_id": self.tenant_id,
            "cursor": format_instant(self.cursor) if self.cursor is not None else None,
            "recent": sorted([key, ticks] for key, ticks in self.recent),
        }
        if self.floor is not None:
            data["floor"] = format_instant(self.floor)
        return data

    @classmethod
    def from_json(cls, data: Any, tenant_id: str) -> Optional[CursorState]:
        """The saved state, or None when there is none for this tenant (a fresh start)."""
        if not isinstance(data, dict) or data.get("tenant_id") != tenant_id:
            return None
        cursor = _held(parse_instant(data.get("cursor")))
        recent = {
            (str(pair[0]), int(pair[1]))
            for pair in data.get("recent") or []
            if isinstance(pair, list) and len(pair) == 2 and isinstance(pair[1], int)
        }
        return cls(tenant_id, cursor, recent, _held(parse_instant(data.get("floor"))))


def _held(ticks: Optional[int]) -> Optional[int]:
    return ticks if ticks is not None and in_range(ticks) else None


@dataclass
class RunStats:
    resource: str
    pages: int = 0
    events: int = 0
    skipped: int = 0
    without_key: int = 0
    bad_skipped: int = 0  # items of a page that could not be read and were left out
    bad_repaired: int = 0  # items written with U+FFFD in place of invalid bytes
    future: int = 0  # versions stamped past the present beyond the tolerance (written)
    out_of_range: int = 0  # versions whose stamp no DateTimeOffset can hold (written once)
    narrowed: bool = False  # ``recent`` was bounded: the overlap covers fewer versions than its seconds
    newest: Optional[int] = None
    stopped_early: bool = False
    expand_fallback: bool = False
    out_of_order: bool = False
    restarts: int = 0  # pages read by a fresh query from an advanced filter boundary
    tie_rechecks: int = 0


class Collection:
    """One run of one input over one resource."""

    def __init__(
        self,
        client: GraphClient,
        spec: ResourceSpec,
        state: CursorState,
        emit: Callable[[List[Version]], None],
        save: Callable[[CursorState], None],
        start_ticks: int,
        overlap_seconds: int = DEFAULT_OVERLAP_SECONDS,
        deadline: Optional[Callable[[], bool]] = None,
        logger: Optional[logging.Logger] = None,
        clock: Callable[[], int] = now_ticks,
        max_remembered: int = MAX_REMEMBERED_VERSIONS,
    ) -> None:
        self.client = client
        self.spec = spec
        self.state = state
        self.emit = emit
        self.save = save
        self.start_ticks = start_ticks
        self.overlap = overlap_seconds * TICKS_PER_SECOND
        self.deadline_passed = deadline or (lambda: False)
        self.log = logger or logging.getLogger(__name__)
        self.clock = clock
        self.max_remembered = max_remembered
        self.stats = RunStats(spec.name)
        self._last_seen: Optional[int] = None
        self._newest_held: Optional[int] = None  # the newest version written that is not past the present
        self._since = self._first_since()  # the filter boundary of the listing being read
        # The page whose instants were parsed last (by ``_follow``, for ``_take``), those instants,
        # and the positions whose stamp was out of range (held at the nearest bound).
        self._page_instants: Tuple[Optional[List[Dict[str, Any]]], List[Optional[int]], Set[int]] = (None, [], set())
        self._tie_members: Dict[int, Set[str]] = {}
        self._tie_until: Dict[int, int] = {}
        self._open_tie: Optional[int] = None
        self._unstable_ties: Set[int] = set()

    def _filter_params(self, since: int, expand: bool, until: Optional[int] = None) -> Dict[str, str]:
        # Bounded to what a DateTimeOffset literal can say (a cursor in year 1 minus the overlap).
        clause = f"lastUpdateDateTime ge {format_instant(min(max(since, MIN_TICKS), MAX_TICKS))}"
        if until is not None:
            clause += f" and lastUpdateDateTime le {format_instant(min(max(until, MIN_TICKS), MAX_TICKS))}"
        params = {"$filter": clause, "$orderby": "lastUpdateDateTime asc", "$top": str(self.spec.page_size)}
        if expand and self.spec.expand:
            params["$expand"] = self.spec.expand
        return params

    def params(self, expand: bool) -> Dict[str, str]:
        return self._filter_params(self._first_since(), expand)

    def _first_since(self) -> int:
        if self.state.cursor is None:
            return self.start_ticks
        since = self.state.cursor - self.overlap
        # Versions before ``floor`` were forgotten when ``recent`` was bounded: never read them again.
        return since if self.state.floor is None else max(since, self.state.floor)

    def run(self) -> RunStats:
        expand = bool(self.spec.expand)
        since = self._first_since()
        try:
            while True:
                try:
                    complete = self._page_through(since, expand)
                    break
                except GraphError as exc:
                    if not (expand and exc.status >= 500 and not isinstance(exc, MalformedResponse)):
                        raise
                    # Large tenants answer $expand=alerts with persistent 5xx; plain listing works.
                    # Restart from the boundary of the failed request: nothing unread lies before it.
                    expand = False
                    since = self._since
                    self.stats.expand_fallback = True
                    self.log.warning(
                        "expand_fallback resource=%s status=%s: listing %s without $expand=%s for the rest of this run",
                        self.spec.name,
                        exc.status,
                        self.spec.name,
                        self.spec.expand,
                    )
            if complete:
                self._recheck_unstable_ties(expand)
        except DeadlineReached as exc:
            self.stats.stopped_early = True
            self.log.warning(
                "run_deadline resource=%s pages=%d: %s", self.spec.name, self.stats.pages, str(exc).rstrip(".")
            )
            return self.stats
        if self.stats.out_of_order and not self.stats.stopped_early:
            self._advance(final=True)
            self.save(self.state)
        return self.stats

    def _follow(self, page: Page, expand: bool) -> Optional[NextRequest]:
        """What to read after ``page``: a fresh query from a later filter boundary where possible.

        Following Graph's ``$skip`` links is unsafe while alerts change: an alert updated after it
        was read leaves its place for the end of the listing, every later alert moves up one
        place, and the first alert of the next page slides into the page already read; the cursor
        then passes it for good. A query ``ge <newest instant on this page>`` has no offset to go
        stale: whatever is not yet read is at or after that instant. The versions at the instant
        itself are read twice and skipped as already written. Graph's own link is followed only
        when no boundary can be advanced: a page that is entirely one instant (more alerts share it
        than fit on a page) or a listing Graph did not sort.
        """
        if not page.next_link:
            return None
        instants = self._instants(page.items)
        stamps = [t for item, t in zip(page.items, instants) if t is not None and _has_id(item)]
        ascending = stamps == sorted(stamps) and (not stamps or stamps[0] >= self._since)
        if stamps and ascending and not self.stats.out_of_order and stamps[-1] > self._since:
            if self._open_tie is not None:
                # What was read by offset ran from the tie's instant to here: a re-read covers that span.
                self._tie_until[self._open_tie] = stamps[-1]
                self._open_tie = None
            self._since = stamps[-1]
            self.stats.restarts += 1
            return self.client.resource_url(self.spec.name), self._filter_params(self._since, expand)
        if stamps and ascending and stamps[-1] == self._since:
            # A run of versions that share one instant is wider than a page: only $skip can cross it.
            # Remember whom it held, to notice one of them being updated while we page through it.
            self._open_tie = self._since
            members = self._tie_members.setdefault(self._since, set())
            members.update(
                item_id_text(item.get("id"))
                for item, t in zip(page.items, instants)
                if t == self._since and _has_id(item)
            )
        return page.next_link, None

    def _page_through(self, since: int, expand: bool) -> bool:
        """Read the listing from ``since``; False when it stopped early at the deadline."""
        self._since = since
        fail_fast = EXPAND_FAIL_FAST if expand and self.spec.expand else frozenset()
        listing = self.client.pages(
            self.spec.name,
            self._filter_params(since, expand),
            follow=lambda page: self._follow(page, expand),
            fail_fast=fail_fast,
            recycle=True,  # a page's items are written (or skipped) before the next page is asked for
        )
        for page in listing:
            self._take(page.items, page.texts, page.bad)
            if page.next_link and self.deadline_passed():
                self.stats.stopped_early = True
                self.log.warning(
                    "run_deadline resource=%s pages=%d: stopping before the next page; the cursor is saved "
                    "and the next run continues from it",
                    self.spec.name,
                    self.stats.pages,
                )
                return False
        return True

    def _recheck_unstable_ties(self, expand: bool) -> None:
        """Read again, once, the span paged by offset across a page-wide tie in which a member was
        updated meanwhile.

        Inside a tie only ``$skip`` pages, so an update can make an unread version (of the tie, or
        just after it) slide onto a page already read (see ``_follow``); the cursor then passes it.
        The updated member's new version shows up later in the same listing, which is how the tie is
        known to be unstable; the span from the tie's instant to the next filter restart is read again.
        """
        for instant in sorted(self._unstable_ties):
            self.stats.tie_rechecks += 1
            self.log.warning(
                "tie_recheck resource=%s instant=%s: an alert sharing this instant with more than a page of others "
                "changed while it was read; reading that span again",
                self.spec.name,
                format_instant(instant),
            )
            self._since = instant
            until = self._tie_until.get(instant)  # None: the listing ended inside the tie's pages
            listing = self.client.pages(self.spec.name, self._filter_params(instant, expand, until=until))
            for page in listing:
                self._take(page.items, page.texts, page.bad, recheck=True)
        self._unstable_ties.clear()

    def _instants(self, items: List[Dict[str, Any]]) -> List[Optional[int]]:
        """Each item's lastUpdateDateTime in ticks, parsed once per page (``_follow``, then ``_take``).

        A stamp no DateTimeOffset can hold is held at the nearest bound (``MIN_TICKS``/``MAX_TICKS``)
        and its position remembered, for ``_take`` to say so."""
        cached_items, cached, _ = self._page_instants
        if cached_items is not items:
            cached = [parse_instant(item.get("lastUpdateDateTime")) for item in items]
            refused = {n for n, t in enumerate(cached) if t is not None and (t > MAX_TICKS or t < MIN_TICKS)}
            for n in refused:
                ticks = cached[n]
                cached[n] = MAX_TICKS if ticks is not None and ticks > MAX_TICKS else MIN_TICKS
            self._page_instants = (items, cached, refused)
        return cached

    def _take(
        self,
        items: List[Dict[str, Any]],
        texts: Optional[List[str]] = None,
        bad: Optional[List[BadItem]] = None,
        recheck: bool = False,
    ) -> None:
        batch: List[Version] = []
        written: List[Tuple[str, int]] = []
        instants = self._instants(items)
        refused = self._page_instants[2]
        # Once per item of a backfill: what the loop reads is held in locals.
        recent = self.state.recent
        watch_ties = bool(self._tie_members) and not recheck
        last_seen = self._last_seen
        repaired = {id(b.item): b for b in bad if b.repaired} if bad else {}
        now = self.clock()
        future = now + FUTURE_TOLERANCE_SECONDS * TICKS_PER_SECOND
        for position, (item, ticks, text) in enumerate(
            zip(items, instants, texts if texts is not None else [None] * len(items))
        ):
            key = item.get("id")
            if type(key) is not str:
                key = item_id_text(key)  # a JSON number: keyed by its text, as the incident store keys it
            if ticks is None or not key:
                # Written (nothing is dropped) but never allowed to move or stall the cursor. With an
                # instant but no usable id (null, true, an object), its content at that instant is
                # remembered instead, so the overlap does not write it again on every run.
                keyless = (_content_key(item, text), ticks) if ticks is not None else None
                if keyless is not None and keyless in recent:
                    self.stats.skipped += 1
                    continue
                self.stats.without_key += 1
                self.log.warning(
                    "item_without_key resource=%s has_id=%s has_lastUpdateDateTime=%s: written, %s",
                    self.spec.name,
                    bool(key),
                    ticks is not None,
                    "de-duplicated by its content" if keyless else "without de-duplication",
                )
                if keyless is not None:
                    recent.add(keyless)
                batch.append(Version(item, None, text))
                continue
            if watch_ties:
                for instant, members in self._tie_members.items():
                    if ticks > instant and key in members:
                        self._unstable_ties.add(instant)
            version = (key, ticks)
            if version in recent:
                self.stats.skipped += 1
                continue
            if last_seen is not None and ticks < last_seen and not self.stats.out_of_order and not recheck:
                self.stats.out_of_order = True
                self.log.warning(
                    "out_of_order resource=%s: Graph did not honour $orderby; the cursor moves only at the run's end",
                    self.spec.name,
                )
            if last_seen is None or ticks > last_seen:
                last_seen = ticks
            if refused and position in refused:
                self._log_odd_stamp(item, key, out_of_range=True)
            elif ticks > future:
                self._log_odd_stamp(item, key, out_of_range=False)
            if repaired and id(item) in repaired:
                self._log_bad_item(repaired[id(item)])
            batch.append(Version(item, ticks, text))
            written.append(version)
        for skipped in bad or ():
            if not skipped.repaired:
                self._forget_bad_item(skipped)
        self._last_seen = last_seen
        self._page_instants = (None, [], set())
        if batch:
            self.emit(batch)
        self.stats.pages += 1
        self.stats.events += len(batch)
        self.state.recent.update(written)
        for _, ticks in written:
            if self.stats.newest is None or ticks > self.stats.newest:
                self.stats.newest = ticks
            # (A stamp held at MIN_TICKS, before year 1 in UTC, is not an instant to resume from either.)
            if MIN_TICKS < ticks <= now and (self._newest_held is None or ticks > self._newest_held):
                self._newest_held = ticks
        if not self.stats.out_of_order:
            self._advance(final=False)
            self.save(self.state)

    def _log_odd_stamp(self, item: Dict[str, Any], key: str, out_of_range: bool) -> None:
        if out_of_range:
            self.stats.out_of_range += 1
            self.log.warning(
                "timestamp_out_of_range resource=%s id=%s lastUpdateDateTime=%s: no DateTimeOffset can hold this "
                "instant; the item is written once, its instant is not used for the cursor",
                self.spec.name,
                _quoted(key),
                _quoted(item.get("lastUpdateDateTime")),
            )
            return
        self.stats.future += 1
        self.log.warning(
            "item_in_future resource=%s id=%s lastUpdateDateTime=%s: stamped more than %d seconds past this host's "
            "clock; written, the cursor does not move past the present",
            self.spec.name,
            _quoted(key),
            _quoted(item.get("lastUpdateDateTime")),
            FUTURE_TOLERANCE_SECONDS,
        )

    def _log_bad_item(self, bad: BadItem) -> None:
        if bad.repaired:
            self.stats.bad_repaired += 1
            outcome = "written with U+FFFD in place of its invalid bytes"
        else:
            self.stats.bad_skipped += 1
            outcome = "skipped; the rest of the page is collected"
        self.log.warning(
            "bad_item resource=%s id=%s reason=%s position=%d: %s",
            self.spec.name,
            _quoted(bad.item_id),
            bad.reason,
            bad.position,
            outcome,
        )

    def _forget_bad_item(self, bad: BadItem) -> None:
        """Log an item left out of its page once per version: one whose ``id`` and instant could be
        read is remembered with the versions written (the overlap reads it again next run)."""
        ticks = parse_instant(bad.stamp)
        if not bad.item_id or ticks is None or not in_range(ticks):
            self._log_bad_item(bad)
            return
        if (bad.item_id, ticks) not in self.state.recent:
            self._log_bad_item(bad)
            self.state.recent.add((bad.item_id, ticks))

    def _advance(self, final: bool) -> None:
        # Never past the present: Graph can still stamp later versions before a future instant, so a
        # version stamped later than the input's clock when it was taken does not move the cursor.
        target = self._newest_held
        if target is None:
            self._bound_recent()
            return
        if self.state.cursor is not None and target <= self.state.cursor:
            self._bound_recent()
            return
        self.state.cursor = target
        floor = target - self.overlap
        self.state.recent = {pair for pair in self.state.recent if pair[1] >= floor}
        if self.state.floor is not None and self.state.floor <= floor:
            self.state.floor = None  # the overlap is whole again
        self._bound_recent()

    def _bound_recent(self) -> None:
        """Keep ``recent`` to ``max_remembered`` versions plus those at or after the cursor's instant
        (and after any page-wide tie still to be re-read): the oldest whole instants are forgotten and
        ``floor`` moves past them, so the next listing never reads them again."""
        recent, cursor = self.state.recent, self.state.cursor
        if len(recent) <= self.max_remembered or cursor is None:
            return
        protect = min([cursor, *self._tie_members])
        per_instant = Counter(ticks for _, ticks in recent if ticks < protect)
        kept = len(recent) - sum(per_instant.values())
        floor = protect
        for instant in sorted(per_instant, reverse=True):
            if kept + per_instant[instant] > self.max_remembered:
                break
            kept += per_instant[instant]
            floor = instant
        if not per_instant or floor == min(per_instant):
            return  # nothing to forget
        self.state.floor = floor if self.state.floor is None else max(floor, self.state.floor)
        self.state.recent = {pair for pair in recent if pair[1] >= floor}
        if not self.stats.narrowed:
            self.stats.narrowed = True
            self.log.warning(
                "overlap_narrowed resource=%s remembered=%d: more versions inside the %d-second overlap than the "
                "checkpoint keeps; the next listing starts at %s (late arrivals before it are not read again)",
                self.spec.name,
                len(self.state.recent),
                self.overlap // TICKS_PER_SECOND,
                format_instant(floor),
            )


def _content_key(item: Dict[str, Any], text: Optional[str]) -> str:
    """What stands for an item without a usable id in ``recent``: a digest of its JSON text (NUL
    first, which no Graph id starts with)."""
    if text is None:
        text = json.dumps(item, sort_keys=True, default=str)
    return "\x00sha256:" + hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:32]


def _quoted(value: Any) -> str:
    """A value from Graph, safe for one log line: JSON-quoted (control characters escaped), cut short."""
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return json.dumps(text[:128])


def _has_id(item: Dict[str, Any]) -> bool:
    key = item.get("id")
    return bool(key) if type(key) is str else bool(item_id_text(key))
