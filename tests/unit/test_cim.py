"""CIM fields at search time, through the test-side interpreter of props.conf and transforms.conf.

Every CIM field the add-on promises is checked on the reference samples (exact values) and on
every alert and incident version of the Graph simulator's tenant (against an oracle computed here
from the JSON, evidence by evidence). The interpreter refuses what it does not implement; the last
tests prove that it does.
"""

from __future__ import annotations

import configparser
import json
import re
from functools import partial
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional

import pcre2
import pytest

from tests.fixture_paths import SAMPLES
from tests.harness.graph_sim.tenant import SyntheticTenant
from tests.harness.searchtime import (
    DEFAULT_DEPTH_LIMIT,
    DEFAULT_MATCH_LIMIT,
    SplunkRuleViolation,
    UnsupportedProps,
    compile_report_regex,
    evaluate,
    extract,
    json_fields,
    load_props,
    load_transforms,
    parse_expression,
)

ROOT = Path(__file__).resolve().parents[2]
DEFAULT = ROOT / "package" / "default"
ALERT = "ms:defender:graph:alert"
INCIDENT = "ms:defender:graph:incident"

SERVICE_LABELS = {
    "microsoftDefenderForEndpoint": "Microsoft Defender for Endpoint",
    "microsoftDefenderForIdentity": "Microsoft Defender for Identity",
    "microsoftDefenderForCloudApps": "Microsoft Defender for Cloud Apps",
    "microsoftDefenderForOffice365": "Microsoft Defender for Office 365",
    "microsoft365Defender": "Microsoft Defender XDR",
    "azureAdIdentityProtection": "Microsoft Entra ID Protection",
    "microsoftAppGovernance": "App governance",
    "dataLossPrevention": "Microsoft Purview Data Loss Prevention",
    "microsoftDefenderForCloud": "Microsoft Defender for Cloud",
    "microsoftSentinel": "Microsoft Sentinel",
    "microsoftInsiderRiskManagement": "Microsoft Purview Insider Risk Management",
    "microsoftThreatIntelligence": "Microsoft Threat Intelligence",
    "microsoftSecurityForAI": "Microsoft Security for AI",
}


@pytest.fixture(scope="module")
def props() -> configparser.RawConfigParser:
    return load_props(DEFAULT / "props.conf")


@pytest.fixture(scope="module")
def tenant() -> SyntheticTenant:
    return SyntheticTenant.generate(seed=7)


def compact(item: Dict[str, Any]) -> str:
    """As the inputs write events (defender_lineage_eventstream): compact JSON."""
    return json.dumps(item, ensure_ascii=False, separators=(",", ":"))


def sample(name: str) -> Dict[str, Any]:
    data: Dict[str, Any] = json.loads((SAMPLES / name).read_text(encoding="utf-8"))
    return data


def one(fields: Dict[str, List[str]], name: str) -> Optional[str]:
    values = fields.get(name)
    assert values is None or len(values) == 1, f"{name} is multivalue: {values}"
    return values[0] if values else None


# ---------------------------------------------------------------------------- oracle (plain Python)
ACTED = {"attacker", "source"}


def _dedup(values: List[str]) -> List[str]:
    out: List[str] = []
    for v in values:
        if v not in out:
            out.append(v)
    return out


def _accounts(value: Any) -> Iterator[Dict[str, Any]]:
    if isinstance(value, dict):
        for key, inner in value.items():
            if key == "userAccount" and isinstance(inner, dict):
                yield inner
            yield from _accounts(inner)
    elif isinstance(value, list):
        for inner in value:
            yield from _accounts(inner)


