"""The simulator's customer tenants with data of their own (issue 15, item 6): runHuntingQuery answers from
the token's tenant's tables, writes change the token's tenant's alerts and incidents, and a token of one
tenant can neither read nor change another tenant's items (Graph picks the tenant from the token alone,
so another tenant's id is simply not found there: 404)."""

from __future__ import annotations

from typing import Any, Dict, Iterator, Set

import pytest
import requests

from tests.harness.graph_sim import DEFAULT_ROLES, GraphSimulator, SyntheticTenant

CONTOSO = "0f1e2d3c-4b5a-4987-8654-3210fedcba98"
FABRIKAM = "1a2b3c4d-5e6f-4a0b-9c8d-7e6f5a4b3c2d"
WRITE_ROLES = ("SecurityIncident.ReadWrite.All", "SecurityAlert.ReadWrite.All")


@pytest.fixture
def sim(fresh_sim: GraphSimulator) -> Iterator[GraphSimulator]:
    # Customer tenants outlive conftest's reset: each test gets a simulator of its own.
    for tenant, seed in ((CONTOSO, 11), (FABRIKAM, 12)):
        data = SyntheticTenant.generate(seed=seed, anchor=fresh_sim.tenant.anchor, tenant_id=tenant)
        fresh_sim.add_customer_tenant(tenant, *DEFAULT_ROLES, *WRITE_ROLES, data=data)
    yield fresh_sim


def token_of(sim: GraphSimulator, tenant: str) -> str:
    return sim.issue_token(tenant)


def call(sim: GraphSimulator, tenant: str, method: str, path: str, body: Any = None) -> requests.Response:
    headers = {"Authorization": f"Bearer {token_of(sim, tenant)}"}
    return requests.request(method, f"{sim.base_url}/v1.0/security/{path}", json=body, headers=headers, timeout=30)


def alert_ids(data: SyntheticTenant) -> Set[str]:
    return {v.item_id for v in data.alerts.versions}


def hunted_ids(sim: GraphSimulator, tenant: str) -> Set[str]:
    answer = call(sim, tenant, "POST", "runHuntingQuery", {"Query": "AlertInfo", "Timespan": "P30D"})
    assert answer.status_code == 200, answer.text
    return {row["AlertId"] for row in answer.json()["results"]}


def an_incident(data: SyntheticTenant, sim: GraphSimulator) -> Dict[str, Any]:
    return next(i for i in data.visible_at("incidents", sim.clock_text) if i["status"] in ("active", "resolved"))


def test_each_tenant_hunts_its_own_tables(sim: GraphSimulator):
    contoso, fabrikam = sim.customer_data[CONTOSO], sim.customer_data[FABRIKAM]
    ids = alert_ids(contoso), alert_ids(fabrikam), alert_ids(sim.tenant)
    assert all(ids) and not (ids[0] & ids[1] or ids[0] & ids[2] or ids[1] & ids[2]), "the seeds give disjoint ids"
    assert hunted_ids(sim, CONTOSO) == alert_ids(contoso)
    assert hunted_ids(sim, FABRIKAM) == alert_ids(fabrikam)
    assert hunted_ids(sim, "") == alert_ids(sim.tenant)


def test_a_tenant_without_data_of_its_own_hunts_the_home_tables(sim: GraphSimulator):
    shared = "aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee"
    sim.add_customer_tenant(shared, *DEFAULT_ROLES)
    assert hunted_ids(sim, shared) == alert_ids(sim.tenant)


def test_each_tenant_has_its_own_cpu_quota(sim: GraphSimulator):
    sim.hunting.cpu_quota = (1, 600.0)
    assert call(sim, CONTOSO, "POST", "runHuntingQuery", {"Query": "AlertInfo"}).status_code == 200
    assert call(sim, CONTOSO, "POST", "runHuntingQuery", {"Query": "AlertInfo"}).status_code == 429
    # Contoso's spent quota is Contoso's: Fabrikam and the home tenant still have theirs.
    assert call(sim, FABRIKAM, "POST", "runHuntingQuery", {"Query": "AlertInfo"}).status_code == 200
    assert call(sim, "", "POST", "runHuntingQuery", {"Query": "AlertInfo"}).status_code == 200


