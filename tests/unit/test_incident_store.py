"""The incident store: documents, versions, merge chains, tenants, the cache, enrichment, and the
rebuild search's agreement with the documents the inputs write."""

from __future__ import annotations

import configparser
import copy
import json
import re
from pathlib import Path
from typing import Any, List, Sequence

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from defender_lineage_core import incident_store as store
from defender_lineage_core.incident_store import (
    ALERT,
    ALERT_DOC_FIELDS,
    DOC_FIELDS,
    INCIDENT,
    INCIDENT_DOC_FIELDS,
    INCIDENT_OUTPUT_FIELDS,
    SUMMARY_ALERT_FIELDS,
    IncidentCache,
    StoreUnavailable,
    Term,
    docs_from_alert,
    docs_from_incident,
    docs_from_items,
    enrich,
    request_keys,
    store_query,
    terms_query,
)
from defender_lineage_core.lineage import place
from tests.fixture_paths import SAMPLES

REPO = Path(__file__).resolve().parents[2]
DEFAULT = REPO / "package" / "default"
TENANT = "4a1f0c2e-9b7d-4c3a-8e55-2f6d1b0a9c31"
OTHER = "0b7e5d1c-1111-4c3a-8e55-2f6d1b0a9c99"
ALERT_ID = "da638912345678901234_-1284567890"


def _sample(name: str) -> dict[str, Any]:
    return json.loads((SAMPLES / name).read_text(encoding="utf-8"))


class FakeStore:
    """A KV store in memory that answers store_query-shaped requests and counts them."""

    def __init__(self, docs: Sequence[dict[str, Any]] = ()) -> None:
        self.docs = [dict(d) for d in docs]
        self.requests: List[tuple[list[str], list[str]]] = []
        self.terms: List[List[Term]] = []
        self.fail: Exception | None = None

    def fetch(self, incident_keys: Sequence[str], alert_keys: Sequence[str]) -> list[dict[str, Any]]:
        self.requests.append((list(incident_keys), list(alert_keys)))
        if self.fail is not None:
            raise self.fail
        ik, ak = set(incident_keys), set(alert_keys)
        return [d for d in self.docs if d.get("incident_key") in ik or d.get("alert_key") in ak]

    def find(self, terms: Sequence[Term]) -> list[dict[str, Any]]:
        """As the KV store answers ``terms_query(terms)`` (the stand-in checks that equivalence)."""
        self.requests.append(([k for t in terms for k in t.incident_keys], [k for t in terms for k in t.alert_keys]))
        self.terms.append(list(terms))
        if self.fail is not None:
            raise self.fail
        return [d for d in self.docs if any(t.matches(d) for t in terms)]


def incident(
    iid: str, *, tenant: str = TENANT, updated: str = "2026-09-14T09:00:00Z", status: str = "active", **more: Any
) -> dict[str, Any]:
    item = {"id": iid, "tenantId": tenant, "displayName": f"incident {iid}", "severity": "high", "status": status}
    item.update(lastUpdateDateTime=updated, createdDateTime="2026-09-14T07:00:00Z", **more)
    return item


def alert(
    aid: str,
    iid: str,
    service: str = "microsoftDefenderForEndpoint",
    detection: str = "antivirus",
    *,
    tenant: str = TENANT,
    updated: str = "2026-09-14T09:00:00Z",
) -> dict[str, Any]:
    return {
        "id": aid,
        "incidentId": iid,
        "tenantId": tenant,
        "serviceSource": service,
        "detectionSource": detection,
        "lastUpdateDateTime": updated,
    }


def redirected(iid: str, target: str, **more: Any) -> dict[str, Any]:
    return incident(iid, status="redirected", redirectIncidentId=target, **more)


def cache_of(*docs: dict[str, Any]) -> tuple[IncidentCache, FakeStore]:
    fake = FakeStore(docs)
    return IncidentCache(fake.fetch), fake


def ik(iid: str, tenant: str = TENANT) -> str:
    return store.incident_key(tenant, iid)


# --- documents -----------------------------------------------------------------------------------


def test_alert_sample_gives_one_contribution_document() -> None:
    item = _sample("alert_v2.json")
    [doc] = docs_from_alert(item, TENANT)
    assert tuple(doc) == ALERT_DOC_FIELDS
    assert doc["_key"] == f"alert:{TENANT}:{ALERT_ID}:alerts"
    assert doc["doc_type"] == ALERT and doc["origin"] == "alerts"
    assert doc["incident_key"] == f"{TENANT}:31337" and doc["incident_id"] == "31337"
    assert doc["alert_key"] == f"{TENANT}:{ALERT_ID}" and doc["alert_id"] == ALERT_ID
    assert doc["service_source"] == "microsoftDefenderForEndpoint"
    assert doc["detection_source"] == "microsoftDefenderForEndpoint"
    assert doc["last_update_date_time"] == item["lastUpdateDateTime"]
    # The alert's own title, severity and status are not the incident's: no summary field at all.
    assert not {"title", "severity", "status", "assigned_to"} & set(doc)
    assert all(isinstance(v, str) for v in doc.values())


