"""Advanced hunting for the simulator: ``POST /v1.0/security/runHuntingQuery`` over canned tables.

The table is the one the query's last statement starts with (``let`` statements before it are
skipped): AlertInfo, AlertEvidence, DeviceProcessEvents, DeviceNetworkEvents, EmailEvents,
IdentityLogonEvents. Anything else is answered like Graph answers KQL it cannot resolve (400).

AlertInfo and AlertEvidence come from the SAME synthetic tenant as the alerts and incidents (one
AlertInfo row per alert, one AlertEvidence row per evidence, the tenant's real AlertIds), stamped
with the alert's createdDateTime. The activity tables are endless deterministic streams: row ``i``
of a table sits at ``origin + i * step`` (``density`` rows an hour, up to the simulator's clock),
and every column is a function of ``i``, so asking twice gives the same rows.

Only ``Timespan`` is honoured (start inclusive, end exclusive; default 30 days back); the rest of
the query is not evaluated. Switchable per test on ``sim.hunting`` (a ``HuntingSettings``):

  booleans      "words" (JSON true/false, Graph since 25 Feb 2026), "numbers" (1/0, before) or
                "strings" ("True"/"False")
  row_cap       at most this many rows are returned (Graph: 100,000), silently, with HTTP 200
  size_cap      a body may not exceed this many bytes (Graph: 50 MB): size_mode "truncate" returns
                the rows that fit (HTTP 200), "error" answers 400 "result size exceeded"
  cpu_quota     (queries per cycle, cycle seconds): past it, 429 until the cycle (aligned on the
                wall clock) resets, the reset time in the body and Retry-After
  timeout_rows  a query whose window holds more rows than this "runs" past 3 minutes: 504 with
                Graph's empty UnknownError body (after timeout_delay seconds)
  density       rows an hour per activity table
"""

from __future__ import annotations

import json
import math
import re
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Dict, List, Optional, Tuple

from .timeutil import TICKS_PER_SECOND, format_ticks, parse_any

HOUR = 3600 * TICKS_PER_SECOND
DAY = 24 * HOUR
DEFAULT_SPAN = 30 * DAY
TABLES = (
    "AlertInfo",
    "AlertEvidence",
    "DeviceProcessEvents",
    "DeviceNetworkEvents",
    "EmailEvents",
    "IdentityLogonEvents",
)
ACTIVITY_DENSITY = {
    "DeviceProcessEvents": 600,
    "DeviceNetworkEvents": 300,
    "EmailEvents": 60,
    "IdentityLogonEvents": 120,
}

SCHEMAS: Dict[str, List[Tuple[str, str]]] = {
    "AlertInfo": [
        ("Timestamp", "DateTime"),
        ("AlertId", "String"),
        ("Title", "String"),
        ("Category", "String"),
        ("Severity", "String"),
        ("ServiceSource", "String"),
        ("DetectionSource", "String"),
        ("AttackTechniques", "String"),
    ],
    "AlertEvidence": [
        ("Timestamp", "DateTime"),
        ("AlertId", "String"),
        ("Title", "String"),
        ("Categories", "String"),
        ("AttackTechniques", "String"),
        ("ServiceSource", "String"),
        ("DetectionSource", "String"),
        ("EntityType", "String"),
        ("EvidenceRole", "String"),
        ("EvidenceDirection", "String"),
        ("DeviceId", "String"),
        ("DeviceName", "String"),
        ("AccountName", "String"),
        ("AccountUpn", "String"),
        ("AccountObjectId", "String"),
        ("RemoteIP", "String"),
        ("RemoteUrl", "String"),
        ("FileName", "String"),
        ("SHA256", "String"),
        ("EmailSubject", "String"),
        ("AdditionalFields", "Object"),
    ],
    "DeviceProcessEvents": [
        ("Timestamp", "DateTime"),
        ("DeviceId", "String"),
        ("DeviceName", "String"),
        ("ActionType", "String"),
        ("AccountName", "String"),
        ("FileName", "String"),
        ("FolderPath", "String"),
        ("ProcessCommandLine", "String"),
        ("ProcessId", "Int64"),
        ("InitiatingProcessFileName", "String"),
        ("IsProcessRemoteSession", "Boolean"),
        ("ReportId", "Int64"),
    ],
    "DeviceNetworkEvents": [
        ("Timestamp", "DateTime"),
        ("DeviceId", "String"),
        ("DeviceName", "String"),
        ("ActionType", "String"),
        ("RemoteIP", "String"),
        ("RemotePort", "Int32"),
        ("RemoteUrl", "String"),
        ("Protocol", "String"),
        ("InitiatingProcessFileName", "String"),
        ("ReportId", "Int64"),
    ],
    "EmailEvents": [
        ("Timestamp", "DateTime"),
        ("NetworkMessageId", "String"),
        ("SenderFromAddress", "String"),
        ("RecipientEmailAddress", "String"),
        ("Subject", "String"),
        ("DeliveryAction", "String"),
        ("ConfidenceLevel", "Object"),
        ("AttachmentCount", "Int32"),
        ("UrlCount", "Int32"),
        ("ReportId", "String"),
    ],
    "IdentityLogonEvents": [
        ("Timestamp", "DateTime"),
        ("ActionType", "String"),
        ("Application", "String"),
        ("LogonType", "String"),
        ("AccountUpn", "String"),
        ("AccountObjectId", "String"),
        ("DeviceName", "String"),
        ("IPAddress", "String"),
        ("Location", "String"),
        ("IsNtlmV1", "Boolean"),
        ("RiskScore", "Double"),
        ("ReportId", "String"),
    ],
}

