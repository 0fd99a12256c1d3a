"""The blog's missed-correlation search, run on a stand-in corpus.

Events -> search-time fields (the shipped props.conf, through the search-time interpreter) -> the
saved search's own pipeline, command by command (tests/harness/spl_pipeline.py), with
``defenderlineage`` as the core's place/enrich over an incident store built from the corpus'
incidents. The corpus holds the true case and the usual false ones; each safeguard is then
removed in turn (a macro or the store changed) to show the case it guards against would be
reported without it.

What is not checked here (listed in the README): Splunk's own scheduler, streamstats time_window
and mvfind on a real search head, and the KV store lookup the real command reads.
"""

from __future__ import annotations

import calendar
import copy
import json
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

import pytest

from defender_lineage_core.incident_store import docs_from_incident
from tests.fixture_paths import SAMPLES
from tests.harness.searchtime import extract, load_props
from tests.harness.spl_pipeline import Pipeline, Result, UnsupportedSpl
from tests.unit.test_searches import conf, expand, macros

ROOT = Path(__file__).resolve().parents[2]
DEFAULT = ROOT / "package" / "default"
SEARCH = "TA-defender-lineage - Endpoint then identity alert not correlated by Defender"
ALERT = "ms:defender:graph:alert"
TENANT = "4a1f0c2e-9b7d-4c3a-8e55-2f6d1b0a9c31"
SOURCE = f"ms_graph://{TENANT}/security/alerts_v2"
NOW = float(calendar.timegm(time.strptime("2026-09-14T12:00:00", "%Y-%m-%dT%H:%M:%S")))

MDE, MDI, IDP, MDCA = (
    "microsoftDefenderForEndpoint",
    "microsoftDefenderForIdentity",
    "azureAdIdentityProtection",
    "microsoftDefenderForCloudApps",
)


def account(
    name: str, domain: Optional[str], sid: Optional[str], oid: Optional[str], upn: Optional[str]
) -> Dict[str, Any]:
    return {
        "accountName": name,
        "domainName": domain,
        "userSid": sid,
        "azureAdUserId": oid,
        "userPrincipalName": upn,
        "displayName": name,
    }


def alert(
    ident: str, service: str, at: str, incident: Optional[str], user: Dict[str, Any], updated: str = ""
) -> Dict[str, Any]:
    """A Graph alert shaped like the reference sample, naming one user in a user evidence."""
    base = json.loads((SAMPLES / "alert_v2.json").read_text(encoding="utf-8"))
    doc = copy.deepcopy(base)
    doc.update(
        id=ident,
        serviceSource=service,
        detectionSource=service,
        productName=None,
        incidentId=incident,
        title=f"alert {ident}",
        createdDateTime=f"2026-09-14T{at}:00.0000000Z",
        firstActivityDateTime=f"2026-09-14T{at}:00.0000000Z",
        lastUpdateDateTime=f"2026-09-14T{updated or at}:00.0000000Z",
    )
    evidence = copy.deepcopy(base["evidence"][1])  # the sample's userEvidence
    evidence["userAccount"] = user
    doc["evidence"] = [evidence]
    return doc


def incident(ident: str, redirect: Optional[str] = None) -> Dict[str, Any]:
    doc: Dict[str, Any] = json.loads((SAMPLES / "incident.json").read_text(encoding="utf-8"))
    doc.update(id=ident, status="redirected" if redirect else "active", redirectIncidentId=redirect, alerts=[])
    return doc


# Users. jdoe's endpoint alert names her as MDE does (account, NetBIOS domain, SID, Entra id, no
# UPN); Entra ID Protection names her by UPN and Entra id: the name forms differ, the ids do not.
JDOE_MDE = account("jdoe", "CONTOSO", "S-1-5-21-1-2-3-1187", "0d5e2c41-7a9b-4f3e-8c16-2b7d9e0a4f58", None)
JDOE_IDP = account("jdoe", None, None, "0d5e2c41-7a9b-4f3e-8c16-2b7d9e0a4f58", "JDoe@contoso.com")
BSMITH = account("bsmith", "CONTOSO", "S-1-5-21-1-2-3-1201", None, "bsmith@contoso.com")
AWU = account("awu", "CONTOSO", "S-1-5-21-1-2-3-1311", None, "awu@contoso.com")
ADMIN_CONTOSO = account("admin", "CONTOSO", "S-1-5-21-1-2-3-500", None, None)
ADMIN_FABRIKAM = account("admin", "FABRIKAM", "S-1-5-21-9-9-9-500", None, None)
MLEE = account("mlee", "CONTOSO", "S-1-5-21-1-2-3-1402", None, "mlee@contoso.com")

