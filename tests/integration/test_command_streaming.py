"""defenderlineage, built, on Defender streaming API records (issue 17) through the chunked protocol
driver, on Python 3.9 and 3.13: the corpus placed with hunting_table and no warning, single and
wrapped, in mixed chunks beside Graph alerts and legacy incidents (every record carrying the
union of the chunk's columns, as splunkd sends them), and AlertInfo rows given their alert's
incident by the incident store."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Dict, List

import pytest

from defender_lineage_core.incident_store import COLLECTION, docs_from_alert, docs_from_incident
from defender_lineage_core.lineage import STREAMING
from tests.fixture_paths import FIXTURES, SAMPLES
from tests.fixtures.streaming import build_corpus
from tests.harness.scp_driver import CommandResult, run_command
from tests.harness.searchtime import json_fields
from tests.harness.splunkd_standin import SplunkdStandin
from tests.integration.test_enrichment import alert_item, incident_item

pytestmark = pytest.mark.integration

CORPUS: List[Dict[str, Any]] = json.loads((FIXTURES / "streaming" / "records.json").read_text(encoding="utf-8"))
TENANT = build_corpus.TENANT


def _run(addon: Path, python: str, records: List[Dict[str, Any]], **kwargs: Any) -> CommandResult:
    result = run_command(addon, python, records, **kwargs)
    assert result.error is None, (result.error, result.stderr[-3000:])
    assert result.returncode == 0, result.stderr[-3000:]
    assert len(result.records) == len(records)
    return result


def _extracted(raw: str) -> Dict[str, Any]:
    return {k: v[0] if len(v) == 1 else v for k, v in json_fields(raw).items()}


def _streaming(item: Dict[str, Any], sourcetype: str, extracted: bool) -> Dict[str, Any]:
    raw = json.dumps(item["record"])
    record: Dict[str, Any] = {
        "_raw": raw,
        "sourcetype": sourcetype,
        "source": "eventhub://defender",
        "name": item["name"],
    }
    if extracted:
        record.update(_extracted(raw))
    return record


def _assert_corpus_placed(records: List[Dict[str, Any]]) -> None:
    by_name = {i["name"]: i for i in CORPUS}
    for record in records:
        item = by_name[record["name"]]
        assert record["lineage_warning"] == "", (item["name"], record["lineage_warning"])
        assert (record["lineage_layer"], record["lineage_depth"]) == ("hunting", "0"), item["name"]
        assert record["hunting_table"] == item["table"]
        assert record["tenant_id"] == TENANT
        assert record["alert_id"] == item["record"]["properties"].get("AlertId", "")


@pytest.mark.parametrize("extracted", [False, True], ids=["raw", "extracted"])
def test_mixed_chunk_through_the_driver(addon: Path, python: str, extracted: bool) -> None:
    alert_raw = (SAMPLES / "alert_v2.json").read_text(encoding="utf-8")
    alert = {"_raw": alert_raw, "sourcetype": "ms:defender:graph:alert", "name": "alert", **_extracted(alert_raw)}
    legacy_raw = json.dumps({"incidentId": 924518, "incidentName": "Multi-stage", "status": "Active"})
    legacy = {"_raw": legacy_raw, "sourcetype": "my:defender", "name": "legacy", **_extracted(legacy_raw)}
    streaming = [
        _streaming(item, STREAMING.sourcetypes[n % len(STREAMING.sourcetypes)], extracted)
        for n, item in enumerate(CORPUS)
    ]
    result = _run(addon, python, [alert, legacy, *streaming], args=["incidents=false"])
    first, second, *rest = result.records
    assert first["lineage_layer"] == "detection" and first["hunting_table"] == ""
    assert second["lineage_layer"] == "incident" and second["incident_id"] == "924518"
    _assert_corpus_placed(rest)


def test_wrapped_records_through_the_driver(addon: Path, python: str) -> None:
    bodies = [{"records": [item["record"]]} for item in CORPUS]
    records = [
        {"_raw": json.dumps(b), "sourcetype": "mscs:azure:eventhub", "name": i["name"]} for b, i in zip(bodies, CORPUS)
    ]
    result = _run(addon, python, records, args=["incidents=false"])
    _assert_corpus_placed(result.records)


def test_alertinfo_gets_its_alerts_incident_from_the_store(addon: Path, python: str, splunkd: SplunkdStandin) -> None:
    splunkd.load_app_defaults(addon)
    alert_id = build_corpus.ALERT_MDE
    docs = docs_from_incident(incident_item("31337", displayName="streamed"), TENANT)
    docs += docs_from_alert(alert_item(alert_id, "31337"), TENANT)
    splunkd.kv_save(COLLECTION, docs)
    info = next(i for i in CORPUS if i["name"] == "AlertInfo")
    result = _run(
        addon,
        python,
        [_streaming(info, "ms:defender:eventhub", extracted=True)],
        splunkd_uri=splunkd.uri,
        session_key=splunkd.session_key,
    )
    (record,) = result.records
    assert record["incident_id"] == "31337" and record["incident_title"] == "streamed"
    assert record["lineage_path"] == (
        f"incident:31337 > microsoftDefenderForEndpoint > microsoftDefenderForEndpoint > alert:{alert_id} > hunting"
    )
    assert record["hunting_table"] == "AlertInfo" and record["lineage_warning"] == ""