# Advanced hunting's display names for Graph's enum members (unknown ones pass through).
SERVICE_NAMES = {
    "microsoftDefenderForEndpoint": "Microsoft Defender for Endpoint",
    "microsoftDefenderForIdentity": "Microsoft Defender for Identity",
    "microsoftDefenderForCloudApps": "Microsoft Defender for Cloud Apps",
    "microsoftDefenderForOffice365": "Microsoft Defender for Office 365",
    "microsoft365Defender": "Microsoft Defender XDR",
    "azureAdIdentityProtection": "Microsoft Entra ID Protection",
    "microsoftAppGovernance": "App Governance",
    "dataLossPrevention": "Microsoft Data Loss Prevention",
    "microsoftDefenderForCloud": "Microsoft Defender for Cloud",
    "microsoftSentinel": "Microsoft Sentinel",
}
DETECTION_NAMES = {
    "microsoftDefenderForEndpoint": "EDR",
    "antivirus": "Antivirus",
    "smartScreen": "SmartScreen",
    "customTi": "Custom TI",
    "microsoftDefenderForOffice365": "Microsoft Defender for Office 365",
    "automatedInvestigation": "Automated investigation",
    "microsoftThreatExperts": "Microsoft Defender Experts",
    "customDetection": "Custom detection",
    "microsoftDefenderForIdentity": "Microsoft Defender for Identity",
    "cloudAppSecurity": "Microsoft Defender for Cloud Apps",
}
ENTITY_TYPES = {
    "deviceEvidence": "Machine",
    "userEvidence": "User",
    "ipEvidence": "Ip",
    "urlEvidence": "Url",
    "fileEvidence": "File",
    "processEvidence": "Process",
    "analyzedMessageEvidence": "MailMessage",
    "mailboxEvidence": "Mailbox",
    "cloudApplicationEvidence": "CloudApplication",
    "registryKeyEvidence": "RegistryKey",
    "registryValueEvidence": "RegistryValue",
}
_LET = re.compile(r"^\s*let\s", re.IGNORECASE)


class HuntingFault(Exception):
    def __init__(self, status: int, code: str, message: str, headers: Optional[Dict[str, str]] = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}


@dataclass
class HuntingSettings:
    booleans: str = "words"
    row_cap: int = 100_000
    size_cap: int = 50 * 1024 * 1024
    size_mode: str = "truncate"
    cpu_quota: Optional[Tuple[int, float]] = None
    timeout_rows: Optional[int] = None
    timeout_delay: float = 0.0
    density: Dict[str, int] = field(default_factory=lambda: dict(ACTIVITY_DENSITY))


def table_of(query: str) -> Optional[str]:
    """The table the query's last statement starts with, or None."""
    statements = [s for s in query.split(";") if s.strip()]
    if not statements:
        return None
    body = next((s for s in reversed(statements) if not _LET.match(s)), "")
    match = re.match(r"\s*([A-Za-z_][A-Za-z0-9_]*)", body)
    if match is None:
        return None
    return match.group(1)


def parse_duration(text: str) -> Optional[int]:
    m = re.fullmatch(r"P(?:(\d+)W)?(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+(?:\.\d+)?)S)?)?", text.strip().upper())
    if not m or text.strip().upper() in ("P", "PT"):
        return None
    w, d, h, mi = (int(g or 0) for g in m.groups()[:4])
    s = float(m.group(5) or 0)
    return int((((w * 7 + d) * 24 + h) * 60 + mi) * 60 * TICKS_PER_SECOND + s * TICKS_PER_SECOND)