def test_incident_sample_gives_summary_and_its_alerts() -> None:
    item = _sample("incident.json")
    docs = docs_from_incident(item, TENANT)
    summary, *alerts = docs
    # Expanded alerts: the summary also lists them (issue 18), so a reader needs no alert document.
    assert tuple(summary) == INCIDENT_DOC_FIELDS + SUMMARY_ALERT_FIELDS
    assert summary["alert_ids"] == [a["alert_id"] for a in alerts]
    assert summary["alert_service_sources"] == [a["service_source"] for a in alerts]
    assert summary["alert_detection_sources"] == [a["detection_source"] for a in alerts]
    assert alerts and all(tuple(d) == ALERT_DOC_FIELDS for d in alerts)
    assert summary["_key"] == f"incident:{TENANT}:31337:incidents"
    assert summary["doc_type"] == INCIDENT and summary["incident_key"] == f"{TENANT}:31337"
    assert summary["title"] == item["displayName"]
    assert (summary["severity"], summary["status"]) == ("high", "inProgress")
    assert (summary["classification"], summary["determination"]) == ("truePositive", "malware")
    assert summary["assigned_to"] == "secops-tier1@contoso.com"
    assert summary["created_date_time"] == item["createdDateTime"]
    assert summary["last_update_date_time"] == item["lastUpdateDateTime"]
    assert summary["incident_web_url"] == item["incidentWebUrl"]
    assert summary["redirect_incident_id"] == ""  # JSON null
    assert [a["alert_id"] for a in alerts] == [a["id"] for a in item["alerts"]]
    assert {a["origin"] for a in alerts} == {"incidents"}
    assert {a["incident_key"] for a in alerts} == {f"{TENANT}:31337"}
    assert sorted(a["service_source"] for a in alerts) == [
        "microsoftDefenderForEndpoint",
        "microsoftDefenderForOffice365",
    ]


def test_expanded_alert_without_incident_id_takes_the_incidents() -> None:
    item = incident(
        "7", alerts=[{"id": "a1", "serviceSource": "OfficeATP", "lastUpdateDateTime": "2026-01-01T00:00:00Z"}]
    )
    _, doc = docs_from_incident(item, TENANT)
    assert doc["incident_id"] == "7" and doc["incident_key"] == ik("7")
    assert doc["service_source"] == "microsoftDefenderForOffice365"  # legacy token canonicalised


def test_sources_are_canonical_and_inferred() -> None:
    [doc] = docs_from_alert(alert("a1", "1", service="", detection="WindowsDefenderAv"), TENANT)
    assert (doc["service_source"], doc["detection_source"]) == ("microsoftDefenderForEndpoint", "antivirus")
    [doc] = docs_from_alert(alert("a2", "1", service="SomethingNew", detection="NewThing"), TENANT)
    assert (doc["service_source"], doc["detection_source"]) == ("SomethingNew", "NewThing")


def test_keys_are_per_tenant_and_lower_case() -> None:
    [doc] = docs_from_alert(alert("DA-ABC", "9"), TENANT.upper())
    assert doc["tenant_id"] == TENANT and doc["alert_key"] == f"{TENANT}:da-abc" and doc["alert_id"] == "DA-ABC"
    [doc] = docs_from_alert(alert("a", "9", tenant=OTHER), "")  # the item's tenant when the input has none
    assert doc["tenant_id"] == OTHER


@pytest.mark.parametrize("item", [{}, {"id": None}, {"id": ""}, "not a dict", None, {"id": {"x": 1}}])
def test_items_without_an_id_give_nothing(item: Any) -> None:
    assert docs_from_alert(item, TENANT) == []
    assert docs_from_incident(item, TENANT) == []


def test_items_without_a_tenant_give_nothing() -> None:
    assert docs_from_alert({"id": "a"}, "") == []
    assert docs_from_incident({"id": "1"}, "") == []


def test_docs_from_items_dispatches_on_the_resource() -> None:
    assert [d["doc_type"] for d in docs_from_items("alerts_v2", [alert("a", "1"), alert("b", "1")], TENANT)] == [
        ALERT,
        ALERT,
    ]
    assert [d["doc_type"] for d in docs_from_items("incidents", [incident("1")], TENANT)] == [INCIDENT]
    assert docs_from_items("runHuntingQuery", [{"id": "x"}], TENANT) == []


def test_store_query_shapes() -> None:
    assert store_query([], []) == {}
    assert store_query(["t:2", "t:1", "t:1", ""]) == {"incident_key": {"$in": ["t:1", "t:2"]}}
    assert store_query([], ["t:a"]) == {"alert_key": {"$in": ["t:a"]}}
    assert store_query(["t:1"], ["t:a"]) == {
        "$or": [{"incident_key": {"$in": ["t:1"]}}, {"alert_key": {"$in": ["t:a"]}}]
    }


# --- versions --------------------------------------------------------------------------------------


@pytest.mark.parametrize("newer_first", [True, False])
def test_an_older_summary_never_hides_a_newer_one(newer_first: bool) -> None:
    old = docs_from_incident(incident("1", status="active", updated="2026-09-14T09:00:00.9Z"), TENANT)
    # Graph trims trailing zeros: ".10Z" is later than ".9Z" as an instant, earlier as text.
    new = docs_from_incident(incident("1", status="resolved", updated="2026-09-14T09:00:01.1Z"), TENANT)
    cache, _ = cache_of()
    cache.add_docs(new + old if newer_first else old + new)
    view = cache.view(TENANT, "1")
    assert view is not None and view.status == "resolved"


