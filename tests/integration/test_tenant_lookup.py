"""The tenants lookup (KV store collection ``ta_defender_lineage_tenants``, behind ``tenant_name`` at search
time) follows the Tenants tab without anyone running a search: the BUILT Tenants REST handler writes it
on create, edit and delete, and every BUILT input run reconciles it from the conf file (a deployer's
push, a hand edit). The events the input wrote then get their tenant_name from the shipped automatic
lookup, through the search-time interpreter, with the rows the input left in the stand-in's KV store.
"""

from __future__ import annotations

import calendar
import re
import time
from pathlib import Path
from typing import Any, Dict, List

import pytest

from tests.harness.graph_sim import GraphSimulator, SyntheticTenant
from tests.harness.pipeline import log_lines, run_input, seed_account
from tests.harness.searchtime import _as_value, extract, load_props
from tests.harness.spl_pipeline import Pipeline, Result
from tests.harness.splunkd_standin import SplunkdStandin
from tests.integration.test_account_handler import run_handler
from tests.integration.test_tenants import CONTOSO, FABRIKAM, FAR_BACK, NOCONSENT, READ_ALL, add_tenant
from tests.unit.test_searches import dashboards, expand, macros

COLLECTION = "ta_defender_lineage_tenants"
LOOKUP = "ta_defender_lineage_tenants_lookup"
TENANT_HANDLER = "ta_defender_lineage_tenant_handler.TenantHandler"
OTHER = "2b3c4d5e-6f70-4a1b-8c2d-3e4f5a6b7c8d"


def names(splunkd: SplunkdStandin) -> Dict[str, str]:
    return {d["_key"]: d["tenant_name"] for d in splunkd.kv_records(COLLECTION)}


@pytest.mark.integration
def test_every_input_run_reconciles_the_lookup_and_events_get_their_tenant_name(
    addon, python, sim: GraphSimulator, splunkd: SplunkdStandin, tmp_path: Path
):
    seed_account(splunkd, sim, "msp")
    # Data of its own: Graph's alerts carry their tenant's tenantId (served the home tenant's, they would not).
    own = SyntheticTenant.generate(seed=11, anchor=sim.tenant.anchor, tenant_id=CONTOSO)
    sim.add_customer_tenant(CONTOSO, *READ_ALL, data=own)
    # As a deployer pushes it: conf stanzas only, the collection never written by the handler; plus a
    # row left over from a tenant since deleted by hand, and a renamed label's old row.
    add_tenant(splunkd, "contoso", CONTOSO)
    add_tenant(splunkd, "fabrikam", FABRIKAM.upper(), disabled="1")
    splunkd.kv_save(COLLECTION, [{"_key": OTHER, "tenant_id": OTHER, "tenant_name": "gone", "account": "msp"}])
    splunkd.kv_save(COLLECTION, [{"_key": CONTOSO, "tenant_id": CONTOSO, "tenant_name": "old-name", "account": "x"}])
    params = {"account": "msp", "start_date": FAR_BACK, "tenants": "contoso"}
    result = run_input(splunkd, tmp_path, "defender_alerts", "mssp", params, python, addon=addon)
    assert result.returncode == 0, result.stderr[-2000:]
    assert names(splunkd) == {CONTOSO: "contoso", FABRIKAM: "fabrikam"}
    assert any("tenant_lookup_sync status=ok saved=2 deleted=1" in line for line in log_lines(tmp_path))

    props = load_props(addon / "default" / "props.conf")
    rows = {LOOKUP: splunkd.kv_records(COLLECTION)}
    assert result.events
    for event in result.events:
        metadata = {"source": event.source, "sourcetype": event.sourcetype}
        fields = extract(props, event.sourcetype, event.data, metadata=metadata, lookup_rows=rows)
        assert fields["tenant_name"] == ["contoso"], event.source

    # In step: the next run writes nothing; a hand-deleted stanza leaves the lookup at the next run.
    again = run_input(splunkd, tmp_path, "defender_alerts", "mssp", params, python, addon=addon)
    assert again.returncode == 0
    assert sum("tenant_lookup_sync status=ok" in line for line in log_lines(tmp_path)) == 1
    splunkd._store.conf_delete(splunkd.app, "ta_defender_lineage_tenant", "fabrikam")
    third = run_input(splunkd, tmp_path, "defender_alerts", "mssp", params, python, addon=addon)
    assert third.returncode == 0
    assert names(splunkd) == {CONTOSO: "contoso"}