def parse_timespan(text: Optional[str], now: int) -> Tuple[int, int]:
    """(start, end) ticks for every Timespan form Graph accepts; default the last 30 days."""
    if text is None or not str(text).strip():
        return now - DEFAULT_SPAN, now
    value = str(text).strip()
    parts = value.split("/")
    if len(parts) == 1:
        duration = parse_duration(value)
        if duration is not None:
            return now - duration, now
        start = _instant(value)
        return start, now
    if len(parts) != 2:
        raise HuntingFault(400, "BadRequest", f"Invalid timespan '{value}'.")
    left, right = parts
    left_d, right_d = parse_duration(left), parse_duration(right)
    if left_d is not None and right_d is None:
        end = _instant(right)
        return end - left_d, end
    if right_d is not None and left_d is None:
        start = _instant(left)
        return start, start + right_d
    return _instant(left), _instant(right)


def _instant(text: str) -> int:
    try:
        return parse_any(text)
    except (ValueError, TypeError):
        raise HuntingFault(400, "BadRequest", f"Invalid timespan value '{text}'.") from None


def _h(i: int, salt: int) -> int:
    """A cheap deterministic scramble of a row number (no RNG state: any row, any order)."""
    return ((i + 1) * 2654435761 + salt * 40503) % 4294967291


