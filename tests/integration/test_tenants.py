"""Tenants (issue 15) through the BUILT inputs: one input reaching several customer tenants with one
multi-tenant app registration, each under its own cursor; ``tenants`` empty keeps the old cursor key.

A customer tenant either has synthetic data of its own (``add_customer_tenant(..., data=...)``) or is
served the home tenant's; what always differs per tenant is the token (its path and ``tid``), the
consent, the event's ``source`` and the cursor.
"""

from __future__ import annotations

import json
import threading
from collections import Counter
from pathlib import Path
from typing import Dict, List

import pytest

from tests.harness.graph_sim import GraphSimulator, SyntheticTenant
from tests.harness.modinput_runner import run_scheme, run_validate
from tests.harness.pipeline import log_lines, run_input, seed_account
from tests.harness.splunkd_standin import SplunkdStandin
from tests.integration.test_account_handler import run_handler
from tests.integration.test_inputs import latest_visible

FAR_BACK = "2020-01-01T00:00:00Z"
CHECKPOINTS = "ta_defender_lineage_checkpoints"
READ_ALL = ("SecurityAlert.Read.All", "SecurityIncident.Read.All")
CONTOSO = "0f1e2d3c-4b5a-4987-8654-3210fedcba98"
FABRIKAM = "1a2b3c4d-5e6f-4a0b-9c8d-7e6f5a4b3c2d"
NOCONSENT = "aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee"


def add_tenant(splunkd: SplunkdStandin, label: str, tenant_id: str, account: str = "msp", **extra: str) -> None:
    splunkd.set_conf("ta_defender_lineage_tenant", label, {"tenant_id": tenant_id, "account": account, **extra})


def by_source(events) -> Dict[str, Counter]:
    out: Dict[str, Counter] = {}
    for e in events:
        item = json.loads(e.data)
        out.setdefault(e.source, Counter())[(item["id"], item["lastUpdateDateTime"])] += 1
    return out


def cursor_keys(splunkd: SplunkdStandin) -> List[str]:
    return sorted(d["_key"] for d in splunkd.kv_records(CHECKPOINTS))


@pytest.mark.integration
def test_one_input_collects_each_consented_tenant_under_its_own_cursor(
    addon, python, sim: GraphSimulator, splunkd: SplunkdStandin, tmp_path: Path
):
    seed_account(splunkd, sim, "msp")
    sim.add_customer_tenant(CONTOSO, *READ_ALL)
    sim.add_customer_tenant(FABRIKAM, *READ_ALL)
    sim.add_customer_tenant(NOCONSENT, consented=False)
    add_tenant(splunkd, "contoso", CONTOSO)
    add_tenant(splunkd, "fabrikam", FABRIKAM)
    add_tenant(splunkd, "refusing", NOCONSENT)
    add_tenant(splunkd, "paused", FABRIKAM, disabled="1")
    params = {"account": "msp", "start_date": FAR_BACK, "tenants": "*"}
    first = run_input(splunkd, tmp_path, "defender_alerts", "mssp", params, python, addon=addon)
    assert first.returncode == 0, first.stderr[-2000:]
    written = by_source(first.events)
    contoso = written.pop(f"ms_graph://{CONTOSO}/security/alerts_v2")
    fabrikam = written.pop(f"ms_graph://{FABRIKAM}/security/alerts_v2")
    assert written == {}, "the refusing tenant and the disabled entry write nothing"
    assert contoso == fabrikam and contoso and all(n == 1 for n in contoso.values())
    assert cursor_keys(splunkd) == sorted([f"defender_alerts__mssp__{CONTOSO}", f"defender_alerts__mssp__{FABRIKAM}"])
    lines = log_lines(tmp_path)
    failed = [line for line in lines if "run_failed" in line]
    assert len(failed) == 1 and "tenant_name=refusing" in failed[0] and "AADSTS7000229" in failed[0]
    assert f"{sim.base_url}/{NOCONSENT}/adminconsent?client_id={sim.client_id}" in failed[0]  # the exact fix
    summaries = [line for line in lines if "run_summary" in line]
    assert any("tenant_name=contoso" in s and f"tenant={CONTOSO}" in s and "status=ok" in s for s in summaries)
    assert any("scope=run" in s and "tenants=3" in s and "tenants_failed=1" in s for s in summaries)
    # Tokens were asked of each tenant, with the one credential.
    token_paths = {r.path.split("/")[1] for r in sim.requests if r.resource == "token"}
    assert {CONTOSO, FABRIKAM, NOCONSENT} <= token_paths

    again = run_input(splunkd, tmp_path, "defender_alerts", "mssp", params, python, addon=addon)
    assert again.returncode == 0 and again.events == [], "nothing is written twice"


