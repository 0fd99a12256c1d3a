"""The BUILT response actions, run as splunkd runs a custom alert action (``--execute``, the JSON
payload on stdin, the gzipped results file), against the Graph simulator and the splunkd stand-in.

Audit events are read back from the stash files the actions leave in $SPLUNK_HOME/var/spool/splunk
(tests/harness/alert_action_runner.py). The ``splunkd`` fixture proves afterwards that no secret,
token or session key reached a log, an audit event, a spool file or the process output.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence

import pytest

from defender_lineage_core.incident_store import IncidentCache
from tests.harness.alert_action_runner import ActionResult, run_alert_action
from tests.harness.graph_sim import GraphSimulator, SyntheticTenant
from tests.harness.graph_sim.server import DEFAULT_ROLES
from tests.harness.pipeline import OUTPUTS, seed_account
from tests.harness.searchtime import extract, load_props
from tests.harness.splunkd_standin import SplunkdStandin
from tests.integration.conftest import scan_for_secrets

INCIDENT_WRITE = "SecurityIncident.ReadWrite.All"
ALERT_WRITE = "SecurityAlert.ReadWrite.All"
STORE = "ta_defender_lineage_incidents"


def run(
    addon: Path,
    action: str,
    python: str,
    splunkd: SplunkdStandin,
    tmp_path: Path,
    rows: Sequence[Mapping[str, str]],
    params: Mapping[str, str],
    env: Optional[Dict[str, str]] = None,
) -> ActionResult:
    result = run_alert_action(addon, action, python, splunkd, tmp_path / "splunk_home", rows, params, env=env)
    OUTPUTS.extend([result.stdout, result.stderr, result.log])
    return result


def graph_writes(sim: GraphSimulator) -> List[str]:
    return [r.method for r in sim.requests if r.resource in ("incidents", "alerts_v2") and r.method != "GET"]


def active_incident(sim: GraphSimulator, without: Sequence[str] = ()) -> Dict[str, Any]:
    return next(
        i
        for i in sim.tenant.visible_at("incidents")
        if i["status"] == "active" and not i.get("assignedTo") and i["id"] not in without
    )


def test_update_incident_end_to_end(addon, python, sim: GraphSimulator, splunkd: SplunkdStandin, tmp_path: Path):
    """Duplicates once; case-insensitive values sent camelCase; only changed properties sent; tags merged
    into the current customTags; a comment; 404 for an unknown id; audit per attempt; store updated."""
    seed_account(splunkd, sim, "acme")
    sim.set_roles(*DEFAULT_ROLES, INCIDENT_WRITE)
    incident = active_incident(sim)
    sim.tenant.add_version("incidents", {**incident, "customTags": ["VIP"], "lastUpdateDateTime": sim.clock_text})
    rows = [{"incident_id": incident["id"], "tenant_id": sim.tenant_id, "rid_hint": str(n)} for n in range(3)]
    rows.append({"incident_id": "999999", "tenant_id": sim.tenant_id})
    params = {
        "status": "ACTIVE",  # already active: not sent
        "classification": "FalsePositive",
        "determination": "clean",  # the portal's spelling of notMalicious
        "tags_add": "vip, Splunk",  # vip is already there (case-insensitive): only Splunk is added
        "comment": "Closed from Splunk: false positive",
    }
    result = run(addon, "defender_update_incident", python, splunkd, tmp_path, rows, params)

    assert result.returncode == 2, result.stderr[-2000:]  # one target failed (404)
    writes = [w for w in sim.writes if w["id"] == incident["id"]]
    assert writes == [
        {
            "method": "PATCH",
            "resource": "incidents",
            "id": incident["id"],
            "path": f"/v1.0/security/incidents/{incident['id']}",
            "tenant": "",  # the home tenant's incident, written there
            "body": {
                "classification": "falsePositive",
                "determination": "notMalicious",
                "customTags": ["VIP", "Splunk"],
            },
        },
        {
            "method": "POST",
            "resource": "incidents",
            "id": incident["id"],
            "path": f"/v1.0/security/incidents/{incident['id']}/comments",
            "tenant": "",
            "body": {"comment": "Closed from Splunk: false positive"},
        },
    ]
    assert [e.sourcetype for e in result.events] == ["ms:defender:graph:action"] * 2
    updated, missing = (e.fields for e in result.events)
    assert updated["outcome"] == "updated"
    assert updated["search_name"] == "Defender triage" and updated["owner"] == "analyst"
    assert (updated["target_id"], updated["tenant_id"], updated["account"]) == (incident["id"], sim.tenant_id, "acme")
    assert updated["before"] == {
        "status": "active",
        "classification": incident["classification"],
        "determination": incident["determination"],
        "customTags": ["VIP"],
    }
    assert updated["requested"]["determination"] == "notMalicious"
    assert updated["changed"] == writes[0]["body"]
    assert updated["comment_added"] is True and updated["http_status"] == 200
    assert updated["result_rows"] == 3
    assert updated["graph_request_id"], "Graph's request-id header is audited"
    assert missing["outcome"] == "failed" and missing["http_status"] == 404
    assert "999999" in missing["message"] and sim.tenant_id in missing["message"]
    assert {e.index for e in result.events} == {"main"}
    # Search time, with the shipped props.conf: the CIM Change fields (eventtype defender_lineage_response_action).
    props = load_props(addon / "default" / "props.conf")
    ok, failed = (extract(props, "ms:defender:graph:action", e.raw) for e in result.events)
    assert (ok["action"], ok["status"], ok["object_id"], ok["object_category"], ok["user"]) == (
        ["modified"],
        ["success"],
        [incident["id"]],
        ["incident"],
        ["analyst"],
    )
    assert ok["requested.classification"] == ["falsePositive"] and ok["before.customTags{}"] == ["VIP"]
    assert failed["status"] == ["failure"] and failed["result"] == ["failed"]
    # defenderlineage sees the new state at once: the store's newest summary is the action's.
    cache = IncidentCache(lambda ikeys, akeys: splunkd.kv_records(STORE))
    cache.prefetch([f"{sim.tenant_id}:{incident['id']}"])
    view = cache.view(sim.tenant_id, incident["id"])
    assert view is not None and view.output_fields()["incident_status"] == "active"
    docs = [d for d in splunkd.kv_records(STORE) if d.get("origin") == "actions"]
    assert [(d["incident_id"], d["classification"], d["determination"]) for d in docs] == [
        (incident["id"], "falsePositive", "notMalicious")
    ]


def test_resolve_updates_lineage_status_at_once(
    addon, python, sim: GraphSimulator, splunkd: SplunkdStandin, tmp_path: Path
):
    seed_account(splunkd, sim, "acme")
    sim.set_roles(*DEFAULT_ROLES, INCIDENT_WRITE)
    incident = active_incident(sim)
    rows = [{"incident_id": incident["id"], "tenant_id": sim.tenant_id}]
    result = run(addon, "defender_update_incident", python, splunkd, tmp_path, rows, {"status": "resolved"})
    assert result.returncode == 0, result.log[-2000:]
    cache = IncidentCache(lambda ikeys, akeys: splunkd.kv_records(STORE))
    cache.prefetch([f"{sim.tenant_id}:{incident['id']}"])
    view = cache.view(sim.tenant_id, incident["id"])
    assert view is not None and view.output_fields()["incident_status"] == "resolved"


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"status": "closed"}, "status"),
        ({"status": "redirected"}, "status"),
        ({"determination": "compromised"}, "determination"),
        ({"assigned_to": "Jane Doe"}, "assigned_to"),
        ({"tags_add": "ok, <script>"}, "tags_add"),
        ({"status": "resolved", "max_targets": "0"}, "max_targets"),
        ({}, "status"),  # nothing to change
    ],
)
def test_bad_values_refused_before_any_request(
    addon, python, sim: GraphSimulator, splunkd: SplunkdStandin, tmp_path: Path, params: Dict[str, str], field: str
):
    seed_account(splunkd, sim, "acme")
    sim.set_roles(*DEFAULT_ROLES, INCIDENT_WRITE)
    rows = [{"incident_id": active_incident(sim)["id"], "tenant_id": sim.tenant_id}]
    result = run(addon, "defender_update_incident", python, splunkd, tmp_path, rows, params)
    assert result.returncode == 2
    assert sim.requests == [], "not even a token request before the values are valid"
    (event,) = result.events
    assert event.fields["outcome"] == "refused" and event.fields["field"] == field


def test_bad_target_id_refused_before_any_request(
    addon, python, sim: GraphSimulator, splunkd: SplunkdStandin, tmp_path: Path
):
    seed_account(splunkd, sim, "acme")
    rows = [
        {"incident_id": "1", "tenant_id": sim.tenant_id},
        {"incident_id": "1/../../alerts_v2", "tenant_id": sim.tenant_id},
    ]
    result = run(addon, "defender_update_incident", python, splunkd, tmp_path, rows, {"status": "resolved"})
    assert result.returncode == 2 and sim.requests == []
    assert result.events[0].fields["field"] == "incident_id"


def test_403_names_the_write_permission_and_admin_consent(
    addon, python, sim: GraphSimulator, splunkd: SplunkdStandin, tmp_path: Path
):
    seed_account(splunkd, sim, "acme")  # the app has only the read roles
    rows = [{"incident_id": active_incident(sim)["id"], "tenant_id": sim.tenant_id}]
    result = run(addon, "defender_update_incident", python, splunkd, tmp_path, rows, {"status": "resolved"})
    assert result.returncode == 2
    (event,) = result.events
    assert event.fields["outcome"] == "failed" and event.fields["http_status"] == 403
    assert INCIDENT_WRITE in event.fields["message"] and "admin consent" in event.fields["message"]
    assert sim.writes == []


def test_429_waits_for_retry_after(addon, python, sim: GraphSimulator, splunkd: SplunkdStandin, tmp_path: Path):
    seed_account(splunkd, sim, "acme")
    sim.set_roles(*DEFAULT_ROLES, INCIDENT_WRITE)
    sim.faults.add(429, resource="incidents", method="PATCH", retry_after="1.5", times=1)
    rows = [{"incident_id": active_incident(sim)["id"], "tenant_id": sim.tenant_id}]
    result = run(addon, "defender_update_incident", python, splunkd, tmp_path, rows, {"status": "inProgress"})
    assert result.returncode == 0, result.log[-2000:]
    patches = [r for r in sim.requests if r.method == "PATCH"]
    assert [r.status for r in patches] == [429, 200]
    assert patches[1].time - patches[0].time >= 1.5
    assert result.events[0].fields["outcome"] == "updated"


def test_dry_run_reads_and_audits_without_changing(
    addon, python, sim: GraphSimulator, splunkd: SplunkdStandin, tmp_path: Path
):
    seed_account(splunkd, sim, "acme")
    sim.set_roles(*DEFAULT_ROLES, INCIDENT_WRITE)
    incident = active_incident(sim)
    rows = [{"incident_id": incident["id"], "tenant_id": sim.tenant_id}]
    params = {"status": "resolved", "comment": "would close", "dry_run": "1"}
    result = run(addon, "defender_update_incident", python, splunkd, tmp_path, rows, params)
    assert result.returncode == 0
    assert sim.writes == [] and graph_writes(sim) == []
    (event,) = result.events
    assert event.fields["outcome"] == "dry_run" and event.fields["changed"] == {"status": "resolved"}
    assert not [d for d in splunkd.kv_records(STORE) if d.get("origin") == "actions"]


def test_merged_incident_is_acted_on_at_its_survivor(
    addon, python, sim: GraphSimulator, splunkd: SplunkdStandin, tmp_path: Path
):
    seed_account(splunkd, sim, "acme")
    sim.set_roles(*DEFAULT_ROLES, INCIDENT_WRITE)
    first, middle, survivor = sim.tenant.scenarios["merge_chain"]
    rows = [{"incident_id": first, "tenant_id": sim.tenant_id}]
    result = run(
        addon, "defender_update_incident", python, splunkd, tmp_path, rows, {"assigned_to": "ir-lead@contoso.com"}
    )
    assert result.returncode == 0, result.log[-2000:]
    assert [(w["method"], w["id"]) for w in sim.writes] == [("PATCH", survivor)]
    (event,) = result.events
    assert event.fields["target_id"] == first and event.fields["acted_on_id"] == survivor
    assert event.fields["merged_from"] == [first, middle]


def test_cap_stops_and_says_so(addon, python, sim: GraphSimulator, splunkd: SplunkdStandin, tmp_path: Path):
    seed_account(splunkd, sim, "acme")
    sim.set_roles(*DEFAULT_ROLES, INCIDENT_WRITE)
    ids = [i["id"] for i in sim.tenant.visible_at("incidents") if i["status"] == "active"][:3]
    rows = [{"incident_id": i, "tenant_id": sim.tenant_id} for i in ids]
    params = {"status": "inProgress", "max_targets": "2"}
    result = run(addon, "defender_update_incident", python, splunkd, tmp_path, rows, params)
    assert result.returncode == 2
    assert [w["id"] for w in sim.writes] == ids[:2]
    assert [e.fields["outcome"] for e in result.events] == ["updated", "updated", "capped"]
    assert result.events[-1].fields["skipped_targets"] == 1


def test_update_alert(addon, python, sim: GraphSimulator, splunkd: SplunkdStandin, tmp_path: Path):
    seed_account(splunkd, sim, "acme")
    sim.set_roles(*DEFAULT_ROLES, ALERT_WRITE)
    alert = next(a for a in sim.tenant.visible_at("alerts_v2") if a["status"] == "new")
    rows = [
        {"alert_id": alert["id"], "tenant_id": sim.tenant_id},
        {"alert_id": alert["id"], "tenant_id": sim.tenant_id},
    ]
    params = {"status": "Resolved", "classification": "truePositive", "determination": "Malware", "comment": "seen"}
    result = run(addon, "defender_update_alert", python, splunkd, tmp_path, rows, params)
    assert result.returncode == 0, result.log[-2000:]
    assert [(w["method"], w["body"]) for w in sim.writes] == [
        ("PATCH", {"status": "resolved", "classification": "truePositive", "determination": "malware"}),
        ("POST", {"comment": "seen"}),
    ]
    (event,) = result.events
    assert event.fields["target_type"] == "alert" and event.fields["outcome"] == "updated"


def test_update_alert_403_names_alert_write_permission(
    addon, python, sim: GraphSimulator, splunkd: SplunkdStandin, tmp_path: Path
):
    seed_account(splunkd, sim, "acme")
    alert = sim.tenant.visible_at("alerts_v2")[0]
    rows = [{"alert_id": alert["id"], "tenant_id": sim.tenant_id}]
    result = run(addon, "defender_update_alert", python, splunkd, tmp_path, rows, {"comment": "seen"})
    (event,) = result.events
    assert event.fields["http_status"] == 403 and ALERT_WRITE in event.fields["message"]


def test_sendalert_with_a_literal_id_and_the_only_account(
    addon, python, sim: GraphSimulator, splunkd: SplunkdStandin, tmp_path: Path
):
    """``| makeresults | sendalert defender_update_incident param.incident_id=... param.status=...``:
    no result has the id or tenant fields; the parameter names the target, the only account its tenant."""
    seed_account(splunkd, sim, "acme")
    sim.set_roles(*DEFAULT_ROLES, INCIDENT_WRITE)
    incident = active_incident(sim)
    rows = [{"_time": "1765100000"}]
    result = run(
        addon,
        "defender_update_incident",
        python,
        splunkd,
        tmp_path,
        rows,
        {"incident_id": incident["id"], "status": "resolved"},
    )
    assert result.returncode == 0, result.log[-2000:]
    assert [(w["method"], w["id"]) for w in sim.writes] == [("PATCH", incident["id"])]


def test_requests_draw_from_the_inputs_per_tenant_budget(
    addon, python, sim: GraphSimulator, splunkd: SplunkdStandin, tmp_path: Path
):
    """60 requests a minute shared with one enabled input of the same account: the action's share is
    30 (burst 3, then 0.4 a second), so its 4th Graph request waits about 2.5 s. Without the budget
    the four requests (two reads, two updates) take milliseconds."""
    seed_account(splunkd, sim, "acme")
    splunkd.set_conf("inputs", "defender_alerts://acme_alerts", {"account": "acme", "disabled": "0"})
    sim.set_roles(*DEFAULT_ROLES, INCIDENT_WRITE)
    ids = [i["id"] for i in sim.tenant.visible_at("incidents") if i["status"] == "active"][:2]
    rows = [{"incident_id": i, "tenant_id": sim.tenant_id} for i in ids]
    env = {"TA_DEFENDER_LINEAGE_REQUESTS_PER_MINUTE": "60"}
    result = run(addon, "defender_update_incident", python, splunkd, tmp_path, rows, {"status": "inProgress"}, env)
    assert result.returncode == 0, result.log[-2000:]
    graph = [r for r in sim.requests if r.resource == "incidents"]
    assert [r.method for r in graph] == ["GET", "PATCH", "GET", "PATCH"]
    assert graph[3].time - graph[0].time >= 2.0


OTHER_TENANT = "9c8b7a6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d"


def test_each_result_acts_in_its_own_tenant_with_that_tenants_account(
    addon, python, sim: GraphSimulator, splunkd: SplunkdStandin, tmp_path: Path
):
    """Incident ids are unique only within a tenant: the same id in two tenants is two targets, each
    acted on through the account configured for its tenant; an explicit account of another tenant is
    refused for that target."""
    with GraphSimulator(SyntheticTenant.generate(seed=7, tenant_id=OTHER_TENANT), max_lifetime=300.0) as other:
        seed_account(splunkd, sim, "acme")
        seed_account(splunkd, other, "globex")
        for graph in (sim, other):
            graph.set_roles(*DEFAULT_ROLES, INCIDENT_WRITE)
        incident = active_incident(sim)
        assert any(i["id"] == incident["id"] for i in other.tenant.visible_at("incidents"))  # same id, both
        rows = [
            {"incident_id": incident["id"], "tenant_id": sim.tenant_id},
            {"incident_id": incident["id"], "tenant_id": OTHER_TENANT},
        ]
        result = run(addon, "defender_update_incident", python, splunkd, tmp_path, rows, {"comment": "seen"})
        assert result.returncode == 0, result.log[-2000:]
        assert [(w["method"], w["id"]) for w in sim.writes] == [("POST", incident["id"])]
        assert [(w["method"], w["id"]) for w in other.writes] == [("POST", incident["id"])]
        assert [(e.fields["tenant_id"], e.fields["account"]) for e in result.events] == [
            (sim.tenant_id, "acme"),
            (OTHER_TENANT, "globex"),
        ]
        pinned = run(
            addon, "defender_update_incident", python, splunkd, tmp_path, rows, {"comment": "x", "account": "acme"}
        )
        assert [e.fields["outcome"] for e in pinned.events] == ["updated", "failed"]
        assert "account 'acme' is for tenant" in pinned.events[1].fields["message"]
        assert len(other.writes) == 1
        # The fixture checks the first simulator's tokens and every stored secret; these are the second's.
        assert scan_for_secrets([tmp_path / "splunk_home"], list(OUTPUTS), other.issued_tokens) == []


def test_comment_failing_after_the_update_is_partial_and_not_retried(
    addon, python, sim: GraphSimulator, splunkd: SplunkdStandin, tmp_path: Path
):
    """A 5xx on the comment POST may hide a comment Graph did add: answered at once, never sent twice."""
    seed_account(splunkd, sim, "acme")
    sim.set_roles(*DEFAULT_ROLES, INCIDENT_WRITE)
    sim.faults.add(500, resource="incidents", method="POST", times=1)
    rows = [{"incident_id": active_incident(sim)["id"], "tenant_id": sim.tenant_id}]
    params = {"status": "inProgress", "comment": "escalated"}
    result = run(addon, "defender_update_incident", python, splunkd, tmp_path, rows, params)
    assert result.returncode == 2
    assert [(r.method, r.status) for r in sim.requests if r.resource == "incidents"] == [
        ("GET", 200),
        ("PATCH", 200),
        ("POST", 500),
    ]
    (event,) = result.events
    assert event.fields["outcome"] == "partial" and event.fields["changed"] == {"status": "inProgress"}
    assert event.fields["comment_added"] is False and event.fields["http_status"] == 500
    assert "properties were updated" in event.fields["message"]
