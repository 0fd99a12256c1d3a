"""The Graph simulator behaves like Entra ID + Graph security, deterministically."""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Tuple

import pytest
import requests

from tests.fixture_paths import SAMPLES
from tests.harness.graph_sim import GraphSimulator, SyntheticTenant
from tests.harness.graph_sim.catalog import (
    DETECTION_SOURCES_GATED,
    INCIDENT_STATUS_GATED,
    REMEDIATION_STATUS_GATED,
    SERVICE_SOURCES_GATED,
)
from tests.harness.graph_sim.timeutil import format_ticks, parse_literal

ANCHOR = datetime(2026, 11, 20, 12, 0, 0, tzinfo=timezone.utc)
REPO = Path(__file__).resolve().parents[2]
PREFER = {"Prefer": "include-unknown-enum-members"}
GATED = SERVICE_SOURCES_GATED | DETECTION_SOURCES_GATED | INCIDENT_STATUS_GATED | REMEDIATION_STATUS_GATED


@pytest.fixture(scope="module")
def tenant() -> SyntheticTenant:
    return SyntheticTenant.generate(seed=7, anchor=ANCHOR)


@pytest.fixture(scope="module")
def sim_tenant(tenant: SyntheticTenant) -> SyntheticTenant:
    return tenant  # conftest's module_sim serves this module's tenant (anchored at ANCHOR)


@pytest.fixture
def http() -> Iterator[requests.Session]:
    with requests.Session() as s:
        yield s


def token_form(sim: GraphSimulator, **over: Optional[str]) -> Dict[str, str]:
    form = {
        "grant_type": "client_credentials",
        "client_id": sim.client_id,
        "client_secret": sim.client_secret,
        "scope": "https://graph.microsoft.com/.default",
    }
    for key, value in over.items():
        if value is None:
            form.pop(key, None)
        else:
            form[key] = value
    return form


def get_token(sim: GraphSimulator, http: requests.Session) -> str:
    r = http.post(sim.token_endpoint, data=token_form(sim), timeout=5)
    assert r.status_code == 200, r.text
    return str(r.json()["access_token"])


def auth(sim: GraphSimulator, http: requests.Session, prefer: bool = False) -> Dict[str, str]:
    headers = {"Authorization": f"Bearer {get_token(sim, http)}"}
    if prefer:
        headers.update(PREFER)
    return headers


def page_all(
    sim: GraphSimulator, http: requests.Session, resource: str, headers: Dict[str, str], **params: str
) -> Tuple[List[Dict[str, Any]], int]:
    url: Optional[str] = f"{sim.base_url}/v1.0/security/{resource}"
    items: List[Dict[str, Any]] = []
    pages = 0
    query: Optional[Dict[str, str]] = params
    while url:
        r = http.get(url, headers=headers, params=query, timeout=10)
        assert r.status_code == 200, r.text
        body = r.json()
        items.extend(body["value"])
        url = body.get("@odata.nextLink")
        query = None
        pages += 1
    return items, pages