@pytest.mark.integration
def test_disjoint_tenant_lists_never_touch_each_other_and_empty_keeps_the_old_key(
    addon, python, sim: GraphSimulator, splunkd: SplunkdStandin, tmp_path: Path
):
    seed_account(splunkd, sim, "msp")
    # Each customer tenant has data of its own: an input must write its tenants' incidents, no one else's.
    data = {
        tenant: SyntheticTenant.generate(seed=seed, anchor=sim.tenant.anchor, tenant_id=tenant)
        for tenant, seed in ((CONTOSO, 11), (FABRIKAM, 12))
    }
    for tenant in data:
        sim.add_customer_tenant(tenant, *READ_ALL, data=data[tenant])
    add_tenant(splunkd, "contoso", CONTOSO)
    add_tenant(splunkd, "fabrikam", FABRIKAM)
    base = {"account": "msp", "start_date": FAR_BACK}
    home = run_input(splunkd, tmp_path, "defender_incidents", "home", base, python, addon=addon)
    assert home.returncode == 0 and home.events
    assert {e.source for e in home.events} == {f"ms_graph://{sim.tenant_id}/security/incidents"}
    assert cursor_keys(splunkd) == ["defender_incidents__home"], "tenants empty: the key inputs always used"
    before = {d["_key"]: d for d in splunkd.kv_records(CHECKPOINTS)}

    only_b = {**base, "tenants": "fabrikam"}
    a = run_input(splunkd, tmp_path, "defender_incidents", "a", {**base, "tenants": "contoso"}, python, addon=addon)
    b = run_input(splunkd, tmp_path, "defender_incidents", "b", only_b, python, addon=addon)
    assert {e.source for e in a.events} == {f"ms_graph://{CONTOSO}/security/incidents"}
    assert {e.source for e in b.events} == {f"ms_graph://{FABRIKAM}/security/incidents"}
    for result, tenant in ((a, CONTOSO), (b, FABRIKAM)):
        own = latest_visible(data[tenant].incident_versions(), data[tenant].anchor_ticks)
        assert by_source(result.events)[f"ms_graph://{tenant}/security/incidents"] == Counter(own.items())
    a_items = set(by_source(a.events)[f"ms_graph://{CONTOSO}/security/incidents"])
    b_items = set(by_source(b.events)[f"ms_graph://{FABRIKAM}/security/incidents"])
    assert a_items and b_items and not a_items & b_items, "each input wrote its own tenant's data only"
    after = {d["_key"]: d for d in splunkd.kv_records(CHECKPOINTS)}
    assert sorted(after) == sorted(
        ["defender_incidents__home", f"defender_incidents__a__{CONTOSO}", f"defender_incidents__b__{FABRIKAM}"]
    )
    assert after["defender_incidents__home"] == before["defender_incidents__home"]
    # Running b again does not move a's cursor.
    a_cursor = after[f"defender_incidents__a__{CONTOSO}"]
    again = run_input(
        splunkd, tmp_path, "defender_incidents", "b", {**base, "tenants": "fabrikam"}, python, addon=addon
    )
    assert again.returncode == 0 and again.events == []
    assert {d["_key"]: d for d in splunkd.kv_records(CHECKPOINTS)}[f"defender_incidents__a__{CONTOSO}"] == a_cursor


@pytest.mark.integration
def test_a_hunting_input_queries_each_listed_tenant(
    addon, python, sim: GraphSimulator, splunkd: SplunkdStandin, tmp_path: Path
):
    seed_account(splunkd, sim, "msp")
    sim.add_customer_tenant(CONTOSO, *READ_ALL, "ThreatHunting.Read.All")
    add_tenant(splunkd, "contoso", CONTOSO)
    params = {"account": "msp", "query": "AlertInfo", "lookback": "P30D", "tenants": "contoso, ghost"}
    result = run_input(splunkd, tmp_path, "defender_hunting", "h", params, python, addon=addon)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.events and {e.source for e in result.events} == {f"ms_graph://{CONTOSO}/security/runHuntingQuery/h"}
    assert cursor_keys(splunkd) == [f"defender_hunting__h__{CONTOSO}"]
    failed = [line for line in log_lines(tmp_path) if "run_failed" in line]
    assert len(failed) == 1 and "'ghost' is not configured" in failed[0]