CORPUS_ALERTS = [
    # 1. The true case (the blog's): endpoint alert, then an Entra ID Protection alert for the same
    #    person an hour later, in another incident. Name forms differ (jdoe vs JDoe@contoso.com).
    alert("e-jdoe", MDE, "08:00", "100", JDOE_MDE),
    alert("i-jdoe", IDP, "09:00", "300", JDOE_IDP),
    # 2. Merged incident: the identity alert still names incident 210, which Defender merged into
    #    110, the endpoint alert's incident. Correlated: not a miss.
    alert("e-bsmith", MDE, "08:10", "110", BSMITH),
    alert("i-bsmith", MDI, "08:40", "210", BSMITH),
    # 3. Late correlation: a Cloud Apps alert 50 minutes old, not in an incident yet; Defender may
    #    still correlate it.
    alert("e-awu", MDE, "10:30", "120", AWU),
    alert("i-awu", MDCA, "11:10", None, AWU),
    # 4. Same account name, different domains (and SIDs): two people.
    alert("e-admin", MDE, "08:20", "140", ADMIN_CONTOSO),
    alert("i-admin", MDI, "09:20", "410", ADMIN_FABRIKAM),
    # 5. Outside the window: the identity alert seven hours after the endpoint alert.
    alert("e-mlee", MDE, "01:00", "150", MLEE),
    alert("i-mlee", IDP, "08:00", "420", MLEE),
]
CORPUS_INCIDENTS = [incident("110"), incident("210", redirect="110"), incident("100"), incident("300")]


def to_result(doc: Dict[str, Any], props: Any) -> Result:
    raw = json.dumps(doc, separators=(",", ":"))
    result: Result = {
        "_raw": raw,
        "_time": float(calendar.timegm(time.strptime(doc["lastUpdateDateTime"][:19], "%Y-%m-%dT%H:%M:%S"))),
        "index": "defender",
        "sourcetype": ALERT,
        "source": SOURCE,
    }
    for name, values in extract(props, ALERT, raw).items():
        result[name] = values[0] if len(values) == 1 else values
    return result


def store_of(incidents: Sequence[Dict[str, Any]]) -> Any:
    docs = [d for i in incidents for d in docs_from_incident(i, TENANT)]

    def fetch(incident_keys: Sequence[str], alert_keys: Sequence[str]) -> List[Dict[str, Any]]:
        return [d for d in docs if d.get("incident_key") in incident_keys or d.get("alert_key") in alert_keys]

    return fetch


def run(
    overrides: Optional[Dict[str, str]] = None, incidents: Sequence[Dict[str, Any]] = CORPUS_INCIDENTS
) -> List[Result]:
    table = macros()
    for name, body in (overrides or {}).items():
        table[(name, 0)] = ([], body)
    search = expand(conf("savedsearches.conf").get(SEARCH, "search"), table)
    props = load_props(DEFAULT / "props.conf")
    # Newest first, as a search returns events (defender_lineage_latest relies on it).
    events = sorted((to_result(a, props) for a in CORPUS_ALERTS), key=lambda r: -float(r["_time"]))  # type: ignore[arg-type]
    return Pipeline(NOW, store=store_of(incidents)).run(search, events)


def reported(results: List[Result]) -> List[str]:
    return sorted(str(r["identity_alert_id"]) for r in results)


def test_only_the_true_case_is_reported() -> None:
    results = run()
    assert reported(results) == ["i-jdoe"]
    (row,) = results
    assert row["endpoint_alerts"] == "e-jdoe"
    assert row["endpoint_incidents"] == "100" and row["identity_incident"] == "300"
    assert row["matched_on"] == "oid:0d5e2c41-7a9b-4f3e-8c16-2b7d9e0a4f58"  # the ids, not the names
    assert row["tenant_id"] == TENANT
    assert set(row) <= set(conf("savedsearches.conf").get(SEARCH, "search").rsplit("| table ", 1)[1].split())


def test_without_following_merges_the_merged_incident_is_a_false_positive() -> None:
    # The store without the merge: i-bsmith's incident 210 then looks like another incident.
    assert "i-bsmith" in reported(run(incidents=[incident("110"), incident("210")]))


def test_without_the_settling_delay_the_late_correlation_is_a_false_positive() -> None:
    assert "i-awu" in reported(run({"defender_lineage_correlation_settle": "0"}))


def test_a_wider_window_reaches_the_earlier_endpoint_alert() -> None:
    assert "i-mlee" in reported(run({"defender_lineage_correlation_window": "28800"}))


def test_bare_account_names_would_pair_two_people() -> None:
    # Keys from the account name alone (what the old search compared) join the two admins.
    names_only = (
        'eval dl_user_key=mvmap(dl_evidence, "name:".lower(json_extract(dl_evidence, "userAccount.accountName")))'
    )
    assert "i-admin" in reported(run({"defender_lineage_user_keys": names_only}))


def test_name_forms_differ_in_the_true_case() -> None:
    # What the old search compared (user: UPN, else account name) differs between the two alerts.
    props = load_props(DEFAULT / "props.conf")
    users = [to_result(a, props)["user"] for a in CORPUS_ALERTS if a["id"] in ("e-jdoe", "i-jdoe")]
    assert users == ["jdoe", "JDoe@contoso.com"]