def test_newest_wins_across_writers() -> None:
    from_rebuild = docs_from_incident(
        incident("1", status="resolved", updated="2026-09-14T10:00:00Z"), TENANT, "rebuild"
    )
    from_input = docs_from_incident(incident("1", status="active", updated="2026-09-14T09:00:00Z"), TENANT)
    assert from_rebuild[0]["_key"] != from_input[0]["_key"]  # each writer owns its documents
    cache, _ = cache_of(*from_input, *from_rebuild)
    cache.prefetch([ik("1")])
    view = cache.view(TENANT, "1")
    assert view is not None and view.status == "resolved"


def test_an_alert_moved_to_another_incident_counts_only_there() -> None:
    docs = docs_from_alert(alert("a1", "1", updated="2026-09-14T09:00:00Z"), TENANT)
    docs += docs_from_alert(alert("a1", "2", updated="2026-09-14T09:05:00Z"), TENANT, "incidents")
    docs += docs_from_incident(incident("1"), TENANT) + docs_from_incident(incident("2"), TENANT)
    cache, _ = cache_of(*docs)
    cache.prefetch([ik("1"), ik("2")])
    one, two = cache.view(TENANT, "1"), cache.view(TENANT, "2")
    assert one is not None and one.alert_ids == ()
    assert two is not None and two.alert_ids == ("a1",)


@settings(max_examples=60, deadline=None)
@given(st.randoms(use_true_random=False))
def test_views_do_not_depend_on_document_order(rnd: Any) -> None:
    docs = []
    for minute, status in ((1, "active"), (3, "inProgress"), (2, "resolved")):
        updated = f"2026-09-14T09:0{minute}:00Z"
        docs += docs_from_incident(incident("5", status=status, updated=updated), TENANT, rnd.choice(store.ORIGINS))
        docs += docs_from_alert(alert("x", "5", updated=updated), TENANT, rnd.choice(store.ORIGINS))
    reference, _ = cache_of()
    reference.add_docs(docs)
    shuffled = list(docs)
    rnd.shuffle(shuffled)
    other, _ = cache_of()
    other.add_docs(shuffled)
    assert other.view(TENANT, "5") == reference.view(TENANT, "5")
    view = reference.view(TENANT, "5")
    assert view is not None and view.status == "inProgress" and view.alert_ids == ("x",)


# --- merges --------------------------------------------------------------------------------------


def chain_docs() -> list[dict[str, Any]]:
    """A -> B -> C: incident 101 merged into 102, merged into 103, which holds alerts of two products."""
    docs = docs_from_incident(redirected("101", "102"), TENANT)
    docs += docs_from_incident(redirected("102", "103"), TENANT)
    docs += docs_from_incident(incident("103", displayName="the survivor", severity="medium"), TENANT)
    docs += docs_from_alert(alert("a1", "103", "microsoftDefenderForEndpoint", "smartScreen"), TENANT)
    docs += docs_from_alert(
        alert("a2", "103", "microsoftDefenderForOffice365", "microsoftDefenderForOffice365"), TENANT
    )
    docs += docs_from_alert(alert("a3", "101", "microsoftDefenderForIdentity", "microsoftDefenderForIdentity"), TENANT)
    return docs


def test_document_shapes_are_ordered_parts_of_the_lookup_fields() -> None:
    for shape in (ALERT_DOC_FIELDS, INCIDENT_DOC_FIELDS):
        assert list(shape) == [f for f in DOC_FIELDS if f in shape]
    assert set(ALERT_DOC_FIELDS) | set(INCIDENT_DOC_FIELDS) == set(DOC_FIELDS)


def test_documents_padded_as_the_rebuild_writes_them_enrich_the_same() -> None:
    # The rebuild search writes every field ("" where it does not apply); the inputs leave those out.
    padded = [{**dict.fromkeys(DOC_FIELDS, ""), **doc} for doc in chain_docs()]
    records = [
        alert_record(alert("a3", "101", "microsoftDefenderForIdentity", "microsoftDefenderForIdentity")),
        alert_record(alert("a1", "103", "microsoftDefenderForEndpoint", "smartScreen")),
        {"_raw": json.dumps(redirected("101", "102")), "sourcetype": "ms:defender:graph:incident"},
    ]
    results = []
    for docs in (chain_docs(), padded):
        cache, _ = cache_of(*docs)
        out = []
        for record in records:
            fields = place(record)
            key, akey = request_keys(fields)
            cache.prefetch([key], [akey])
            out.append((enrich(fields, cache), fields["incident_id"], fields["lineage_path"]))
        results.append(out)
    slim, full = results
    assert slim == full
    assert slim[0][0]["incident_title"] == "the survivor" and slim[1][0]["incident_alert_count"] == "2"


