"""place(): every shape, merges, tenants, bad input, and random events."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from defender_lineage_core import taxonomy
from defender_lineage_core.lineage import OUTPUT_FIELDS, place
from tests.fixture_paths import SAMPLES

TENANT = "4a1f0c2e-9b7d-4c3a-8e55-2f6d1b0a9c31"
ALERT_ID = "da638912345678901234_-1284567890"


def _sample(name: str) -> dict[str, Any]:
    return json.loads((SAMPLES / name).read_text(encoding="utf-8"))


@pytest.fixture
def alert() -> dict[str, Any]:
    return _sample("alert_v2.json")


@pytest.fixture
def incident() -> dict[str, Any]:
    return _sample("incident.json")


def _event(payload: Any, sourcetype: str = "", source: str = "", **fields: Any) -> dict[str, Any]:
    record: dict[str, Any] = {"_raw": payload if isinstance(payload, str) else json.dumps(payload)}
    if sourcetype:
        record["sourcetype"] = sourcetype
    if source:
        record["source"] = source
    record.update(fields)
    return record


def _assert_contract(result: dict[str, Any]) -> None:
    assert tuple(result) == OUTPUT_FIELDS
    assert all(isinstance(v, str) for v in result.values())


# --- Graph alerts ------------------------------------------------------------------------------


def test_graph_alert_sample(alert: dict[str, Any]) -> None:
    result = place(_event(alert, "ms:defender:graph:alert", f"ms_graph://{TENANT}/security/alerts_v2"))
    _assert_contract(result)
    assert result == {
        "lineage_layer": "detection",
        "lineage_depth": "1",
        "lineage_path": (
            f"incident:31337 > microsoftDefenderForEndpoint > microsoftDefenderForEndpoint > alert:{ALERT_ID}"
        ),
        "detection_source": "microsoftDefenderForEndpoint",
        "detection_source_label": "EDR",
        "service_source": "microsoftDefenderForEndpoint",
        "service_source_label": "Microsoft Defender for Endpoint",
        "tenant_id": TENANT,
        "alert_id": ALERT_ID,
        "incident_id": "31337",
        "incident_id_original": "",
        "hunting_table": "",
        "lineage_warning": "",
    }


def test_graph_alert_recognised_without_sourcetype(alert: dict[str, Any]) -> None:
    assert place(_event(alert))["lineage_layer"] == "detection"


def test_extracted_fields_win_and_raw_is_not_needed(alert: dict[str, Any]) -> None:
    fields = {k: alert[k] for k in ("id", "incidentId", "serviceSource", "tenantId")}
    record = _event("not json at all", "ms:defender:graph:alert", detectionSource="WindowsDefenderAv", **fields)
    result = place(record)
    assert result["detection_source"] == "antivirus"
    assert result["lineage_path"].endswith("> antivirus > alert:" + ALERT_ID)
    assert result["lineage_warning"] == ""  # _raw was never parsed


def test_multivalue_extracted_fields_take_the_first_value(alert: dict[str, Any]) -> None:
    record = _event(alert, "ms:defender:graph:alert", serviceSource=["", "OfficeATP", "x"])
    assert place(record)["service_source"] == "microsoftDefenderForOffice365"


def test_splunk_null_text_counts_as_absent(alert: dict[str, Any]) -> None:
    alert["serviceSource"] = None
    alert["detectionSource"] = "antivirus"
    result = place(_event(alert, "ms:defender:graph:alert", serviceSource="null"))
    assert result["service_source"] == "microsoftDefenderForEndpoint"  # inferred from antivirus


@pytest.mark.parametrize(
    ("detection", "service", "expected_service", "warning"),
    [
        ("customTi", None, "microsoftDefenderForEndpoint", ""),
        ("customDetection", None, "", ""),
        ("WindowsDefenderSmartScreen", "MicrosoftDefenderATP", "microsoftDefenderForEndpoint", ""),
        ("brandNewSource", "microsoftDefenderForEndpoint", "microsoftDefenderForEndpoint", "brandNewSource"),
        ("antivirus", "unknownFutureValue", "unknownFutureValue", "include-unknown-enum-members"),
        (None, "somethingElse", "somethingElse", "unknown serviceSource 'somethingElse'"),
    ],
)
def test_alert_vocabularies(
    alert: dict[str, Any], detection: str | None, service: str | None, expected_service: str, warning: str
) -> None:
    alert["detectionSource"] = detection
    alert["serviceSource"] = service
    result = place(_event(alert, "ms:defender:graph:alert"))
    assert result["service_source"] == expected_service
    if warning:
        assert warning in result["lineage_warning"]
    else:
        assert result["lineage_warning"] == ""


def test_unknown_value_is_kept_as_it_came(alert: dict[str, Any]) -> None:
    alert["detectionSource"] = "QuantumSensor"
    result = place(_event(alert, "ms:defender:graph:alert"))
    assert result["detection_source"] == "QuantumSensor"
    assert result["detection_source_label"] == ""
    assert "unknown detectionSource 'QuantumSensor'" in result["lineage_warning"]
    assert "> QuantumSensor > alert:" in result["lineage_path"]


# --- incidents ---------------------------------------------------------------------------------


def test_graph_incident_sample_with_expanded_alerts(incident: dict[str, Any]) -> None:
    result = place(_event(incident, "ms:defender:graph:incident"))
    _assert_contract(result)
    assert result["lineage_layer"] == "incident" and result["lineage_depth"] == "3"
    assert result["incident_id"] == "31337" and result["incident_id_original"] == ""
    assert result["tenant_id"] == TENANT
    assert result["lineage_path"] == (
        "incident:31337 > microsoftDefenderForEndpoint [microsoftDefenderForEndpoint]"
        " | microsoftDefenderForOffice365 [microsoftDefenderForOffice365]"
    )
    assert result["alert_id"] == "" and result["lineage_warning"] == ""


def test_incident_groups_detections_under_services(incident: dict[str, Any]) -> None:
    extra = copy.deepcopy(incident["alerts"][1])
    extra["detectionSource"] = "WindowsDefenderAv"
    extra["serviceSource"] = None
    incident["alerts"].append(extra)
    path = place(_event(incident, "ms:defender:graph:incident"))["lineage_path"]
    assert "microsoftDefenderForEndpoint [antivirus, microsoftDefenderForEndpoint]" in path


def test_incident_without_alerts(incident: dict[str, Any]) -> None:
    del incident["alerts"]
    assert place(_event(incident, "ms:defender:graph:incident"))["lineage_path"] == "incident:31337"


def test_merged_incident(incident: dict[str, Any]) -> None:
    incident.update(id="41", status="redirected", redirectIncidentId="42")
    del incident["alerts"]
    result = place(_event(incident))
    assert (result["incident_id"], result["incident_id_original"]) == ("42", "41")
    assert result["lineage_path"] == "incident:42 (merged from 41)"


def test_redirect_ignored_unless_status_is_redirected(incident: dict[str, Any]) -> None:
    incident.update(redirectIncidentId="42")
    assert place(_event(incident, "ms:defender:graph:incident"))["incident_id"] == "31337"


class _Store:
    def surviving_incident(self, tenant_id: str, incident_id: str) -> str | None:
        return {"31337": "90000"}.get(incident_id)


class _BrokenStore:
    def surviving_incident(self, tenant_id: str, incident_id: str) -> str | None:
        raise RuntimeError("kv store down")


def test_incident_lookup_seam_follows_merges_for_alerts(alert: dict[str, Any]) -> None:
    result = place(_event(alert, "ms:defender:graph:alert"), incidents=_Store())
    assert (result["incident_id"], result["incident_id_original"]) == ("90000", "31337")
    assert result["lineage_path"].startswith("incident:90000 > ")


def test_incident_lookup_failure_is_a_warning(alert: dict[str, Any]) -> None:
    result = place(_event(alert, "ms:defender:graph:alert"), incidents=_BrokenStore())
    assert result["incident_id"] == "31337"
    assert "incident lookup failed: kv store down" in result["lineage_warning"]


# --- hunting and legacy shapes ---------------------------------------------------------------


def test_hunting_row() -> None:
    row = {
        "Timestamp": "2026-09-14T08:21:37Z",
        "AlertId": "da1",
        "ServiceSource": "Microsoft Defender for Endpoint",
        "DetectionSource": "EDR",
    }
    result = place(_event(row, "ms:defender:graph:hunting", f"ms_graph://{TENANT}/security/runHuntingQuery/alertinfo"))
    assert result["lineage_layer"] == "hunting" and result["lineage_depth"] == "0"
    assert result["tenant_id"] == TENANT
    assert (
        result["lineage_path"]
        == "? > microsoftDefenderForEndpoint > microsoftDefenderForEndpoint > alert:da1 > hunting:alertinfo"
    )


def test_hunting_row_recognised_by_source_and_by_keys() -> None:
    row = {"AlertId": "x", "DetectionSource": "Custom TI"}
    by_source = place(_event(row, source="ms_graph://t/security/runHuntingQuery/q"))
    by_keys = place(_event(row))
    assert by_source["lineage_layer"] == by_keys["lineage_layer"] == "hunting"
    assert by_keys["service_source"] == "microsoftDefenderForEndpoint"


def test_legacy_m365d_incident_alert() -> None:
    legacy = {"alertId": "fa1", "incidentId": 924518, "serviceSource": "OfficeATP", "detectionSource": "OfficeATP"}
    result = place(_event(legacy, "ms365:defender:incident:alerts"))
    assert (
        result["lineage_path"]
        == "incident:924518 > microsoftDefenderForOffice365 > microsoftDefenderForOffice365 > alert:fa1"
    )


def test_legacy_m365d_incident_merged() -> None:
    legacy = {
        "incidentId": 7,
        "incidentName": "x",
        "status": "Redirected",
        "redirectIncidentId": 9,
        "alerts": [{"alertId": "ca1", "serviceSource": "MicrosoftCloudAppSecurity", "detectionSource": "MCAS"}],
    }
    result = place(_event(legacy))
    assert result["lineage_layer"] == "incident"
    assert result["lineage_path"] == "incident:9 (merged from 7) > microsoftDefenderForCloudApps [cloudAppSecurity]"


def test_legacy_mde_alert_infers_service_and_reads_aad_tenant() -> None:
    legacy = {"id": "da9", "incidentId": 12, "detectionSource": "WindowsDefenderAtp", "aadTenantId": "t-aad"}
    result = place(_event(legacy, "ms:defender:atp:alerts"))
    assert (result["service_source"], result["detection_source"], result["tenant_id"]) == (
        "microsoftDefenderForEndpoint",
        "microsoftDefenderForEndpoint",
        "t-aad",
    )


def test_legacy_graph_security_alert() -> None:
    legacy = {
        "id": "g1",
        "azureTenantId": "t-az",
        "incidentIds": ["77"],
        "vendorInformation": {"provider": "Azure ATP"},
    }
    result = place(_event(legacy, "GraphSecurityAlert"))
    assert result["lineage_path"] == "incident:77 > microsoftDefenderForIdentity > ? > alert:g1"
    assert result["tenant_id"] == "t-az"


# --- tenants -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "source",
    [
        "ms_graph://tenant-from-source/security/alerts_v2",
        "ms_graph://tenant-from-source/security/incidents",
        "ms_graph://tenant-from-source/security/runHuntingQuery/my_input",
    ],
)
def test_tenant_from_source(alert: dict[str, Any], source: str) -> None:
    del alert["tenantId"]
    assert place(_event(alert, "ms:defender:graph:alert", source))["tenant_id"] == "tenant-from-source"


def test_event_tenant_beats_source(alert: dict[str, Any]) -> None:
    assert place(_event(alert, source="ms_graph://other/security/alerts_v2"))["tenant_id"] == TENANT


def test_foreign_source_gives_no_tenant(alert: dict[str, Any]) -> None:
    del alert["tenantId"]
    assert place(_event(alert, "ms:defender:graph:alert", "/var/log/defender.json"))["tenant_id"] == ""


# --- bad input ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "warning"),
    [
        ("this is not json", "unparseable _raw"),
        ('{"id": "da1", "serviceSource": "microsoftDefenderFor', "unparseable _raw"),
        ("[1, 2, 3]", "JSON list, not an object"),
        ("null", "JSON NoneType, not an object"),
        ('"just a string"', "JSON str, not an object"),
        ("[" * 100000 + "]" * 100000, "unparseable _raw"),
    ],
)
def test_bad_raw_still_gets_every_field(raw: str, warning: str) -> None:
    record = {"_raw": raw, "sourcetype": "ms:defender:graph:alert", "keep": "me"}
    before = dict(record)
    result = place(record)
    _assert_contract(result)
    assert warning in result["lineage_warning"]
    assert len(result["lineage_warning"]) < 400
    assert record == before


def test_truncated_real_alert(alert: dict[str, Any]) -> None:
    raw = json.dumps(alert)[:3000]
    result = place({"_raw": raw})
    _assert_contract(result)
    assert result["lineage_warning"].startswith("unparseable _raw")


def test_nulls_everywhere() -> None:
    payload = {
        "@odata.type": "#microsoft.graph.security.alert",
        "id": None,
        "incidentId": None,
        "serviceSource": None,
        "detectionSource": None,
        "tenantId": None,
    }
    result = place(_event(payload))
    _assert_contract(result)
    assert result["lineage_layer"] == "detection" and result["lineage_path"] == ""


@pytest.mark.parametrize(
    "record",
    [
        {},
        {"_raw": None},
        {"_raw": ""},
        {"_raw": ["{}", "{}"]},
        {"_raw": 42},
        {"sourcetype": None, "source": None},
        {"sourcetype": ["ms:defender:graph:alert", "x"], "_raw": "{}"},
    ],
)
def test_odd_records(record: dict[str, Any]) -> None:
    result = place(record)
    _assert_contract(result)
    assert "lineage failed" not in result["lineage_warning"]


def test_not_a_mapping() -> None:
    _assert_contract(place(None))  # type: ignore[arg-type]


def test_odd_unicode(alert: dict[str, Any]) -> None:
    alert["detectionSource"] = "\u202e\ufeffанти\x00вирус\U0001f600\ud800"
    alert["id"] = "\u0000\u200b"
    raw = json.dumps(alert, ensure_ascii=False)
    result = place({"_raw": raw, "sourcetype": "ms:defender:graph:alert"})
    _assert_contract(result)
    assert "unknown detectionSource" in result["lineage_warning"]


def test_huge_raw(alert: dict[str, Any]) -> None:
    alert["description"] = "x" * (5 * 1024 * 1024)
    result = place(_event(alert, "ms:defender:graph:alert"))
    assert result["alert_id"] == ALERT_ID and result["lineage_warning"] == ""


def test_huge_garbage_raw_warning_stays_short() -> None:
    result = place({"_raw": "{" + "\u00e9" * (5 * 1024 * 1024)})
    assert result["lineage_warning"].startswith("unparseable _raw")
    assert len(result["lineage_warning"]) < 400


# --- random events and vocabularies ----------------------------------------------------------

_VOCABULARY = st.one_of(
    st.sampled_from(taxonomy.DETECTION_MEMBERS + taxonomy.SERVICE_MEMBERS),
    st.sampled_from([a.alias for a in taxonomy.DETECTION_ALIASES + taxonomy.SERVICE_ALIASES]),
    st.text(max_size=20),
    st.none(),
)
_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=10),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12,
)
_KEYS = st.sampled_from(
    [
        "id", "alertId", "AlertId", "incidentId", "IncidentId", "serviceSource", "ServiceSource",
        "detectionSource", "DetectionSource", "tenantId", "aadTenantId", "azureTenantId", "status",
        "redirectIncidentId", "alerts", "vendorInformation", "incidentIds", "@odata.type", "incidentName",
    ]
)  # fmt: skip
_SOURCETYPES = st.sampled_from(
    ["", "ms:defender:graph:alert", "ms:defender:graph:incident", "ms:defender:graph:hunting",
     "ms365:defender:incident", "ms365:defender:incident:alerts", "ms:defender:atp:alerts",
     "GraphSecurityAlert", "other"]
)  # fmt: skip
_SOURCES = st.one_of(
    st.just(""),
    st.builds(lambda t, r: f"ms_graph://{t}/{r}", st.text(max_size=8), st.text(max_size=30)),
    st.text(max_size=30),
)


@st.composite
def _payloads(draw: st.DrawFn) -> Any:
    values = st.one_of(_VOCABULARY, _JSON, st.lists(st.dictionaries(_KEYS, _VOCABULARY), max_size=3))
    payload = draw(st.dictionaries(_KEYS, values, max_size=10))
    return draw(st.one_of(st.just(payload), _JSON))


@st.composite
def _records(draw: st.DrawFn) -> dict[str, Any]:
    payload = draw(_payloads())
    raw = json.dumps(payload)
    if draw(st.booleans()):
        raw = raw[: draw(st.integers(0, len(raw)))]
    record: dict[str, Any] = {"_raw": raw, "sourcetype": draw(_SOURCETYPES), "source": draw(_SOURCES)}
    extracted = draw(st.dictionaries(_KEYS, st.one_of(_VOCABULARY, st.lists(st.text(max_size=8), max_size=3))))
    record.update(extracted)
    return record


@settings(max_examples=400, deadline=None)
@given(_records())
def test_random_events_never_raise_and_get_every_field(record: dict[str, Any]) -> None:
    before = copy.deepcopy(record)
    result = place(record)
    _assert_contract(result)
    assert record == before
    assert "lineage failed" not in result["lineage_warning"]
    if result["lineage_layer"]:
        assert result["lineage_depth"] == {"hunting": "0", "detection": "1", "incident": "3"}[result["lineage_layer"]]


@settings(max_examples=200, deadline=None)
@given(_VOCABULARY, _VOCABULARY)
def test_random_vocabularies_on_the_sample_alert(service: str | None, detection: str | None) -> None:
    payload = {"id": "a1", "incidentId": "1", "serviceSource": service, "detectionSource": detection}
    result = place(_event(payload, "ms:defender:graph:alert"))
    _assert_contract(result)
    resolved = taxonomy.canonical_detection(detection)
    assert result["detection_source"] == resolved.value
    if resolved.via == "unknown":
        assert "unknown detectionSource" in result["lineage_warning"]


# --- ids that are not strings or integers (issue 12) ------------------------------------------------

_ALERT_RAW = (
    '{"id": "da1", "incidentId": %s, "serviceSource": "microsoftDefenderForEndpoint",'
    ' "detectionSource": "antivirus", "tenantId": "t1"}'
)


@pytest.mark.parametrize(
    ("json_value", "shown"),
    [("1e3", "1e3"), ("NaN", "NaN"), ("1e400", "1e400"), ("[1, 2]", "a list"), ("true", "true"), ("{}", "an object")],
)
def test_an_id_that_is_not_a_string_or_integer_is_not_invented(json_value: str, shown: str) -> None:
    # Before: 1000.0, nan, inf, 1 and "" with no warning.
    result = place({"_raw": _ALERT_RAW % json_value, "sourcetype": "ms:defender:graph:alert"})
    assert result["incident_id"] == ""
    assert result["lineage_path"].startswith("? > microsoftDefenderForEndpoint > antivirus > alert:da1")
    assert result["lineage_warning"] == f"incidentId is not a string or integer id ({shown}): left empty"


@pytest.mark.parametrize("json_value", ["31337", '"31337"', "12345678901234567890123", "1" * 5000])
def test_an_integer_id_is_keyed_by_its_json_text(json_value: str) -> None:
    # The incident store keys an integer id by its JSON text; 5000 digits exceed Python 3.11+'s int() limit.
    result = place({"_raw": _ALERT_RAW % json_value, "sourcetype": "ms:defender:graph:alert"})
    assert result["incident_id"] == json_value.strip('"')
    assert result["lineage_warning"] == ""


def test_a_non_id_number_elsewhere_keeps_its_json_text() -> None:
    raw = '{"id": 7, "incidentId": 8, "serviceSource": 1e3, "detectionSource": "antivirus", "tenantId": "t1"}'
    result = place({"_raw": raw, "sourcetype": "ms:defender:graph:alert"})
    assert (result["alert_id"], result["incident_id"]) == ("7", "8")
    assert "unknown serviceSource '1e3'" in result["lineage_warning"]


def test_a_listed_incident_ids_field_takes_its_first_id() -> None:
    raw = '{"id": "a1", "incidentIds": ["7", "8"], "vendorInformation": {"provider": "Microsoft Defender ATP"}}'
    result = place({"_raw": raw, "sourcetype": "GraphSecurityAlert"})
    assert result["incident_id"] == "7"


def test_source_pairs_are_resolved_once_and_the_memo_stays_bounded() -> None:
    # place() remembers how each (serviceSource, detectionSource) pair resolves (issue 18: a search
    # names a handful); hostile data naming a new pair per event must not grow it without bound,
    # and a remembered pair still gives its warnings on every event.
    from defender_lineage_core import lineage

    def placed(service: str) -> dict[str, str]:
        return place(
            {"sourcetype": "ms:defender:graph:alert", "serviceSource": service, "detectionSource": "antivirus"}
        )

    for n in range(lineage.MAX_RESOLVED + 50):
        assert placed(f"vendor{n}")["lineage_warning"] == f"unknown serviceSource 'vendor{n}'"
        assert len(lineage._RESOLVED) <= lineage.MAX_RESOLVED
    for _ in range(2):
        again = placed("vendor1")
        assert again["lineage_warning"] == "unknown serviceSource 'vendor1'" and again["service_source"] == "vendor1"
    assert placed("MDATP")["service_source"] == "microsoftDefenderForEndpoint"
