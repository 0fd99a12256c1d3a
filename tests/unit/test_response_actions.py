"""defender_lineage_core.response_actions: validation, targets, the PATCH body and one target's attempt."""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Tuple

import pytest

from defender_lineage_core.errors import TransientError
from defender_lineage_core.response_actions import (
    ALERT,
    INCIDENT,
    ActionInputError,
    Change,
    HttpAnswer,
    Target,
    act,
    differences,
    parse_change,
    parse_max_targets,
    plan_targets,
)

TENANT = "4a1f0c2e-9b7d-4c3a-8e55-2f6d1b0a9c31"
OTHER = "11111111-2222-3333-4444-555555555555"


# --- parameters ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"status": "RESOLVED"}, (("status", "resolved"),)),
        ({"status": "inprogress"}, (("status", "inProgress"),)),
        ({"classification": "BenignPositive"}, (("classification", "informationalExpectedActivity"),)),
        ({"classification": "falsepositive"}, (("classification", "falsePositive"),)),
        ({"determination": "CompromisedUser"}, (("determination", "compromisedAccount"),)),
        ({"determination": "insufficientdata"}, (("determination", "notEnoughDataToValidate"),)),
        ({"determination": "confirmedUserActivity"}, (("determination", "confirmedActivity"),)),
        ({"assigned_to": "Jane.Doe@contoso.onmicrosoft.com"}, (("assignedTo", "Jane.Doe@contoso.onmicrosoft.com"),)),
        (
            {"status": "unchanged", "classification": "", "assigned_to": "ir@contoso.com"},
            (("assignedTo", "ir@contoso.com"),),
        ),
    ],
)
def test_values_are_matched_case_insensitively_and_sent_as_graph_members(params, expected):
    assert parse_change(INCIDENT, params).properties == expected


@pytest.mark.parametrize(
    ("kind", "params", "field"),
    [
        (INCIDENT, {"status": "new"}, "status"),  # an alert status
        (ALERT, {"status": "active"}, "status"),  # an incident status
        (INCIDENT, {"status": "redirected"}, "status"),  # set by Defender only
        (INCIDENT, {"status": "awaitingAction"}, "status"),
        (INCIDENT, {"classification": "unknownFutureValue"}, "classification"),
        (INCIDENT, {"determination": "bad"}, "determination"),
        (INCIDENT, {"assigned_to": "jane"}, "assigned_to"),
        (INCIDENT, {"assigned_to": "jane doe@contoso.com"}, "assigned_to"),
        (INCIDENT, {"assigned_to": "jane@contoso"}, "assigned_to"),
        (INCIDENT, {"tags_add": "a" * 101}, "tags_add"),
        (INCIDENT, {"tags_add": "fine, semi;colon"}, "tags_add"),
        (INCIDENT, {"tags_add": ",".join(f"t{n}" for n in range(21))}, "tags_add"),
        (ALERT, {"tags_add": "x"}, "tags_add"),  # alerts have no custom tags
        (INCIDENT, {"comment": "x" * 10001}, "comment"),
        (INCIDENT, {"status": "unchanged"}, "status"),  # nothing to do
    ],
)
def test_bad_values_are_refused_naming_the_field(kind, params, field):
    with pytest.raises(ActionInputError) as caught:
        parse_change(kind, params)
    assert caught.value.field == field


def test_tags_are_split_trimmed_and_deduplicated():
    change = parse_change(INCIDENT, {"tags_add": " Splunk , triaged,splunk,, ransomware-2026 "})
    assert change.tags_add == ("Splunk", "triaged", "ransomware-2026")


def test_max_targets_default_and_bounds():
    assert parse_max_targets("") == 20
    assert parse_max_targets("5") == 5
    for bad in ("0", "1001", "ten"):
        with pytest.raises(ActionInputError):
            parse_max_targets(bad)


# --- targets ---------------------------------------------------------------------------------------