@pytest.mark.parametrize("name", ["defender_lineage_correlation_settle", "defender_lineage_correlation_window"])
def test_tuning_macros_are_numbers(name: str) -> None:
    assert macros()[(name, 0)][1].strip().isdigit()


# ------------------------------------------------------------------ the runner refuses what it lacks
@pytest.mark.parametrize(
    "search",
    [
        "index=defender | frobnicate",
        "index=defender | sort _time",  # sort without a limit
        "index=defender | streamstats current=false last(x) as y by z",
        "index=defender | stats median(x) as y by z",
        "index=defender | fields a",
        "index=defender | rename a",  # rename without "as"
        "index=defender | defenderlineage incidents=maybe",
    ],
)
def test_pipeline_refuses_what_it_does_not_implement(search: str) -> None:
    with pytest.raises(UnsupportedSpl):
        Pipeline(NOW, store=store_of([])).run(search, [{"index": "defender", "_time": 1.0, "x": "1", "z": "a"}])


def test_streamstats_time_window_needs_time_order() -> None:
    events: List[Result] = [
        {"index": "defender", "_time": 2.0, "g": "a"},
        {"index": "defender", "_time": 1.0, "g": "a"},
    ]
    with pytest.raises(UnsupportedSpl):
        Pipeline(NOW).run("index=defender | streamstats time_window=10s values(g) as v by g", events)
    ordered = list(reversed(events))
    out = Pipeline(NOW).run("index=defender | streamstats time_window=10s values(_time) as seen by g", ordered)
    assert [r["seen"] for r in out] == ["1", ["1", "2"]]


# ------------------------------------------ the cross-product search on the simulator's whole tenant
def test_cross_product_search_matches_an_oracle_on_the_synthetic_tenant() -> None:
    """Every incident (after following merges) whose latest alert versions span more than one
    product, and nothing else: the search run on every alert version of the simulator's tenant,
    against the same answer computed here from the JSON and the incidents' redirects."""
    from tests.harness.graph_sim.tenant import SyntheticTenant

    tenant = SyntheticTenant.generate(seed=7)
    props = load_props(DEFAULT / "props.conf")
    source = f"ms_graph://{tenant.tenant_id}/security/alerts_v2"
    latest_incidents: Dict[str, Dict[str, Any]] = {}
    for incident_id, _lud, doc in tenant.incident_versions():
        latest_incidents[incident_id] = doc  # versions come oldest first
    redirect = {i: d.get("redirectIncidentId") for i, d in latest_incidents.items() if d.get("status") == "redirected"}
    # The simulator moves alerts to the surviving incident; Graph does not always update an alert
    # when its incident is merged. Every other alert of the chain's survivor keeps naming the first
    # incident of the merge chain, so the search must follow the chain (two merges here).
    first = next(i for i in redirect if i not in redirect.values())
    survivor_of_first = first
    while survivor_of_first in redirect:
        survivor_of_first = str(redirect[survivor_of_first])
    versions = [copy.deepcopy(doc) for _a, _l, doc in tenant.alert_versions()]
    survivors_alerts = sorted({d["id"] for d in versions if str(d.get("incidentId")) == survivor_of_first})
    moved_back = set(survivors_alerts[::2])
    for doc in versions:
        if doc["id"] in moved_back:
            doc["incidentId"] = first
    events = []
    for doc in versions:
        result = to_result(doc, props)
        result["source"] = source
        events.append(result)
    events.sort(key=lambda r: -float(r["_time"]))  # type: ignore[arg-type]
    search = expand(
        conf("savedsearches.conf").get("TA-defender-lineage - Incident spans multiple products", "search"), macros()
    )
    rows = Pipeline(NOW, store=store_of(list(latest_incidents.values()))).run(search, events)

    def survivor(incident_id: str) -> str:
        seen = set()
        while incident_id in redirect and redirect[incident_id] and incident_id not in seen:
            seen.add(incident_id)
            incident_id = str(redirect[incident_id])
        return incident_id

    latest_alerts: Dict[str, Dict[str, Any]] = {}
    for doc in versions:
        latest_alerts[doc["id"]] = doc
    renamed = [d for d in latest_alerts.values() if str(d.get("incidentId")) in redirect]
    assert renamed, "some alerts name a merged incident"
    products: Dict[str, set] = {}
    for doc in latest_alerts.values():
        if doc.get("incidentId"):
            products.setdefault(survivor(str(doc["incidentId"])), set()).add(doc["serviceSource"])
    expected = {i: p for i, p in products.items() if len(p) > 1}
    assert expected, "the synthetic tenant has cross-product incidents"
    assert {str(r["incident_id"]): float(r["product_count"]) for r in rows} == {
        i: float(len(p)) for i, p in expected.items()
    }
    assert all(str(r["lineage_dashboard"]).endswith("form.tenant=" + str(r["tenant_id"])) for r in rows)
    assert {str(r["tenant_id"]) for r in rows} == {tenant.tenant_id.lower()}