def oracle(alert: Dict[str, Any]) -> Dict[str, List[str]]:
    """dest, src and user as the README defines them, computed evidence by evidence."""
    dest: List[str] = []
    src: List[str] = []
    evidence = alert.get("evidence") or []
    for ev in evidence:
        kind = ev["@odata.type"].rsplit(".", 1)[-1]
        roles = set(ev.get("roles") or [])
        detailed = " ".join(ev.get("detailedRoles") or [])
        if kind == "deviceEvidence":
            name = ev.get("deviceDnsName") or ev.get("hostName")
            if name:
                (src if roles & ACTED else dest).append(name)
        elif kind == "ipEvidence" and ev.get("ipAddress"):
            if roles & ACTED or re.search(r"(?i)\b(attacker|source)", detailed):
                src.append(ev["ipAddress"])
        elif kind == "networkConnectionEvidence":
            dest += [a["ipAddress"] for a in [ev.get("destinationAddress") or {}] if a.get("ipAddress")]
            src += [a["ipAddress"] for a in [ev.get("sourceAddress") or {}] if a.get("ipAddress")]
        elif kind == "hostLogonSessionEvidence":
            host = ev.get("host") or {}
            if host.get("deviceDnsName") or host.get("hostName"):
                dest.append(host.get("deviceDnsName") or host.get("hostName"))
    src += [ev["senderIp"] for ev in evidence if ev.get("senderIp")]
    users = [a.get("userPrincipalName") or a.get("accountName") for a in _accounts(evidence)]
    users += [a["userPrincipalName"] for a in _accounts(evidence) if a.get("userPrincipalName")]
    users += [ev["upn"] for ev in evidence if ev.get("upn")]
    return {"dest": _dedup(dest), "src": _dedup(src), "user": _dedup([u for u in users if u])}


# ------------------------------------------------------------------------------ reference samples
def test_reference_alert_every_cim_field(props: configparser.RawConfigParser) -> None:
    alert = sample("alert_v2.json")
    f = extract(props, ALERT, compact(alert))
    assert one(f, "app") == "microsoftDefenderForEndpoint"
    assert one(f, "vendor_product") == "Microsoft Defender for Endpoint"
    assert one(f, "id") == "da638912345678901234_-1284567890"
    assert one(f, "type") == "alert"
    assert one(f, "severity") == "high"
    assert one(f, "signature") == "Suspicious PowerShell download cradle"
    assert one(f, "signature_id") == "7c2f1d9e-5b3a-4e8f-a1d6-0e9b2c4f7a58"
    assert one(f, "description") == alert["description"]
    assert f["mitre_technique_id"] == ["T1059.001", "T1105", "T1027"]
    assert f["dest"] == ["fin-ws-0142.corp.contoso.com"]  # the compromised device, by its DNS name
    assert f["user"] == ["jdoe@contoso.com"]  # user and process evidence name the same account
    # The IP is a destination (C2), the device was attacked, the process acted but is no host: no src.
    assert "src" not in f
    assert one(f, "vendor_account") == "4a1f0c2e-9b7d-4c3a-8e55-2f6d1b0a9c31"
    # The blog analyst's names keep working.
    assert one(f, "alertId") == alert["id"]
    assert one(f, "incidentId") == "31337"
    assert one(f, "serviceSource") == "microsoftDefenderForEndpoint"
    assert one(f, "detectionSource") == "microsoftDefenderForEndpoint"
    # What Splunk's published Defender detections read besides the CIM fields.
    assert f["mitreTechniques{}"] == ["T1059.001", "T1105", "T1027"]
    # Each evidence whole, as Graph wrote it.
    assert [json.loads(v) for v in f["dl_evidence"]] == alert["evidence"]
    assert one(f, "severity_id") == "4"
    assert one(f, "subject") == alert["title"]  # no message in the evidence: the title


def test_reference_incident_every_cim_field(props: configparser.RawConfigParser) -> None:
    incident = sample("incident.json")
    f = extract(props, INCIDENT, compact(incident))
    assert one(f, "ticket_id") == "31337"
    assert one(f, "status") == "inProgress"
    assert one(f, "severity") == "high"
    assert one(f, "priority") == "high"  # priorityScore 88 > 85
    assert one(f, "description") == incident["description"]
    assert one(f, "user") == "secops-tier1@contoso.com"
    assert one(f, "time_submitted") == "2026-09-14T07:49:13.1200000Z"
    assert one(f, "vendor_account") == incident["tenantId"]
    assert one(f, "incidentId") == "31337"
    assert f["serviceSource"] == ["microsoftDefenderForOffice365", "microsoftDefenderForEndpoint"]
    # Alert evidence embedded in an expanded incident does not leak into the incident's fields.
    assert "dest" not in f and "src" not in f and "dl_evidence" not in f


