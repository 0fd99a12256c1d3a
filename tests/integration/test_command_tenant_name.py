"""defenderlineage's tenant_name, built, through the chunked protocol (Python 3.9 and 3.13), against the
splunkd stand-in's KV store: the label of every configured tenant on any event that names it, one read of
the tenants lookup per search, empty for a tenant the Tenants tab does not know, and a lookup that cannot
be read is one warning, never a failed search."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Dict, List

import pytest

from defender_lineage_core.tenants import tenant_name_rows
from tests.harness.splunkd_standin import SplunkdStandin
from tests.integration.test_enrichment import OTHER, TENANT, alert_event, alert_item, run, warnings_of

pytestmark = pytest.mark.integration

TENANTS = "ta_defender_lineage_tenants"
STREAMING_TENANT = "5c6d7e8f-9a0b-4c1d-8e2f-3a4b5c6d7e8f"


@pytest.fixture
def standin(splunkd: SplunkdStandin, addon: Path) -> SplunkdStandin:
    splunkd.load_app_defaults(addon)  # the collections of collections.conf exist, empty
    return splunkd


def configure(standin: SplunkdStandin, **labels: str) -> None:
    entries = {label: {"tenant_id": tenant, "account": "msp"} for label, tenant in labels.items()}
    standin.kv_save(TENANTS, tenant_name_rows(entries).values())


def tenant_calls(standin: SplunkdStandin) -> List[Any]:
    return [c for c in standin.calls if c.path.endswith(f"/storage/collections/data/{TENANTS}")]


def streaming_record(tenant: str) -> Dict[str, Any]:
    """A Defender streaming API record (Event Hub) under another add-on's sourcetype."""
    envelope = {
        "time": "2026-09-14T09:00:00Z",
        "tenantId": tenant,
        "operationName": "Publish",
        "category": "AdvancedHunting-AlertInfo",
        "properties": {"AlertId": "da1", "Title": "t", "ServiceSource": "Microsoft Defender for Endpoint"},
    }
    return {"_raw": json.dumps(envelope), "sourcetype": "ms:defender:eventhub", "source": "eventhub://x"}


def hunting_record(tenant: str) -> Dict[str, Any]:
    row = {"Timestamp": "2026-09-14T09:00:00Z", "AlertId": "da2", "QueryName": "h", "HuntingTable": "AlertInfo"}
    return {
        "_raw": json.dumps(row),
        "sourcetype": "ms:defender:graph:hunting",
        "source": f"ms_graph://{tenant}/security/runHuntingQuery/h",
    }


def test_every_event_of_a_configured_tenant_gets_its_label(addon: Path, python: str, standin: SplunkdStandin) -> None:
    configure(standin, contoso=TENANT, streaming_co=STREAMING_TENANT)
    standin.clear_calls()
    upper = alert_event(alert_item("a-up", "inc1", tenantId=TENANT.upper()))
    upper["tenantId"] = TENANT.upper()
    records = [
        alert_event(alert_item("a1", "inc1")),
        upper,
        alert_event({**alert_item("a2", "inc2"), "tenantId": OTHER}, tenant=OTHER),  # not on the Tenants tab
        hunting_record(TENANT),
        streaming_record(STREAMING_TENANT),
        {"_raw": "not json at all", "sourcetype": "syslog", "source": "udp:514"},  # no tenant
    ] * 400  # 2,400 events: three chunks of 1,000
    result = run(addon, python, standin, records, chunk_size=1000)
    names = [r["tenant_name"] for r in result.records]
    assert names == ["contoso", "contoso", "", "contoso", "streaming_co", ""] * 400
    assert [r["tenant_id"] for r in result.records[:3]] == [TENANT, TENANT.upper(), OTHER]
    assert len(tenant_calls(standin)) == 1, "one read of the tenants lookup for the whole search"
    assert warnings_of(result) == []
    # Column order: the lineage fields, tenant_name, then the incident's.
    header = list(result.records[0])
    assert header.index("lineage_warning") < header.index("tenant_name") < header.index("incident_title")


def test_events_already_named_by_the_automatic_lookup(addon: Path, python: str, standin: SplunkdStandin) -> None:
    """A search over the add-on's sourcetypes brings a tenant_name column (props.conf's LOOKUP-tenant_name):
    the command keeps one column, fills the cells that lack its name, keeps a name it does not know
    (OUTPUTNEW, as the lookup), and a stale one gives way to the tenants lookup's."""
    configure(standin, contoso=TENANT, streaming_co=STREAMING_TENANT)
    named = alert_event(alert_item("a1", "inc1"))
    named["tenant_name"] = "contoso"  # what the automatic lookup gave it
    stale = alert_event(alert_item("a2", "inc2"))
    stale["tenant_name"] = "old-label"
    elsewhere = alert_event({**alert_item("a3", "inc3"), "tenantId": OTHER}, tenant=OTHER)
    elsewhere["tenant_name"] = "named-elsewhere"
    unnamed = streaming_record(STREAMING_TENANT)  # another add-on's sourcetype: no lookup, an empty cell
    records = [named, stale, elsewhere, unnamed] * 300
    result = run(addon, python, standin, records, chunk_size=1000)
    assert [r["tenant_name"] for r in result.records] == ["contoso", "contoso", "named-elsewhere", "streaming_co"] * 300
    assert [r["alert_id"] for r in result.records[:3]] == ["a1", "a2", "a3"], "every row intact, in order"
    assert all(r["lineage_layer"] for r in result.records)


def test_a_single_tenant_install_gets_empty_tenant_names_without_warning(
    addon: Path, python: str, standin: SplunkdStandin
) -> None:
    result = run(addon, python, standin, [alert_event(alert_item("a1", "inc1"))])
    assert result.records[0]["tenant_name"] == "" and warnings_of(result) == []


def test_an_unreadable_tenants_lookup_is_one_warning(addon: Path, python: str, standin: SplunkdStandin) -> None:
    configure(standin, contoso=TENANT)
    standin.set_kvstore_available(False)
    records = [alert_event(alert_item(f"a{n}", f"inc{n}")) for n in range(2500)]
    result = run(addon, python, standin, records, args=["incidents=false"], chunk_size=1000)
    assert all(r["tenant_name"] == "" for r in result.records)
    assert all(r["lineage_layer"] == "detection" for r in result.records), "events are still placed"
    warnings = warnings_of(result)
    assert len(warnings) == 1 and "tenants lookup" in warnings[0] and "503" in warnings[0]
    assert len(tenant_calls(standin)) == 1, "not asked again after the failure"