def test_each_target_once_in_order_and_capped():
    rows = [
        {"incident_id": "1", "tenant_id": TENANT},
        {"incident_id": "2", "tenant_id": TENANT.upper()},
        {"incident_id": "1", "tenant_id": TENANT.upper()},  # same as the first
        {"incident_id": "1", "tenant_id": OTHER},  # ids are unique only within a tenant
        {"incident_id": "3", "tenant_id": TENANT},
    ]
    plan = plan_targets(INCIDENT, rows, {}, None, max_targets=3)
    assert [(t.tenant_id, t.target_id, t.rows) for t in plan.targets] == [
        (TENANT, "1", (0, 2)),
        (TENANT, "2", (1,)),
        (OTHER, "1", (3,)),
    ]
    assert plan.skipped_over_cap == 1 and plan.duplicate_rows == 1


def test_parameter_is_used_only_when_no_row_has_the_field():
    plan = plan_targets(INCIDENT, [{"x": "1"}], {"incident_id": "42", "tenant_id": TENANT}, None, 20)
    assert [(t.tenant_id, t.target_id) for t in plan.targets] == [(TENANT, "42")]
    # The one row's own tenant still picks the tenant when the id comes from the parameter.
    plan = plan_targets(INCIDENT, [{"tenant_id": OTHER}], {"incident_id": "42", "tenant_id": TENANT}, TENANT, 20)
    assert [(t.tenant_id, t.target_id) for t in plan.targets] == [(OTHER, "42")]
    # Several rows and no id field: a $result token would name the first row's incident for all.
    with pytest.raises(ActionInputError) as caught:
        plan_targets(INCIDENT, [{"x": "1"}, {"x": "2"}], {"incident_id": "42", "tenant_id": TENANT}, None, 20)
    assert "rename" in str(caught.value)


def test_rows_without_a_tenant_take_the_only_accounts_tenant_or_are_refused():
    plan = plan_targets(INCIDENT, [{"incident_id": "7"}], {}, TENANT, 20)
    assert plan.targets[0].tenant_id == TENANT
    with pytest.raises(ActionInputError) as caught:
        plan_targets(INCIDENT, [{"incident_id": "7"}], {}, None, 20)
    assert caught.value.field == "tenant_id"


@pytest.mark.parametrize(
    ("kind", "row"),
    [
        (INCIDENT, {"incident_id": "12/../../alerts_v2", "tenant_id": TENANT}),
        (INCIDENT, {"incident_id": "abc", "tenant_id": TENANT}),
        (ALERT, {"alert_id": "da1?$filter=x", "tenant_id": TENANT}),
        (INCIDENT, {"incident_id": "1", "tenant_id": "contoso.com"}),
        (INCIDENT, {"incident_id": "", "tenant_id": TENANT, "other": "x"}),
    ],
)
def test_target_ids_and_tenants_are_checked_before_any_request(kind, row):
    rows = [row, {kind.id_field: "1" if kind is INCIDENT else "da1", "tenant_id": TENANT}]
    with pytest.raises(ActionInputError):
        plan_targets(kind, rows, {}, None, 20)


# --- the PATCH body --------------------------------------------------------------------------------


def test_only_changed_properties_and_tags_merged_into_the_current_list():
    current = {"status": "active", "classification": "unknown", "assignedTo": "IR@contoso.com", "customTags": ["VIP"]}
    change = Change(
        (("status", "active"), ("classification", "falsePositive"), ("assignedTo", "ir@contoso.com")),
        tags_add=("vip", "Splunk"),
    )
    assert differences(current, change) == {"classification": "falsePositive", "customTags": ["VIP", "Splunk"]}
    assert differences(current, Change(tags_add=("VIP",))) == {}
    assert differences({"customTags": None}, Change(tags_add=("a",))) == {"customTags": ["a"]}


# --- one target ------------------------------------------------------------------------------------


class FakeGraph:
    def __init__(self, items: Dict[str, Dict[str, Any]], answers: Optional[Dict[Tuple[str, str], int]] = None) -> None:
        self.items = items
        self.answers = answers or {}
        self.calls: List[Tuple[str, str, Any]] = []

    def send(self, method: str, path: str, body: Optional[Dict[str, Any]]) -> HttpAnswer:
        self.calls.append((method, path, body))
        status = self.answers.get((method, path))
        if status is not None:
            return HttpAnswer(status, {"error": {"code": "X", "message": "said so"}}, "rid-err")
        item_id = path.split("/")[1]
        if item_id not in self.items:
            return HttpAnswer(404, {"error": {"code": "NotFound", "message": "no"}}, "rid-404")
        if method == "PATCH":
            self.items[item_id] = {**self.items[item_id], **(body or {})}
        return HttpAnswer(200, dict(self.items[item_id]), f"rid-{len(self.calls)}")


