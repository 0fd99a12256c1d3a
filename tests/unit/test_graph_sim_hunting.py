"""The simulator's runHuntingQuery: tables from the same tenant, Timespan forms, caps, quota, timeout,
bad KQL, permissions; and the account check's ThreatHunting.Read.All probe against it."""

from __future__ import annotations

import json
import time
from typing import Any, Dict

import pytest
import requests

from defender_lineage_core.account_check import AccountCheckError, check_account
from defender_lineage_core.settings import account_from_conf
from tests.harness.graph_sim import GraphSimulator
from tests.harness.graph_sim.hunting import TABLES, parse_timespan, table_of
from tests.harness.graph_sim.timeutil import TICKS_PER_SECOND, format_ticks

S = TICKS_PER_SECOND


def post(sim: GraphSimulator, body: Any, token: str = "") -> requests.Response:
    return requests.post(
        f"{sim.base_url}/v1.0/security/runHuntingQuery",
        json=body,
        headers={"Authorization": f"Bearer {token or sim.issue_token()}"},
        timeout=30,
    )


def results(response: requests.Response) -> Dict[str, Any]:
    assert response.status_code == 200, response.text
    body: Dict[str, Any] = response.json()
    assert body["@odata.context"].endswith("#microsoft.graph.security.huntingQueryResults")
    return body


def test_table_is_the_first_name_of_the_last_statement():
    assert table_of("AlertInfo | take 1") == "AlertInfo"
    assert table_of("let x = AlertEvidence | distinct DeviceId;\nDeviceProcessEvents | where DeviceId in (x)") == (
        "DeviceProcessEvents"
    )
    assert table_of("  ") is None


def test_every_timespan_form():
    now = 1_800_000_000 * S
    assert parse_timespan(None, now) == (now - 30 * 86400 * S, now)
    assert parse_timespan("P1D", now) == (now - 86400 * S, now)
    start, end = format_ticks(now - 3600 * S), format_ticks(now)
    assert parse_timespan(f"{start}/{end}", now) == (now - 3600 * S, now)
    assert parse_timespan(f"PT1H/{end}", now) == (now - 3600 * S, now)
    assert parse_timespan(f"{start}/PT30M", now) == (now - 3600 * S, now - 1800 * S)
    assert parse_timespan(start, now) == (now - 3600 * S, now)


def test_alert_tables_carry_the_tenants_alert_ids(sim):
    body = results(post(sim, {"Query": "AlertInfo", "Timespan": "P30D"}))
    ids = {r["AlertId"] for r in body["results"]}
    assert ids == {v.item_id for v in sim.tenant.alerts.versions}
    assert [c["name"] for c in body["schema"]][:2] == ["Timestamp", "AlertId"]
    evidence = results(post(sim, {"Query": "AlertEvidence | take 5", "Timespan": "P30D"}))["results"]
    assert {r["AlertId"] for r in evidence} <= ids and {r["EntityType"] for r in evidence} >= {"Machine", "User"}


def test_activity_tables_are_deterministic_and_honour_the_timespan(sim):
    anchor = sim.tenant.anchor_ticks
    span = f"{format_ticks(anchor - 3600 * S)}/{format_ticks(anchor)}"
    for table in TABLES[2:]:
        one = results(post(sim, {"Query": table, "Timespan": span}))["results"]
        two = results(post(sim, {"Query": table, "Timespan": span}))["results"]
        assert one == two and len(one) > 10
        assert all(anchor - 3600 * S <= _ticks(r["Timestamp"]) < anchor for r in one)


def _ticks(text: str) -> int:
    from tests.harness.graph_sim.timeutil import parse_any

    return parse_any(text)


def test_boolean_forms_before_and_after_february_2026(sim):
    forms = {}
    for mode in ("words", "numbers", "strings"):
        sim.hunting.booleans = mode
        rows = results(post(sim, {"Query": "DeviceProcessEvents", "Timespan": "PT1H"}))["results"]
        forms[mode] = {type(r["IsProcessRemoteSession"]).__name__ for r in rows}
    assert forms == {"words": {"bool"}, "numbers": {"int"}, "strings": {"str"}}


