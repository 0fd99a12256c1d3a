"""The coverage-gap correlation search (issue 17), run on stand-in events: alerts the Defender
streaming API delivered (AlertInfo rows) that never arrived through Graph alerts_v2 within the
stated delay. Events -> search-time fields (the shipped props.conf; streaming events as KV_MODE =
json gives them) -> the saved search's own pipeline (tests/harness/spl_pipeline.py), with
``defenderlineage`` as the core's ``place``."""

from __future__ import annotations

import copy
import json
from typing import Any, Dict, List, Optional

import pytest

from tests.fixture_paths import FIXTURES, SAMPLES
from tests.fixtures.streaming import build_corpus
from tests.harness.searchtime import extract, json_fields, load_props
from tests.harness.spl_pipeline import Pipeline, Result, UnsupportedSpl, base_search_expression
from tests.unit.test_correlation import DEFAULT
from tests.unit.test_searches import conf, expand, macros

SEARCH = "TA-defender-lineage - Alert streamed but missing from alerts_v2"
CORPUS: List[Dict[str, Any]] = json.loads((FIXTURES / "streaming" / "records.json").read_text(encoding="utf-8"))
TENANT = build_corpus.TENANT
NOW = 1_800_000_000.0
HOUR = 3600.0


def _streaming(name: str, at: float, sourcetype: str = "ms:defender:eventhub") -> Result:
    record = next(i for i in CORPUS if i["name"] == name)["record"]
    raw = json.dumps(record)
    result: Result = {"index": "defender", "sourcetype": sourcetype, "_raw": raw, "_time": at}
    for key, values in json_fields(raw).items():
        result[key] = values[0] if len(values) == 1 else values
    return result


def _graph_alert(alert_id: str, at: float) -> Result:
    alert = json.loads((SAMPLES / "alert_v2.json").read_text(encoding="utf-8"))
    alert["id"] = alert_id
    raw = json.dumps(alert)
    props = load_props(DEFAULT / "props.conf")
    result: Result = {"index": "defender", "sourcetype": "ms:defender:graph:alert", "_raw": raw, "_time": at}
    result["source"] = f"ms_graph://{TENANT}/security/alerts_v2"
    for key, values in extract(props, "ms:defender:graph:alert", raw).items():
        result[key] = values[0] if len(values) == 1 else values
    return result


def _run(events: List[Result], overrides: Optional[Dict[str, str]] = None) -> List[Result]:
    table = macros()
    for name, body in (overrides or {}).items():
        table[(name, 0)] = ([], body)
    search = expand(conf("savedsearches.conf").get(SEARCH, "search"), table)
    return Pipeline(NOW).run(search, copy.deepcopy(events))


MDE, MDO, MDCA = build_corpus.ALERT_MDE, build_corpus.ALERT_MDO, build_corpus.ALERT_MDCA


def _corpus() -> List[Result]:
    return [
        # MDE: streamed 3 h ago AND in alerts_v2: no gap.
        _streaming("AlertInfo", NOW - 3 * HOUR),
        _graph_alert(MDE, NOW - 2.9 * HOUR),
        # MDO: streamed 3 h ago, never in alerts_v2: the gap (its evidence row is no AlertInfo row).
        _streaming("AlertInfo-office", NOW - 3 * HOUR, "mscs:azure:eventhub"),
        _streaming("AlertEvidence", NOW - 3 * HOUR),
        # MDCA: streamed 10 min ago: still inside the delay.
        _streaming("AlertInfo-cloudapps-no-timestamp", NOW - 600),
        # Telemetry rows name no alert.
        _streaming("DeviceProcessEvents", NOW - 3 * HOUR),
    ]


def test_reports_only_the_alert_missing_from_alerts_v2_after_the_delay() -> None:
    results = _run(_corpus())
    assert [r["alert_id"] for r in results] == [MDO]
    (gap,) = results
    assert gap["tenant_id"] == TENANT
    assert gap["product"] == "Microsoft Defender for Office 365"
    assert gap["detection"] == "Microsoft Defender for Office 365"
    assert gap["title"] == "Email messages containing malicious file removed after delivery"
    assert gap["delay_hours"] == 3


def test_the_delay_is_the_macro() -> None:
    results = _run(_corpus(), overrides={"defender_lineage_coverage_delay": "300"})
    assert sorted(str(r["alert_id"]) for r in results) == sorted([MDO, MDCA])