@pytest.mark.integration
def test_saving_a_tenant_checks_consent_and_gives_the_fix(
    addon, python, sim: GraphSimulator, splunkd: SplunkdStandin, tmp_path: Path
):
    """The BUILT Tenants-tab REST handler (probe as in test_account_handler): a consented tenant saves,
    one without consent is refused with the admin-consent URL and the permissions, a bad label is refused
    before any request, and no secret reaches the message or a log."""
    seed_account(splunkd, sim, "msp")
    sim.add_customer_tenant(CONTOSO, *READ_ALL)
    sim.add_customer_tenant(NOCONSENT, consented=False)
    cases = [
        {"action": "create", "name": "contoso", "payload": {"tenant_id": CONTOSO, "account": "msp"}},
        {"action": "create", "name": "refusing", "payload": {"tenant_id": NOCONSENT, "account": "msp"}},
        {"action": "create", "name": "bad label", "payload": {"tenant_id": CONTOSO, "account": "msp"}},
        {"action": "create", "name": "nobody", "payload": {"tenant_id": CONTOSO, "account": "ghost"}},
        {"action": "edit", "name": "contoso", "payload": {"disabled": "1"}},
    ]
    results, output = run_handler(
        addon, python, splunkd, tmp_path, cases, handler="ta_defender_lineage_tenant_handler.TenantHandler"
    )
    ok, refused, bad_label, no_account, disabled = results
    assert ok == {"ok": "created"}
    assert refused["status"] == 400 and "AADSTS7000229" in refused["message"]
    assert f"{sim.base_url}/{NOCONSENT}/adminconsent?client_id={sim.client_id}" in refused["message"]
    assert "SecurityAlert.Read.All, SecurityIncident.Read.All" in refused["message"]
    assert bad_label["status"] == 400 and "label" in bad_label["message"]
    assert no_account["status"] == 400 and "account 'ghost' does not exist" in no_account["message"]
    assert disabled == {"ok": "edited"}
    logs = "".join(p.read_text() for p in (tmp_path / "var" / "log" / "splunk").glob("*.log"))
    assert "tenant_check tenant=contoso status=ok" in logs and "tenant_check tenant=refusing status=refused" in logs
    for text in (output, logs, refused["message"]):
        assert sim.client_secret not in text and splunkd.session_key not in text


@pytest.mark.integration
@pytest.mark.parametrize("script", ["defender_alerts", "defender_incidents", "defender_hunting"])
def test_every_input_has_tenants_and_validates_it(addon, python, splunkd: SplunkdStandin, script: str):
    assert "tenants" in run_scheme(addon / "bin" / f"{script}.py", python).arguments
    base = {"account": "msp", "interval": "300"}
    if script == "defender_hunting":
        base.update(query="AlertInfo", lookback="P1D")
    code, out, _ = run_validate(addon / "bin" / f"{script}.py", python, splunkd, {**base, "tenants": "contoso, *"})
    assert code != 0 and "tenants" in out
    code, out, _ = run_validate(addon / "bin" / f"{script}.py", python, splunkd, {**base, "tenants": "contoso,fab-1"})
    assert code == 0, out


def tenant_guid(n: int) -> str:
    return f"{n:08x}-0000-4000-8000-{n:012x}"


@pytest.mark.integration
def test_hundred_tenants_one_refusing_one_throttled(
    addon, python, sim: GraphSimulator, splunkd: SplunkdStandin, tmp_path: Path
):
    """Issue 15's 'Done when': 100 tenants under one input, one refusing (403) and one throttled (429 with
    a Retry-After past the run's deadline): every other tenant fully collected in the first run, the
    throttled one by the second, nothing written twice, and the tenants collected concurrently."""
    seed_account(splunkd, sim, "msp")
    tenants = [tenant_guid(n + 1) for n in range(100)]
    refusing, throttled = tenants[0], tenants[1]
    for n, tenant in enumerate(tenants):
        roles = ("SecurityIncident.Read.All",) if tenant == refusing else READ_ALL  # no alerts role: 403
        sim.add_customer_tenant(tenant, *roles)
        add_tenant(splunkd, f"customer-{n:03d}", tenant)
    sim.faults.add(
        status=429,
        resource="alerts_v2",
        retry_after="600",
        times=1,
        predicate=lambda ctx: sim.tenant_of(ctx.headers.get("authorization")) == throttled,
    )
    expected = {key: stamp for key, stamp in latest_visible_alerts(sim).items()}
    params = {"account": "msp", "start_date": FAR_BACK, "tenants": "*", "interval": "60"}
    first = run_input(splunkd, tmp_path, "defender_alerts", "mssp", params, python, addon=addon)
    assert first.returncode == 0, first.stderr[-2000:]
    written = by_source(first.events)
    source = "ms_graph://{}/security/alerts_v2".format
    assert set(written) == {source(t) for t in tenants[2:]}, "every other tenant in the first run"
    for tenant in tenants[2:]:
        assert written[source(tenant)] == Counter(expected.items()), tenant
    lines = log_lines(tmp_path)
    failed = [line for line in lines if "run_failed" in line]
    assert len(failed) == 1 and f"tenant={refusing}" in failed[0] and "adminconsent" in failed[0]
    assert any("scope=run" in line and "tenants=100" in line and "tenants_failed=1" in line for line in lines)
    assert any(f"tenant={throttled}" in line and "stopped_early=True" in line for line in lines)
    workers = {part for line in lines for part in line.split() if part.startswith("tid=tenant")}
    assert len(workers) > 1, "the tenants were collected by a pool of workers"

    second = run_input(splunkd, tmp_path, "defender_alerts", "mssp", params, python, addon=addon)
    assert second.returncode == 0, second.stderr[-2000:]
    assert by_source(second.events) == {source(throttled): Counter(expected.items())}
    assert len(cursor_keys(splunkd)) == 99  # the refusing tenant has no cursor yet


