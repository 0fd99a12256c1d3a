"""place() on Defender streaming API records (issue 17), and recognition by values, never by empty
columns, inside mixed chunks (every record carrying the union of the chunk's columns, as splunkd
sends them), on the raw and on the extracted-fields paths."""

from __future__ import annotations

import json
from typing import Any, Dict, List

import pytest

from defender_lineage_core import lineage
from defender_lineage_core.lineage import OUTPUT_FIELDS, SHAPES, STREAMING, place
from tests.fixture_paths import FIXTURES, SAMPLES
from tests.fixtures.streaming import build_corpus
from tests.harness.searchtime import json_fields

CORPUS_FILE = FIXTURES / "streaming" / "records.json"
CORPUS: List[Dict[str, Any]] = json.loads(CORPUS_FILE.read_text(encoding="utf-8"))
TENANT = build_corpus.TENANT
ALERT_ID = build_corpus.ALERT_MDE
ALERT_TABLES = {"AlertInfo", "AlertEvidence"}


def test_corpus_file_is_the_builders_output() -> None:
    assert CORPUS_FILE.read_text(encoding="utf-8") == build_corpus.render()


def test_corpus_covers_every_table_family_and_the_shapes_table() -> None:
    tables = {item["table"] for item in CORPUS}
    families = {
        t for t in tables if t.startswith(("Alert", "Device", "Email", "Identity", "CloudApp", "Url", "Behavior"))
    }
    assert families == tables
    for prefix in ("Alert", "Device", "Email", "Identity", "CloudApp", "Url", "Behavior"):
        assert any(t.startswith(prefix) for t in tables), prefix
    # the shapes table names the two Event Hub sourcetypes, and the tests run through both
    assert set(STREAMING.sourcetypes) == {"ms:defender:eventhub", "mscs:azure:eventhub"}
    assert STREAMING in SHAPES


def _raw_record(item: Dict[str, Any], sourcetype: str) -> Dict[str, Any]:
    return {"_raw": json.dumps(item["record"]), "sourcetype": sourcetype, "source": "eventhub://defender"}


def _assert_placed(result: Dict[str, str], item: Dict[str, Any]) -> None:
    assert tuple(result) == OUTPUT_FIELDS
    assert result["lineage_warning"] == "", (item["name"], result["lineage_warning"])
    assert (result["lineage_layer"], result["lineage_depth"]) == ("hunting", "0"), item["name"]
    assert result["hunting_table"] == item["table"]
    assert result["tenant_id"] == TENANT
    properties = item["record"]["properties"]
    assert result["alert_id"] == properties.get("AlertId", "")
    if item["table"] in ALERT_TABLES:
        assert result["service_source"] and result["detection_source"], item["name"]
        assert result["lineage_path"].endswith(f"> alert:{properties['AlertId']} > hunting")


@pytest.mark.parametrize("sourcetype", [*STREAMING.sourcetypes, "my:custom:defender"])
@pytest.mark.parametrize("item", CORPUS, ids=lambda i: i["name"])
def test_every_corpus_record_is_placed_from_raw(item: Dict[str, Any], sourcetype: str) -> None:
    _assert_placed(place(_raw_record(item, sourcetype)), item)


def test_the_issues_three_records() -> None:
    by_name = {i["name"]: i for i in CORPUS}
    info = place(_raw_record(by_name["AlertInfo"], "ms:defender:eventhub"))
    assert info["lineage_path"] == (
        f"? > microsoftDefenderForEndpoint > microsoftDefenderForEndpoint > alert:{ALERT_ID} > hunting"
    )
    assert (info["service_source_label"], info["detection_source_label"]) == ("Microsoft Defender for Endpoint", "EDR")
    evidence = place(_raw_record(by_name["AlertEvidence"], "mscs:azure:eventhub"))
    assert evidence["alert_id"] == ALERT_ID and evidence["hunting_table"] == "AlertEvidence"
    process = place(_raw_record(by_name["DeviceProcessEvents"], "ms:defender:eventhub"))
    assert (process["lineage_layer"], process["hunting_table"], process["alert_id"]) == (
        "hunting",
        "DeviceProcessEvents",
        "",
    )
    assert process["lineage_path"] == "" and process["lineage_warning"] == ""