def test_pretty_printed_alert_gives_the_same_fields(props: configparser.RawConfigParser) -> None:
    alert = sample("alert_v2.json")
    compact_fields = extract(props, ALERT, compact(alert))
    pretty_fields = extract(props, ALERT, json.dumps(alert, indent=2))
    for name in ("dest", "src", "user", "vendor_product", "severity", "mitre_technique_id"):
        assert pretty_fields.get(name) == compact_fields.get(name), name


# -------------------------------------------------------------------------- simulator: every version
def test_every_simulated_alert_matches_the_oracle(props: configparser.RawConfigParser, tenant: SyntheticTenant) -> None:
    seen_src = seen_dest = seen_user = 0
    for _alert_id, _lud, alert in tenant.alert_versions():
        f = extract(props, ALERT, compact(alert))
        expected = oracle(alert)
        for name in ("dest", "src", "user"):
            assert f.get(name, []) == expected[name], (name, alert["id"], alert["serviceSource"])
        seen_src += bool(expected["src"])
        seen_dest += bool(expected["dest"])
        seen_user += bool(expected["user"])
        assert one(f, "id") == alert["id"]
        assert one(f, "type") == "alert"
        assert one(f, "severity") == alert["severity"].lower()
        assert one(f, "signature") == alert["title"]
        assert one(f, "signature_id") == (alert.get("detectorId") or alert.get("alertPolicyId"))
        assert one(f, "app") == alert["serviceSource"]
        assert one(f, "vendor_product") == (alert.get("productName") or SERVICE_LABELS[alert["serviceSource"]])
        assert f.get("mitre_technique_id", []) == list(alert.get("mitreTechniques") or [])
        # src is never the product or the tenant (the prior art's mistakes).
        for value in f.get("src", []):
            assert value not in (alert["serviceSource"], alert.get("productName"), alert.get("tenantId"))
        assert alert.get("tenantId") not in f.get("dest", [])
    assert seen_src and seen_dest and seen_user  # the tenant exercises all three


def test_identity_alert_splits_attacker_and_attacked(
    props: configparser.RawConfigParser, tenant: SyntheticTenant
) -> None:
    identity = [a for _i, _l, a in tenant.alert_versions() if a["serviceSource"] == "microsoftDefenderForIdentity"]
    assert identity
    alert = identity[0]
    f = extract(props, ALERT, compact(alert))
    devices = [e for e in alert["evidence"] if e["@odata.type"].endswith("deviceEvidence")]
    attacker = next(e for e in devices if "attacker" in e["roles"])
    attacked = next(e for e in devices if "attacked" in e["roles"])
    ip = next(e for e in alert["evidence"] if e["@odata.type"].endswith("ipEvidence"))
    assert f["src"] == [attacker["deviceDnsName"], ip["ipAddress"]]
    assert f["dest"] == [attacked["deviceDnsName"]]


def _evidence(kind: str, **props: Any) -> Dict[str, Any]:
    base = {"@odata.type": f"#microsoft.graph.security.{kind}", "createdDateTime": "2026-09-14T08:00:00Z"}
    return {**base, "roles": [], "verdict": "suspicious", "remediationStatus": "none", **props}