def test_three_incident_merge_chain_resolves_to_the_last() -> None:
    cache, fake = cache_of(*chain_docs())
    cache.prefetch([ik("101")])
    assert len(fake.requests) == 3  # 101, then its target 102, then 103: follow-ups only for merges
    view = cache.view(TENANT, "101")
    assert view is not None
    assert (view.incident_id, view.original_id, view.chain) == ("103", "101", ("101", "102", "103"))
    assert view.merged and view.found and view.title == "the survivor" and view.severity == "medium"
    assert view.alert_ids == ("a1", "a2")  # the survivor's own alerts
    assert view.cross_product
    assert cache.surviving_incident(TENANT, "101") == "103"
    assert cache.surviving_incident(TENANT, "102") == "103"
    assert cache.surviving_incident(TENANT, "103") is None
    cache.prefetch([ik("101"), ik("102"), ik("103")])
    assert len(fake.requests) == 3  # all cached now


def test_chain_into_an_unknown_incident_names_the_target() -> None:
    cache, _ = cache_of(*docs_from_incident(redirected("1", "2"), TENANT))
    cache.prefetch([ik("1")])
    view = cache.view(TENANT, "1")
    assert view is not None and view.incident_id == "2" and not view.found
    assert view.output_fields()["incident_title"] == "" and view.output_fields()["incident_alert_count"] == ""


def test_merge_cycles_stop() -> None:
    docs = docs_from_incident(redirected("1", "2"), TENANT) + docs_from_incident(redirected("2", "3"), TENANT)
    docs += docs_from_incident(redirected("3", "1"), TENANT)
    cache, fake = cache_of(*docs)
    cache.prefetch([ik("1")])
    assert len(fake.requests) == 3
    view = cache.view(TENANT, "1")
    assert view is not None and view.incident_id == "1" and not view.merged
    assert "cycle 1 > 2 > 3 > 1" in view.warning
    assert cache.surviving_incident(TENANT, "1") is None
    self_loop, _ = cache_of(*docs_from_incident(redirected("9", "9"), TENANT))
    self_loop.prefetch([ik("9")])
    assert self_loop.surviving_incident(TENANT, "9") is None


def test_long_chains_are_bounded() -> None:
    docs = [d for n in range(40) for d in docs_from_incident(redirected(str(n), str(n + 1)), TENANT)]
    fake = FakeStore(docs)
    cache = IncidentCache(fake.fetch, max_chain=5)
    cache.prefetch([ik("0")])
    assert len(fake.requests) <= 6
    view = cache.view(TENANT, "0")
    assert view is not None and view.warning and int(view.incident_id) <= 6


# --- tenants and products ------------------------------------------------------------------------


def test_two_tenants_with_the_same_incident_id_stay_apart() -> None:
    docs = docs_from_incident(incident("42", displayName="ours"), TENANT)
    docs += docs_from_incident(incident("42", tenant=OTHER, displayName="theirs", severity="low"), OTHER)
    docs += docs_from_alert(alert("a", "42"), TENANT)
    docs += docs_from_alert(alert("b", "42", "microsoftDefenderForIdentity", tenant=OTHER), OTHER)
    docs += docs_from_alert(alert("c", "42", "microsoftDefenderForCloudApps", tenant=OTHER), OTHER)
    cache, fake = cache_of(*docs)
    cache.prefetch([ik("42"), ik("42", OTHER)])
    assert len(fake.requests) == 1
    ours, theirs = cache.view(TENANT, "42"), cache.view(OTHER, "42")
    assert ours is not None and theirs is not None
    assert (ours.title, ours.alert_ids, ours.cross_product) == ("ours", ("a",), False)
    assert (theirs.title, theirs.severity, theirs.alert_ids, theirs.cross_product) == (
        "theirs",
        "low",
        ("b", "c"),
        True,
    )
    assert cache.view("", "42") is None


def test_cross_product_ignores_unknown_services() -> None:
    docs = docs_from_incident(incident("1"), TENANT)
    docs += docs_from_alert(alert("a", "1", "microsoftDefenderForEndpoint"), TENANT)
    docs += docs_from_alert(alert("b", "1", "unknownFutureValue"), TENANT)
    docs += docs_from_alert(alert("c", "1", "microsoftDefenderForEndpoint", "smartScreen"), TENANT)
    cache, _ = cache_of(*docs)
    cache.prefetch([ik("1")])
    view = cache.view(TENANT, "1")
    assert view is not None and not view.cross_product
    fields = view.output_fields()
    assert tuple(fields) == INCIDENT_OUTPUT_FIELDS
    assert fields["incident_alert_count"] == "3" and fields["incident_cross_product"] == "false"
    assert fields["incident_service_sources"] == ["microsoftDefenderForEndpoint", "unknownFutureValue"]
    assert fields["incident_detection_sources"] == ["antivirus", "smartScreen"]


# --- the cache -----------------------------------------------------------------------------------


def test_one_request_per_chunk_and_none_for_repeats() -> None:
    docs = [d for n in range(50) for d in docs_from_incident(incident(str(n)), TENANT)]
    cache, fake = cache_of(*docs)
    cache.prefetch([ik(str(n)) for n in range(30)] + [ik("999")])  # 999 is unknown to the store
    assert len(fake.requests) == 1
    cache.prefetch([ik(str(n)) for n in range(30)] + [ik("999")])
    assert len(fake.requests) == 1  # found and missing alike are remembered
    cache.prefetch([ik(str(n)) for n in range(25, 50)])
    assert len(fake.requests) == 2 and len(fake.requests[1][0]) == 20  # only the new ones
    assert cache.view(TENANT, "999") is None