def test_behavior_rows_use_the_streaming_display_names() -> None:
    item = next(i for i in CORPUS if i["table"] == "BehaviorEntities")
    result = place(_raw_record(item, "ms:defender:eventhub"))
    assert (result["service_source"], result["detection_source"]) == ("microsoftDefenderForCloudApps", "unknown")
    assert result["lineage_warning"] == ""


def test_an_eventhub_sourcetype_alone_does_not_make_a_streaming_record() -> None:
    """mscs:azure:eventhub carries every Azure log: without AdvancedHunting-* it is not Defender's."""
    azure = {"time": "2026-11-01T10:00:00Z", "category": "Administrative", "properties": {"x": "y"}}
    result = place({"_raw": json.dumps(azure), "sourcetype": "mscs:azure:eventhub"})
    assert result["lineage_layer"] == "" and "unrecognised event" in result["lineage_warning"]


# --- records wrapper ---------------------------------------------------------------------------


def _wrapped(*names: str) -> Dict[str, Any]:
    by_name = {i["name"]: i for i in CORPUS}
    return {"_raw": json.dumps({"records": [by_name[n]["record"] for n in names]}), "sourcetype": "mscs:azure:eventhub"}


def test_wrapped_single_record() -> None:
    result = place(_wrapped("AlertInfo"))
    assert (result["hunting_table"], result["alert_id"], result["tenant_id"]) == ("AlertInfo", ALERT_ID, TENANT)
    assert result["lineage_warning"] == ""


def test_wrapped_records_that_agree_are_placed_from_the_first_without_warning() -> None:
    result = place(_wrapped("AlertInfo", "AlertInfo"))
    assert result["alert_id"] == ALERT_ID and result["lineage_warning"] == ""


def test_wrapped_records_that_disagree_are_placed_from_the_first_and_say_so() -> None:
    result = place(_wrapped("AlertInfo", "AlertEvidence", "DeviceProcessEvents"))
    assert (result["hunting_table"], result["alert_id"]) == ("AlertInfo", ALERT_ID)
    assert result["lineage_warning"] == (
        "records body of 3 streaming records naming different tables, alerts: placed from the first"
    )


def test_wrapper_skips_records_that_are_not_streaming_records() -> None:
    by_name = {i["name"]: i for i in CORPUS}
    raw = json.dumps({"records": [{"category": "Administrative"}, by_name["AlertEvidence"]["record"]]})
    result = place({"_raw": raw})
    assert (result["hunting_table"], result["alert_id"]) == ("AlertEvidence", ALERT_ID)


# --- mixed chunks: values decide, never empty columns ------------------------------------------


def _graph_alert() -> Dict[str, Any]:
    """A Graph alert under a sourcetype of the user's, without @odata.type: known by its keys only."""
    alert = json.loads((SAMPLES / "alert_v2.json").read_text(encoding="utf-8"))
    alert.pop("@odata.type", None)
    raw = json.dumps(alert)
    return {"_raw": raw, "sourcetype": "ms:defender:graph:alert_custom", **_extracted(raw)}


def _azure_activity() -> Dict[str, Any]:
    """Another Azure log on the same Event Hub: nothing of Defender's."""
    raw = json.dumps({"time": "2026-11-01T10:00:00Z", "category": "Administrative", "properties": {"a": "b"}})
    return {"_raw": raw, "sourcetype": "mscs:azure:eventhub", **_extracted(raw)}


def _legacy_incident() -> Dict[str, Any]:
    raw = json.dumps({"incidentId": 924518, "incidentName": "Multi-stage incident", "status": "Active", "alerts": []})
    return {"_raw": raw, "sourcetype": "ms365:defender:incident_custom", **_extracted(raw)}


def _extracted(raw: str) -> Dict[str, Any]:
    """Fields as KV_MODE = json gives them (one value a plain string, several a list)."""
    return {k: v[0] if len(v) == 1 else v for k, v in json_fields(raw, cutoff=None).items()}


def _as_chunk(records: List[Dict[str, Any]]) -> List[Dict[str, Any]]:
    """Every record carries every column of the chunk, empty where it has none (as splunkd sends)."""
    columns = list(dict.fromkeys(k for r in records for k in r))
    return [{c: r.get(c, "") for c in columns} for r in records]


