"""Lean summaries (issue 18): a summary that lists its alerts is read without indexing them, and the
cache answers exactly as the eager reading does.

The reference is the same ``IncidentCache`` with ``lean_summaries`` off. That is a fair reference:
with it off, ``_take_lean`` refuses every summary, so the lean state stays empty, every
``_index_lean`` finds nothing to do and every view takes the members' path; what remains is the
eager reading as it was before lean summaries (each listed alert indexed as an alert document dated
by its summary), which the other tests of ``test_incident_store.py`` hold to the store's rules.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Dict, List, Tuple

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from defender_lineage_core import incident_store as store
from defender_lineage_core.incident_store import (
    ALERT,
    INCIDENT,
    ORIGINS,
    IncidentCache,
    IncidentView,
    docs_from_alert,
    docs_from_incident,
)
from tests.unit.test_incident_store import OTHER, TENANT, FakeStore, alert

TENANTS = (TENANT, OTHER)
DOC_TENANTS = (TENANT, TENANT, TENANT, OTHER)  # mostly one tenant: documents meet more often
INCIDENT_IDS = ("1", "2", "3", "X", "x")  # "X" and "x": one incident, spelled two ways
# Mixed case (one alert), padded, empty and "null" ids (both skipped), and numbers.
ALERT_IDS = ("a1", "A1", "a2", " a3 ", "a4", "a5", "b1", "b2", "", "null", 7)
TIMES = (
    "2026-09-14T09:00:00Z",
    "2026-09-14T10:00:00Z",
    "2026-09-14T10:00:00.5Z",  # same second as the one above, later
    "2026-09-14T10:00:00.5000Z",  # the same instant written otherwise: ties
    "not a time",
    "",
)
SERVICES = ("microsoftDefenderForEndpoint", "microsoftDefenderForOffice365", "", "unknown", " padded ", None)
DETECTIONS = ("antivirus", "cloudAppSecurity", "", "null")


def _alert_key_text(tenant: str, aid: Any) -> str:
    return f"{tenant}:{str(aid).strip()}" if str(aid).strip() else ""


@st.composite
def summary_docs(draw: Any) -> Dict[str, Any]:
    """A summary as a writer or the rebuild search left it: listing its alerts or not, lists that
    do not line up, redirects, mixed-case keys, a tenant only in the key."""
    tenant = draw(st.sampled_from(DOC_TENANTS))
    iid = draw(st.sampled_from(INCIDENT_IDS))
    origin = draw(st.sampled_from(ORIGINS))
    doc: Dict[str, Any] = {
        "_key": f"incident:{tenant}:{iid.lower()}:{origin}",
        "doc_type": INCIDENT,
        "origin": origin,
        "tenant_id": draw(st.sampled_from([tenant, tenant.upper(), ""])),
        "incident_key": f"{tenant}:{iid}",
        "incident_id": iid,
        "last_update_date_time": draw(st.sampled_from(TIMES)),
        "title": draw(st.sampled_from(["", "first", "second"])),
        "severity": draw(st.sampled_from(["", "high"])),
        "status": draw(st.sampled_from(["active", "active", "redirected", "Redirected"])),
        "redirect_incident_id": draw(st.sampled_from(("", *INCIDENT_IDS))),
    }
    shape = draw(st.sampled_from(["listed"] * 6 + ["unlisted", "unlisted", "misaligned", "not lists"]))
    if shape != "unlisted":
        alerts = draw(
            st.lists(
                st.tuples(st.sampled_from(ALERT_IDS), st.sampled_from(SERVICES), st.sampled_from(DETECTIONS)),
                max_size=4,
            )
        )
        doc["alert_ids"] = [a for a, _, _ in alerts]
        doc["alert_service_sources"] = [s for _, s, _ in alerts]
        doc["alert_detection_sources"] = [d for _, _, d in alerts]
        if shape == "misaligned":
            doc["alert_service_sources"].append("extra")
        elif shape == "not lists":
            doc["alert_ids"] = ",".join(str(a) for a in doc["alert_ids"])
    return doc


@st.composite
def alert_docs(draw: Any) -> Dict[str, Any]:
    """An alert document naming an incident (or none): it may move a listed alert elsewhere."""
    tenant = draw(st.sampled_from(DOC_TENANTS))
    aid = draw(st.sampled_from([a for a in ALERT_IDS if str(a).strip()]))
    iid = draw(st.sampled_from(("", *INCIDENT_IDS)))
    origin = draw(st.sampled_from(ORIGINS))
    return {
        "_key": f"alert:{_alert_key_text(tenant, aid).lower()}:{origin}",
        "doc_type": ALERT,
        "origin": origin,
        "tenant_id": tenant,
        "incident_key": f"{tenant}:{iid}" if iid else "",
        "incident_id": iid,
        "alert_key": _alert_key_text(tenant, aid),
        "alert_id": aid,
        "last_update_date_time": draw(st.sampled_from(TIMES)),
        "service_source": draw(st.sampled_from(SERVICES)),
        "detection_source": draw(st.sampled_from(DETECTIONS)),
    }


def incident_listing(iid: str, *alert_ids: str, services: Tuple[str, ...] = ()) -> Dict[str, Any]:
    """A Graph incident at 10:00 with its alerts expanded (as of 09:00)."""
    alerts = [alert(a, iid, *services[n : n + 1]) for n, a in enumerate(alert_ids)]
    return {"id": iid, "tenantId": TENANT, "lastUpdateDateTime": "2026-09-14T10:00:00Z", "alerts": alerts}


DOCS = st.lists(st.one_of(summary_docs(), summary_docs(), alert_docs()), min_size=1, max_size=6)
ASKED_TENANTS = st.sampled_from((TENANT, OTHER, f" {TENANT.upper()} "))
INCIDENT_KEYS = st.lists(st.sampled_from([store.incident_key(t, i) for t in TENANTS for i in INCIDENT_IDS]), max_size=3)
ALERT_KEYS = st.lists(st.sampled_from([store.alert_key(t, str(a)) for t in TENANTS for a in ALERT_IDS]), max_size=2)
OPS = st.lists(
    st.one_of(
        st.tuples(st.just("add"), DOCS),
        st.tuples(st.just("add"), DOCS),  # three times: as likely as the three kinds of reading
        st.tuples(st.just("add"), DOCS),
        st.tuples(st.just("view"), ASKED_TENANTS, st.sampled_from(INCIDENT_IDS)),
        st.tuples(st.just("alert"), ASKED_TENANTS, st.sampled_from([str(a) for a in ALERT_IDS])),
        st.tuples(st.just("prefetch"), INCIDENT_KEYS, ALERT_KEYS),
    ),
    max_size=12,
)


def _readings(cache: IncidentCache) -> Tuple[Any, ...]:
    """Everything a reader can get out of the cache, for every incident and alert of the pools."""
    views = [cache.view(t, i) for t in TENANTS for i in INCIDENT_IDS]
    for view in views:  # built without IncidentView.__init__ (_view_of): the same instance as with it
        if view is not None:
            made = IncidentView(**{f.name: getattr(view, f.name) for f in dataclasses.fields(IncidentView)})
            assert vars(made) == vars(view) and made == view and hash(made) == hash(view)
    survivors = [cache.surviving_incident(t, i) for t in TENANTS for i in INCIDENT_IDS]
    incidents = {store.incident_key(t, i) for t in TENANTS for i in INCIDENT_IDS}
    request = cache._ask_alerts_of(incidents)  # before incident_of_alert indexes the lean incidents
    alerts = [cache.incident_of_alert(t, str(a)) for t in TENANTS for a in ALERT_IDS]
    return views, survivors, alerts, request.args, cache._docs, cache.generation


def _run(ops: List[Any], stored: List[Dict[str, Any]], max_docs: int, lean: bool) -> Tuple[List[Any], Any]:
    """Apply ``ops`` to a fresh cache; what each read gave, the store's requests, then the readings."""
    fake = FakeStore(stored)
    cache = IncidentCache(find=fake.find, max_docs=max_docs)
    cache.lean_summaries = lean
    seen: List[Any] = []
    for op in ops:
        if op[0] == "add":
            cache.add_docs(op[1])
            # every view after every change (views index nothing, so the lean state stays as it is)
            seen.append([cache.view(t, i) for t in TENANTS for i in INCIDENT_IDS])
        elif op[0] == "view":
            seen.append((cache.view(op[1], op[2]), cache.surviving_incident(op[1], op[2])))
        elif op[0] == "alert":
            seen.append(cache.incident_of_alert(op[1], op[2]))
        else:
            cache.prefetch(op[1], op[2])
            seen.append([[dataclasses.astuple(term) for term in terms] for terms in fake.terms])
    return seen, _readings(cache)