def test_a_failing_store_is_asked_once() -> None:
    cache, fake = cache_of()
    fake.fail = ConnectionRefusedError(111, "Connection refused")
    with pytest.raises(StoreUnavailable, match="Connection refused"):
        cache.prefetch([ik("1")])
    assert not cache.available
    cache.prefetch([ik("2")])  # silent, and no request
    cache.prefetch([ik("3")], [store.alert_key(TENANT, "a")])
    assert len(fake.requests) == 1


def test_the_cache_is_bounded() -> None:
    docs = [d for n in range(30) for d in docs_from_incident(incident(str(n)), TENANT)]
    fake = FakeStore(docs)
    cache = IncidentCache(fake.fetch, max_docs=10)
    cache.prefetch([ik(str(n)) for n in range(20)])
    cache.prefetch([ik(str(n)) for n in range(20, 30)])  # starts again before this
    cache.prefetch([ik("0")])
    assert len(fake.requests) == 3
    assert cache.view(TENANT, "0") is not None


# --- enrichment of placed events -----------------------------------------------------------------


def alert_record(item: dict[str, Any]) -> dict[str, Any]:
    return {
        "_raw": json.dumps(item),
        "sourcetype": "ms:defender:graph:alert",
        "source": f"ms_graph://{TENANT}/security/alerts_v2",
    }


def test_alert_of_a_merged_incident_moves_to_the_survivor() -> None:
    cache, _ = cache_of(*chain_docs())
    record = alert_record(alert("a3", "101", "microsoftDefenderForIdentity", "microsoftDefenderForIdentity"))
    fields = place(record)
    key, akey = request_keys(fields)
    assert (key, akey) == (ik("101"), "")
    cache.prefetch([key])
    extra = enrich(fields, cache)
    assert fields["incident_id"] == "103" and fields["incident_id_original"] == "101"
    assert fields["lineage_path"].startswith("incident:103 > microsoftDefenderForIdentity")
    assert extra["incident_title"] == "the survivor" and extra["incident_alert_count"] == "2"
    # the same as the core's own seam would place it
    seam = place(record, incidents=cache)
    assert {k: fields[k] for k in ("incident_id", "incident_id_original", "lineage_path")} == {
        k: seam[k] for k in ("incident_id", "incident_id_original", "lineage_path")
    }


def test_incident_events_follow_the_store_past_their_own_redirect() -> None:
    cache, _ = cache_of(*chain_docs())
    record = {"_raw": json.dumps(redirected("101", "102")), "sourcetype": "ms:defender:graph:incident"}
    fields = place(record)
    assert (fields["incident_id"], fields["incident_id_original"]) == ("102", "101")
    cache.prefetch([request_keys(fields)[0]])
    enrich(fields, cache)
    assert (fields["incident_id"], fields["incident_id_original"]) == ("103", "101")
    assert fields["lineage_path"] == "incident:103 (merged from 101)"
    unmerged = place({"_raw": json.dumps(incident("102")), "sourcetype": "ms:defender:graph:incident"})
    enrich(unmerged, cache)  # the event still says active; the store knows it was merged
    assert (unmerged["incident_id"], unmerged["incident_id_original"]) == ("103", "102")
    assert unmerged["lineage_path"] == "incident:103 (merged from 102)"
    assert (
        unmerged["lineage_path"]
        == place({"_raw": json.dumps(incident("102")), "sourcetype": "ms:defender:graph:incident"}, cache)[
            "lineage_path"
        ]
    )


def test_hunting_rows_get_their_alerts_incident() -> None:
    cache, fake = cache_of(*chain_docs())
    row = {"AlertId": "a1", "ServiceSource": "Microsoft Defender for Endpoint", "DetectionSource": "EDR"}
    record = {
        "_raw": json.dumps(row),
        "sourcetype": "ms:defender:graph:hunting",
        "source": f"ms_graph://{TENANT}/security/runHuntingQuery/q1",
    }
    fields = place(record)
    assert fields["lineage_path"].startswith("? > ")
    key, akey = request_keys(fields)
    assert (key, akey) == ("", store.alert_key(TENANT, "a1"))
    cache.prefetch([], [akey])
    assert len(fake.requests) == 2  # the alert, then the incident it names (not in this chunk)
    extra = enrich(fields, cache)
    assert fields["incident_id"] == "103" and fields["incident_id_original"] == ""
    assert (
        fields["lineage_path"]
        == "incident:103 > microsoftDefenderForEndpoint > microsoftDefenderForEndpoint > alert:a1 > hunting:q1"
    )
    assert extra["incident_title"] == "the survivor"


def test_enrich_without_a_store_or_a_tenant_adds_empty_fields() -> None:
    fields = place(alert_record(alert("a", "1")))
    before = copy.deepcopy(fields)
    assert enrich(fields, None) == dict.fromkeys(INCIDENT_OUTPUT_FIELDS, "")
    cache, _ = cache_of()
    cache.prefetch([request_keys(fields)[0]])
    assert enrich(fields, cache) == dict.fromkeys(INCIDENT_OUTPUT_FIELDS, "")
    assert fields == before
    no_tenant = place(
        {"_raw": json.dumps({"id": "a", "incidentId": "1", "serviceSource": "x", "detectionSource": "y"})}
    )
    assert request_keys(no_tenant) == ("", "")