@pytest.mark.parametrize("extracted", [False, True], ids=["raw", "extracted"])
def test_mixed_chunk_places_every_record_by_its_values(extracted: bool) -> None:
    streaming = []
    for item in CORPUS:
        record = _raw_record(item, "ms:defender:eventhub")
        if extracted:
            record.update(_extracted(record["_raw"]))
        streaming.append(record)
    chunk = _as_chunk([_graph_alert(), _legacy_incident(), _azure_activity(), *streaming])
    assert "serviceSource" in chunk[3] and chunk[3]["serviceSource"] == ""  # the trap is laid
    assert "incidentName" in chunk[0] and chunk[0]["incidentName"] == ""
    results = [place(r) for r in chunk]
    assert results[0]["lineage_layer"] == "detection" and results[0]["alert_id"]
    assert results[0]["lineage_warning"] == ""
    assert results[1]["lineage_layer"] == "incident" and results[1]["incident_id"] == "924518"
    assert results[2]["lineage_layer"] == "" and "unrecognised event" in results[2]["lineage_warning"]
    for item, result in zip(CORPUS, results[3:]):
        _assert_placed(result, item)


@pytest.mark.parametrize(
    ("column", "wrong_layer"),
    [("serviceSource", "detection"), ("incidentName", "incident"), ("alertId", "detection"), ("AlertId", "hunting")],
)
def test_an_empty_column_decides_nothing(column: str, wrong_layer: str) -> None:
    """On main, a present-but-empty column placed an unknown event at a layer, with empty ids."""
    result = place({"_raw": json.dumps({"something": "else"}), column: ""})
    assert result["lineage_layer"] == "" and "unrecognised event" in result["lineage_warning"]
    raw_empty = place({"_raw": json.dumps({"something": "else", column: None})})
    assert raw_empty["lineage_layer"] == ""
    filled = place({"_raw": json.dumps({"something": "else"}), column: "x1"})
    assert filled["lineage_layer"] == wrong_layer  # the same column WITH a value still decides


def test_empty_object_decides_nothing_but_a_provider_does() -> None:
    assert place({"_raw": json.dumps({"vendorInformation": {}})})["lineage_layer"] == ""
    legacy = {"vendorInformation": {"provider": "Microsoft Defender ATP"}, "id": "g1"}
    assert place({"_raw": json.dumps(legacy)})["service_source"] == "microsoftDefenderForEndpoint"


def test_hunting_table_empty_for_other_shapes() -> None:
    result = place(_graph_alert())
    assert result["hunting_table"] == ""
    assert lineage.OUTPUT_FIELDS[-2:] == ("hunting_table", "lineage_warning")


def test_searchbnf_and_readme_describe_every_output_field_and_the_streaming_shapes() -> None:
    repo = FIXTURES.parents[1]
    bnf = (repo / "package" / "default" / "searchbnf.conf").read_text(encoding="utf-8")
    readme = (repo / "README.md").read_text(encoding="utf-8")
    for name in OUTPUT_FIELDS:
        assert name in bnf, name
        assert f"`{name}`" in readme, name
    for text in (bnf, readme):
        assert "AdvancedHunting-<Table>" in text
        assert all(st in text for st in STREAMING.sourcetypes)


def test_own_hunting_rows_give_the_table_their_input_named() -> None:
    row = {"AlertId": "da1", "ServiceSource": "Microsoft Defender for Endpoint", "HuntingTable": "AlertInfo"}
    source = f"ms_graph://{TENANT}/security/runHuntingQuery/alerts"
    result = place({"_raw": json.dumps(row), "sourcetype": "ms:defender:graph:hunting", "source": source})
    assert (result["lineage_layer"], result["hunting_table"]) == ("hunting", "AlertInfo")
    extracted = place({"_raw": "{}", "sourcetype": "ms:defender:graph:hunting", "HuntingTable": "EmailEvents"})
    assert extracted["hunting_table"] == "EmailEvents"
    # a row whose query named no single table says nothing
    unnamed = {k: v for k, v in row.items() if k != "HuntingTable"}
    assert place({"_raw": json.dumps(unnamed), "sourcetype": "ms:defender:graph:hunting"})["hunting_table"] == ""
