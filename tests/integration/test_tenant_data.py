"""Customer tenants with data of their own (issue 15, item 6) through the BUILT add-on: a hunting input over
two customer tenants writes each tenant's own rows under its own source and cursor, and a response action
on a customer tenant's alert changes that tenant's alert only.

The response actions pick the account by the result's ``tenant_id`` among the ACCOUNTS (an account per
tenant; ``defender_lineage_actions.AccountDirectory.for_tenant``); a Tenants-tab entry is not an account,
so these tests give each customer tenant an account of its own, with the one multi-tenant credential.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Dict, List, Set

import pytest

from tests.harness.graph_sim import GraphSimulator, SyntheticTenant
from tests.harness.graph_sim.server import DEFAULT_ROLES
from tests.harness.pipeline import log_lines, run_input, seed_account
from tests.harness.splunkd_standin import SplunkdStandin
from tests.integration.test_actions import run

CHECKPOINTS = "ta_defender_lineage_checkpoints"
CONTOSO = "0f1e2d3c-4b5a-4987-8654-3210fedcba98"
FABRIKAM = "1a2b3c4d-5e6f-4a0b-9c8d-7e6f5a4b3c2d"
HUNT = ("SecurityAlert.Read.All", "SecurityIncident.Read.All", "ThreatHunting.Read.All")
ALERT_WRITE = "SecurityAlert.ReadWrite.All"


def give_tenants_data(sim: GraphSimulator, *roles: str) -> Dict[str, SyntheticTenant]:
    data = {
        tenant: SyntheticTenant.generate(seed=seed, anchor=sim.tenant.anchor, tenant_id=tenant)
        for tenant, seed in ((CONTOSO, 11), (FABRIKAM, 12))
    }
    for tenant, own in data.items():
        sim.add_customer_tenant(tenant, *roles, data=own)
    return data


def alert_ids(data: SyntheticTenant) -> Set[str]:
    return {v.item_id for v in data.alerts.versions}


@pytest.mark.integration
def test_a_hunting_input_writes_each_tenants_own_rows_under_its_own_source(
    addon, python, sim: GraphSimulator, splunkd: SplunkdStandin, tmp_path: Path
):
    seed_account(splunkd, sim, "msp")
    data = give_tenants_data(sim, *HUNT)
    for label, tenant in (("contoso", CONTOSO), ("fabrikam", FABRIKAM)):
        splunkd.set_conf("ta_defender_lineage_tenant", label, {"tenant_id": tenant, "account": "msp"})
    params = {"account": "msp", "query": "AlertInfo", "lookback": "P30D", "tenants": "contoso, fabrikam"}
    result = run_input(splunkd, tmp_path, "defender_hunting", "h", params, python, addon=addon)
    assert result.returncode == 0, result.stderr[-2000:]

    written: Dict[str, List[str]] = {}
    for event in result.events:
        written.setdefault(event.source, []).append(json.loads(event.data)["AlertId"])
    sources = {tenant: f"ms_graph://{tenant}/security/runHuntingQuery/h" for tenant in data}
    assert set(written) == set(sources.values()), "one source per tenant, none for the home tenant"
    for tenant, own in data.items():
        rows = written[sources[tenant]]
        assert rows and len(rows) == len(set(rows)), "each alert's row once"
        # Every row under a tenant's source is one of that tenant's alerts, and every alert the tenant
        # shows over the last 30 days (asked now, a narrower window than the run's) is there.
        assert set(rows) <= alert_ids(own)
        asked = sim.hunting_tables_of(tenant).run({"Query": "AlertInfo", "Timespan": "P30D"}, sim._clock, "")
        assert {r["AlertId"] for r in json.loads(asked)["results"]} <= set(rows)
    assert not set(written[sources[CONTOSO]]) & set(written[sources[FABRIKAM]])
    keys = sorted(d["_key"] for d in splunkd.kv_records(CHECKPOINTS))
    assert keys == sorted(f"defender_hunting__h__{tenant}" for tenant in data)
    summaries = [line for line in log_lines(tmp_path) if "run_summary" in line and "scope=run" not in line]
    for tenant in data:
        (line,) = [s for s in summaries if f"tenant={tenant}" in s]
        assert "status=ok" in line and f"rows={len(written[sources[tenant]])} " in line


@pytest.mark.integration
def test_a_response_action_changes_the_customer_tenants_alert_only(
    addon, python, sim: GraphSimulator, splunkd: SplunkdStandin, tmp_path: Path
):
    data = give_tenants_data(sim, *DEFAULT_ROLES, ALERT_WRITE)
    sim.set_roles(*DEFAULT_ROLES, ALERT_WRITE)
    seed_account(splunkd, sim, "home")
    for name, tenant in (("contoso", CONTOSO), ("fabrikam", FABRIKAM)):
        seed_account(splunkd, sim, name, tenant_id=tenant)
    contoso = data[CONTOSO]
    alert = next(a for a in contoso.visible_at("alerts_v2") if a["status"] != "resolved")
    versions = {name: len(d.alert_versions()) for name, d in (("fabrikam", data[FABRIKAM]), ("home", sim.tenant))}
    # The same alert named under Fabrikam: Graph does not find it there (404); nothing anywhere changes.
    rows = [{"alert_id": alert["id"], "tenant_id": CONTOSO}, {"alert_id": alert["id"], "tenant_id": FABRIKAM}]
    result = run(addon, "defender_update_alert", python, splunkd, tmp_path, rows, {"status": "Resolved"})

    assert result.returncode == 2, result.log[-2000:]  # one target failed
    assert [(w["tenant"], w["id"], w["body"]) for w in sim.writes] == [(CONTOSO, alert["id"], {"status": "resolved"})]
    latest = contoso.alerts.latest(alert["id"], sim._clock)
    assert latest is not None and latest.as_dict()["status"] == "resolved"
    assert {name: len(d.alert_versions()) for name, d in (("fabrikam", data[FABRIKAM]), ("home", sim.tenant))} == (
        versions
    )
    outcomes = {(e.fields["tenant_id"], e.fields["account"]): e.fields for e in result.events}
    assert outcomes[(CONTOSO, "contoso")]["outcome"] == "updated"
    assert outcomes[(FABRIKAM, "fabrikam")]["outcome"] == "failed"
    assert outcomes[(FABRIKAM, "fabrikam")]["http_status"] == 404
    token_tenants = {r.path.split("/")[1] for r in sim.requests if r.resource == "token"}
    assert token_tenants == {CONTOSO, FABRIKAM}, "each target's token from its own tenant; none from the home one"