def test_newer_evidence_types_feed_dest_src_user_and_file_hash(props: configparser.RawConfigParser) -> None:
    """Evidence types of the current schema (reference §1.2: networkConnection, hostLogonSession,
    servicePrincipal, fileHash) where they mean a destination, a source, an identity or a hash."""
    alert = sample("alert_v2.json")
    sha = "0a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f9"
    alert["evidence"] = [
        _evidence(
            "networkConnectionEvidence",
            sourceAddress={"ipAddress": "10.0.4.17"},
            destinationAddress={"ipAddress": "203.0.113.45"},
            destinationPort=443,
            protocol="tcp",
        ),
        _evidence("hostLogonSessionEvidence", host={"deviceDnsName": "dc01.contoso.com"}, sessionId="s1"),
        _evidence("servicePrincipalEvidence", servicePrincipalName="backup-automation", appId="a1"),
        _evidence("fileHashEvidence", algorithm="sha256", value=sha),
        _evidence("fileEvidence", fileDetails={"fileName": "x.exe", "sha256": sha.upper()}),
        _evidence("sasTokenEvidence", signatureHash="h", protocol="https"),  # no CIM meaning: nothing
    ]
    f = extract(props, ALERT, compact(alert))
    assert f["dest"] == ["203.0.113.45", "dc01.contoso.com"]
    assert f["src"] == ["10.0.4.17"]
    assert f["user"] == ["backup-automation"]
    assert f["file_hash"] == [sha.upper(), sha]
    expected = oracle(alert)
    assert (f["dest"], f["src"]) == (expected["dest"], expected["src"])


def test_device_without_dns_name_falls_back_to_host_name(props: configparser.RawConfigParser) -> None:
    alert = sample("alert_v2.json")
    alert["evidence"][0]["deviceDnsName"] = None
    f = extract(props, ALERT, compact(alert))
    assert f["dest"] == ["fin-ws-0142"]


def test_account_without_upn_gives_account_name(props: configparser.RawConfigParser) -> None:
    alert = sample("alert_v2.json")
    alert["evidence"] = [alert["evidence"][1]]
    alert["evidence"][0]["userAccount"]["userPrincipalName"] = None
    alert["evidence"][0]["userAccount"]["accountName"] = "svc-backup"
    f = extract(props, ALERT, compact(alert))
    assert f["user"] == ["svc-backup"]


def test_source_ip_and_detailed_role(props: configparser.RawConfigParser) -> None:
    alert = sample("alert_v2.json")
    ip = alert["evidence"][5]
    ip["roles"] = ["contextual"]
    ip["detailedRoles"] = ["Source IP address of the sign-in"]
    assert extract(props, ALERT, compact(alert))["src"] == ["198.51.100.77"]
    ip["detailedRoles"] = []
    assert "src" not in extract(props, ALERT, compact(alert))


def test_device_with_a_nested_object_before_its_name(props: configparser.RawConfigParser) -> None:
    # The evidence is read whole whatever its property order (the old head-only regex could not).
    alert = sample("alert_v2.json")
    device = alert["evidence"][0]
    reordered = {"@odata.type": device["@odata.type"], "vmMetadata": {"vmId": "x"}}
    reordered.update({k: v for k, v in device.items() if k not in reordered})
    alert["evidence"] = [reordered]
    f = extract(props, ALERT, compact(alert))
    assert f["dest"] == ["fin-ws-0142.corp.contoso.com"]


def test_unknown_future_severity_is_unknown(props: configparser.RawConfigParser) -> None:
    alert = sample("alert_v2.json")
    alert["severity"] = "unknownFutureValue"
    assert extract(props, ALERT, compact(alert))["severity"] == ["unknown"]


def test_every_simulated_incident(props: configparser.RawConfigParser, tenant: SyntheticTenant) -> None:
    for _incident_id, _lud, incident in tenant.incident_versions():
        f = extract(props, INCIDENT, compact(incident))
        assert one(f, "ticket_id") == incident["id"]
        assert one(f, "status") == incident["status"]
        assert one(f, "severity") == incident["severity"].lower()
        assert one(f, "time_submitted") == incident["createdDateTime"]
        assert one(f, "user") == incident.get("assignedTo")
        assert one(f, "description") == (incident.get("description") or incident.get("displayName") or None)
        score = incident.get("priorityScore")
        if score is not None:
            expected = "high" if score > 85 else "medium" if score >= 15 else "low"
        else:
            expected = {"high": "high", "medium": "medium", "low": "low", "informational": "low"}.get(
                incident["severity"], "unknown"
            )
        assert one(f, "priority") == expected