@pytest.mark.integration
def test_a_single_tenant_install_gets_an_empty_lookup(
    addon, python, sim: GraphSimulator, splunkd: SplunkdStandin, tmp_path: Path
):
    seed_account(splunkd, sim, "home")
    params = {"account": "home", "start_date": FAR_BACK}
    result = run_input(splunkd, tmp_path, "defender_incidents", "home", params, python, addon=addon)
    assert result.returncode == 0 and result.events
    assert splunkd.kv_records(COLLECTION) == []
    assert not any("tenant_lookup_sync" in line for line in log_lines(tmp_path)), "nothing to write, nothing said"


@pytest.mark.integration
def test_the_tenant_handler_writes_the_lookup_on_create_edit_and_delete(
    addon, python, sim: GraphSimulator, splunkd: SplunkdStandin, tmp_path: Path
):
    seed_account(splunkd, sim, "msp")
    sim.add_customer_tenant(CONTOSO, *READ_ALL)
    sim.add_customer_tenant(OTHER, *READ_ALL)
    add_tenant(splunkd, "fabrikam", FABRIKAM)  # saved earlier: the handler keeps it in the lookup
    cases = [
        {"action": "create", "name": "contoso", "payload": {"tenant_id": CONTOSO, "account": "msp"}},
        {"action": "create", "name": "refused", "payload": {"tenant_id": CONTOSO, "account": "ghost"}},
    ]
    results, _ = run_handler(addon, python, splunkd, tmp_path, cases, handler=TENANT_HANDLER)
    assert results[0] == {"ok": "created"} and results[1]["status"] == 400
    assert names(splunkd) == {CONTOSO: "contoso", FABRIKAM: "fabrikam"}, "a refused save writes nothing"

    # The stand-in's recorder does not write the conf file (UCC would): the handler applies its change
    # over the conf as splunkd has it, so write what UCC wrote for contoso before editing it.
    add_tenant(splunkd, "contoso", CONTOSO)
    edit = [{"action": "edit", "name": "contoso", "payload": {"tenant_id": OTHER}}]
    results, _ = run_handler(addon, python, splunkd, tmp_path, edit, handler=TENANT_HANDLER)
    assert results == [{"ok": "edited"}]
    assert names(splunkd) == {OTHER: "contoso", FABRIKAM: "fabrikam"}, "the old tenant id's row is gone"

    results, _ = run_handler(
        addon, python, splunkd, tmp_path, [{"action": "remove", "name": "fabrikam", "payload": {}}], TENANT_HANDLER
    )
    assert results == [{"ok": "removed"}]
    assert names(splunkd) == {CONTOSO: "contoso"}, "fabrikam removed; contoso as the conf file still has it"


@pytest.mark.integration
def test_a_kv_store_outage_never_refuses_a_tenant_save(
    addon, python, sim: GraphSimulator, splunkd: SplunkdStandin, tmp_path: Path
):
    seed_account(splunkd, sim, "msp")
    sim.add_customer_tenant(CONTOSO, *READ_ALL)
    splunkd.set_kvstore_available(False)
    cases = [{"action": "create", "name": "contoso", "payload": {"tenant_id": CONTOSO, "account": "msp"}}]
    results, _ = run_handler(addon, python, splunkd, tmp_path, cases, handler=TENANT_HANDLER)
    assert results == [{"ok": "created"}]
    logs = "".join(p.read_text() for p in (tmp_path / "var" / "log" / "splunk").glob("*.log"))
    assert "tenant_lookup_sync tenant=contoso status=failed" in logs and "HTTP 503" in logs