def latest_visible_alerts(sim: GraphSimulator) -> Dict[str, str]:
    return latest_visible(sim.tenant.alert_versions(), sim.tenant.anchor_ticks)


@pytest.mark.integration
def test_tenant_entries_are_read_as_json_and_of_this_app_only(
    addon, python, sim: GraphSimulator, splunkd: SplunkdStandin, tmp_path: Path
):
    """The Tenants tab is read from splunkd's JSON answer, in one request (solnlib's Atom XML feed held
    ~17 MB at once for 500 entries, the idle run's peak RSS): enabled entries of this app only."""
    seed_account(splunkd, sim, "msp")
    for tenant in (CONTOSO, FABRIKAM, NOCONSENT):
        sim.add_customer_tenant(tenant, *READ_ALL)
    add_tenant(splunkd, "contoso", CONTOSO)
    add_tenant(splunkd, "paused", FABRIKAM, disabled="1")
    splunkd.set_conf(
        "ta_defender_lineage_tenant", "elsewhere", {"tenant_id": NOCONSENT, "account": "msp"}, app="search"
    )
    splunkd.clear_calls()
    params = {"account": "msp", "start_date": FAR_BACK, "tenants": "*"}
    result = run_input(splunkd, tmp_path, "defender_alerts", "mssp", params, python, addon=addon)
    assert result.returncode == 0, result.stderr[-2000:]
    assert {e.source for e in result.events} == {f"ms_graph://{CONTOSO}/security/alerts_v2"}
    reads = [c for c in splunkd.calls if "conf-ta_defender_lineage_tenant" in c.path]
    assert len(reads) == 1 and reads[0].query.get("output_mode") == ["json"]


class ConcurrentRequests:
    """A simulator ``call`` fault that counts the requests inside it at once: each waits (bounded) until
    ``target`` are in, so the peak is how many the input keeps waiting on Graph together, not a time."""

    def __init__(self, target: int, patience: float = 3.0) -> None:
        self.target, self.patience = target, patience
        self.inside = self.peak = 0
        self._cond = threading.Condition()

    def __call__(self, sim: GraphSimulator, ctx: object) -> None:
        with self._cond:
            self.inside += 1
            self.peak = max(self.peak, self.inside)
            self._cond.notify_all()
            self._cond.wait_for(lambda: self.inside >= self.target, timeout=self.patience)
            self.inside -= 1


@pytest.mark.integration
def test_idle_tenants_wait_on_graph_together_beyond_the_page_bound(
    addon, python, sim: GraphSimulator, splunkd: SplunkdStandin, tmp_path: Path
):
    """Issue 15 item 4: an idle poll is waiting, so more tenants than the eight pages a run parses at once
    wait on Graph together (the pool was eight workers wide: at most 8 requests in flight)."""
    seed_account(splunkd, sim, "msp")
    tenants = [tenant_guid(n + 1) for n in range(24)]
    for n, tenant in enumerate(tenants):
        sim.add_customer_tenant(tenant, *READ_ALL)
        add_tenant(splunkd, f"customer-{n:03d}", tenant)
    gauge = ConcurrentRequests(target=16)
    sim.faults.add(kind="call", resource="alerts_v2", action=gauge, times=None)
    params = {"account": "msp", "start_date": FAR_BACK, "tenants": "*", "interval": "120"}
    result = run_input(splunkd, tmp_path, "defender_alerts", "mssp", params, python, addon=addon)
    assert result.returncode == 0, result.stderr[-2000:]
    assert set(by_source(result.events)) == {f"ms_graph://{t}/security/alerts_v2" for t in tenants}
    assert gauge.peak >= 16, f"at most {gauge.peak} tenants waited on Graph at once"