class HuntingTables:
    """The canned tables of one synthetic tenant."""

    def __init__(self, tenant: Any, settings: HuntingSettings) -> None:
        self.tenant = tenant
        self.settings = settings
        self._lock = threading.Lock()
        self._alert_rows: Optional[Tuple[int, List[Dict[str, Any]], List[Dict[str, Any]]]] = None
        self._entities: Optional[Dict[str, List[Any]]] = None
        self.origin = tenant.anchor_ticks - DEFAULT_SPAN
        self._cycle_start = 0.0
        self._cycle_used = 0
        self.rows_served = 0  # rows in successful answers, for benchmarks

    # ------------------------------------------------------------------ alert tables
    def _alert_tables(self) -> Tuple[List[Dict[str, Any]], List[Dict[str, Any]]]:
        versions = self.tenant.alerts.versions
        with self._lock:
            cached = self._alert_rows
            if cached is not None and cached[0] == len(versions):
                return cached[1], cached[2]
        first: Dict[str, Any] = {}
        latest: Dict[str, Any] = {}
        for v in versions:
            first.setdefault(v.item_id, v)
            latest[v.item_id] = v
        info: List[Dict[str, Any]] = []
        evidence_rows: List[Dict[str, Any]] = []
        for alert_id, version in latest.items():
            alert = version.as_dict()
            ts = alert.get("createdDateTime") or first[alert_id].lud
            common = {
                "Timestamp": ts,
                "AlertId": alert_id,
                "Title": alert.get("title"),
            }
            service = SERVICE_NAMES.get(alert.get("serviceSource") or "", alert.get("serviceSource"))
            detection = DETECTION_NAMES.get(alert.get("detectionSource") or "", alert.get("detectionSource"))
            techniques = json.dumps(alert.get("mitreTechniques") or [])
            info.append(
                {
                    **common,
                    "Category": alert.get("category"),
                    "Severity": str(alert.get("severity") or "").capitalize(),
                    "ServiceSource": service,
                    "DetectionSource": detection,
                    "AttackTechniques": techniques,
                }
            )
            for ev in alert.get("evidence") or []:
                evidence_rows.append(self._evidence_row(common, alert, ev, service, detection, techniques))
        info.sort(key=lambda r: (parse_any(r["Timestamp"]), r["AlertId"]))
        evidence_rows.sort(key=lambda r: (parse_any(r["Timestamp"]), r["AlertId"]))
        with self._lock:
            self._alert_rows = (len(versions), info, evidence_rows)
        return info, evidence_rows

    @staticmethod
    def _evidence_row(
        common: Dict[str, Any], alert: Dict[str, Any], ev: Dict[str, Any], service: Any, detection: Any, tech: str
    ) -> Dict[str, Any]:
        kind = str(ev.get("@odata.type", "")).rsplit(".", 1)[-1]
        account = ev.get("userAccount") or {}
        details = ev.get("fileDetails") or ev.get("imageFile") or {}
        roles = ev.get("roles") or []
        return {
            **common,
            "Categories": json.dumps([alert.get("category")]),
            "AttackTechniques": tech,
            "ServiceSource": service,
            "DetectionSource": detection,
            "EntityType": ENTITY_TYPES.get(kind, kind[: -len("Evidence")].capitalize() if kind else "Unknown"),
            "EvidenceRole": "Impacted" if any(r in ("compromised", "destination") for r in roles) else "Related",
            "EvidenceDirection": "Source" if any(r in ("attacker", "source") for r in roles) else None,
            "DeviceId": ev.get("mdeDeviceId"),
            "DeviceName": ev.get("deviceDnsName"),
            "AccountName": account.get("accountName"),
            "AccountUpn": account.get("userPrincipalName") or ev.get("primaryAddress"),
            "AccountObjectId": account.get("azureAdUserId"),
            "RemoteIP": ev.get("ipAddress"),
            "RemoteUrl": ev.get("url"),
            "FileName": details.get("fileName"),
            "SHA256": details.get("sha256"),
            "EmailSubject": ev.get("subject"),
            "AdditionalFields": json.dumps({"Verdict": ev.get("verdict"), "Remediation": ev.get("remediationStatus")}),
        }

    # ------------------------------------------------------------------ activity tables
    def entities(self) -> Dict[str, List[Any]]:
        if self._entities is not None:
            return self._entities
        _info, evidence = self._alert_tables()
        devices = sorted({(r["DeviceId"], r["DeviceName"]) for r in evidence if r["DeviceId"] and r["DeviceName"]})
        users = sorted({(r["AccountName"], r["AccountUpn"], r["AccountObjectId"]) for r in evidence if r["AccountUpn"]})
        ips = sorted({r["RemoteIP"] for r in evidence if r["RemoteIP"]})
        urls = sorted({r["RemoteUrl"] for r in evidence if r["RemoteUrl"]})
        self._entities = {
            "devices": devices or [("0" * 40, "pc0.corp.contoso.com")],
            "users": users or [("jdoe", "jdoe@contoso.com", "00000000-0000-0000-0000-000000000000")],
            "ips": ips or ["203.0.113.7"],
            "urls": urls or ["https://example.org/"],
        }
        return self._entities

    def _activity_row(self, table: str, i: int, ticks: int) -> Dict[str, Any]:
        e = self.entities()
        device_id, device = e["devices"][_h(i, 1) % len(e["devices"])]
        account, upn, oid = e["users"][_h(i, 2) % len(e["users"])]
        ts = format_ticks(ticks)
        flag = _h(i, 3) % 5 == 0
        if table == "DeviceProcessEvents":
            exe = ("powershell.exe", "cmd.exe", "rundll32.exe", "svchost.exe", "winword.exe")[_h(i, 4) % 5]
            return {
                "Timestamp": ts,
                "DeviceId": device_id,
                "DeviceName": device,
                "ActionType": "ProcessCreated",
                "AccountName": account,
                "FileName": exe,
                "FolderPath": f"C:\\Windows\\System32\\{exe}",
                "ProcessCommandLine": f"{exe} -NoProfile -Command Get-Item {_h(i, 5):x}",
                "ProcessId": 1000 + _h(i, 6) % 60000,
                "InitiatingProcessFileName": "explorer.exe",
                "IsProcessRemoteSession": self._bool(flag),
                "ReportId": i,
            }
        if table == "DeviceNetworkEvents":
            return {
                "Timestamp": ts,
                "DeviceId": device_id,
                "DeviceName": device,
                "ActionType": "ConnectionSuccess",
                "RemoteIP": e["ips"][_h(i, 7) % len(e["ips"])],
                "RemotePort": (443, 80, 445, 3389)[_h(i, 8) % 4],
                "RemoteUrl": e["urls"][_h(i, 9) % len(e["urls"])],
                "Protocol": "Tcp",
                "InitiatingProcessFileName": "msedge.exe",
                "ReportId": i,
            }
        if table == "EmailEvents":
            return {
                "Timestamp": ts,
                "NetworkMessageId": f"{_h(i, 10):08x}-{_h(i, 11) % 65536:04x}-4c3a-8e55-{i:012x}",
                "SenderFromAddress": f"news{_h(i, 12) % 50}@example.net",
                "RecipientEmailAddress": upn,
                "Subject": f"Invoice {_h(i, 13) % 100000}",
                "DeliveryAction": "Delivered" if not flag else "Junked",
                "ConfidenceLevel": json.dumps({"Phish": "Low" if not flag else "High", "Spam": "Normal"}),
                "AttachmentCount": _h(i, 14) % 3,
                "UrlCount": _h(i, 15) % 4,
                "ReportId": f"r{i}",
            }
        return {
            "Timestamp": ts,
            "ActionType": "LogonSuccess" if not flag else "LogonFailed",
            "Application": "Active Directory",
            "LogonType": "Resource access",
            "AccountUpn": upn,
            "AccountObjectId": oid,
            "DeviceName": device,
            "IPAddress": e["ips"][_h(i, 16) % len(e["ips"])],
            "Location": "NL",
            "IsNtlmV1": self._bool(_h(i, 17) % 11 == 0),
            "RiskScore": round((_h(i, 18) % 1000) / 10.0, 1),
            "ReportId": f"l{i}",
        }

    def _bool(self, value: bool) -> Any:
        mode = self.settings.booleans
        if mode == "numbers":
            return 1 if value else 0
        if mode == "strings":
            return "True" if value else "False"
        return value

    def count(self, table: str, start: int, end: int, clock: int) -> int:
        return (
            len(self._indices(table, start, end, clock))
            if table in ACTIVITY_DENSITY
            else len(self._alert_slice(table, start, end, clock))
        )

    def _indices(self, table: str, start: int, end: int, clock: int) -> range:
        density = max(1, int(self.settings.density.get(table, ACTIVITY_DENSITY[table])))
        step = HOUR // density
        hi = min(end, clock + 1)
        lo_i = max(0, math.ceil((start - self.origin) / step))
        hi_i = max(lo_i, math.ceil((hi - self.origin) / step))
        return range(lo_i, hi_i)

    def _alert_slice(self, table: str, start: int, end: int, clock: int) -> List[Dict[str, Any]]:
        info, evidence = self._alert_tables()
        rows = info if table == "AlertInfo" else evidence
        hi = min(end, clock + 1)
        return [r for r in rows if start <= parse_any(r["Timestamp"]) < hi]

    # ------------------------------------------------------------------ the action
    def run(self, body: Dict[str, Any], clock: int, base_url: str) -> bytes:
        query = body.get("Query", body.get("query"))
        if not isinstance(query, str) or not query.strip():
            raise HuntingFault(400, "BadRequest", "The 'Query' parameter is required and must not be empty.")
        table = table_of(query)
        if table not in TABLES:
            raise HuntingFault(
                400,
                "BadRequest",
                f"Failed to resolve table or column expression named '{table or query.strip()[:40]}'",
            )
        self._charge_quota()
        start, end = parse_timespan(body.get("Timespan", body.get("timespan")), max(clock, _wall_ticks()))
        s = self.settings
        if table in ACTIVITY_DENSITY:
            indices = self._indices(table, start, end, clock)
            if s.timeout_rows is not None and len(indices) > s.timeout_rows:
                self._time_out()
            density = max(1, int(s.density.get(table, ACTIVITY_DENSITY[table])))
            step = HOUR // density
            rows_iter = (self._activity_row(table, i, self.origin + i * step) for i in indices[: s.row_cap])
            rows = list(rows_iter)
        else:
            selected = self._alert_slice(table, start, end, clock)
            if s.timeout_rows is not None and len(selected) > s.timeout_rows:
                self._time_out()
            rows = selected[: s.row_cap]
        head = (
            '{"@odata.context":"'
            + base_url
            + '/v1.0/$metadata#microsoft.graph.security.huntingQueryResults","schema":'
            + json.dumps([{"name": n, "type": t} for n, t in SCHEMAS[table]], separators=(",", ":"))
            + ',"results":['
        ).encode()
        parts: List[bytes] = []
        size = len(head) + 2
        for row in rows:
            text = json.dumps(row, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
            if size + len(text) + 1 > s.size_cap:
                if s.size_mode == "error":
                    raise HuntingFault(
                        400,
                        "BadRequest",
                        f"Query result size exceeded the allowed limit of {s.size_cap} bytes. Narrow the query.",
                    )
                break
            parts.append(text)
            size += len(text) + 1
        self.rows_served += len(parts)
        return head + b",".join(parts) + b"]}"

    def _time_out(self) -> None:
        if self.settings.timeout_delay:
            time.sleep(self.settings.timeout_delay)
        raise HuntingFault(504, "UnknownError", "")

    def _charge_quota(self) -> None:
        quota = self.settings.cpu_quota
        if quota is None:
            return
        allowed, cycle = quota
        now = time.time()
        with self._lock:
            start = math.floor(now / cycle) * cycle
            if start != self._cycle_start:
                self._cycle_start, self._cycle_used = start, 0
            self._cycle_used += 1
            used = self._cycle_used
        if used <= allowed:
            return
        reset = start + cycle
        wait = max(0.0, reset - now)
        when = datetime.fromtimestamp(reset, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
        raise HuntingFault(
            429,
            "TooManyRequests",
            f"The tenant exceeded its advanced hunting CPU quota for the current cycle. The quota resets at {when}.",
            {"Retry-After": str(max(1, math.ceil(wait)))},
        )


def _wall_ticks() -> int:
    return int(time.time() * TICKS_PER_SECOND)