@pytest.mark.parametrize(
    ("score", "severity", "priority"),
    [
        (86, "low", "high"),
        (85, "high", "medium"),
        (15, "high", "medium"),
        (14, "high", "low"),
        (0, "high", "low"),
        (None, "high", "high"),
        (None, "medium", "medium"),
        (None, "informational", "low"),
        (None, "unknown", "unknown"),
    ],
)
def test_priority_bands(
    props: configparser.RawConfigParser, score: Optional[int], severity: str, priority: str
) -> None:
    incident = sample("incident.json")
    incident["priorityScore"] = score
    incident["severity"] = severity
    assert extract(props, INCIDENT, compact(incident))["priority"] == [priority]


# ---------------------------------------------------------------------------- eventtypes and tags
def test_eventtypes_and_tags_put_each_sourcetype_in_its_data_model() -> None:
    eventtypes = load_props(DEFAULT / "eventtypes.conf")
    tags = load_props(DEFAULT / "tags.conf")
    assert eventtypes.get("defender_lineage_alert", "search") == f'sourcetype="{ALERT}"'
    assert eventtypes.get("defender_lineage_incident", "search") == f'sourcetype="{INCIDENT}"'
    assert dict(tags.items("eventtype=defender_lineage_alert")) == {"alert": "enabled"}
    assert dict(tags.items("eventtype=defender_lineage_incident")) == {"ticketing": "enabled", "incident": "enabled"}


# ----------------------------------------------------------------- the interpreter refuses the unknown
def _props(text: str) -> configparser.RawConfigParser:
    parser = configparser.RawConfigParser(strict=True, interpolation=None, delimiters=("=",))
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_string(text)
    return parser


@pytest.mark.parametrize(
    "line",
    [
        "EXTRACT-x = (?<a>\\d+)",
        "KV_MODE = multi",
        "EVAL-x = sha256(id)",
        "EVAL-x = lower('evidence{}.verdict')",
        'EVAL-x = json_extract(_raw, "evidence{}.url")',
        "EVAL-x = mvfilter(a == b)",
        "LOOKUP-x = some_lookup id OUTPUT y",
        "FIELDALIAS-x = id",
        "REPORT-x = no_such_transform",
    ],
)
def test_interpreter_refuses_what_it_does_not_implement(line: str) -> None:
    props = _props(f"[st]\n{line}\n" if line.startswith("KV_MODE") else f"[st]\nKV_MODE = json\n{line}\n")
    raw = json.dumps({"id": "1", "a": "x", "b": "y", "evidence": [{"verdict": "a"}, {"verdict": "b"}]})
    with pytest.raises(UnsupportedProps):
        extract(props, "st", raw, transforms=_props("[other]\nREGEX = x\n"))


def test_interpreter_refuses_transforms_it_does_not_implement() -> None:
    props = _props("[st]\nREPORT-x = t\n")
    for body in ('DELIMS = ","', "REGEX = (a)\nFORMAT = f::$1", "REGEX = (?<n>a)\nFORMAT = f::$1\nMV_ADD = true"):
        with pytest.raises(UnsupportedProps):
            extract(props, "st", "a", transforms=_props(f"[t]\n{body}\n"))