@settings(max_examples=400, deadline=None)
@given(OPS, st.lists(st.one_of(summary_docs(), alert_docs()), max_size=10), st.sampled_from([6, 20, 10_000]))
def test_lean_summaries_read_exactly_as_the_eager_reading(
    ops: List[Any], stored: List[Dict[str, Any]], max_docs: int
) -> None:
    # Interleaved reads matter: each may index some lean incidents and not others before more
    # documents come; a small max_docs makes prefetch start the cache again now and then.
    assert _run(ops, stored, max_docs, lean=True) == _run(ops, stored, max_docs, lean=False)


def _summary(iid: str, *alert_ids: str, updated: str = "2026-09-14T10:00:00Z") -> Dict[str, Any]:
    """The summary document of incident ``iid`` listing ``alert_ids`` (as the incidents input writes it)."""
    item = incident_listing(iid, *alert_ids)
    item["lastUpdateDateTime"] = updated
    return docs_from_incident(item, TENANT)[0]


def _alert_doc(aid: str, iid: str, updated: str) -> Dict[str, Any]:
    return docs_from_alert(alert(aid, iid, updated=updated), TENANT)[0]


# Each case is one a lean summary must not be taken in (and the rule of _take_lean that refuses it).
REFUSED = {
    # an alert naming the incident, newer than its summary: a member the columns do not hold
    "the incident has members": [_alert_doc("a9", "1", "2026-09-14T11:00:00Z"), _summary("1", "a1")],
    # a1 known as incident 2's: the summary moves it, so incident 2's view changes too
    "an alert is indexed": [_alert_doc("a1", "2", "2026-09-14T09:00:00Z"), _summary("1", "a1")],
    # a1 listed by lean incident 2: the newer summary of 1 takes it from there
    "an alert is lean elsewhere": [_summary("2", "a1"), _summary("1", "a1", updated="2026-09-14T11:00:00Z")],
    # one alert listed twice (two spellings): the second listing is compared with the first
    "an alert is listed twice": [_summary("1", "a1", "A1")],
}