def test_a_cycle_is_reported_on_the_event() -> None:
    docs = docs_from_incident(redirected("1", "2"), TENANT) + docs_from_incident(redirected("2", "1"), TENANT)
    cache, _ = cache_of(*docs)
    fields = place(alert_record(alert("a", "1")))
    cache.prefetch([request_keys(fields)[0]])
    enrich(fields, cache)
    assert fields["incident_id"] == "1" and "merge cycle" in fields["lineage_warning"]


# --- the rebuild search, the lookup and the collection agree with the documents -------------------


def _conf(name: str) -> configparser.RawConfigParser:
    text = (DEFAULT / name).read_text(encoding="utf-8").replace("\\\n", " ")
    parser = configparser.RawConfigParser(strict=True, interpolation=None, delimiters=("=",), comment_prefixes=("#",))
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_string(text)
    return parser


REBUILD = "TA-defender-lineage - Rebuild incident store"


def _rebuild_search() -> str:
    return _conf("savedsearches.conf")[REBUILD]["search"]


def test_rebuild_search_writes_the_document_fields() -> None:
    search = _rebuild_search()
    stages = [s.strip() for s in search.split(" | ")]
    table = [s for s in stages if s.startswith("table ")]
    assert len(table) == 1
    assert tuple(table[0].split()[1:]) == DOC_FIELDS
    assigned = set(re.findall(r"(?:eval |, )([A-Za-z_]+)=", search))
    assert set(DOC_FIELDS) <= assigned, set(DOC_FIELDS) - assigned
    last = stages[-1].split()
    assert last[0] == "outputlookup" and store.LOOKUP in last
    assert "append=true" in last and "key_field=_key" in last


def test_rebuild_search_builds_the_same_keys() -> None:
    search = _rebuild_search()
    assert 'sourcetype="ms:defender:graph:incident"' in search and 'sourcetype="ms:defender:graph:alert"' in search
    assert 'origin="rebuild"' in search
    assert 'store_key=doc_type.":".if(doc_type=="incident", incident_key, alert_key).":".origin' in search
    assert 'tenant_id.":".lower(incident_id)' in search and 'tenant_id.":".lower(alert_id)' in search
    assert "dedup store_key" in search and "eval _key=store_key" in search
    # the same rule in Python
    [doc] = docs_from_alert(alert("DA-1", "7"), TENANT.upper(), store.ORIGIN_REBUILD)
    assert doc["_key"] == f"{doc['doc_type']}:{doc['alert_key']}:{doc['origin']}" == f"alert:{TENANT}:da-1:rebuild"
    [doc] = docs_from_incident(incident("7"), TENANT, store.ORIGIN_REBUILD)
    assert doc["_key"] == f"{doc['doc_type']}:{doc['incident_key']}:{doc['origin']}"


def test_rebuild_search_ships_disabled_and_scheduled() -> None:
    stanza = _conf("savedsearches.conf")[REBUILD]
    assert stanza["disabled"] == "1" and stanza["enableSched"] == "1"
    # It reads what was indexed since its previous run (an overlapping index-time window, checked in
    # test_searches.py); the event-time range only bounds the buckets searched.
    assert stanza["cron_schedule"] and stanza["dispatch.earliest_time"] == "-7d@h"
    assert "_index_earliest=" in stanza["search"]
    assert "heavy forwarder" in stanza["description"]


def test_lookup_and_collection_hold_the_document_fields() -> None:
    lookup = _conf("transforms.conf")[store.LOOKUP]
    assert lookup["external_type"] == "kvstore" and lookup["collection"] == store.COLLECTION
    assert tuple(f.strip() for f in lookup["fields_list"].split(",")) == DOC_FIELDS
    collections = _conf("collections.conf")
    assert "ta_defender_lineage_checkpoints" in collections
    declared = {k[len("field.") :]: v for k, v in collections[store.COLLECTION].items() if k.startswith("field.")}
    assert set(declared) == set(DOC_FIELDS) - {"_key"} and set(declared.values()) == {"string"}


_IDS = st.sampled_from(["1", "2", "3", "4", "x:y", " 5 ", ""])
_DOCS = st.lists(
    st.fixed_dictionaries(
        {
            "doc_type": st.sampled_from([INCIDENT, ALERT, "other", ""]),
            "incident_id": _IDS,
            "alert_id": _IDS,
            "status": st.sampled_from(["redirected", "Redirected", "active", "", None]),
            "redirect_incident_id": st.one_of(_IDS, st.none(), st.integers()),
            "last_update_date_time": st.one_of(st.text(max_size=30), st.just("2026-09-14T09:00:00Z"), st.none()),
            "service_source": st.one_of(st.text(max_size=10), st.none()),
            "tenant": st.sampled_from([TENANT, OTHER]),
        }
    ),
    max_size=25,
)


