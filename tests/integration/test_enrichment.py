"""defenderlineage's incident_* fields, built, through the chunked protocol (Python 3.9 and 3.13), against
the splunkd stand-in's KV store: merges, tenants, requests per chunk, and a store that cannot be read."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Dict, List

import pytest

from defender_lineage_core.incident_store import (
    COLLECTION,
    INCIDENT_OUTPUT_FIELDS,
    docs_from_alert,
    docs_from_incident,
)
from defender_lineage_core.lineage import OUTPUT_FIELDS
from tests.fixture_paths import SAMPLES
from tests.harness.scp_driver import CommandResult, run_command
from tests.harness.splunkd_standin import SplunkdStandin
from tests.integration.conftest import scan_for_secrets

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
TENANT = "4a1f0c2e-9b7d-4c3a-8e55-2f6d1b0a9c31"
OTHER = "0b7e5d1c-1111-4c3a-8e55-2f6d1b0a9c99"
STORE_PATH = f"storage/collections/data/{COLLECTION}"


def _sample(name: str) -> Dict[str, Any]:
    return json.loads((SAMPLES / name).read_text(encoding="utf-8"))


@pytest.fixture
def standin(splunkd: SplunkdStandin, addon: Path) -> SplunkdStandin:
    splunkd.load_app_defaults(addon)  # the collections of collections.conf exist, empty
    return splunkd


def alert_item(aid: str, iid: str, service: str = "microsoftDefenderForEndpoint", **more: Any) -> Dict[str, Any]:
    item = {
        "@odata.type": "#microsoft.graph.security.alert",
        "id": aid,
        "incidentId": iid,
        "tenantId": TENANT,
        "serviceSource": service,
        "detectionSource": "antivirus",
        "severity": "medium",
        "lastUpdateDateTime": "2026-09-14T09:00:00.1234567Z",
    }
    item.update(more)
    return item


def incident_item(iid: str, tenant: str = TENANT, **more: Any) -> Dict[str, Any]:
    item = {
        "id": iid,
        "tenantId": tenant,
        "displayName": f"incident {iid}",
        "severity": "high",
        "status": "active",
        "lastUpdateDateTime": "2026-09-14T09:00:00Z",
    }
    item.update(more)
    return item


def alert_event(item: Dict[str, Any], tenant: str = TENANT) -> Dict[str, Any]:
    """An alert event as splunkd sends it: _raw plus the fields KV_MODE=json extracted."""
    record: Dict[str, Any] = {
        "_raw": json.dumps(item),
        "sourcetype": "ms:defender:graph:alert",
        "source": f"ms_graph://{tenant}/security/alerts_v2",
        "_time": "1789374097",
    }
    for key in ("id", "incidentId", "serviceSource", "detectionSource", "tenantId"):
        if item.get(key) is not None:
            record[key] = str(item[key])
    return record


def incident_event(item: Dict[str, Any], tenant: str = TENANT) -> Dict[str, Any]:
    return {
        "_raw": json.dumps(item),
        "sourcetype": "ms:defender:graph:incident",
        "source": f"ms_graph://{tenant}/security/incidents",
    }


def store_calls(standin: SplunkdStandin) -> List[Any]:
    return [c for c in standin.calls if STORE_PATH in c.path]


def run(addon: Path, python: str, standin: SplunkdStandin, records: List[Dict[str, Any]], **kw: Any) -> CommandResult:
    result = run_command(addon, python, records, splunkd_uri=standin.uri, session_key=standin.session_key, **kw)
    assert result.error is None, (result.error, result.stderr[-3000:])
    assert result.returncode == 0, result.stderr[-3000:]
    assert len(result.records) == len(records)
    for record in result.records:
        missing = [f for f in (*OUTPUT_FIELDS, *INCIDENT_OUTPUT_FIELDS) if f not in record]
        assert not missing, missing
    assert not scan_for_secrets([], [result.stderr, json.dumps(result.messages)], [standin.session_key])
    return result


def warnings_of(result: CommandResult) -> List[str]:
    return [text for kind, text in result.messages if kind == "WARN"]


def mv(value: Any) -> List[str]:
    if isinstance(value, list):
        return value
    return [value] if value else []


def test_alert_events_get_their_incident(addon: Path, python: str, standin: SplunkdStandin) -> None:
    incident = _sample("incident.json")
    standin.kv_save(COLLECTION, docs_from_incident(incident, TENANT))
    alert = _sample("alert_v2.json")
    result = run(addon, python, standin, [alert_event(alert), incident_event(incident)])
    for record in result.records:
        assert record["incident_id"] == "31337" and record["incident_id_original"] == ""
        assert record["incident_title"] == incident["displayName"]
        assert (record["incident_severity"], record["incident_status"]) == ("high", "inProgress")
        assert record["incident_alert_count"] == "2"
        assert mv(record["incident_service_sources"]) == [
            "microsoftDefenderForEndpoint",
            "microsoftDefenderForOffice365",
        ]
        assert mv(record["incident_detection_sources"]) == [
            "microsoftDefenderForEndpoint",
            "microsoftDefenderForOffice365",
        ]
        assert record["incident_cross_product"] == "true"
    assert result.records[0]["lineage_layer"] == "detection"
    assert len(store_calls(standin)) == 2  # summaries, then the alert versions they do not stand for (issue 18)
    assert warnings_of(result) == []


def test_three_incident_merge_chain(addon: Path, python: str, standin: SplunkdStandin) -> None:
    docs = docs_from_incident(incident_item("101", status="redirected", redirectIncidentId="102"), TENANT)
    docs += docs_from_incident(incident_item("102", status="redirected", redirectIncidentId="103"), TENANT)
    docs += docs_from_incident(incident_item("103", displayName="the survivor", status="inProgress"), TENANT)
    docs += docs_from_alert(alert_item("a1", "103"), TENANT)
    docs += docs_from_alert(alert_item("a2", "103", "microsoftDefenderForIdentity"), TENANT)
    standin.kv_save(COLLECTION, docs)
    records = [
        alert_event(alert_item("a0", "101")),
        alert_event(alert_item("a1", "103")),
        incident_event(incident_item("101", status="redirected", redirectIncidentId="102")),
        incident_event(incident_item("102")),  # an older version of 102, from before its merge
    ]
    result = run(addon, python, standin, records, chunk_size=1)  # one event per chunk
    a0, a1, i101, i102 = result.records
    assert (a0["incident_id"], a0["incident_id_original"]) == ("103", "101")
    assert a0["lineage_path"] == "incident:103 > microsoftDefenderForEndpoint > antivirus > alert:a0"
    assert (a1["incident_id"], a1["incident_id_original"]) == ("103", "")
    assert (i101["incident_id"], i101["incident_id_original"]) == ("103", "101")
    assert i101["lineage_path"] == "incident:103 (merged from 101)"
    assert (i102["incident_id"], i102["incident_id_original"]) == ("103", "102")
    for record in result.records:
        assert record["incident_title"] == "the survivor" and record["incident_status"] == "inProgress"
        assert record["incident_alert_count"] == "2" and record["incident_cross_product"] == "true"
    # chunk 1 names 101: one request, then one follow-up per merge step (102, 103), then one for the
    # alert versions the three summaries do not stand for; the later chunks find everything cached
    assert len(store_calls(standin)) == 4
    assert warnings_of(result) == []


def test_two_tenants_reusing_an_incident_id(addon: Path, python: str, standin: SplunkdStandin) -> None:
    docs = docs_from_incident(incident_item("42", displayName="ours"), TENANT)
    docs += docs_from_incident(incident_item("42", tenant=OTHER, displayName="theirs", severity="low"), OTHER)
    docs += docs_from_alert(alert_item("x", "42"), TENANT)
    standin.kv_save(COLLECTION, docs)
    theirs_alert = alert_item("y", "42", tenantId=OTHER)
    result = run(addon, python, standin, [alert_event(alert_item("x", "42")), alert_event(theirs_alert, OTHER)])
    ours, theirs = result.records
    assert (ours["tenant_id"], ours["incident_title"], ours["incident_alert_count"]) == (TENANT, "ours", "1")
    assert (theirs["tenant_id"], theirs["incident_title"], theirs["incident_severity"]) == (OTHER, "theirs", "low")
    assert theirs["incident_alert_count"] == "0"
    assert len(store_calls(standin)) == 2  # summaries, then the alert versions they do not stand for (issue 18)


def test_at_most_two_requests_per_chunk_and_none_for_repeats(addon: Path, python: str, standin: SplunkdStandin) -> None:
    docs = [d for n in range(300) for d in docs_from_incident(incident_item(str(n)), TENANT)]
    standin.kv_save(COLLECTION, docs)
    standin.clear_calls()

    def chunk(first: int) -> List[Dict[str, Any]]:
        return [alert_event(alert_item(f"a{first}-{i}", str(first + i % 100))) for i in range(1000)]

    # chunk 1: incidents 0-99; chunk 2: the same again; chunk 3: 100-199 plus one unknown
    records = chunk(0) + chunk(0) + chunk(100)[:-1] + [alert_event(alert_item("lost", "99999"))]
    result = run(addon, python, standin, records, chunk_size=1000)
    assert result.chunks_sent == 3
    calls = store_calls(standin)
    # chunks 1 and 3: the summaries, then the alert versions they do not stand for; chunk 2 nothing
    assert len(calls) == 4, [c.path for c in calls]
    assert all(c.method == "GET" for c in calls)
    assert all(r["incident_title"] == f"incident {r['incident_id']}" for r in result.records[:-1])
    assert result.records[-1]["incident_title"] == "" and result.records[-1]["incident_id"] == "99999"
    assert warnings_of(result) == []


def test_a_chunk_of_many_incidents_is_still_two_requests(addon: Path, python: str, standin: SplunkdStandin) -> None:
    docs = [d for n in range(1000) for d in docs_from_incident(incident_item(str(n)), TENANT)]
    standin.kv_save(COLLECTION, docs)
    standin.clear_calls()
    records = [alert_event(alert_item(f"a{n}", str(n))) for n in range(1000)]
    result = run(addon, python, standin, records, chunk_size=1000)
    calls = store_calls(standin)
    assert len(calls) == 2  # summaries, then the alert versions they do not stand for (issue 18)
    assert all(c.method == "POST" and c.path.endswith("/batch_find") for c in calls)
    assert all(r["incident_title"] == f"incident {r['incident_id']}" for r in result.records)


def test_a_big_chunk_loses_no_document_to_max_rows_per_query(addon: Path, python: str, standin: SplunkdStandin) -> None:
    # 10,000 events naming 10,000 incidents of 5 alerts each: 60,000 documents, more than splunkd
    # answers one query with (limits.conf [kvstore] max_rows_per_query = 50,000, which the stand-in
    # applies). One request for the whole chunk came back cut, and 1 incident in 6 lost alerts.
    def incident(n: int) -> Dict[str, Any]:
        alerts = [alert_item(f"a{n}-{k}", str(n), detectionSource="antivirus") for k in range(5)]
        return incident_item(str(n), alerts=alerts)

    standin.kv_save(COLLECTION, [d for n in range(10_000) for d in docs_from_incident(incident(n), TENANT)])
    standin.clear_calls()
    records = [alert_event(alert_item(f"a{n}-0", str(n))) for n in range(10_000)]
    result = run(addon, python, standin, records, chunk_size=10_000)
    assert result.chunks_sent == 1
    wrong = [r["incident_id"] for r in result.records if r["incident_alert_count"] != "5"]
    assert wrong == [], f"{len(wrong)} events lack alerts of their incident"
    assert all(r["incident_title"] == f"incident {r['incident_id']}" for r in result.records)
    assert warnings_of(result) == []


def _documents_read(result: CommandResult) -> int:
    """Documents the command received from the KV store (its metric.incident_store, the last sent)."""
    metrics = [
        r["inspector"]["metric.incident_store"]
        for r in result.replies
        if "metric.incident_store" in (r.get("inspector") or {})
    ]
    return int(metrics[-1][3])


def test_summaries_listing_their_alerts_are_all_a_chunk_reads(
    addon: Path, python: str, standin: SplunkdStandin
) -> None:
    # Issue 18: a store as both inputs write it (the incidents input's summaries list their expanded
    # alerts; the alerts input's versions are older), beside an incident as an older add-on wrote it
    # (a summary without the list: its alert documents are read, as before), and an alert that joined
    # incident 1 after its summary was written (read, and counted).
    docs: List[Dict[str, Any]] = []
    for n in range(1, 4):
        alerts = [
            alert_item(f"a{n}-{k}", str(n), "microsoftDefenderForOffice365" if k else "microsoftDefenderForEndpoint")
            for k in range(3)
        ]
        docs += docs_from_incident(
            incident_item(str(n), alerts=alerts, lastUpdateDateTime="2026-09-14T10:00:00Z"), TENANT
        )
        docs += [d for a in alerts for d in docs_from_alert(a, TENANT)]
    old = [alert_item(f"old-{k}", "4") for k in range(2)]
    docs += [d for d in docs_from_incident(incident_item("4", alerts=old), TENANT) if d["doc_type"] == "alert"]
    docs += [
        {k: v for k, v in d.items() if not k.startswith("alert_")}
        for d in docs_from_incident(incident_item("4"), TENANT)
    ]
    docs += docs_from_alert(
        alert_item("late", "1", "microsoftDefenderForIdentity", lastUpdateDateTime="2026-09-14T10:30:00Z"), TENANT
    )
    standin.kv_save(COLLECTION, docs)
    standin.clear_calls()
    result = run(
        addon,
        python,
        standin,
        [alert_event(alert_item(f"a{n}-0", str(n))) for n in range(1, 4)] + [alert_event(old[0])],
    )
    counts = [r["incident_alert_count"] for r in result.records]
    assert counts == ["4", "3", "3", "2"]
    assert mv(result.records[0]["incident_service_sources"]) == [
        "microsoftDefenderForEndpoint",
        "microsoftDefenderForIdentity",
        "microsoftDefenderForOffice365",
    ]
    # 4 summaries + incident 4's 2 alert documents + the late alert: 7 of the 25 documents
    assert _documents_read(result) == 7 and len(docs) == 25
    assert len(store_calls(standin)) == 2
    assert warnings_of(result) == []


def test_hunting_rows_get_their_alerts_incident(addon: Path, python: str, standin: SplunkdStandin) -> None:
    docs = docs_from_incident(incident_item("7", displayName="seven"), TENANT)
    docs += docs_from_alert(alert_item("da-77", "7"), TENANT)
    standin.kv_save(COLLECTION, docs)
    row = {"AlertId": "da-77", "ServiceSource": "Microsoft Defender for Endpoint", "DetectionSource": "Antivirus"}
    hunting = {
        "_raw": json.dumps(row),
        "sourcetype": "ms:defender:graph:hunting",
        "source": f"ms_graph://{TENANT}/security/runHuntingQuery/alertinfo",
        **row,
    }
    result = run(addon, python, standin, [hunting, alert_event(alert_item("da-77", "7"))])
    row_out = result.records[0]
    assert row_out["lineage_layer"] == "hunting" and row_out["incident_id"] == "7"
    assert (
        row_out["lineage_path"]
        == "incident:7 > microsoftDefenderForEndpoint > antivirus > alert:da-77 > hunting:alertinfo"
    )
    assert row_out["incident_title"] == "seven" and row_out["incident_alert_count"] == "1"
    # alert key and incident key in the same request, then the alert versions the summary does not
    # stand for (issue 18)
    assert len(store_calls(standin)) == 2


def _assert_placed_alone(result: CommandResult) -> None:
    for record in result.records:
        assert record["lineage_layer"] == "detection" and record["incident_id"].startswith("inc")
        assert record["lineage_path"].startswith("incident:inc")
        assert record["service_source"] == "microsoftDefenderForEndpoint" and record["alert_id"]
        assert all(record[f] == "" for f in INCIDENT_OUTPUT_FIELDS)
    # The incident store's one warning (an unreadable KV store also gives the tenants lookup's own:
    # tenant_name, test_command_tenant_name.py).
    warnings = store_warnings(result)
    assert len(warnings) == 1, result.messages
    assert COLLECTION in warnings[0]


def store_warnings(result: CommandResult) -> List[str]:
    return [text for text in warnings_of(result) if "incident store" in text]


def _three_chunks() -> List[Dict[str, Any]]:
    return [alert_event(alert_item(f"a{n}", f"inc{n % 500}")) for n in range(2500)]


def test_kvstore_unavailable_gives_one_warning(addon: Path, python: str, standin: SplunkdStandin) -> None:
    standin.set_kvstore_available(False)
    result = run(addon, python, standin, _three_chunks(), chunk_size=1000)
    assert result.chunks_sent == 3
    _assert_placed_alone(result)
    assert "503" in store_warnings(result)[0]
    assert len(store_calls(standin)) == 1  # not asked again after the first failure


def test_a_store_failing_while_a_big_chunk_is_read_gives_one_warning(
    addon: Path, python: str, standin: SplunkdStandin
) -> None:
    # 5,000 new incidents in one chunk: fetched from the worker thread while the chunk is read; its
    # failure reaches the search as the one warning, and no batch after it asks again.
    standin.set_kvstore_available(False)
    records = [alert_event(alert_item(f"a{n}", f"inc{n}")) for n in range(5000)]
    result = run(addon, python, standin, records, chunk_size=5000)
    _assert_placed_alone(result)
    assert "503" in store_warnings(result)[0]
    assert len(store_calls(standin)) == 1


def test_stopped_splunkd_gives_one_warning(addon: Path, python: str, tmp_path: Path) -> None:
    with SplunkdStandin(tmp_path / "gone", max_lifetime=60.0) as gone:
        gone.load_app_defaults(addon)
        uri, key = gone.uri, gone.session_key
    result = run_command(addon, python, _three_chunks(), splunkd_uri=uri, session_key=key, chunk_size=1000)
    assert result.error is None and result.returncode == 0, result.stderr[-3000:]
    _assert_placed_alone(result)
    assert "unreachable" in store_warnings(result)[0]
    assert not scan_for_secrets([], [result.stderr, json.dumps(result.messages)], [key])


def test_wrong_session_key_gives_one_warning(addon: Path, python: str, standin: SplunkdStandin) -> None:
    result = run_command(addon, python, _three_chunks(), splunkd_uri=standin.uri, session_key="not-the-key-at-all")
    assert result.error is None and result.returncode == 0
    _assert_placed_alone(result)
    assert "401" in store_warnings(result)[0]
    assert len(store_calls(standin)) == 1


def test_incidents_false_makes_no_store_request(addon: Path, python: str, standin: SplunkdStandin) -> None:
    standin.kv_save(COLLECTION, docs_from_incident(incident_item("inc1"), TENANT))
    standin.clear_calls()
    result = run(addon, python, standin, _three_chunks(), args=["incidents=false"], chunk_size=1000)
    assert store_calls(standin) == []
    # tenant_name is not an incident field: its lookup is read once for the search, whatever the option.
    assert [c.path.rsplit("/", 1)[-1] for c in standin.calls] == ["ta_defender_lineage_tenants"]
    assert warnings_of(result) == []
    assert all(r[f] == "" for r in result.records for f in INCIDENT_OUTPUT_FIELDS)
    assert all(r["incident_id"].startswith("inc") for r in result.records)


def test_a_title_utf8_cannot_encode_is_replaced_and_said(addon: Path, python: str, standin: SplunkdStandin) -> None:
    # The store's JSON may hold a lone surrogate escape (\ud800) in a title: the row is rewritten with
    # U+FFFD and says so, its neighbours (incident 2, before and after it) keep their own row ends.
    standin.kv_save(COLLECTION, docs_from_incident(incident_item("1", displayName="bad \ud800 title"), TENANT))
    standin.kv_save(COLLECTION, docs_from_incident(incident_item("2"), TENANT))
    events = [alert_event(alert_item(f"a{n}", iid)) for n, iid in enumerate(("2", "1", "1", "2"))]
    result = run(addon, python, standin, events)
    titles = [r["incident_title"] for r in result.records]
    assert titles == ["incident 2", "bad \ufffd title", "bad \ufffd title", "incident 2"]
    warnings = [r["lineage_warning"] for r in result.records]
    assert warnings == ["", UNENCODABLE, UNENCODABLE, ""]
    assert [r["alert_id"] for r in result.records] == ["a0", "a1", "a2", "a3"]


UNENCODABLE = "unencodable characters (lone surrogates) replaced with U+FFFD"