@pytest.mark.parametrize("docs", list(REFUSED.values()), ids=list(REFUSED))
def test_summaries_the_lean_reading_refuses_read_as_the_eager_one(docs: List[Dict[str, Any]]) -> None:
    ops = [("add", docs[:1]), ("add", docs[1:])]
    assert _run(ops, [], 10_000, lean=True) == _run(ops, [], 10_000, lean=False)


def _rebuild_summary(iid: str, updated: str, **more: Any) -> Dict[str, Any]:
    """The rebuild search's summary: no alert lists."""
    item = {"id": iid, "tenantId": TENANT, "lastUpdateDateTime": updated, **more}
    return docs_from_incident(item, TENANT, "rebuild")[0]


# Summaries of an incident that already has one: (documents, whether incident 1 is lean after them).
BESIDE_ANOTHER = {
    # the rebuild's older summary changes nothing: still lean
    "an older summary without alerts after": (
        [_summary("1", "a1"), _rebuild_summary("1", "2026-09-14T09:00:00Z")],
        True,
    ),
    # the listing one is newer than the rebuild's: read lean
    "an older summary without alerts before": (
        [_rebuild_summary("1", "2026-09-14T09:00:00Z"), _summary("1", "a1")],
        True,
    ),
    # an older summary listing none (its list read, empty): read lean, that list forgotten
    "an older empty list before": (
        [_summary("1", updated="2026-09-14T09:00:00Z"), _summary("1", "a1", "a2")],
        True,
    ),
    # the listing one is older than the rebuild's: its alerts count, indexed, the summary does not
    "a newer summary without alerts before": (
        [_rebuild_summary("1", "2026-09-14T11:00:00Z"), _summary("1", "a1")],
        False,
    ),
    # a newer summary without alerts: the lean one is indexed, then replaced
    "a newer summary without alerts after": (
        [_summary("1", "a1"), _rebuild_summary("1", "2026-09-14T11:00:00Z", status="resolved")],
        False,
    ),
    # the same instant, more fields filled: the rebuild's wins the tie
    "a fuller summary without alerts at the same instant after": (
        [_summary("1", "a1"), _rebuild_summary("1", "2026-09-14T10:00:00Z", classification="truePositive")],
        False,
    ),
    # a newer listing summary replaces the lean one, an older one's alerts are dated by it
    "a newer listing summary after": (
        [_summary("1", "a1"), _summary("1", "a2", updated="2026-09-14T11:00:00Z")],
        False,
    ),
    "an older listing summary after": (
        [_summary("1", "a1"), _summary("1", "a2", updated="2026-09-14T09:00:00Z")],
        False,
    ),
}