@pytest.mark.parametrize(
    ("expression", "env", "expected"),
    [
        ("coalesce(a, b)", {"b": ["x", "y"]}, ["x", "y"]),  # coalesce returns the whole multivalue
        ('mvmap(a, if(a=="x", null(), a))', {"a": ["x", "y", "z"]}, ["y", "z"]),  # nulls are dropped
        ("mvmap(a, null())", {"a": ["x"]}, None),
        ('mvfilter(a!="x")', {"a": ["x", "y"]}, "y"),
        ('case(a=="q", "1")', {"a": "x"}, None),  # case without a match is null
        ("mvdedup(mvappend(a, b, a))", {"a": "x", "b": ["y", "x"]}, ["x", "y"]),
        ('nullif(a, "null")', {"a": "null"}, None),
        ('json_extract(a, "k.j")', {"a": '{"k":{"j":[1,"t"]}}'}, '[1,"t"]'),
        ('json_extract(a, "k")', {"a": '{"k":null}'}, None),
        ("tonumber(a)>85", {"a": "88"}, True),
        ('json_extract(a, "@odata.type")', {"a": '{"@odata.type":"#t"}'}, None),  # a period is a path step
        ('json_extract(a, "@odata.type")', {"a": '{"@odata":{"type":"p"}}'}, "p"),
        ('json_extract_exact(a, "@odata.type")', {"a": '{"@odata.type":"#t"}'}, "#t"),
        ('spath(a, "k{}.j")', {"a": '{"k":[{"j":"x"},{"j":null},{"j":"y"}]}'}, ["x", "y"]),
        ('a."-".b', {"a": "x", "b": "y"}, "x-y"),
        ('a."-".b', {"a": "x"}, None),  # concatenating null gives null
        ("isnull(tonumber(a))", {"a": "n/a"}, True),
        ('match(a, "\\"r\\":\\[[^\\]]*\\"s\\"")', {"a": '{"r":["t","s"]}'}, True),
    ],
)
def test_eval_semantics(expression: str, env: Dict[str, Any], expected: Any) -> None:
    assert evaluate(parse_expression(expression), env) == expected


# ------------------------------------------------------------------ large, realistic events (fixtures)
LARGE = SAMPLES.parent / "cim"


def large(name: str) -> Dict[str, Any]:
    data: Dict[str, Any] = json.loads((LARGE / name).read_text(encoding="utf-8"))
    return data


def test_large_event_fixtures_are_what_their_builder_makes() -> None:
    from tests.fixtures.cim import build_large_events

    assert large("large_alert.json") == build_large_events.large_alert()
    assert large("large_incident.json") == build_large_events.large_incident()


def test_large_alert_is_large_where_it_matters() -> None:
    alert = large("large_alert.json")
    raw = compact(alert).encode("utf-8")
    assert len(raw) > 20_000
    assert raw.index(b'"evidence"') > 5000 and raw.index(b'"mitreTechniques"') > 5000
    assert max(len(e.get("processCommandLine") or "") for e in alert["evidence"]) > 3000


@pytest.mark.parametrize("shape", ["compact", "pretty"])
def test_large_alert_every_cim_field(props: configparser.RawConfigParser, shape: str) -> None:
    alert = large("large_alert.json")
    raw = compact(alert) if shape == "compact" else json.dumps(alert, indent=2)
    problems: List[str] = []
    f = extract(props, ALERT, raw, problems=problems)
    assert problems == []  # no REPORT regex hit a PCRE limit
    assert [json.loads(v) for v in f["dl_evidence"]] == alert["evidence"]
    # The compromised device by DNS name, the one known only by host name; not the attacker device.
    assert f["dest"] == ["fin-ws-0142.corp.contoso.com", "fin-srv-07"]
    assert f["src"] == ["kiosk-13.corp.contoso.com", "203.0.113.50", "198.51.100.23", "192.0.2.44"]
    assert f["user"] == ["jdoe@contoso.com", "awu@contoso.com", "svc-backup", "mlee@contoso.com"]
    assert f["subject"] == ["Invoice 4471 overdue {action required}"]
    assert one(f, "severity_id") == "4" and one(f, "severity") == "high"
    assert f["mitre_technique_id"] == ["T1059.001", "T1105", "T1027"]
    assert {k: f[k] for k in ("dest", "src", "user")} == oracle(alert)
    # The same event under KV_MODE alone: everything past byte 5,000 is cut, the proof that the
    # fields above do not come from it.
    assert "evidence{}.ipAddress" not in f and "mitreTechniques{}" not in f