def test_without_the_graph_alert_the_endpoint_alert_is_a_gap_too() -> None:
    events = [e for e in _corpus() if e["sourcetype"] != "ms:defender:graph:alert"]
    assert sorted(str(r["alert_id"]) for r in _run(events)) == sorted([MDE, MDO])


def test_streaming_macro_names_both_event_hub_sourcetypes() -> None:
    body = macros()[("defender_lineage_streaming", 0)][1]
    assert 'sourcetype="ms:defender:eventhub"' in body and 'sourcetype="mscs:azure:eventhub"' in body


@pytest.mark.parametrize(
    ("raw", "matches"),
    [
        ('{"category": "AdvancedHunting-AlertInfo"}', True),
        ('{"category": "advancedhunting-alertinfo"}', True),
        ('{"category": "AdvancedHunting-AlertInfoX"}', False),
        ('{"category": "AdvancedHunting-AlertEvidence"}', False),
    ],
)
def test_a_base_search_phrase_matches_raw_like_a_term(raw: str, matches: bool) -> None:
    results = Pipeline(NOW).run('index=defender "AdvancedHunting-AlertInfo"', [{"index": "defender", "_raw": raw}])
    assert bool(results) is matches


def test_a_base_search_phrase_with_a_wildcard_is_refused() -> None:
    with pytest.raises(UnsupportedSpl):
        base_search_expression('index=defender "AdvancedHunting-*"')


def test_a_base_search_mixing_or_and_and_at_one_level_is_refused() -> None:
    """Splunk's search reads OR before AND, eval the opposite: the runner must not guess."""
    with pytest.raises(UnsupportedSpl):
        base_search_expression('index=defender "AdvancedHunting-AlertInfo" OR sourcetype="x"')
    assert base_search_expression('(index=defender "a") OR (sourcetype="x")')


@pytest.mark.parametrize(
    ("term", "value", "matches"),
    [
        ('source="ms_graph://T1/*"', "ms_graph://t1/security/alerts_v2", True),
        ('source="ms_graph://T1/*"', "ms_graph://T2/security/alerts_v2", False),
        ("sourcetype=ms*", "MS:defender:graph:alert", True),
        ('source="*"', "anything", True),
    ],
)
def test_a_base_search_wildcard_matches_any_text_case_insensitively(term: str, value: str, matches: bool) -> None:
    field = term.split("=")[0]
    results = Pipeline(NOW).run(f"index=defender {term}", [{"index": "defender", field: value}])
    assert bool(results) is matches
    assert Pipeline(NOW).run(f"index=defender {term}", [{"index": "defender"}]) == []  # no field, no match


# --- the funnel panel of the lineage dashboard ---------------------------------------------------


def _funnel_query(tenant: str) -> str:
    from tests.unit.test_searches import dashboards

    query = dashboards()["defender_lineage"][1]["dataSources"]["ds_funnel"]["options"]["query"]
    return expand(query.replace("$account_tenant$", tenant).replace("$tenant$", "*"), macros())


def test_funnel_counts_each_products_alerts_per_layer() -> None:
    from defender_lineage_core.incident_store import docs_from_alert, docs_from_incident
    from tests.integration.test_enrichment import alert_item, incident_item

    docs = docs_from_incident(incident_item("31337"), TENANT) + docs_from_alert(alert_item(MDE, "31337"), TENANT)

    def store(incident_keys: Any, alert_keys: Any) -> List[Dict[str, Any]]:
        return [d for d in docs if d.get("incident_key") in incident_keys or d.get("alert_key") in alert_keys]

    events = _corpus()
    results = Pipeline(NOW, store=store).run(_funnel_query(TENANT), copy.deepcopy(events))
    rows = {r["product"]: r for r in results}
    stages = ("1. hunting row (AlertInfo)", "2. alert (alerts_v2)", "3. in an incident")
    assert {p: tuple(rows[p].get(s) for s in stages) for p in rows} == {
        "Microsoft Defender for Endpoint": (1, 1, 1),  # streamed, in alerts_v2, in incident 31337
        "Microsoft Defender for Office 365": (1, 0, 0),  # streamed only: the leak
        "Microsoft Defender for Cloud Apps": (1, 0, 0),
    }
    # another tenant's filter keeps nothing of this one
    assert Pipeline(NOW, store=store).run(_funnel_query("other-tenant"), copy.deepcopy(events)) == []