def test_merged_incident_is_followed_to_its_survivor_and_the_audit_says_so():
    graph = FakeGraph(
        {
            "1": {"id": "1", "status": "redirected", "redirectIncidentId": "2"},
            "2": {"id": "2", "status": "redirected", "redirectIncidentId": "3"},
            "3": {"id": "3", "status": "active"},
        }
    )
    attempt = act(INCIDENT, Target(TENANT, "1", (0,)), Change((("status", "resolved"),)), graph.send, dry_run=False)
    assert attempt.outcome == "updated" and attempt.acted_on_id == "3" and attempt.merged_from == ["1", "2"]
    assert graph.calls[-1] == ("PATCH", "incidents/3", {"status": "resolved"})
    assert attempt.after is not None and attempt.after["status"] == "resolved"


def test_a_merge_cycle_fails_instead_of_looping():
    graph = FakeGraph(
        {
            "1": {"id": "1", "status": "redirected", "redirectIncidentId": "2"},
            "2": {"id": "2", "status": "redirected", "redirectIncidentId": "1"},
        }
    )
    attempt = act(INCIDENT, Target(TENANT, "1", (0,)), Change((("status", "resolved"),)), graph.send, dry_run=False)
    assert attempt.outcome == "failed" and "does not end" in attempt.message
    assert [c[0] for c in graph.calls] == ["GET", "GET"]


def test_nothing_to_change_sends_nothing():
    graph = FakeGraph({"5": {"id": "5", "status": "resolved"}})
    attempt = act(INCIDENT, Target(TENANT, "5", (0,)), Change((("status", "resolved"),)), graph.send, dry_run=False)
    assert attempt.outcome == "unchanged" and [c[0] for c in graph.calls] == ["GET"]


def test_dry_run_reads_only():
    graph = FakeGraph({"5": {"id": "5", "status": "active"}})
    change = Change((("status", "resolved"),), comment="x")
    attempt = act(INCIDENT, Target(TENANT, "5", (0,)), change, graph.send, dry_run=True)
    assert attempt.outcome == "dry_run" and attempt.changed == {"status": "resolved"}
    assert [c[0] for c in graph.calls] == ["GET"]


def test_comment_failing_after_the_patch_is_partial():
    graph = FakeGraph({"5": {"id": "5", "status": "active"}}, {("POST", "incidents/5/comments"): 500})
    change = Change((("status", "resolved"),), comment="x")
    attempt = act(INCIDENT, Target(TENANT, "5", (0,)), change, graph.send, dry_run=False)
    assert attempt.outcome == "partial" and attempt.changed == {"status": "resolved"}
    assert "properties were updated" in attempt.message and attempt.http_status == 500


def test_403_and_404_messages_name_permission_consent_id_and_tenant():
    graph = FakeGraph({"5": {"id": "5", "status": "active"}}, {("PATCH", "alerts_v2/5"): 403})
    attempt = act(ALERT, Target(TENANT, "5", (0,)), Change((("status", "resolved"),)), graph.send, dry_run=False)
    assert attempt.outcome == "failed" and attempt.http_status == 403 and attempt.changed == {}
    assert "SecurityAlert.ReadWrite.All" in attempt.message and "admin consent" in attempt.message
    missing = act(INCIDENT, Target(TENANT, "9", (0,)), Change((("status", "resolved"),)), graph.send, dry_run=False)
    assert missing.http_status == 404 and "9" in missing.message and TENANT in missing.message


def test_transport_giving_up_during_the_patch_is_a_failure_not_a_partial():
    def send(method: str, path: str, body: Optional[Dict[str, Any]]) -> HttpAnswer:
        if method == "PATCH":
            raise TransientError("incidents: HTTP 429 (gave up after 6 attempts)", status=429)
        return HttpAnswer(200, {"id": "5", "status": "active"}, "rid")

    attempt = act(INCIDENT, Target(TENANT, "5", (0,)), Change((("status", "resolved"),)), send, dry_run=False)
    assert attempt.outcome == "failed" and attempt.http_status == 429 and attempt.changed == {}
