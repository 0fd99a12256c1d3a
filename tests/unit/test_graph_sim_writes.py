"""The simulator's write side (writes.py) answers as Graph documents: write role, read-only and
unknown properties, enum members exactly as the CSDL spells them, 404, a new version per write."""

from __future__ import annotations

from typing import Any, Dict

import pytest
import requests

from tests.harness.graph_sim import DEFAULT_ROLES, GraphSimulator


@pytest.fixture
def sim(sim: GraphSimulator) -> GraphSimulator:
    # conftest's shared simulator (reset around each test), with the write roles these tests need.
    sim.set_roles(*DEFAULT_ROLES, "SecurityIncident.ReadWrite.All", "SecurityAlert.ReadWrite.All")
    return sim


def call(sim: GraphSimulator, method: str, path: str, body: Any = None) -> requests.Response:
    headers = {"Authorization": f"Bearer {sim.issue_token()}"}
    return requests.request(method, f"{sim.base_url}/v1.0/security/{path}", json=body, headers=headers, timeout=10)


def active_incident(sim: GraphSimulator) -> Dict[str, Any]:
    return next(i for i in sim.tenant.visible_at("incidents", sim.clock_text) if i["status"] == "active")


def test_patch_changes_only_what_is_sent_and_is_a_new_version(sim: GraphSimulator):
    incident = active_incident(sim)
    answer = call(sim, "PATCH", f"incidents/{incident['id']}", {"status": "inProgress", "customTags": ["a", "b"]})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert (body["status"], body["customTags"], body["severity"]) == ("inProgress", ["a", "b"], incident["severity"])
    assert body["lastUpdateDateTime"] > incident["lastUpdateDateTime"]
    again = call(sim, "GET", f"incidents/{incident['id']}").json()
    assert again["status"] == "inProgress" and again["lastUpdateDateTime"] == body["lastUpdateDateTime"]
    assert sim.writes[-1]["body"] == {"status": "inProgress", "customTags": ["a", "b"]}


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (
            {"status": "Resolved"},
            "Cannot convert the literal 'Resolved' to the expected type 'microsoft.graph.security.incidentStatus'.",
        ),
        ({"classification": "benignPositive"}, "Cannot convert the literal 'benignPositive'"),
        ({"determination": "clean"}, "Cannot convert the literal 'clean'"),
        ({"status": "redirected"}, "cannot be set"),
        ({"severity": "high"}, "The property 'severity' is read-only"),
        ({"displayName": "x"}, "The property 'displayName' is read-only"),
        ({"colour": "red"}, "The property 'colour' does not exist on type 'microsoft.graph.security.incident'"),
        ({"customTags": "a,b"}, "customTags must be a collection of strings"),
    ],
)
def test_invalid_patch_is_400_with_graphs_message(sim: GraphSimulator, body: Dict[str, Any], message: str):
    incident = active_incident(sim)
    before = len(sim.writes)
    answer = call(sim, "PATCH", f"incidents/{incident['id']}", body)
    assert answer.status_code == 400
    assert answer.json()["error"]["code"] == "BadRequest" and message in answer.json()["error"]["message"]
    assert len(sim.writes) == before


def test_alert_patch_refuses_incident_only_properties(sim: GraphSimulator):
    alert = sim.tenant.visible_at("alerts_v2", sim.clock_text)[0]
    assert call(sim, "PATCH", f"alerts_v2/{alert['id']}", {"customTags": ["x"]}).status_code == 400
    assert call(sim, "PATCH", f"alerts_v2/{alert['id']}", {"status": "active"}).status_code == 400
    assert call(sim, "PATCH", f"alerts_v2/{alert['id']}", {"status": "inProgress"}).status_code == 200


def test_comment_is_appended_and_the_list_returned(sim: GraphSimulator):
    incident = active_incident(sim)
    answer = call(sim, "POST", f"incidents/{incident['id']}/comments", {"comment": "from Splunk"})
    assert answer.status_code == 200, answer.text
    comments = answer.json()["value"]
    assert comments[-1]["comment"] == "from Splunk" and comments[-1]["createdDateTime"]
    assert call(sim, "POST", f"incidents/{incident['id']}/comments", {"text": "x"}).status_code == 400
    assert call(sim, "GET", f"incidents/{incident['id']}/comments").status_code == 405


def test_write_needs_the_write_role_and_a_known_id(sim: GraphSimulator):
    incident = active_incident(sim)
    sim.set_roles(*DEFAULT_ROLES)
    refused = call(sim, "PATCH", f"incidents/{incident['id']}", {"status": "resolved"})
    assert refused.status_code == 403
    assert "API required roles: SecurityIncident.ReadWrite.All" in refused.json()["error"]["message"]
    sim.set_roles(*DEFAULT_ROLES, "SecurityIncident.ReadWrite.All")
    assert call(sim, "PATCH", "incidents/999999", {"status": "resolved"}).status_code == 404
    assert call(sim, "POST", "incidents/999999/comments", {"comment": "x"}).status_code == 404


def test_write_faults_come_from_the_fault_plan(sim: GraphSimulator):
    incident = active_incident(sim)
    sim.faults.add(429, resource="incidents", method="PATCH", retry_after="2")
    throttled = call(sim, "PATCH", f"incidents/{incident['id']}", {"status": "resolved"})
    assert throttled.status_code == 429 and throttled.headers["Retry-After"] == "2"