# ------------------------------------------------- the per-tenant health panel, over real run lines
LINE_START = re.compile(r"^(\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}),(\d{3}) ")


def log_events(workdir: Path, props: Any, rows: List[Dict[str, Any]]) -> List[Result]:
    """The add-on's log files as Splunk indexes and searches them: one event per line starting with a
    timestamp (props.conf LINE_BREAKER; a traceback stays with its line), search-time fields from the
    shipped props (KV_MODE = auto, the tenants lookup), newest first as a search returns events."""
    events: List[Result] = []
    for path in sorted((workdir / "splunk_home" / "var" / "log" / "splunk").glob("ta_defender_lineage_*.log")):
        raws: List[str] = []
        for line in path.read_text().splitlines():
            if LINE_START.match(line) or not raws:
                raws.append(line)
            else:
                raws[-1] += "\n" + line
        for n, raw in enumerate(raws):
            m = LINE_START.match(raw)
            assert m, raw[:80]
            when = calendar.timegm(time.strptime(m.group(1), "%Y-%m-%d %H:%M:%S")) + int(m.group(2)) / 1000
            metadata = {"index": "_internal", "sourcetype": "ta:defender:lineage:log", "source": str(path)}
            fields = extract(props, metadata["sourcetype"], raw, metadata=metadata, lookup_rows={LOOKUP: rows})
            event: Result = {name: _as_value(values) for name, values in fields.items()}
            event.update(_raw=raw, _time=when + n * 1e-6)  # lines of one millisecond keep their order
            events.append(event)
    return sorted(events, key=lambda e: -float(e["_time"]))  # type: ignore[arg-type]


def health_panel(tenant: str) -> str:
    query = dashboards()["collection_health"][1]["dataSources"]["ds_tenant_health"]["options"]["query"]
    return expand(query.replace("$tenant$", tenant), macros())


@pytest.mark.integration
def test_the_per_tenant_health_panel_names_the_failing_tenant_and_why(
    addon, python, sim: GraphSimulator, splunkd: SplunkdStandin, tmp_path: Path
):
    seed_account(splunkd, sim, "msp")
    sim.add_customer_tenant(CONTOSO, *READ_ALL)
    sim.add_customer_tenant(NOCONSENT, consented=False)
    add_tenant(splunkd, "contoso", CONTOSO)
    add_tenant(splunkd, "refusing", NOCONSENT)
    params = {"account": "msp", "start_date": FAR_BACK, "tenants": "*"}
    for input_type, name in (("defender_alerts", "mssp"), ("defender_incidents", "mssp_inc")):
        result = run_input(splunkd, tmp_path, input_type, name, params, python, addon=addon)
        assert result.returncode == 0, result.stderr[-2000:]
    events = log_events(tmp_path, load_props(addon / "default" / "props.conf"), splunkd.kv_records(COLLECTION))
    assert any("run_failed" in str(e["_raw"]) and e.get("tenant_name") == "refusing" for e in events)

    rows = Pipeline(now=time.time()).run(health_panel("*"), events)
    assert [r["tenant_name"] for r in rows] == ["refusing", "contoso"], "failing tenants first"
    refusing, contoso = rows
    assert refusing["failing"] == "yes" and refusing["tenant"] == NOCONSENT and "last_success" not in refusing
    assert str(refusing["last_failure"]).startswith("AuthError: ") and "AADSTS7000229" in str(refusing["last_failure"])
    assert f"/{NOCONSENT}/adminconsent?client_id={sim.client_id}" in str(refusing["last_failure"])
    assert refusing["inputs"] == ["defender_alerts://mssp", "defender_incidents://mssp_inc"]
    assert contoso["failing"] == "no" and "last_failure" not in contoso
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}", str(contoso["last_success"]))

    # The tenant filter.
    assert [r["tenant_name"] for r in Pipeline(now=time.time()).run(health_panel("contoso"), events)] == ["contoso"]