@settings(max_examples=150, deadline=None)
@given(_DOCS, st.lists(st.tuples(st.sampled_from([TENANT, OTHER, ""]), _IDS, _IDS), min_size=1, max_size=8))
def test_random_stores_and_events_never_break_enrichment(specs: list[dict[str, Any]], events: list[Any]) -> None:
    docs = []
    for spec in specs:
        tenant = spec.pop("tenant")
        doc = dict.fromkeys(DOC_FIELDS, "")
        doc.update(spec)
        doc["incident_key"] = store.incident_key(tenant, str(spec["incident_id"]))
        doc["alert_key"] = store.alert_key(tenant, str(spec["alert_id"]))
        doc["tenant_id"] = tenant
        docs.append(doc)
    fake = FakeStore(docs)
    cache = IncidentCache(fake.fetch, max_chain=4)
    placed = []
    for tenant, incident_id, alert_id in events:
        fields = dict.fromkeys(store.INCIDENT_OUTPUT_FIELDS, "")
        fields.update(
            lineage_layer="detection",
            tenant_id=tenant,
            incident_id=incident_id.strip(),
            alert_id=alert_id.strip(),
            incident_id_original="",
            lineage_path=f"incident:{incident_id.strip()} > s > d > alert:{alert_id.strip()}",
            lineage_warning="",
        )
        placed.append(fields)
    keys = [request_keys(f) for f in placed]
    cache.prefetch([k for k, _ in keys], [a for _, a in keys])
    assert len(fake.requests) <= 1 + 4 + 1
    for fields in placed:
        extra = enrich(fields, cache)
        assert tuple(extra) == INCIDENT_OUTPUT_FIELDS
        assert isinstance(extra["incident_service_sources"], (list, str))
        if fields["incident_id_original"]:
            assert fields["incident_id"] != fields["incident_id_original"]


def test_a_view_asked_again_follows_documents_added_since() -> None:
    # The cache remembers views by the (tenant, id) an event gave, unnormalised: new documents
    # must still be seen, and the same incident asked with other spelling must get the same view.
    cache, _ = cache_of()
    assert cache.view(TENANT, "7") is None
    cache.add_docs(docs_from_incident(incident("7", alerts=[alert("a1", "7")]), TENANT))
    view = cache.view(TENANT, "7")
    assert view is not None and view.found and view.alert_count == 1
    assert cache.view(f" {TENANT.upper()} ", " 7 ") == view
    cache.add_docs(docs_from_alert(alert("a2", "7", "microsoftDefenderForOffice365"), TENANT))
    again = cache.view(TENANT, "7")
    assert again is not None and again.alert_count == 2 and again.cross_product


# --- summaries that list their alerts (issue 18) ---------------------------------------------------


def finder_of(*docs: dict[str, Any]) -> tuple[IncidentCache, FakeStore]:
    fake = FakeStore(docs)
    return IncidentCache(find=fake.find), fake


def expanded(iid: str, alerts: list[dict[str, Any]], **more: Any) -> dict[str, Any]:
    return incident(iid, updated=more.pop("updated", "2026-09-14T10:00:00Z"), alerts=alerts, **more)


def _answered(fake: FakeStore) -> list[str]:
    """The _key of every document the fake store answered, over all requests."""
    return [d["_key"] for terms in fake.terms for d in fake.docs if any(t.matches(d) for t in terms)]


def test_a_summary_listing_its_alerts_is_the_one_document_read() -> None:
    # As in a deployment running both inputs: the incidents input's summary (alerts expanded) and
    # its alert documents, the alerts input's alert documents, all older than the summary.
    alerts = [alert(f"a{n}", "1", updated="2026-09-14T09:0{n}:00Z") for n in range(5)]
    alerts[1]["serviceSource"] = "microsoftDefenderForOffice365"
    docs = docs_from_incident(expanded("1", alerts), TENANT)
    docs += [d for a in alerts for d in docs_from_alert(a, TENANT)]
    cache, fake = finder_of(*docs)
    cache.prefetch([ik("1")])
    assert _answered(fake) == [f"incident:{ik('1')}:incidents"]  # 1 of 11 documents
    assert len(fake.requests) == 2  # summaries, then alert versions newer than them (none)
    view = cache.view(TENANT, "1")
    assert view is not None and view.alert_ids == ("a0", "a1", "a2", "a3", "a4") and view.cross_product
    reference, _ = cache_of(*docs)  # every document, as before summaries listed alerts
    reference.prefetch([ik("1")])
    assert reference.view(TENANT, "1") == view


def test_an_old_store_is_read_whole() -> None:
    # Written before summaries listed their alerts (or by the rebuild search): every alert document.
    docs = docs_from_incident(incident("1"), TENANT)
    docs += docs_from_alert(alert("a1", "1"), TENANT) + docs_from_alert(
        alert("a2", "1", "microsoftDefenderForIdentity"), TENANT
    )
    docs += docs_from_alert(alert("a3", "2"), TENANT)  # no summary at all (alerts input only)
    cache, fake = finder_of(*docs)
    cache.prefetch([ik("1"), ik("2")])
    assert sorted(_answered(fake)) == sorted(d["_key"] for d in docs)
    assert len(fake.requests) == 2
    one, two = cache.view(TENANT, "1"), cache.view(TENANT, "2")
    assert one is not None and one.found and one.alert_ids == ("a1", "a2") and one.cross_product
    assert two is not None and not two.found and two.alert_ids == ("a3",)