def test_row_and_size_caps(sim):
    sim.hunting.row_cap = 100
    assert len(results(post(sim, {"Query": "DeviceProcessEvents", "Timespan": "P1D"}))["results"]) == 100
    sim.hunting.row_cap = 100_000
    sim.hunting.size_cap = 50_000
    response = post(sim, {"Query": "DeviceProcessEvents", "Timespan": "P1D"})
    assert len(response.content) <= 50_000 and len(results(response)["results"]) > 10
    sim.hunting.size_mode = "error"
    refused = post(sim, {"Query": "DeviceProcessEvents", "Timespan": "P1D"})
    assert refused.status_code == 400 and "size" in refused.json()["error"]["message"]


def test_cpu_quota_429_says_when_it_resets(sim):
    sim.hunting.cpu_quota = (1, 600.0)
    assert post(sim, {"Query": "EmailEvents", "Timespan": "PT1H"}).status_code == 200
    throttled = post(sim, {"Query": "EmailEvents", "Timespan": "PT1H"})
    assert throttled.status_code == 429 and throttled.json()["error"]["code"] == "TooManyRequests"
    assert "CPU quota" in throttled.json()["error"]["message"] and "resets at" in throttled.json()["error"]["message"]
    assert 0 < float(throttled.headers["Retry-After"]) <= 600


def test_timeout_and_bad_kql_and_permissions(sim):
    sim.hunting.timeout_rows = 10
    timed_out = post(sim, {"Query": "DeviceProcessEvents", "Timespan": "P1D"})
    assert timed_out.status_code == 504 and timed_out.json()["error"] == {
        **timed_out.json()["error"],
        "code": "UnknownError",
        "message": "",
    }
    bad = post(sim, {"Query": "AlertInf | take 1"})
    assert bad.status_code == 400 and "AlertInf" in bad.json()["error"]["message"]
    assert post(sim, {"Timespan": "P1D"}).status_code == 400
    sim.set_roles("SecurityAlert.Read.All")
    assert post(sim, {"Query": "AlertInfo"}).status_code == 403
    assert requests.get(f"{sim.base_url}/v1.0/security/runHuntingQuery", timeout=10).status_code == 405
    assert [r.resource for r in sim.hunting_requests()][-1] == "runHuntingQuery"


def _account(sim: GraphSimulator) -> Any:
    return account_from_conf(
        "acme",
        {
            "tenant_id": sim.tenant_id,
            "client_id": sim.client_id,
            "client_secret": sim.client_secret,
            "cloud": "custom",
            "login_url": sim.base_url,
            "graph_url": sim.base_url,
        },
    )


def test_account_check_probes_threat_hunting_only_when_asked(sim):
    before = len(sim.hunting_requests())
    assert "runHuntingQuery" not in check_account(_account(sim)).resources
    assert len(sim.hunting_requests()) == before
    result = check_account(_account(sim), hunting=True)
    assert "runHuntingQuery" in result.resources and result.ok
    probe = sim.hunting_requests()[-1]
    assert json.loads(json.dumps(probe.query)) == {"Query": "AlertInfo | take 1", "Timespan": "PT1H"}


def test_account_check_names_threat_hunting_read_all_when_it_is_missing(sim):
    sim.set_roles("SecurityAlert.Read.All", "SecurityIncident.Read.All")
    started = time.monotonic()
    with pytest.raises(AccountCheckError) as info:
        check_account(_account(sim), hunting=True)
    assert info.value.kind == "missing_permission" and "ThreatHunting.Read.All (runHuntingQuery)" in str(info.value)
    assert time.monotonic() - started < 10


def test_bad_rows_fault_puts_invalid_bytes_and_an_unreadable_row_in_the_answer(sim):
    clean = results(post(sim, {"Query": "AlertInfo", "Timespan": "P30D"}))["results"]
    sim.faults.add(kind="bad_rows", resource="runHuntingQuery", bad_rows=2, unreadable_rows=1)
    content = post(sim, {"Query": "AlertInfo", "Timespan": "P30D"}).content
    with pytest.raises(UnicodeDecodeError):
        content.decode("utf-8")
    assert content.count(b"\xff\xfe") == 2 and b"[" * 100_000 in content
    text = content.decode("utf-8", "replace")
    for row in clean[:2]:
        assert json.dumps(row["Title"])[:-1] + "\ufffd\ufffd" + '"' in text
    assert json.dumps(clean[2]["AlertId"]) not in text and json.dumps(clean[3]["AlertId"]) in text