def test_a_write_changes_the_tokens_tenant_only(sim: GraphSimulator):
    contoso, fabrikam = sim.customer_data[CONTOSO], sim.customer_data[FABRIKAM]
    incident = an_incident(contoso, sim)
    counts = {name: len(d.incident_versions()) for name, d in (("f", fabrikam), ("home", sim.tenant))}
    answer = call(sim, CONTOSO, "PATCH", f"incidents/{incident['id']}", {"status": "inProgress"})
    assert answer.status_code == 200, answer.text
    latest = contoso.incidents.latest(incident["id"], contoso.anchor_ticks * 2)
    assert latest is not None and latest.as_dict()["status"] == "inProgress"
    assert {name: len(d.incident_versions()) for name, d in (("f", fabrikam), ("home", sim.tenant))} == counts
    read = call(sim, CONTOSO, "GET", f"incidents/{incident['id']}").json()
    assert read["status"] == "inProgress"
    assert sim.writes[-1]["tenant"] == CONTOSO

    alert = next(iter(sorted(alert_ids(fabrikam))))
    answer = call(sim, FABRIKAM, "PATCH", f"alerts_v2/{alert}", {"status": "resolved"})
    assert answer.status_code == 200, answer.text
    assert call(sim, FABRIKAM, "GET", f"alerts_v2/{alert}").json()["status"] == "resolved"


def test_a_token_of_one_tenant_never_reaches_another_tenants_items(sim: GraphSimulator):
    sim.set_roles(*DEFAULT_ROLES, *WRITE_ROLES)  # the home tenant may write too: only the tenant stops it
    contoso = sim.customer_data[CONTOSO]
    incident = an_incident(contoso, sim)
    alert = sorted(alert_ids(contoso))[0]
    for other in (sim.customer_data[FABRIKAM], sim.tenant):
        assert other.incidents.latest(incident["id"], other.anchor_ticks) is None and alert not in alert_ids(other)
    versions = len(contoso.incident_versions()), len(contoso.alert_versions())
    for tenant in (FABRIKAM, ""):
        # Graph resolves the id in the token's tenant only: another tenant's item is not found there.
        assert call(sim, tenant, "GET", f"incidents/{incident['id']}").status_code == 404
        assert call(sim, tenant, "PATCH", f"incidents/{incident['id']}", {"status": "resolved"}).status_code == 404
        assert call(sim, tenant, "PATCH", f"alerts_v2/{alert}", {"status": "resolved"}).status_code == 404
        assert call(sim, tenant, "POST", f"incidents/{incident['id']}/comments", {"comment": "x"}).status_code == 404
    assert (len(contoso.incident_versions()), len(contoso.alert_versions())) == versions
    assert sim.writes == []


def test_a_write_needs_the_role_consented_in_the_tokens_tenant(sim: GraphSimulator):
    # The home tenant grants the write roles; Contoso consented to reads only: Contoso's token is refused.
    sim.set_roles(*DEFAULT_ROLES, *WRITE_ROLES)
    sim.add_customer_tenant(CONTOSO, *DEFAULT_ROLES, data=sim.customer_data[CONTOSO])
    incident = an_incident(sim.customer_data[CONTOSO], sim)
    answer = call(sim, CONTOSO, "PATCH", f"incidents/{incident['id']}", {"status": "inProgress"})
    assert answer.status_code == 403 and "SecurityIncident.ReadWrite.All" in answer.json()["error"]["message"]
    # And the other way round: Fabrikam consented to writes, the home tenant did not grant them.
    sim.set_roles(*DEFAULT_ROLES)
    alert = sorted(alert_ids(sim.customer_data[FABRIKAM]))[0]
    assert call(sim, FABRIKAM, "PATCH", f"alerts_v2/{alert}", {"status": "inProgress"}).status_code == 200
    assert sim.writes[-1]["tenant"] == FABRIKAM