def test_alerts_newer_than_their_summary_are_read_and_win() -> None:
    summary_time = "2026-09-14T10:00:00.5Z"
    docs = docs_from_incident(expanded("1", [alert("a1", "1"), alert("a2", "1")], updated=summary_time), TENANT)
    docs += docs_from_incident(expanded("2", [alert("b1", "2")], updated=summary_time), TENANT)
    # a3 joined 1 after its summary; a2 moved to 3 after it; older versions of a1 are not read.
    docs += docs_from_alert(alert("a3", "1", "microsoftDefenderForIdentity", updated="2026-09-14T10:05:00Z"), TENANT)
    docs += docs_from_alert(alert("a2", "3", updated="2026-09-14T10:06:00Z"), TENANT)
    docs += docs_from_alert(alert("a1", "1", updated="2026-09-14T09:00:00Z"), TENANT)
    # same second as the summary but earlier: read (the query is cut to the second), and loses
    docs += docs_from_alert(alert("b1", "9", updated="2026-09-14T10:00:00.1Z"), TENANT)
    cache, fake = finder_of(*docs)
    cache.prefetch([ik("1"), ik("2")])
    answered = _answered(fake)
    assert f"alert:{TENANT}:a1:alerts" not in answered
    assert {f"alert:{TENANT}:a3:alerts", f"alert:{TENANT}:a2:alerts", f"alert:{TENANT}:b1:alerts"} <= set(answered)
    assert fake.terms[1][-1].since == "2026-09-14T10:00:00"
    one, two = cache.view(TENANT, "1"), cache.view(TENANT, "2")
    assert one is not None and one.alert_ids == ("a1", "a3") and one.cross_product
    assert two is not None and two.alert_ids == ("b1",)


def test_a_mixed_store_reads_each_incident_as_its_newest_summary_says() -> None:
    # 1: the rebuild's summary (no list) is newer than the input's listing one: all alert documents.
    # 2: only a listing summary. 3: only an old summary.
    docs = docs_from_incident(expanded("1", [alert("a1", "1")]), TENANT)
    docs += docs_from_incident(incident("1", updated="2026-09-14T11:00:00Z"), TENANT, "rebuild")
    docs += docs_from_alert(alert("a0", "1", updated="2026-09-14T08:00:00Z"), TENANT)
    docs += docs_from_incident(expanded("2", [alert("b1", "2")]), TENANT)
    docs += docs_from_alert(alert("b0", "2", updated="2026-09-14T08:00:00Z"), TENANT)  # left 2 before its summary
    docs += docs_from_incident(incident("3"), TENANT) + docs_from_alert(alert("c1", "3"), TENANT)
    cache, fake = finder_of(*docs)
    cache.prefetch([ik("1"), ik("2"), ik("3")])
    assert len(fake.requests) == 2
    views = [cache.view(TENANT, n) for n in "123"]
    assert [v.alert_ids if v else None for v in views] == [("a0", "a1"), ("b1",), ("c1",)]
    assert views[0] is not None and views[0].last_update_date_time == "2026-09-14T11:00:00Z"
    # the same store read whole gives the same views
    reference, _ = cache_of(*docs)
    reference.prefetch([ik("1"), ik("2"), ik("3")])
    assert [reference.view(TENANT, n) for n in "123"] == views


def test_merge_chains_and_hunting_alerts_with_listing_summaries() -> None:
    docs = docs_from_incident(redirected("101", "102", updated="2026-09-14T10:00:00Z"), TENANT)
    docs += docs_from_incident(
        expanded("102", [alert("x1", "102"), alert("x2", "102")], displayName="the survivor"), TENANT
    )
    docs += docs_from_alert(alert("h1", "102"), TENANT)  # a hunting row's alert, from the alerts input
    cache, fake = finder_of(*docs)
    cache.prefetch([ik("101")], [store.alert_key(TENANT, "h1")])
    # 101, then its survivor 102 (the chain), then one request for the alerts of both
    assert len(fake.requests) == 3
    view = cache.view(TENANT, "101")
    assert view is not None and view.incident_id == "102" and view.title == "the survivor"
    assert view.alert_ids == ("x1", "x2")  # h1's version is older than 102's summary, which lacks it
    assert cache.incident_of_alert(TENANT, "h1") == "102"


def test_terms_query_shapes() -> None:
    assert terms_query([Term()]) == {}
    assert terms_query([Term(("t:1",), doc_type=INCIDENT)]) == {"incident_key": {"$in": ["t:1"]}, "doc_type": INCIDENT}
    since = Term(("t:1",), ("t:a",), ALERT, "2026-09-14T10:00:00")
    assert terms_query([since, Term(alert_keys=("t:b",))]) == {
        "$or": [
            {
                "incident_key": {"$in": ["t:1"]},
                "doc_type": ALERT,
                "last_update_date_time": {"$gte": "2026-09-14T10:00:00"},
            },
            {
                "alert_key": {"$in": ["t:a"]},
                "doc_type": ALERT,
                "last_update_date_time": {"$gte": "2026-09-14T10:00:00"},
            },
            {"alert_key": {"$in": ["t:b"]}},
        ]
    }
    first, second = Term(("1", "2", "3"), ("a",), ALERT, "x").halves()
    assert (first, second) == (Term(("1", "2"), ("a",), ALERT, "x"), Term(("3",), (), ALERT, "x"))