def test_large_incident_sources_of_every_alert(props: configparser.RawConfigParser) -> None:
    incident = large("large_incident.json")
    assert len(incident["alerts"]) >= 30
    f = extract(props, INCIDENT, compact(incident))
    assert f["serviceSource"] == _dedup([a["serviceSource"] for a in incident["alerts"]])
    assert f["detectionSource"] == _dedup([a["detectionSource"] for a in incident["alerts"]])
    assert {"microsoftDefenderForCloudApps", "azureAdIdentityProtection"} <= set(f["serviceSource"])


# ---------------------------------------------- the stand-in is as strict as Splunk (each rule fails)
# The configuration this add-on shipped before issue 13, kept here as the deliberately wrong one.
OLD_HEAD_REGEX = (
    r'\{\s*"@odata\.type"\s*:\s*"#microsoft\.graph\.security\.(\w+Evidence)"((?:\s*,\s*"[^"\\]+"\s*:\s*'
    r'(?:"(?:[^"\\]|\\.)*"|[-+.\w]+|\[\s*(?:(?:"(?:[^"\\]|\\.)*"|[-+.\w]+)(?:\s*,\s*(?:"(?:[^"\\]|\\.)*"|'
    r"[-+.\w]+))*)?\s*\]))*)"
)


def test_search_time_format_cannot_concatenate() -> None:
    # transforms.conf.spec: "You cannot create concatenated fields with FORMAT at search time."
    props = _props("[st]\nREPORT-x = t\n")
    old = f'[t]\nREGEX = {OLD_HEAD_REGEX}\nFORMAT = dl_evidence_head::{{"type":"$1"$2}}\nMV_ADD = true\n'
    with pytest.raises(SplunkRuleViolation):
        extract(props, "st", "{}", transforms=_props(old))
    for value in ("x$1", "$1$2", "$1.$2"):
        with pytest.raises(SplunkRuleViolation):
            extract(props, "st", "a", transforms=_props(f"[t]\nREGEX = (a)\nFORMAT = f::{value}\nMV_ADD = true\n"))
    ok = extract(props, "st", "ab", transforms=_props("[t]\nREGEX = (a)(b)\nFORMAT = f::$2\nMV_ADD = true\n"))
    assert ok == {"f": ["b"]}


def test_kv_mode_json_reads_only_the_first_5000_bytes(props: configparser.RawConfigParser) -> None:
    # limits.conf [spath] extraction_cutoff = 5000 applies to the auto kv extraction.
    raw = json.dumps({"a": "x" * 4950, "early": "yes", "pad": "y" * 60, "late": "no"})
    assert raw.index('"late"') > 5000 > raw.index('"early"')
    fields = json_fields(raw)
    assert fields["early"] == ["yes"] and "late" not in fields
    assert json_fields(raw, cutoff=None)["late"] == ["no"]
    # The incident EVALs as shipped before: alerts{}.serviceSource from KV_MODE loses the late products.
    old = _props("[st]\nKV_MODE = json\nEVAL-serviceSource = mvdedup('alerts{}.serviceSource')\n")
    incident = large("large_incident.json")
    cut = extract(old, "st", compact(incident))["serviceSource"]
    assert "microsoftDefenderForCloudApps" not in cut and "azureAdIdentityProtection" not in cut
    # ... and a multibyte character cut in half is not a value.
    assert "k" not in json_fields(json.dumps({"a": "x" * 4988, "k": "é" * 20}, ensure_ascii=False))


