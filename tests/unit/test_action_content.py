"""What Splunk and Enterprise Security see of the response actions: the UCC alert definitions with
their adaptive-response metadata, the audit sourcetype's CIM Change fields, and the dashboard panel."""

from __future__ import annotations

import json
import re
from pathlib import Path

from tests.fixture_paths import SAMPLES
from tests.harness.searchtime import extract, load_props

ROOT = Path(__file__).resolve().parents[2]
DEFAULT = ROOT / "package" / "default"
ACTIONS = {"defender_update_incident": "incident_id", "defender_update_alert": "alert_id"}


def test_both_actions_are_ucc_alerts_usable_ad_hoc_from_incident_review() -> None:
    alerts = {a["name"]: a for a in json.loads((ROOT / "globalConfig.json").read_text())["alerts"]}
    assert set(alerts) == set(ACTIONS)
    for name, id_field in ACTIONS.items():
        alert = alerts[name]
        assert alert["customScript"] == f"{name}_helper"
        assert (ROOT / "package" / "bin" / f"{name}_helper.py").is_file()
        ar = alert["adaptiveResponse"]
        assert ar["supportsAdhoc"] is True and ar["task"] and ar["subject"] and ar["category"] and ar["technology"]
        fields = {e["field"]: e for e in alert["entity"]}
        assert fields[id_field]["defaultValue"] == f"$result.{id_field}$"
        assert fields["tenant_id"]["defaultValue"] == "$result.tenant_id$"
        assert fields["dry_run"]["defaultValue"] == 0 and fields["max_targets"]["defaultValue"] == "20"
        assert {"status", "classification", "determination", "assigned_to", "comment", "account", "index"} <= set(
            fields
        )
        assert ("tags_add" in fields) == (name == "defender_update_incident")


def test_audit_events_are_cim_change_events() -> None:
    props = load_props(DEFAULT / "props.conf")
    audit = json.loads((SAMPLES / "action_audit.json").read_text())
    updated = extract(props, "ms:defender:graph:action", json.dumps(audit))
    assert updated["action"] == ["modified"] and updated["status"] == ["success"]
    assert updated["object_category"] == ["incident"] and updated["user"] == ["analyst"]
    assert updated["vendor_product"] == ["Microsoft Defender XDR"]
    for outcome, status, action in (
        ("failed", "failure", "modified"),
        ("refused", "failure", "modified"),
        ("dry_run", "success", "read"),
        ("unchanged", "success", "read"),
    ):
        fields = extract(props, "ms:defender:graph:action", json.dumps({**audit, "outcome": outcome}))
        assert (fields["status"], fields["action"]) == ([status], [action]), outcome
    eventtypes = load_props(DEFAULT / "eventtypes.conf")
    tags = load_props(DEFAULT / "tags.conf")
    assert eventtypes.get("defender_lineage_response_action", "search") == 'sourcetype="ms:defender:graph:action"'
    assert dict(tags.items("eventtype=defender_lineage_response_action")) == {"change": "enabled"}


def test_collection_health_lists_actions_failures_first() -> None:
    text = (DEFAULT / "data" / "ui" / "views" / "collection_health.xml").read_text()
    board = json.loads(re.search(r"<!\[CDATA\[(.*)\]\]>", text, re.S).group(1))  # type: ignore[union-attr]
    query = board["dataSources"]["ds_actions"]["options"]["query"]
    assert query.startswith("`defender_lineage_actions`")
    assert re.search(r"eval failed=if\(status==\"failure\", 1, 0\).*\| sort 0 - failed - _time", query)
    assert board["visualizations"]["viz_actions"]["dataSources"]["primary"] == "ds_actions"