@pytest.mark.parametrize("docs, lean", list(BESIDE_ANOTHER.values()), ids=list(BESIDE_ANOTHER))
def test_summaries_beside_another_of_their_incident_read_as_the_eager_one(
    docs: List[Dict[str, Any]], lean: bool
) -> None:
    ops = [("add", docs[:1]), ("add", docs[1:]), ("prefetch", [store.incident_key(TENANT, "1")], [])]
    assert _run(ops, [], 10_000, lean=True) == _run(ops, [], 10_000, lean=False)
    cache = IncidentCache(find=FakeStore().find)
    cache.add_docs(docs[:1])
    cache.add_docs(docs[1:])
    assert (store.incident_key(TENANT, "1") in cache._lean) is lean


def test_the_usual_summary_is_read_lean_and_indexed_when_an_alert_moves() -> None:
    # The case lean summaries are for: first summary of an incident, listing alerts nobody knows.
    services = ("microsoftDefenderForEndpoint", "microsoftDefenderForOffice365")
    listing = docs_from_incident(incident_listing("1", "a1", "a2", services=services), TENANT)[:1]
    cache = IncidentCache(find=FakeStore().find)
    cache.add_docs(listing)
    assert list(cache._lean) == [store.incident_key(TENANT, "1")] and not cache._alerts and not cache._members
    view = cache.view(TENANT, "1")
    assert view is not None and view.alert_ids == ("a1", "a2") and view.cross_product
    assert cache._lean  # a view reads the columns, indexes nothing
    # a2 moves to incident 2: the lean incident is indexed first, then the move counts
    cache.add_docs(docs_from_alert(alert("a2", "2", updated="2026-09-14T11:00:00Z"), TENANT))
    assert not cache._lean and not cache._lean_owner and set(cache._alerts) == {f"{TENANT}:a1", f"{TENANT}:a2"}
    moved = cache.view(TENANT, "1")
    assert moved is not None and moved.alert_ids == ("a1",) and not moved.cross_product
    assert cache.incident_of_alert(TENANT, "a2") == "2"


def test_a_summary_naming_a_known_alert_is_read_eagerly() -> None:
    cache = IncidentCache(find=FakeStore().find)
    cache.add_docs(docs_from_alert(alert("a1", "9"), TENANT))
    cache.add_docs(docs_from_incident(incident_listing("1", "a1"), TENANT)[:1])
    assert not cache._lean and cache.incident_of_alert(TENANT, "a1") == "1"


def test_a_view_shows_each_summary_field_as_its_own() -> None:
    summary = {f: f" {f} value " for f in store.INCIDENT_DOC_FIELDS}
    summary.update(doc_type=INCIDENT, incident_key=f"{TENANT}:1", incident_id="1", tenant_id=TENANT)
    summary.update(last_update_date_time="2026-09-14T10:00:00Z", status="active", redirect_incident_id="")
    cache = IncidentCache(find=FakeStore().find)
    cache.add_docs([summary])
    view = cache.view(TENANT, "1")
    assert view is not None
    shown = {f: getattr(view, f) for f in store._VIEW_SUMMARY_FIELDS}
    assert shown == {f: summary[f].strip() for f in shown} and len(shown) == 9


_VALUES = st.one_of(
    st.sampled_from([" a ", "null", " null ", "", "Null", None, True, 7, 1.5, [], {}]), st.text(max_size=6)
)


@given(st.lists(_VALUES, max_size=6))
def test_texts_of_a_list_are_each_values_text(values: List[Any]) -> None:
    # _texts strips a list of strings in one pass, and anything else value by value, as _text does
    assert store._texts(values) == [store._text(v) for v in values]