def test_report_regex_runs_at_pcre_default_limits(props: configparser.RawConfigParser) -> None:
    # transforms.conf.spec DEPTH_LIMIT (default 1000), MATCH_LIMIT (default 100000): the old
    # evidence regex backtracks once per character of a string and fails on the long command line;
    # the values of every evidence after it are lost, as splunkd loses them.
    alert = large("large_alert.json")
    props_old = _props("[st]\nREPORT-x = t\n")
    transforms_old = _props(f"[t]\nREGEX = {OLD_HEAD_REGEX}\nFORMAT = head::$1\nMV_ADD = true\n")
    problems: List[str] = []
    f = extract(props_old, "st", compact(alert), transforms=transforms_old, problems=problems)
    assert problems and "depth limit" in problems[0]
    assert len(f.get("head", [])) < len(alert["evidence"])
    # With the limit raised (DEPTH_LIMIT in the stanza, as Splunk's Check Point add-on advises),
    # the same regex gets through: the stand-in honours the key.
    raised = _props(f"[t]\nREGEX = {OLD_HEAD_REGEX}\nFORMAT = head::$1\nMV_ADD = true\nDEPTH_LIMIT = 200000\n")
    problems = []
    f = extract(props_old, "st", compact(alert), transforms=raised, problems=problems)
    # (it also matches the user evidence nested in the logon session: it never read objects whole)
    assert problems == [] and len(f["head"]) >= len(alert["evidence"])


def _fits(regex: str, raw: str, count: int, match_limit: int, depth_limit: int) -> bool:
    try:
        return len(compile_report_regex(regex, match_limit, depth_limit).findall(raw)) == count
    except pcre2.LibraryError:
        return False


def _fits_depth(regex: str, raw: str, count: int, depth_limit: int) -> bool:
    return _fits(regex, raw, count, DEFAULT_MATCH_LIMIT, depth_limit)


def _fits_matches(regex: str, raw: str, count: int, match_limit: int) -> bool:
    return _fits(regex, raw, count, match_limit, DEFAULT_DEPTH_LIMIT)


def _smallest(fits: Any, high: int) -> int:
    low = 1
    while low < high:
        mid = (low + high) // 2
        if fits(mid):
            high = mid
        else:
            low = mid + 1
    return low


@pytest.mark.parametrize("command_line_length", [3_000, 30_000])
def test_shipped_evidence_regex_needs_a_small_bounded_depth(command_line_length: int) -> None:
    """The measured bound. The depth the shipped REGEX needs does not grow with a string's length
    (possessive loops leave no backtracking frames); its match() calls grow with the number of
    escapes in one evidence (one loop turn each), measured: ~1,100 for the 3,944-character command
    line, ~6,200 for 30,000 characters (about 3,000 escapes): the default 100,000 holds an evidence
    with tens of thousands of escapes."""
    regex = load_transforms(DEFAULT / "transforms.conf").get("ta_defender_lineage_evidence", "REGEX")
    alert = large("large_alert.json")
    process = next(e for e in alert["evidence"] if e.get("processCommandLine"))
    line = process["processCommandLine"]
    process["processCommandLine"] = (line * (command_line_length // len(line) + 1))[:command_line_length]
    for raw in (compact(alert), json.dumps(alert, indent=2)):
        count = len(alert["evidence"])
        depth = _smallest(partial(_fits_depth, regex, raw, count), DEFAULT_DEPTH_LIMIT)
        matches = _smallest(partial(_fits_matches, regex, raw, count), DEFAULT_MATCH_LIMIT)
        assert depth <= 20, depth  # measured: 10, at both sizes
        assert matches <= DEFAULT_MATCH_LIMIT // 10, matches


def test_dotted_json_extract_path_is_not_a_key(props: configparser.RawConfigParser) -> None:
    # json_extract(x, "@odata.type") is a two-step path: null on Graph evidence. The old props used it
    # on the concatenated head; the shipped ones use json_extract_exact (and no rebuilt text).
    ev = json.dumps({"@odata.type": "#microsoft.graph.security.deviceEvidence", "deviceDnsName": "d"})
    old_type_test = parse_expression('json_extract(e, "@odata.type")=="#microsoft.graph.security.deviceEvidence"')
    assert evaluate(old_type_test, {"e": ev}) is None
    text = (DEFAULT / "props.conf").read_text(encoding="utf-8") + (DEFAULT / "macros.conf").read_text(encoding="utf-8")
    assert not re.search(r'json_extract\([^()]*"@odata\.type"\)', text)