def jwt(claims: Dict[str, Any]) -> str:
    def enc(obj: Dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()

    return f"{enc({'alg': 'PS256', 'typ': 'JWT'})}.{enc(claims)}.c2lnbmF0dXJl"


# ------------------------------------------------------------------------------- token endpoint


def test_token_success_and_redaction(sim: GraphSimulator, http: requests.Session) -> None:
    r = http.post(sim.token_endpoint, data=token_form(sim), timeout=5)
    assert r.status_code == 200
    body = r.json()
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 3599 and body["ext_expires_in"] == 3599
    assert body["access_token"]
    rec = sim.requests[-1]
    assert rec.resource == "token" and rec.status == 200
    assert rec.form is not None and rec.form["client_secret"] == "REDACTED"
    assert sim.client_secret not in repr(rec.form)
    assert sim.client_secret.startswith("sim-secret-")
    # RFC 6749 §2.3.1 basic auth is accepted too
    basic = base64.b64encode(f"{sim.client_id}:{sim.client_secret}".encode()).decode()
    r = http.post(
        sim.token_endpoint,
        data=token_form(sim, client_id=None, client_secret=None),
        headers={"Authorization": f"Basic {basic}"},
        timeout=5,
    )
    assert r.status_code == 200, r.text
    assert "Basic" not in str(sim.requests[-1].headers.values())


def test_token_client_assertion(sim: GraphSimulator, http: requests.Session) -> None:
    now = int(time.time())
    good = jwt({"iss": sim.client_id, "sub": sim.client_id, "aud": sim.token_endpoint, "exp": now + 300})
    form = token_form(
        sim,
        client_secret=None,
        client_assertion_type="urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
        client_assertion=good,
    )
    r = http.post(sim.token_endpoint, data=form, timeout=5)
    assert r.status_code == 200, r.text
    assert sim.requests[-1].form is not None and sim.requests[-1].form["client_assertion"] == "REDACTED"

    form["client_assertion"] = jwt({"iss": "someone-else", "sub": sim.client_id})
    r = http.post(sim.token_endpoint, data=form, timeout=5)
    assert r.status_code == 401 and r.json()["error"] == "invalid_client"

    form["client_assertion"] = "not-a-jwt"
    r = http.post(sim.token_endpoint, data=form, timeout=5)
    assert r.status_code == 400 and r.json()["error"] == "invalid_request"

    # the verifier is a pluggable hook (signature checks come later)
    sim.assertion_verifier = lambda assertion, header, claims, s: "AADSTS700027: signature rejected"
    try:
        form["client_assertion"] = good
        r = http.post(sim.token_endpoint, data=form, timeout=5)
        assert r.status_code == 401 and r.json()["error_codes"] == [700027]
    finally:
        from tests.harness.graph_sim import default_assertion_verifier

        sim.assertion_verifier = default_assertion_verifier


@pytest.mark.parametrize(
    ("over", "tenant_path", "status", "error", "code"),
    [
        ({"client_secret": "wrong"}, None, 401, "invalid_client", 7000215),
        ({}, "00000000-0000-0000-0000-000000000000", 400, "invalid_request", 90002),
        ({"client_id": "11111111-2222-3333-4444-555555555555"}, None, 400, "unauthorized_client", 700016),
        ({"grant_type": None}, None, 400, "invalid_request", 900144),
        ({"scope": None}, None, 400, "invalid_request", 900144),
        ({"scope": "https://graph.microsoft.com/SecurityAlert.Read.All"}, None, 400, "invalid_scope", 1002012),
        ({"grant_type": "password"}, None, 400, "unsupported_grant_type", 70003),
    ],
)
def test_token_errors(
    sim: GraphSimulator,
    http: requests.Session,
    over: Dict[str, Optional[str]],
    tenant_path: Optional[str],
    status: int,
    error: str,
    code: int,
) -> None:
    url = sim.token_endpoint if tenant_path is None else f"{sim.base_url}/{tenant_path}/oauth2/v2.0/token"
    r = http.post(url, data=token_form(sim, **over), timeout=5)
    assert r.status_code == status, r.text
    body = r.json()
    assert body["error"] == error
    assert body["error_codes"] == [code]
    assert body["error_description"].startswith(f"AADSTS{code}: ")
    for part in ("Trace ID: ", "Correlation ID: ", "Timestamp: "):
        assert part in body["error_description"]
    assert body["trace_id"] and body["correlation_id"] and body["timestamp"]
    if code == 7000215:
        assert (
            "Invalid client secret provided. Ensure the secret being sent in the request is the client "
            in (body["error_description"])
        )
    if code == 90002:
        assert f"Tenant '{tenant_path}' not found" in body["error_description"]


# ------------------------------------------------------------------------------- Graph auth


def test_graph_401_missing_unknown_expired(sim: GraphSimulator, http: requests.Session) -> None:
    url = f"{sim.base_url}/v1.0/security/alerts_v2"
    for headers in ({}, {"Authorization": "Bearer not-a-token"}):
        r = http.get(url, headers=headers, timeout=5)
        assert r.status_code == 401
        assert r.json()["error"]["code"] == "InvalidAuthenticationToken"
    headers = auth(sim, http)
    assert http.get(url, headers=headers, timeout=5).status_code == 200
    sim.expire_tokens()
    r = http.get(url, headers=headers, timeout=5)
    assert r.status_code == 401
    assert r.json()["error"]["message"] == "Access token has expired or is not yet valid."
    assert sim.requests[-1].headers["Authorization"] == "Bearer REDACTED"
    assert http.get(url, headers=auth(sim, http), timeout=5).status_code == 200


def test_graph_403_missing_role(sim: GraphSimulator, http: requests.Session) -> None:
    sim.set_roles("SecurityIncident.Read.All")
    headers = auth(sim, http)
    r = http.get(f"{sim.base_url}/v1.0/security/alerts_v2", headers=headers, timeout=5)
    assert r.status_code == 403
    err = r.json()["error"]
    assert err["code"] == "Forbidden"
    assert err["message"].startswith(
        "Missing application roles. API required roles: SecurityAlert.Read.All, SecurityAlert.ReadWrite.All. "
        "API granted roles: SecurityIncident.Read.All"
    )
    assert set(err["innerError"]) >= {"date", "request-id", "client-request-id"}
    assert http.get(f"{sim.base_url}/v1.0/security/incidents", headers=headers, timeout=5).status_code == 200


def test_unknown_path_404(sim: GraphSimulator, http: requests.Session) -> None:
    r = http.get(f"{sim.base_url}/v1.0/security/alertz", headers=auth(sim, http), timeout=5)
    assert r.status_code == 404
    assert r.json()["error"]["code"] == "ResourceNotFound"
    assert r.headers["Content-Type"] == "application/json; odata.metadata=minimal"


# ------------------------------------------------------------------------------- query options


def test_filter_instant_semantics(sim: GraphSimulator, tenant: SyntheticTenant, http: requests.Session) -> None:
    headers = auth(sim, http)
    pivot_id, pivot_lud = tenant.scenarios["tick_neighbours"]["pivot"]
    before_id, after_id = tenant.scenarios["tick_neighbours"]["neighbours"]
    ticks = parse_literal(pivot_lud)
    assert ticks is not None
    spellings = [format_ticks(ticks), format_ticks(ticks, trim=True)]
    shifted = datetime.fromisoformat(format_ticks(ticks)[:19]) + timedelta(hours=2)
    spellings.append(f"{shifted:%Y-%m-%dT%H:%M:%S}.{format_ticks(ticks)[20:27]}+02:00")  # same instant
    expect = {
        "ge": {pivot_id, after_id},
        "gt": {after_id},
        "le": {pivot_id, before_id},
        "lt": {before_id},
    }
    near = {pivot_id, before_id, after_id}
    visible = {a["id"]: a["lastUpdateDateTime"] for a in tenant.visible_at("alerts_v2")}
    assert visible[pivot_id] == pivot_lud
    assert [parse_literal(visible[i]) for i in (before_id, after_id)] == [ticks - 1, ticks + 1]
    for literal in spellings:
        for op, want in expect.items():
            r = http.get(
                f"{sim.base_url}/v1.0/security/alerts_v2",
                headers=headers,
                params={"$filter": f"lastUpdateDateTime {op} {literal}", "$top": "2000"},
                timeout=5,
            )
            assert r.status_code == 200, r.text
            got = {a["id"] for a in r.json()["value"]} & near
            assert got == want, (literal, op)


def test_filter_range_matches_model(sim: GraphSimulator, tenant: SyntheticTenant, http: requests.Session) -> None:
    headers = auth(sim, http)
    visible = tenant.visible_at("alerts_v2")
    luds = sorted(parse_literal(a["lastUpdateDateTime"]) or 0 for a in visible)
    lo, hi = luds[len(luds) // 4], luds[3 * len(luds) // 4]
    flt = f"lastUpdateDateTime ge {format_ticks(lo)} and lastUpdateDateTime lt {format_ticks(hi, trim=True)}"
    items, _ = page_all(sim, http, "alerts_v2", headers, **{"$filter": flt, "$top": "7"})
    want = {a["id"] for a in visible if lo <= (parse_literal(a["lastUpdateDateTime"]) or 0) < hi}
    assert [a["id"] for a in items if a["id"] in want] == [a["id"] for a in items]
    assert {a["id"] for a in items} == want and len(items) == len(want)


@pytest.mark.parametrize(
    "flt",
    [
        "status eq 'new'",
        "lastUpdateDateTime ge '2026-11-20T10:00:00Z'",
        "lastUpdateDateTime ge 2026-11-20T10:00:00.12345678Z",
        "lastUpdateDateTime eq 2026-11-20T10:00:00Z",
        "lastUpdateDateTime ge 2026-13-20T10:00:00Z",
        "lastUpdateDateTime ge 2026-11-20T10:00:00Z or lastUpdateDateTime le 2026-11-20T10:00:00Z",
    ],
)
def test_filter_rejects_other_clauses(sim: GraphSimulator, http: requests.Session, flt: str) -> None:
    r = http.get(f"{sim.base_url}/v1.0/security/alerts_v2", headers=auth(sim, http), params={"$filter": flt}, timeout=5)
    assert r.status_code == 400
    assert r.json()["error"]["code"] == "BadRequest"
    assert "Invalid filter clause" in r.json()["error"]["message"]


def test_paging_every_item_once(sim: GraphSimulator, tenant: SyntheticTenant, http: requests.Session) -> None:
    headers = auth(sim, http)
    for resource, n_default in (("alerts_v2", 100), ("incidents", 20)):
        visible = tenant.visible_at(resource)
        want = sorted(item["id"] for item in visible)
        items, pages = page_all(sim, http, resource, headers)
        assert sorted(a["id"] for a in items) == want
        assert pages == -(-len(want) // n_default)
        # default order: most recent first
        luds = [parse_literal(a["lastUpdateDateTime"]) for a in items]
        assert luds == sorted(luds, reverse=True)  # type: ignore[type-var]
        items, pages = page_all(sim, http, resource, headers, **{"$top": "7", "$orderby": "lastUpdateDateTime asc"})
        assert sorted(a["id"] for a in items) == want and len(items) == len(want)
        assert pages == -(-len(want) // 7)
        luds = [parse_literal(a["lastUpdateDateTime"]) for a in items]
        assert luds == sorted(luds)  # type: ignore[type-var]
        assert all(a["tenantId"] == sim.tenant_id for a in items)
    r = http.get(
        f"{sim.base_url}/v1.0/security/alerts_v2", headers=headers, params={"$top": "5", "$skip": "3"}, timeout=5
    )
    body = r.json()
    assert body["@odata.context"].endswith("$metadata#security/alerts_v2")
    assert body["@odata.nextLink"].startswith(f"{sim.base_url}/v1.0/security/alerts_v2?$skiptoken=")
    assert r.headers["Content-Type"] == "application/json; odata.metadata=minimal"


def test_paging_recomputes_over_current_data(
    sim: GraphSimulator, tenant: SyntheticTenant, http: requests.Session
) -> None:
    headers = auth(sim, http)
    url = f"{sim.base_url}/v1.0/security/alerts_v2"
    params = {"$top": "10", "$orderby": "lastUpdateDateTime asc"}
    sim.set_clock(ANCHOR - timedelta(days=3))
    first = http.get(url, headers=headers, params=params, timeout=5).json()
    sim.set_clock(ANCHOR)  # the world moves on between pages: offsets apply to the new view
    second = http.get(first["@odata.nextLink"], headers=headers, timeout=5).json()
    now_view = http.get(url, headers=headers, params={**params, "$top": "20"}, timeout=5).json()["value"]
    assert [a["id"] for a in second["value"]] == [a["id"] for a in now_view[10:20]]


def test_top_limits(sim: GraphSimulator, http: requests.Session) -> None:
    headers = auth(sim, http)
    r = http.get(f"{sim.base_url}/v1.0/security/incidents", headers=headers, params={"$top": "51"}, timeout=5)
    assert r.status_code == 400
    assert r.json()["error"]["message"] == (
        "The limit of '50' for Top query has been exceeded. The value from the incoming request is '51'."
    )
    assert http.get(f"{sim.base_url}/v1.0/security/incidents?$top=50", headers=headers, timeout=5).ok
    r = http.get(f"{sim.base_url}/v1.0/security/alerts_v2", headers=headers, params={"$top": "2001"}, timeout=5)
    assert r.status_code == 400 and "'2000'" in r.json()["error"]["message"]
    assert http.get(f"{sim.base_url}/v1.0/security/alerts_v2?$top=2000", headers=headers, timeout=5).ok
    for bad in ({"$top": "x"}, {"$skip": "-1"}, {"$orderby": "createdDateTime desc"}, {"$select": "id"}):
        r = http.get(f"{sim.base_url}/v1.0/security/alerts_v2", headers=headers, params=bad, timeout=5)
        assert r.status_code == 400, bad


def test_expand_alerts(sim: GraphSimulator, tenant: SyntheticTenant, http: requests.Session) -> None:
    headers = auth(sim, http, prefer=True)
    incidents, _ = page_all(sim, http, "incidents", headers, **{"$expand": "alerts", "$top": "50"})
    alerts = {a["id"]: a for a in tenant.visible_at("alerts_v2")}
    by_incident = Counter(a["incidentId"] for a in alerts.values() if a["incidentId"])
    for inc in incidents:
        assert all(a["incidentId"] == inc["id"] for a in inc["alerts"])
        assert len(inc["alerts"]) == by_incident.get(inc["id"], 0)
        for a in inc["alerts"]:
            assert a == alerts[a["id"]]
    cross = next(i for i in incidents if i["id"] == tenant.scenarios["cross_product"]["incident"])
    assert len({a["serviceSource"] for a in cross["alerts"]}) >= 3
    r = http.get(f"{sim.base_url}/v1.0/security/incidents?$top=2&$expand=alerts", headers=headers, timeout=5)
    assert "(alerts())" in r.json()["@odata.context"]
    for path in ("alerts_v2?$expand=evidence", "incidents?$expand=comments"):
        r = http.get(f"{sim.base_url}/v1.0/security/{path}", headers=headers, timeout=5)
        assert r.status_code == 400


def _enum_values(items: List[Dict[str, Any]]) -> set[str]:
    """Values of the evolvable-enum properties that are gated for their enum type (or the sentinel)."""
    out: set[str] = set()
    for item in items:
        if "serviceSource" in item:
            found = [(item["serviceSource"], SERVICE_SOURCES_GATED), (item["detectionSource"], DETECTION_SOURCES_GATED)]
            found += [(e["remediationStatus"], REMEDIATION_STATUS_GATED) for e in item["evidence"]]
        else:
            found = [(item["status"], INCIDENT_STATUS_GATED)]
            out |= _enum_values(item.get("alerts", []))
        out |= {value for value, gated in found if value in gated or value == "unknownFutureValue"}
    return out


def test_prefer_unknown_enum_members(sim: GraphSimulator, http: requests.Session) -> None:
    plain = auth(sim, http)
    for query in ("alerts_v2?$top=2000", "incidents?$top=50&$expand=alerts"):
        r = http.get(f"{sim.base_url}/v1.0/security/{query}", headers=plain, timeout=5)
        assert "Preference-Applied" not in r.headers
        values = _enum_values(r.json()["value"])
        assert not (values & GATED), values & GATED
        assert "unknownFutureValue" in values
    with_prefer = {**plain, **PREFER}
    r = http.get(f"{sim.base_url}/v1.0/security/alerts_v2?$top=2000", headers=with_prefer, timeout=5)
    assert r.headers["Preference-Applied"] == "include-unknown-enum-members"
    alerts = r.json()["value"]
    assert {a["serviceSource"] for a in alerts} >= SERVICE_SOURCES_GATED
    assert {a["detectionSource"] for a in alerts} & DETECTION_SOURCES_GATED
    assert {e["remediationStatus"] for a in alerts for e in a["evidence"]} & REMEDIATION_STATUS_GATED
    assert "unknownFutureValue" not in _enum_values(alerts)
    r = http.get(f"{sim.base_url}/v1.0/security/incidents?$top=50&$expand=alerts", headers=with_prefer, timeout=5)
    assert "awaitingAction" in _enum_values(r.json()["value"])
    assert "unknownFutureValue" not in _enum_values(r.json()["value"])


# ------------------------------------------------------------------------------- the tenant


def test_tenant_coverage(tenant: SyntheticTenant) -> None:
    alerts = tenant.visible_at("alerts_v2")
    incidents = {i["id"]: i for i in tenant.visible_at("incidents")}
    assert 50 <= len(alerts) <= 80 and 15 <= len(incidents) <= 25
    assert 150 <= len(tenant.alert_versions()) + len(tenant.incident_versions()) <= 300
    services = {a["serviceSource"] for a in alerts}
    assert len(services) >= 13 and services >= SERVICE_SOURCES_GATED
    assert len({a["detectionSource"] for a in alerts}) >= 30
    # cross-product incident: same user in endpoint and identity alerts
    cross = tenant.scenarios["cross_product"]
    members = [a for a in alerts if a["incidentId"] == cross["incident"]]
    assert {"microsoftDefenderForEndpoint", "azureAdIdentityProtection"} <= {a["serviceSource"] for a in members}
    upns = [{e["userAccount"]["userPrincipalName"] for e in a["evidence"] if "userAccount" in e} for a in members]
    assert set.intersection(*[u for u in upns if u])
    sev = [d["severity"] for i, _, d in tenant.incident_versions() if i == cross["incident"]]
    assert len(set(sev)) > 1 and sev[-1] == "high"
    assert [d["status"] for i, _, d in tenant.incident_versions() if i == cross["incident"]][-1] == "resolved"
    # alerts outside incidents
    lone = [a for a in alerts if a["incidentId"] is None]
    assert len(lone) >= 3 and all(a["incidentWebUrl"] is None for a in lone)
    # merge chain A -> B -> C
    a, b, c = tenant.scenarios["merge_chain"]
    assert incidents[a]["status"] == "redirected" and incidents[a]["redirectIncidentId"] == b
    assert incidents[b]["status"] == "redirected" and incidents[b]["redirectIncidentId"] == c
    assert incidents[c]["redirectIncidentId"] is None
    assert not [x for x in alerts if x["incidentId"] in (a, b)]
    # multi-version alerts going new -> inProgress -> resolved with comments and a classification
    history: Dict[str, List[Dict[str, Any]]] = {}
    for item_id, _, d in tenant.alert_versions():
        history.setdefault(item_id, []).append(d)
    full = [h for h in history.values() if [v["status"] for v in h][:1] == ["new"] and h[-1]["status"] == "resolved"]
    assert len(full) >= 5
    assert any(h[-1]["comments"] for h in full) and all(h[-1]["classification"] for h in full)
    # shape like the samples
    for x in alerts:
        assert x["@odata.type"] == "#microsoft.graph.security.alert"
        assert x["alertWebUrl"] == f"https://security.microsoft.com/alerts/{x['id']}?tid={tenant.tenant_id}"
        assert x["id"][:2].isalpha() and x["evidence"]
        assert x["lastUpdateDateTime"].endswith("Z")
    for inc in incidents.values():
        assert inc["@odata.type"] == "#microsoft.graph.security.incident" and inc["id"].isdigit()
    sample = json.loads((SAMPLES / "alert_v2.json").read_text())
    assert set(alerts[0]) == set(sample)
    # the per-version luds mix 7-digit and trimmed fractions
    fracs = {len(lud.split(".")[1]) - 1 if "." in lud else 0 for _, lud, _ in tenant.alert_versions()}
    assert 7 in fracs and len(fracs) > 2


def test_versions_strictly_increase(tenant: SyntheticTenant) -> None:
    last: Dict[str, int] = {}
    for item_id, lud, d in tenant.alert_versions() + tenant.incident_versions():
        ticks = parse_literal(lud)
        assert ticks is not None and d["lastUpdateDateTime"] == lud
        assert ticks > last.get(item_id, -1)
        last[item_id] = ticks
        assert ticks <= parse_literal(format_ticks(tenant.anchor_ticks))  # type: ignore[operator]
    same = tenant.scenarios["same_instant"]["alerts"]
    final = {i: parse_literal(lud) for i, lud, _ in tenant.alert_versions() if i in same}
    assert len(set(final.values())) == 1  # one instant (its text may differ: trailing zeros)


def test_clock_hides_later_versions(sim: GraphSimulator, tenant: SyntheticTenant, http: requests.Session) -> None:
    headers = auth(sim, http)
    at = ANCHOR - timedelta(days=4)
    sim.set_clock(at)
    items, _ = page_all(sim, http, "alerts_v2", headers, **{"$top": "2000"})
    cut = parse_literal(format_ticks(tenant.anchor_ticks - 4 * 86400 * 10**7)) or 0
    latest: Dict[str, str] = {}
    for item_id, lud, _ in tenant.alert_versions():
        if (parse_literal(lud) or 0) <= cut:
            latest[item_id] = lud
    assert {a["id"]: a["lastUpdateDateTime"] for a in items} == latest
    assert 0 < len(items) < len(tenant.visible_at("alerts_v2"))
    sim.set_clock(ANCHOR - timedelta(days=8))
    assert page_all(sim, http, "incidents", headers)[0] == []


def test_determinism() -> None:
    a = SyntheticTenant.generate(seed=11, anchor=ANCHOR)
    b = SyntheticTenant.generate(seed=11, anchor=ANCHOR)
    assert a.alert_versions() == b.alert_versions() and a.incident_versions() == b.incident_versions()
    c = SyntheticTenant.generate(seed=11, anchor=ANCHOR + timedelta(days=30))
    assert [i for i, _, _ in a.alert_versions()] == [i for i, _, _ in c.alert_versions()]
    d = SyntheticTenant.generate(seed=12, anchor=ANCHOR)
    assert {i for i, _, _ in a.alert_versions()} != {i for i, _, _ in d.alert_versions()}


def test_bulk_tenant(http: requests.Session) -> None:
    t = SyntheticTenant.bulk(3000, seed=5, anchor=ANCHOR, same_timestamp_groups=True)
    keys = t.alert_version_keys()
    assert len(keys) == 3000 and len(set(keys)) == 3000
    assert any(size >= 50 for _, size in t.scenarios["same_timestamp_groups"])
    with GraphSimulator(t, max_lifetime=60) as sim:
        items, _ = page_all(sim, http, "alerts_v2", auth(sim, http, prefer=True), **{"$top": "1000"})
        assert sorted(a["id"] for a in items) == sorted(v.item_id for v in t.alerts.visible(t.anchor_ticks))
        assert all(a["evidence"] and a["evidence"][0]["createdDateTime"].endswith("Z") for a in items)
        assert _enum_values(items) & GATED
        masked, _ = page_all(sim, http, "alerts_v2", auth(sim, http), **{"$top": "1000"})
        assert not (_enum_values(masked) & GATED)
        assert [a["id"] for a in masked] == [a["id"] for a in items]


# ------------------------------------------------------------------------------- lifecycle


def test_stops_after_max_lifetime(tenant: SyntheticTenant) -> None:
    sim = GraphSimulator(tenant, max_lifetime=0.5).start()
    s = requests.Session()
    assert s.post(sim.token_endpoint, data=token_form(sim), timeout=5).ok  # keep-alive connection open
    assert sim.wait_stopped(5)
    assert not sim.running
    with pytest.raises(requests.exceptions.ConnectionError):
        s.post(sim.token_endpoint, data=token_form(sim), timeout=2)


def test_main_prints_json_and_stops_on_sigterm() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.harness.graph_sim", "--seed", "7", "--port", "0", "--lifetime", "30"],
        cwd=REPO,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    try:
        assert proc.stdout is not None
        info = json.loads(proc.stdout.readline())
        assert set(info) == {"base_url", "tenant_id", "client_id", "client_secret"}
        assert info["base_url"].startswith("http://127.0.0.1:")
        form = {
            "grant_type": "client_credentials",
            "client_id": info["client_id"],
            "client_secret": info["client_secret"],
            "scope": "https://graph.microsoft.com/.default",
        }
        r = requests.post(f"{info['base_url']}/{info['tenant_id']}/oauth2/v2.0/token", data=form, timeout=5)
        assert r.status_code == 200
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


# ------------------------------------------------------------------------------- faults


def test_fault_429_then_ok(sim: GraphSimulator, http: requests.Session) -> None:
    headers = auth(sim, http)
    sim.faults.add(status=429, retry_after="1.5", resource="alerts_v2", times=2)
    url = f"{sim.base_url}/v1.0/security/alerts_v2"
    for _ in range(2):
        r = http.get(url, headers=headers, timeout=5)
        assert r.status_code == 429 and r.headers["Retry-After"] == "1.5"
        assert r.json()["error"]["code"] == "TooManyRequests"
        assert sim.requests[-1].fault == "status"
    assert http.get(url, headers=headers, timeout=5).status_code == 200
    assert http.get(f"{sim.base_url}/v1.0/security/incidents", headers=headers, timeout=5).ok


def test_fault_expand_500_always(sim: GraphSimulator, http: requests.Session) -> None:
    headers = auth(sim, http)
    sim.faults.add(status=500, resource="incidents", when_query={"$expand": "alerts"}, times=None)
    url = f"{sim.base_url}/v1.0/security/incidents"
    for _ in range(3):
        assert http.get(url, headers=headers, params={"$expand": "alerts"}, timeout=5).status_code == 500
    first = http.get(url, headers=headers, params={"$top": "5"}, timeout=5).json()
    assert http.get(first["@odata.nextLink"], headers=headers, timeout=5).status_code == 200
    # a nextLink continuing an $expand query is matched too
    sim.faults.clear()
    first = http.get(url, headers=headers, params={"$top": "5", "$expand": "alerts"}, timeout=5).json()
    sim.faults.add(status=500, resource="incidents", when_query={"$expand": "alerts"}, times=None)
    assert http.get(first["@odata.nextLink"], headers=headers, timeout=5).status_code == 500
    sim.faults.clear()
    assert http.get(url, headers=headers, params={"$expand": "alerts"}, timeout=5).status_code == 200


def test_fault_malformed_json_and_reset(sim: GraphSimulator, http: requests.Session) -> None:
    headers = auth(sim, http)
    url = f"{sim.base_url}/v1.0/security/alerts_v2"
    sim.faults.add(kind="malformed_json", resource="alerts_v2", times=1)
    r = http.get(url, headers=headers, timeout=5)
    assert r.status_code == 200
    with pytest.raises(ValueError):
        r.json()
    assert http.get(url, headers=headers, timeout=5).json()["value"]
    sim.faults.add(kind="reset", resource="graph", times=1)
    with pytest.raises(requests.exceptions.ConnectionError):
        http.get(url, headers=headers, timeout=5)
    assert sim.requests[-1].status == 0 and sim.requests[-1].fault == "reset"
    assert http.get(url, headers=headers, timeout=5).ok
    # after= lets requests through first; index= targets one request; delay slows one down
    sim.faults.add(status=503, resource="alerts_v2", after=1, times=1)
    assert http.get(url, headers=headers, timeout=5).status_code == 200
    assert http.get(url, headers=headers, timeout=5).status_code == 503
    sim.faults.add(kind="delay", delay=0.3, resource="alerts_v2")
    started = time.monotonic()
    assert http.get(url, headers=headers, timeout=5).ok
    assert time.monotonic() - started >= 0.3
    sim.faults.add(kind="expire_tokens", resource="alerts_v2")
    assert http.get(url, headers=headers, timeout=5).status_code == 401
    sim.faults.add(status=503, resource="token")
    r = http.post(sim.token_endpoint, data=token_form(sim), timeout=5)
    assert r.status_code == 503 and r.json()["error"] == "temporarily_unavailable"
    assert len(sim.faults.log) >= 6
    sim.faults.clear()
    assert len(sim.faults) == 0


def test_add_version_mid_run(http: requests.Session) -> None:
    t = SyntheticTenant.generate(seed=3, anchor=ANCHOR)
    start, end = ANCHOR - timedelta(days=7), ANCHOR
    before = t.expected_versions("alerts_v2", start, end)
    assert len(before) == len(t.alert_versions())
    with GraphSimulator(t, max_lifetime=60) as sim:
        headers = auth(sim, http)
        first = http.get(
            f"{sim.base_url}/v1.0/security/alerts_v2",
            headers=headers,
            params={"$top": "10", "$orderby": "lastUpdateDateTime asc"},
            timeout=5,
        ).json()
        moved = dict(first["value"][0])
        moved["lastUpdateDateTime"] = format_ticks(t.anchor_ticks - 10**7)
        moved["status"] = "resolved"
        t.add_version("alerts_v2", moved)
        rest, _ = page_all(sim, http, "alerts_v2", headers, **{"$skip": "0", "$top": "2000"})
        assert {a["id"]: a["status"] for a in rest}[moved["id"]] == "resolved"
        # Graph-like skip paging: the item that moved to the end shifts everything by one
        second = http.get(first["@odata.nextLink"], headers=headers, timeout=5).json()
        assert second["value"][-1]["id"] != moved["id"]
    assert len(t.expected_versions("alerts_v2", start, end)) == len(before) + 1


def test_a_request_answered_after_its_requests_were_forgotten_is_not_recorded(sim, http):
    """A delay fault outlives a client's timeout: the request is still being answered when the next
    test starts (conftest's reset forgets requests), and must not be counted as that test's."""
    headers = auth(sim, http)
    sim.faults.add(kind="delay", delay=0.6, resource="alerts_v2", times=1)
    with pytest.raises(requests.exceptions.Timeout):
        http.get(f"{sim.base_url}/v1.0/security/alerts_v2", headers=headers, timeout=0.2)
    sim.forget_requests()
    time.sleep(0.8)  # the delayed answer is written (and would be recorded) now
    assert [r for r in sim.requests if r.resource == "alerts_v2"] == []
    assert http.get(f"{sim.base_url}/v1.0/security/alerts_v2", headers=headers, timeout=5).ok
    assert [r.resource for r in sim.requests] == ["alerts_v2"]  # what arrives afterwards is recorded
