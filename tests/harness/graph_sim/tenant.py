"""A synthetic Defender XDR tenant: a timeline of alert and incident versions.

Every item (alert or incident) has 1..n versions with strictly increasing `lastUpdateDateTime`.
At clock t the API shows, for each item, its latest version with lastUpdateDateTime <= t.
Everything is deterministic from the seed; only absolute times depend on `anchor`.

Instants are integer ticks (100 ns since the Unix epoch), Graph's precision. Each version is
serialised once to compact JSON (and once more with Prefer-gated enum members replaced by
`unknownFutureValue` when it has any), so serving a page is a join of cached bytes.
"""

from __future__ import annotations

import bisect
import itertools
import json
import random
import threading
from collections import OrderedDict
from datetime import datetime, timezone
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple

from . import catalog as C
from .timeutil import TICKS_PER_MS, TICKS_PER_SECOND, dt_to_ticks, format_ticks, parse_any

DEFAULT_TENANT_ID = "4a1f0c2e-9b7d-4c3a-8e55-2f6d1b0a9c31"
TPS = TICKS_PER_SECOND
MINUTE = 60 * TPS
HOUR = 60 * MINUTE
DAY = 24 * HOUR
WINDOW = 7 * DAY
NEVER = 1 << 62

SEVERITY_RANK = {"unknown": 0, "informational": 1, "low": 2, "medium": 3, "high": 4}
ANALYSTS = ("secops-tier1@contoso.com", "secops-tier2@contoso.com", "ir-lead@contoso.com")


def dumps(obj: Any) -> bytes:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


class ItemVersion:
    """One version of one alert or incident, pre-serialised."""

    __slots__ = ("_masked", "_raw", "incident_id", "item_id", "kind", "lud", "next_ticks", "ticks")

    def __init__(
        self,
        kind: str,
        item_id: str,
        ticks: int,
        lud: str,
        raw: bytes,
        masked: Optional[bytes],
        incident_id: Optional[str],
    ) -> None:
        self.kind = kind
        self.item_id = item_id
        self.ticks = ticks
        self.lud = lud
        self._raw = raw
        self._masked = masked  # None: identical to raw (nothing gated in it)
        self.incident_id = incident_id
        self.next_ticks = NEVER  # ticks of this item's next version (NEVER when latest)

    def body(self, include_unknown: bool) -> bytes:
        """The item's JSON; with gated enum members masked unless `include_unknown`."""
        if include_unknown or self._masked is None:
            return self._raw
        return self._masked

    @property
    def raw(self) -> bytes:
        return self.body(True)

    def as_dict(self, include_unknown: bool = True) -> Dict[str, Any]:
        result: Dict[str, Any] = json.loads(self.body(include_unknown))
        return result

    def __repr__(self) -> str:
        return f"ItemVersion({self.kind} {self.item_id} @ {self.lud})"


class EvidenceTemplate:
    """Serialised evidence shared by many bulk alerts; createdDateTime is spliced in per alert."""

    PLACEHOLDER = "@@EVIDENCE-CREATED@@"

    __slots__ = ("masked", "raw")

    def __init__(self, evidence: List[Dict[str, Any]]) -> None:
        self.raw = dumps(evidence).split(self.PLACEHOLDER.encode())
        if any(e.get("remediationStatus") in C.REMEDIATION_STATUS_GATED for e in evidence):
            for e in evidence:
                C.mask_evidence(e)
            self.masked: Optional[List[bytes]] = dumps(evidence).split(self.PLACEHOLDER.encode())
        else:
            self.masked = None


class SplicedVersion(ItemVersion):
    """A bulk alert version: own top-level JSON + a shared evidence template (compact in memory)."""

    __slots__ = ("_created", "_ev", "_repl")

    def __init__(
        self,
        item_id: str,
        ticks: int,
        lud: str,
        prefix: bytes,
        ev: EvidenceTemplate,
        created: bytes,
        repl: Tuple[Tuple[bytes, bytes], ...],
        incident_id: Optional[str],
    ) -> None:
        super().__init__("alert", item_id, ticks, lud, prefix, None, incident_id)
        self._ev = ev
        self._created = created
        self._repl = repl  # byte replacements that mask gated top-level members

    def body(self, include_unknown: bool) -> bytes:
        prefix, parts = self._raw, self._ev.raw
        if not include_unknown:
            for old, new in self._repl:
                prefix = prefix.replace(old, new)
            parts = self._ev.masked or parts
        return prefix + self._created.join(parts) + b"}"


def make_version(kind: str, item: Dict[str, Any], ticks: int) -> ItemVersion:
    """Serialise a full item dict (alert with evidence, or incident)."""
    raw = dumps(item)
    masked: Optional[bytes] = None
    if kind == "alert":
        if C.alert_is_gated(item):
            copy = json.loads(raw)
            C.mask_alert(copy)
            masked = dumps(copy)
    elif item.get("status") in C.INCIDENT_STATUS_GATED:
        copy = json.loads(raw)
        copy["status"] = C.UFV
        masked = dumps(copy)
    inc = item.get("incidentId") if kind == "alert" else item["id"]
    return ItemVersion(kind, item["id"], ticks, item["lastUpdateDateTime"], raw, masked, inc)


def _mask_replacements(service: str, detection: str) -> Tuple[Tuple[bytes, bytes], ...]:
    out = []
    if service in C.SERVICE_SOURCES_GATED:
        out.append((dumps({"serviceSource": service})[1:-1], b'"serviceSource":"unknownFutureValue"'))
    if detection in C.DETECTION_SOURCES_GATED:
        out.append((dumps({"detectionSource": detection})[1:-1], b'"detectionSource":"unknownFutureValue"'))
    return tuple(out)


# ---- raw items: exact bytes a test serves (hostile data, issue 12) ---------------------------------


class RawVersion(ItemVersion):
    """An item served as the exact bytes a test gives: invalid UTF-8, nesting 100,000 deep, a JSON
    number as `id`, a stamp in year 9999 or past it, or not an object at all.

    `ticks` is where Graph files it (`$filter`, `$orderby`: its lastUpdateDateTime, as Graph reads
    it); unlike a generated version it is listed from `shown_from` on (default: always), whatever
    its stamp says, as Graph serves an item stamped in the future today."""

    __slots__ = ("shown_from",)

    def __init__(self, kind: str, sort_id: str, ticks: int, lud: str, raw: bytes, shown_from: Optional[int]) -> None:
        super().__init__(kind, sort_id, ticks, lud, raw, None, None)
        self.shown_from = -NEVER if shown_from is None else shown_from


# ---------------------------------------------------------------------------------------------


class Collection:
    """All versions of one resource, sorted by (ticks, id), with cached visibility queries."""

    def __init__(self, versions: Iterable[ItemVersion]) -> None:
        self.raw_versions: List[RawVersion] = []  # exact-bytes items (RawVersion), listed beside the rest
        self._lock = threading.Lock()
        self._cache: OrderedDict[Tuple[Any, ...], List[ItemVersion]] = OrderedDict()
        self._groups: Dict[Tuple[int, int], Dict[str, List[ItemVersion]]] = {}
        self._generation = 0
        self._set(list(versions))

    def _set(self, versions: List[ItemVersion]) -> None:
        versions.sort(key=lambda v: (v.ticks, v.item_id))
        nxt: Dict[str, int] = {}
        for v in reversed(versions):
            v.next_ticks = nxt.get(v.item_id, NEVER)
            nxt[v.item_id] = v.ticks
        self.versions = versions
        self._ticks = [v.ticks for v in versions]
        self._generation += 1
        self._cache.clear()
        self._groups = {}

    def add(self, version: ItemVersion) -> None:
        with self._lock:
            same = [v for v in self.versions if v.item_id == version.item_id]
            if any(v.ticks == version.ticks for v in same):
                raise ValueError(f"{version.item_id} already has a version at {version.lud}")
            self._set([*self.versions, version])

    def __len__(self) -> int:
        return len(self.versions)

    def add_raw(self, version: RawVersion) -> None:
        with self._lock:
            self.raw_versions = [*self.raw_versions, version]

    def visible(
        self,
        clock: int,
        lo: Optional[int] = None,
        hi: Optional[int] = None,
        desc: bool = False,
        limit: Optional[int] = None,
    ) -> List[ItemVersion]:
        """Versions visible at `clock` with lo <= ticks <= hi (inclusive), ordered by (ticks, id),
        raw items (`RawVersion`) among them in their place."""
        generated = self._visible_generated(clock, lo, hi, desc, limit)
        raws = [
            v
            for v in self.raw_versions
            if v.shown_from <= clock and (lo is None or v.ticks >= lo) and (hi is None or v.ticks <= hi)
        ]
        if not raws:
            return generated
        merged = sorted([*generated, *raws], key=lambda v: (v.ticks, v.item_id), reverse=desc)
        return merged if limit is None else merged[:limit]

    def _visible_generated(
        self, clock: int, lo: Optional[int], hi: Optional[int], desc: bool, limit: Optional[int]
    ) -> List[ItemVersion]:
        """The generated versions of ``visible``.

        With `limit` (ascending only), just the first `limit` of them: a page needs no more, and
        building the whole remainder for every page of a 100k backfill made the simulator, not
        the add-on, the bottleneck of `make bench`."""
        if limit is not None and not desc:
            with self._lock:
                versions, ticks = self.versions, self._ticks
            upper = clock if hi is None else min(hi, clock)
            i0 = 0 if lo is None else bisect.bisect_left(ticks, lo)
            i1 = bisect.bisect_right(ticks, upper)
            return list(itertools.islice((v for v in versions[i0:i1] if v.next_ticks > clock), limit))
        key = (self._generation, clock, lo, hi, desc)
        with self._lock:
            hit = self._cache.get(key)
            if hit is not None:
                self._cache.move_to_end(key)
                return hit
            versions, ticks = self.versions, self._ticks
        upper = clock if hi is None else min(hi, clock)
        i0 = 0 if lo is None else bisect.bisect_left(ticks, lo)
        i1 = bisect.bisect_right(ticks, upper)
        result = [v for v in versions[i0:i1] if v.next_ticks > clock] if i1 > i0 else []
        if desc:
            result.reverse()
        with self._lock:
            self._cache[key] = result
            while len(self._cache) > 64:
                self._cache.popitem(last=False)
        return result

    def latest(self, item_id: str, clock: int) -> Optional[ItemVersion]:
        found: Optional[ItemVersion] = None
        for v in self.versions:
            if v.item_id == item_id and v.ticks <= clock:
                found = v
        return found

    def by_incident(self, clock: int) -> Dict[str, List[ItemVersion]]:
        """Visible alert versions grouped by incidentId (for $expand=alerts)."""
        key = (self._generation, clock)
        with self._lock:
            hit = self._groups.get(key)
        if hit is not None:
            return hit
        groups: Dict[str, List[ItemVersion]] = {}
        for v in self.visible(clock):
            if v.incident_id is not None:
                groups.setdefault(v.incident_id, []).append(v)
        with self._lock:
            if len(self._groups) > 16:
                self._groups.clear()
            self._groups[key] = groups
        return groups


def _default_anchor() -> datetime:
    return datetime.now(timezone.utc).replace(microsecond=0)


class SyntheticTenant:
    """The tenant's whole history. Build with `generate()` or `bulk()`."""

    def __init__(
        self,
        tenant_id: str,
        anchor: datetime,
        seed: int,
        alerts: List[ItemVersion],
        incidents: List[ItemVersion],
    ) -> None:
        self.tenant_id = tenant_id
        self.anchor = anchor
        self.anchor_ticks = dt_to_ticks(anchor)
        self.seed = seed
        self.alerts = Collection(alerts)
        self.incidents = Collection(incidents)
        self.scenarios: Dict[str, Any] = {}  # named ids for tests (cross_product, merge_chain, ...)

    # ------------------------------------------------------------------ inspection API
    def alert_versions(self) -> List[Tuple[str, str, Dict[str, Any]]]:
        """(id, lastUpdateDateTime, item dict) for every alert version, ordered by time."""
        return [(v.item_id, v.lud, v.as_dict()) for v in self.alerts.versions]

    def incident_versions(self) -> List[Tuple[str, str, Dict[str, Any]]]:
        return [(v.item_id, v.lud, v.as_dict()) for v in self.incidents.versions]

    def alert_version_keys(self) -> List[Tuple[str, str]]:
        """(id, lastUpdateDateTime) for every alert version: cheap, for bulk tenants."""
        return [(v.item_id, v.lud) for v in self.alerts.versions]

    def incident_version_keys(self) -> List[Tuple[str, str]]:
        return [(v.item_id, v.lud) for v in self.incidents.versions]

    def expected_versions(self, resource: str, start: Any, end: Any) -> List[Tuple[str, str]]:
        """(id, lud) of every version with start <= lastUpdateDateTime <= end (a collector's due)."""
        lo, hi = parse_any(start), parse_any(end)
        coll = self.alerts if resource == "alerts_v2" else self.incidents
        return [(v.item_id, v.lud) for v in coll.versions if lo <= v.ticks <= hi]

    def visible_at(self, resource: str, when: Any = None) -> List[Dict[str, Any]]:
        """What a full listing shows at `when` (default: anchor), oldest first."""
        clock = self.anchor_ticks if when is None else parse_any(when)
        coll = self.alerts if resource == "alerts_v2" else self.incidents
        return [v.as_dict() for v in coll.visible(clock)]

    def add_raw(
        self,
        resource: str,
        raw: bytes,
        sort_id: str,
        lud: str,
        ticks: Optional[int] = None,
        shown_from: Any = None,
    ) -> RawVersion:
        """Serve `raw`, exactly, as one item of `resource` (see `RawVersion`): filed at `ticks`
        (default: `lud` read as an OData literal), ordered among equal instants by `sort_id`."""
        kind = "alert" if resource == "alerts_v2" else "incident"
        filed = parse_any(lud) if ticks is None else ticks
        version = RawVersion(kind, sort_id, filed, lud, raw, None if shown_from is None else parse_any(shown_from))
        (self.alerts if kind == "alert" else self.incidents).add_raw(version)
        return version

    def add_version(self, resource: str, item: Dict[str, Any]) -> ItemVersion:
        """Append a version (e.g. an update arriving mid-run); `lastUpdateDateTime` must be new."""
        kind = "alert" if resource == "alerts_v2" else "incident"
        version = make_version(kind, item, parse_any(item["lastUpdateDateTime"]))
        (self.alerts if kind == "alert" else self.incidents).add(version)
        return version

    # ------------------------------------------------------------------ builders
    @classmethod
    def generate(
        cls, seed: int = 7, anchor: Optional[datetime] = None, tenant_id: str = DEFAULT_TENANT_ID
    ) -> SyntheticTenant:
        """~60 alerts, ~20 incidents, ~230 versions with the scenarios tests need."""
        anchor = _default_anchor() if anchor is None else anchor.astimezone(timezone.utc)
        b = _Builder(random.Random(seed), tenant_id, dt_to_ticks(anchor))
        b.build_default()
        tenant = cls(tenant_id, anchor, seed, b.alert_versions, b.incident_versions)
        tenant.scenarios = b.scenarios
        return tenant

    @classmethod
    def bulk(
        cls,
        n_alert_versions: int,
        seed: int = 7,
        anchor: Optional[datetime] = None,
        same_timestamp_groups: bool = False,
        tenant_id: str = DEFAULT_TENANT_ID,
        single_version: bool = False,
    ) -> SyntheticTenant:
        """Exactly `n_alert_versions` alert versions (plus a few incidents) for benchmarks.

        `single_version=True` gives every alert one version, so that one listing at the anchor
        shows all of them (a backfill of n versions in one run)."""
        anchor = _default_anchor() if anchor is None else anchor.astimezone(timezone.utc)
        b = _BulkBuilder(random.Random(seed), tenant_id, dt_to_ticks(anchor))
        b.single_version = single_version
        b.build(n_alert_versions, same_timestamp_groups)
        tenant = cls(tenant_id, anchor, seed, b.alert_versions, b.incident_versions)
        tenant.scenarios = b.scenarios
        return tenant


# ---------------------------------------------------------------------------------------------


def _words(category: str) -> str:
    out = "".join(" " + ch.lower() if ch.isupper() else ch for ch in category).strip()
    return out[:1].upper() + out[1:]


_DETERMINATIONS = {
    "Malware": "malware",
    "InitialAccess": "phishing",
    "CredentialAccess": "compromisedAccount",
    "Exfiltration": "maliciousUserActivity",
    "Execution": "malware",
}


def alert_fields(
    alert_id: str,
    provider_id: str,
    incident_id: Optional[str],
    prof: Any,
    kind: Any,
    detector_id: str,
    tenant_id: str,
    *,
    created: str,
    last_update: Optional[str],
    first_activity: str,
    last_activity: str,
    recommended_actions: Optional[str] = None,
    investigation_state: str = "unsupportedAlertType",
    alert_policy_id: Optional[str] = None,
    custom_details: Optional[Dict[str, Any]] = None,
    system_tags: Optional[List[str]] = None,
) -> Dict[str, Any]:
    """An alert's properties in Graph's order, without ``evidence``: a new alert (status ``new``,
    unassigned, unclassified). Both builders start from it; the key order is what Graph sends."""
    return {
        "@odata.type": "#microsoft.graph.security.alert",
        "id": alert_id,
        "providerAlertId": provider_id,
        "incidentId": incident_id,
        "status": "new",
        "severity": kind.severity,
        "classification": None,
        "determination": None,
        "serviceSource": prof.service,
        "detectionSource": prof.detection,
        "productName": prof.product,
        "detectorId": detector_id,
        "tenantId": tenant_id,
        "title": kind.title,
        "description": kind.description,
        "recommendedActions": recommended_actions,
        "category": kind.category,
        "categories": [kind.category],
        "assignedTo": None,
        "alertWebUrl": f"https://security.microsoft.com/alerts/{alert_id}?tid={tenant_id}",
        "incidentWebUrl": None
        if incident_id is None
        else f"https://security.microsoft.com/incidents/{incident_id}?tid={tenant_id}",
        "actorDisplayName": None,
        "threatDisplayName": kind.threat,
        "threatFamilyName": kind.family,
        "mitreTechniques": list(kind.mitre),
        "createdDateTime": created,
        "lastUpdateDateTime": last_update,
        "firstActivityDateTime": first_activity,
        "lastActivityDateTime": last_activity,
        "resolvedDateTime": None,
        "investigationState": investigation_state,
        "alertPolicyId": alert_policy_id,
        "additionalData": {},
        "customDetails": {} if custom_details is None else custom_details,
        "systemTags": [] if system_tags is None else system_tags,
        "comments": [],
    }


class _Builder:
    """Builds the default tenant by playing incident timelines and snapshotting every change."""

    def __init__(self, rng: random.Random, tenant_id: str, anchor_ticks: int) -> None:
        self.rng = rng
        self.tenant_id = tenant_id
        self.anchor = anchor_ticks
        self.ents = C.Entities(rng, tenant_id)
        self.alert_versions: List[ItemVersion] = []
        self.incident_versions: List[ItemVersion] = []
        self.last: Dict[str, int] = {}
        self.trim: Dict[str, bool] = {}
        self.rem: Dict[str, Tuple[str, str]] = {}  # alert id -> (initial, final) main remediation
        self.scenarios: Dict[str, Any] = {}
        self.next_incident = rng.randrange(20000, 40000)

    # -------------------------------------------------------------- time helpers
    def jitter(self, lo_s: float, hi_s: float) -> int:
        return self.rng.randrange(int(lo_s * TPS), int(hi_s * TPS))

    def _round(self, item_id: str, ticks: int) -> int:
        # Graph keeps 100 ns, but some writers use coarser clocks: vary the resolution.
        if self.trim.get(item_id):
            ticks -= ticks % self.rng.choice((1, 1000, TICKS_PER_MS, TPS))
        return ticks

    def fmt(self, item_id: str, ticks: int) -> str:
        return format_ticks(ticks, self.trim.get(item_id, False))

    def _stamp(self, item: Dict[str, Any], ticks: int) -> Optional[int]:
        item_id = item["id"]
        ticks = self._round(item_id, ticks)
        ticks = max(ticks, self.last.get(item_id, 0) + 1)
        if ticks > self.anchor:
            return None  # in the future of the tenant: not (yet) happened
        self.last[item_id] = ticks
        item["lastUpdateDateTime"] = self.fmt(item_id, ticks)
        return ticks

    def emit_alert(self, a: Dict[str, Any], ticks: int, exact: bool = False) -> Optional[int]:
        if exact:
            if ticks <= self.last.get(a["id"], 0) or ticks > self.anchor:
                return None
            self.last[a["id"]] = ticks
            a["lastUpdateDateTime"] = self.fmt(a["id"], ticks)
            stamped: Optional[int] = ticks
        else:
            stamped = self._stamp(a, ticks)
        if stamped is not None:
            self.alert_versions.append(make_version("alert", a, stamped))
        return stamped

    def emit_incident(self, inc: Dict[str, Any], ticks: int) -> Optional[int]:
        stamped = self._stamp(inc, ticks)
        if stamped is not None:
            self.incident_versions.append(make_version("incident", inc, stamped))
        return stamped

    # -------------------------------------------------------------- item factories
    def new_alert(
        self,
        profile_key: str,
        user_idx: int,
        created: int,
        incident_id: Optional[str],
        kind_idx: Optional[int] = None,
        device_idx: Optional[int] = None,
    ) -> Dict[str, Any]:
        rng = self.rng
        prof = C.PROFILES[profile_key]
        kind = prof.kinds[kind_idx if kind_idx is not None else rng.randrange(len(prof.kinds))]
        alert_id, provider_id = C.make_alert_ids(rng, prof.id_style)
        self.trim[alert_id] = rng.random() < 0.5
        user = self.ents.users[user_idx % len(self.ents.users)]
        device = self.ents.devices[(user_idx if device_idx is None else device_idx) % len(self.ents.devices)]
        first_act = created - self.jitter(60, 900)
        first_act -= first_act % TICKS_PER_MS
        last_act = created - self.jitter(1, 50)
        last_act -= last_act % TICKS_PER_MS
        initial, final = self._remediation(prof.evidence)
        self.rem[alert_id] = (initial, final)
        ev_created = format_ticks(created + self.jitter(0.05, 0.4))
        evidence = C.build_evidence(
            prof.evidence,
            C.EvidenceContext(
                rng,
                self.ents,
                user,
                device,
                C.GEO[rng.randrange(len(C.GEO))] if prof.evidence != "identity" else C.GEO[0],
                rng.choice(C.BAD_DOMAINS),
                ev_created,
                format_ticks(first_act),
                format_ticks(created - device.first_seen_days * DAY),
                initial,
            ),
        )
        tid = self.tenant_id
        is_mde = prof.service == "microsoftDefenderForEndpoint"
        system_tags = ["Defender Experts"] if prof.detection == "microsoftThreatExperts" else []
        return {
            **alert_fields(
                alert_id,
                provider_id,
                incident_id,
                prof,
                kind,
                C.detector_id(profile_key, kind.title),
                tid,
                created=format_ticks(created),
                last_update=None,
                first_activity=format_ticks(first_act, trim=True),
                last_activity=format_ticks(last_act, trim=True),
                recommended_actions="1. Review the evidence and the affected entities.\n2. Contain the "
                "affected user or device if the activity is not expected.\n3. Classify the alert.",
                investigation_state=rng.choice(("running", "queued")) if is_mde else "unsupportedAlertType",
                alert_policy_id=C.detector_id("policy", kind.title)
                if prof.service in ("microsoftDefenderForOffice365", "dataLossPrevention", "microsoftAppGovernance")
                else None,
                custom_details={"EncodedCommandLength": "4096"} if prof.detection == "customDetection" else {},
                system_tags=system_tags,
            ),
            "evidence": evidence,
        }

    def _remediation(self, ev_kind: str) -> Tuple[str, str]:
        r = self.rng.choice
        if ev_kind in ("malware", "process"):
            initial = r(("pendingApproval", "running", "remediated", "prevented"))
            return initial, r(("remediated", "remediated", "partiallyRemediated"))
        if ev_kind == "web":
            s = r(("blocked", "active", "blocked"))
            return s, s
        if ev_kind in ("signin", "sentinel"):
            s = r(("none", "active"))
            return s, s
        if ev_kind in ("mail", "xdr"):
            initial = r(("remediated", "pendingApproval"))
            return initial, r(("remediated", "declined")) if initial == "pendingApproval" else initial
        s = r(("none", "notFound", "unremediated"))
        return s, s

    def new_incident(self, created: int) -> Dict[str, Any]:
        inc_id = str(self.next_incident)
        self.next_incident += self.rng.randrange(1, 60)
        self.trim[inc_id] = self.rng.random() < 0.4
        tid = self.tenant_id
        return {
            "@odata.type": "#microsoft.graph.security.incident",
            "id": inc_id,
            "incidentWebUrl": f"https://security.microsoft.com/incidents/{inc_id}?tid={tid}",
            "tenantId": tid,
            "redirectIncidentId": None,
            "displayName": "",
            "description": None,
            "summary": None,
            "createdDateTime": format_ticks(created),
            "lastUpdateDateTime": None,
            "assignedTo": None,
            "lastModifiedBy": "Automation",
            "classification": "unknown",
            "determination": "unknown",
            "status": "active",
            "severity": "low",
            "priorityScore": 10,
            "resolvingComment": None,
            "customTags": [],
            "systemTags": [],
            "comments": [],
        }

    def refresh_incident(self, inc: Dict[str, Any], alerts: List[Dict[str, Any]]) -> None:
        sev = max((a["severity"] for a in alerts), key=lambda s: SEVERITY_RANK[s])
        inc["severity"] = sev
        inc["priorityScore"] = {"high": 88, "medium": 52, "low": 21, "informational": 6}[sev] + len(alerts)
        cats: List[str] = []
        for a in alerts:
            if a["category"] not in cats:
                cats.append(a["category"])
        services = {a["serviceSource"] for a in alerts}
        has_device = any(
            e["@odata.type"].endswith("deviceEvidence") for a in alerts for e in a["evidence"] if "evidence" in a
        )
        scope = "on one endpoint" if has_device else "involving one user"
        if len(alerts) == 1:
            inc["displayName"] = f"{alerts[0]['title']} {scope}"
        else:
            what = " & ".join(_words(c) for c in cats[:2])
            by = "multiple sources" if len(services) > 1 else "one source"
            inc["displayName"] = f"Multi-stage incident involving {what} {scope} reported by {by}"
        inc["description"] = f"{len(alerts)} alert(s) correlated by Microsoft Defender XDR."
        inc["summary"] = "; ".join(a["title"] for a in alerts[:4])
        if "Defender Experts" in {t for a in alerts for t in a["systemTags"]}:
            inc["systemTags"] = ["Defender Experts"]

    def attach(self, a: Dict[str, Any], inc_id: str) -> None:
        a["incidentId"] = inc_id
        a["incidentWebUrl"] = f"https://security.microsoft.com/incidents/{inc_id}?tid={self.tenant_id}"

    # -------------------------------------------------------------- lifecycle steps
    def triage(self, alerts: List[Dict[str, Any]], inc: Optional[Dict[str, Any]], when: int, status: str) -> str:
        analyst = self.rng.choice(ANALYSTS)
        if inc is not None:
            inc["status"] = status
            inc["assignedTo"] = analyst
            inc["lastModifiedBy"] = analyst
            self.emit_incident(inc, when)
        for a in alerts:
            a["status"] = "inProgress"
            a["assignedTo"] = analyst
            initial, final = self.rem[a["id"]]
            if initial != final:
                for ev in a["evidence"]:
                    if ev["remediationStatus"] == initial:
                        ev["remediationStatus"] = final
            if a["investigationState"] in ("running", "queued"):
                a["investigationState"] = self.rng.choice(("pendingApproval", "running", "successfullyRemediated"))
            self.emit_alert(a, when + self.jitter(1, 25))
        return analyst

    def comment(self, a: Dict[str, Any], when: int, analyst: str, text: str) -> None:
        a["comments"].append({"comment": text, "createdByDisplayName": analyst, "createdDateTime": format_ticks(when)})
        self.emit_alert(a, when + self.jitter(0.1, 2))

    def resolve(
        self, alerts: List[Dict[str, Any]], inc: Optional[Dict[str, Any]], when: int, same_instant: bool = False
    ) -> None:
        rng = self.rng
        roll = rng.random()
        if roll < 0.7:
            cls = "truePositive"
            det = _DETERMINATIONS.get(alerts[0]["category"], "multiStagedAttack" if len(alerts) > 1 else "other")
        elif roll < 0.85:
            cls, det = "falsePositive", rng.choice(("notMalicious", "notEnoughDataToValidate"))
        else:
            cls = "informationalExpectedActivity"
            det = rng.choice(("securityTesting", "confirmedActivity", "lineOfBusinessApplication"))
        shared = self._round(alerts[0]["id"], when)
        for a in alerts:
            at = shared if same_instant else when + self.jitter(0.5, 20)
            a["status"] = "resolved"
            a["classification"] = cls
            a["determination"] = det
            a["resolvedDateTime"] = format_ticks(at)
            if a["serviceSource"] == "microsoftDefenderForEndpoint":
                a["investigationState"] = "successfullyRemediated" if cls == "truePositive" else "benign"
            self.emit_alert(a, at, exact=same_instant)
        if inc is not None:
            inc["status"] = "resolved"
            inc["classification"] = cls
            inc["determination"] = det
            inc["resolvingComment"] = f"Resolved as {cls}/{det}."
            self.emit_incident(inc, when + self.jitter(21, 40))

    def incident_flow(
        self,
        specs: Sequence[Tuple[str, int, Optional[int], Optional[int]]],
        start: int,
        triage: bool = True,
        comment: bool = False,
        resolve: bool = False,
        same_instant: bool = False,
        status: str = "inProgress",
    ) -> Tuple[Dict[str, Any], List[Dict[str, Any]], int]:
        """specs: (profile, user index, kind index, device index). Returns (incident, alerts, end)."""
        t = start
        inc: Optional[Dict[str, Any]] = None
        alerts: List[Dict[str, Any]] = []
        for i, (profile, user_idx, kind_idx, device_idx) in enumerate(specs):
            if i:
                t += self.jitter(30, 3 * 3600)
            if inc is None:
                inc = self.new_incident(t + self.jitter(2, 3))
            a = self.new_alert(profile, user_idx, t, inc["id"], kind_idx, device_idx)
            self.emit_alert(a, t + self.jitter(0.05, 2))
            alerts.append(a)
            self.refresh_incident(inc, alerts)
            self.emit_incident(inc, t + self.jitter(3, 6))
        assert inc is not None
        if triage:
            t += self.jitter(10 * 60, 6 * 3600)
            analyst = self.triage(alerts, inc, t, status)
            if comment:
                t += self.jitter(5 * 60, 90 * 60)
                self.comment(alerts[0], t, analyst, "Device isolated pending triage; user contacted.")
                inc["comments"].append(
                    {
                        "comment": "Linked to campaign tracked in CASE-20418.",
                        "createdByDisplayName": analyst,
                        "createdDateTime": format_ticks(t + 3 * TPS),
                    }
                )
                self.emit_incident(inc, t + self.jitter(3, 5))
            if resolve:
                t += self.jitter(30 * 60, 20 * 3600)
                self.resolve(alerts, inc, t, same_instant)
                t += 60 * TPS
        return inc, alerts, t

    def standalone(self, profile: str, user_idx: int, start: int, resolve: bool) -> Dict[str, Any]:
        a = self.new_alert(profile, user_idx, start, None)
        self.emit_alert(a, start + self.jitter(0.05, 2))
        if resolve:
            t = start + self.jitter(3600, 12 * 3600)
            self.triage([a], None, t, "inProgress")
            self.resolve([a], None, t + self.jitter(600, 7200))
        return a

    # -------------------------------------------------------------- the default tenant
    def build_default(self) -> None:
        rng = self.rng
        origin = self.anchor - WINDOW

        def at(days: float) -> int:
            return origin + int(days * DAY) + self.jitter(0, 600)

        # 1. A cross-product incident: phish -> AV -> EDR on one device, then identity alerts.
        inc, alerts, _ = self.incident_flow(
            [("mdo", 0, 0, 0), ("antivirus", 0, 0, 0), ("edr", 0, 0, 0), ("aadip", 0, 0, 0), ("mdi", 0, 1, 0)],
            at(3.2),
            comment=True,
            resolve=True,
        )
        self.scenarios["cross_product"] = {"incident": inc["id"], "alerts": [a["id"] for a in alerts]}

        # 2. A merge chain A -> B -> C about one user.
        inc_a, (a1,), t = self.incident_flow([("mdi", 3, 0, 3)], at(1.5), triage=False)
        inc_b, (b1,), t = self.incident_flow([("mdca", 3, 0, 3)], t + 20 * MINUTE, triage=False)
        inc_c, (c1,), t = self.incident_flow([("aadip", 3, 2, 3)], t + 15 * MINUTE, triage=False)
        t += 40 * MINUTE
        inc_a["status"] = "redirected"
        inc_a["redirectIncidentId"] = inc_b["id"]
        self.emit_incident(inc_a, t)
        self.attach(a1, inc_b["id"])
        self.emit_alert(a1, t + self.jitter(0.2, 1))
        self.refresh_incident(inc_b, [a1, b1])
        self.emit_incident(inc_b, t + self.jitter(1, 2))
        t += 2 * HOUR
        inc_b["status"] = "redirected"
        inc_b["redirectIncidentId"] = inc_c["id"]
        self.emit_incident(inc_b, t)
        for a in (a1, b1):
            self.attach(a, inc_c["id"])
            self.emit_alert(a, t + self.jitter(0.2, 1))
        self.refresh_incident(inc_c, [a1, b1, c1])
        self.emit_incident(inc_c, t + self.jitter(1, 2))
        t += 3 * HOUR
        self.triage([a1, b1, c1], inc_c, t, "inProgress")
        self.resolve([a1, b1, c1], inc_c, t + 5 * HOUR)
        self.scenarios["merge_chain"] = [inc_a["id"], inc_b["id"], inc_c["id"]]

        # 3. Defender Experts incident waiting for the customer (awaitingAction is Prefer-gated).
        inc, alerts, _ = self.incident_flow([("experts", 5, 0, 5), ("edr", 5, 1, 5)], at(4.5), status="awaitingAction")
        self.scenarios["awaiting_action"] = inc["id"]

        # 4. Alerts resolved in bulk: versions sharing one lastUpdateDateTime.
        inc, alerts, _ = self.incident_flow(
            [("xdr", 7, 0, 7), ("mdo", 7, 1, 7), ("smartscreen", 7, 0, 7)], at(2.4), resolve=True, same_instant=True
        )
        self.scenarios["same_instant"] = {"incident": inc["id"], "alerts": [a["id"] for a in alerts]}

        # 5. Alerts that never join an incident.
        lone = []
        for i, prof in enumerate(("dlp", "sentinel_ml", "mdc_network", "mti", "appg_policy")):
            lone.append(self.standalone(prof, 8 + i, at(0.4 + 1.2 * i), resolve=i % 2 == 0)["id"])

        # 6. Every other profile at least once, plus extras, grouped into incidents by service.
        used = {"mdo", "antivirus", "edr", "aadip", "mdi", "mdca", "experts", "xdr", "smartscreen"}
        used |= {"dlp", "sentinel_ml", "mdc_network", "mti", "appg_policy", "sentinel_generic", "mdc_apim"}
        rest = [p for p in C.PROFILES if p not in used]
        common = ["antivirus", "edr", "mdo", "aadip", "mdca", "mdi", "smartscreen", "customti", "air", "custom"]
        rest += [rng.choice(common) for _ in range(19)]
        rest.sort(key=lambda p: (C.PROFILES[p].service, p))
        groups: List[List[str]] = []
        while rest:
            size = min(len(rest), rng.choice((1, 2, 2, 3, 3, 4, 5)))
            groups.append(rest[:size])
            rest = rest[size:]
        starts = sorted(rng.uniform(0.05, 6.7) for _ in groups)
        for n, (group, day) in enumerate(zip(groups, starts)):
            user = rng.randrange(len(self.ents.users))
            specs = [(p, user, None, None) for p in group]
            roll = rng.random()
            self.incident_flow(specs, at(day), triage=roll < 0.85, comment=roll < 0.3, resolve=roll < 0.6)
            if n == 0:
                self.scenarios["first_generic_incident"] = group

        # 7. Three versions of different alerts 100 ns apart (instant-precision tests).
        latest: Dict[str, ItemVersion] = {}
        for v in self.alert_versions:
            if v.ticks > latest.get(v.item_id, v).ticks or v.item_id not in latest:
                latest[v.item_id] = v
        finals = sorted(latest.values(), key=lambda v: v.ticks)
        pivot = finals[len(finals) // 2]  # an alert's latest version: visible at the anchor
        near = []
        for delta, prof in ((-1, "sentinel_generic"), (1, "mdc_apim")):
            a = self.new_alert(prof, 11, pivot.ticks - 3 * TPS, None)
            self.trim[a["id"]] = False
            self.emit_alert(a, pivot.ticks + delta, exact=True)
            near.append(a["id"])
            lone.append(a["id"])
        self.scenarios["tick_neighbours"] = {"pivot": (pivot.item_id, pivot.lud), "neighbours": near}
        self.scenarios["standalone"] = lone


# ---------------------------------------------------------------------------------------------


class _BulkBuilder:
    """Many alert versions, compactly: top level serialised per version, evidence from a pool."""

    POOL_PER_PROFILE = 48

    def __init__(self, rng: random.Random, tenant_id: str, anchor_ticks: int) -> None:
        self.rng = rng
        self.tenant_id = tenant_id
        self.anchor = anchor_ticks
        self.ents = C.Entities(rng, tenant_id, n_users=40)
        self.alert_versions: List[ItemVersion] = []
        self.incident_versions: List[ItemVersion] = []
        self.single_version = False
        self.scenarios: Dict[str, Any] = {}

    def _pool(self) -> Dict[str, List[EvidenceTemplate]]:
        rng, ents = self.rng, self.ents
        placeholder = EvidenceTemplate.PLACEHOLDER
        pool: Dict[str, List[EvidenceTemplate]] = {}
        for key, prof in C.PROFILES.items():
            templates = []
            for i in range(self.POOL_PER_PROFILE):
                ctx = C.EvidenceContext(
                    rng,
                    ents,
                    ents.users[rng.randrange(len(ents.users))],
                    ents.devices[rng.randrange(len(ents.devices))],
                    C.GEO[rng.randrange(len(C.GEO))],
                    rng.choice(C.BAD_DOMAINS),
                    placeholder,
                    format_ticks(self.anchor - rng.randrange(WINDOW), trim=True),
                    format_ticks(self.anchor - rng.randrange(300 * DAY)),
                    "pendingApproval" if i % 7 == 0 else "remediated",
                )
                templates.append(EvidenceTemplate(C.build_evidence(prof.evidence, ctx)))
            pool[key] = templates
        return pool

    def build(self, n: int, same_timestamp_groups: bool) -> None:
        rng = self.rng
        tid = self.tenant_id
        pool = self._pool()
        keys = tuple(C.PROFILES)
        repls = {k: _mask_replacements(p.service, p.detection) for k, p in C.PROFILES.items()}
        origin = self.anchor - WINDOW
        span = WINDOW - DAY  # creations in the first 6 days; updates follow within hours
        group_sizes = [2, 3, 5, 8, 13, 50, 250, 1200] if same_timestamp_groups else []
        group_left = 0
        group_created = 0
        group_log: List[Tuple[str, int]] = []
        made = 0
        alert_no = 0
        incident_no = rng.randrange(100000, 200000)
        inc_id: Optional[str] = None
        inc_size = 0
        append = self.alert_versions.append
        while made < n:
            alert_no += 1
            n_versions = 1 if self.single_version else min(n - made, rng.choice((1, 2, 2, 3, 3, 3, 4)))
            shared = False
            if group_left > 0:
                created, group_left, shared = group_created, group_left - 1, True
            else:
                created = origin + rng.randrange(span)
                if group_sizes and rng.random() < 0.01:
                    size = group_sizes.pop(0)
                    group_created, group_left, shared = created, size - 1, True
                    group_log.append((format_ticks(created), size))
            key = keys[alert_no % len(keys)]
            prof = C.PROFILES[key]
            kind = prof.kinds[alert_no % len(prof.kinds)]
            alert_id, provider_id = C.make_alert_ids(rng, prof.id_style)
            this_inc: Optional[str] = None
            if alert_no % 10:
                if inc_id is None or inc_size >= 4:
                    incident_no += rng.randrange(1, 9)
                    inc_id, inc_size = str(incident_no), 0
                    self._incident(inc_id, created, kind.severity)
                inc_size += 1
                this_inc = inc_id
            created_s = format_ticks(created)
            ev_created = format_ticks(created + rng.randrange(TPS // 2)).encode()
            template = pool[key][rng.randrange(self.POOL_PER_PROFILE)]
            analyst = ANALYSTS[alert_no % 3]
            top = alert_fields(
                alert_id,
                provider_id,
                this_inc,
                prof,
                kind,
                C.detector_id(key, kind.title),
                tid,
                created=created_s,
                last_update=created_s,
                first_activity=created_s,
                last_activity=created_s,
            )
            repl = repls[key]
            t = created
            trim = alert_no % 2 == 0 and not shared
            step = 6 * HOUR // n_versions
            for v in range(n_versions):
                if v:
                    t += rng.randrange(TPS, step)
                if v == 1:
                    top["status"] = "inProgress"
                    top["assignedTo"] = analyst
                elif v == 2:
                    top["comments"] = [
                        {"comment": "Triaged.", "createdByDisplayName": analyst, "createdDateTime": format_ticks(t)}
                    ]
                elif v == 3:
                    top["status"] = "resolved"
                    top["classification"] = "truePositive"
                    top["determination"] = "malware"
                    top["resolvedDateTime"] = format_ticks(t)
                lud = format_ticks(t, trim)
                top["lastUpdateDateTime"] = lud
                prefix = dumps(top)[:-1] + b',"evidence":'
                append(SplicedVersion(alert_id, t, lud, prefix, template, ev_created, repl, this_inc))
                made += 1
        self.scenarios["same_timestamp_groups"] = group_log

    def _incident(self, inc_id: str, created: int, severity: str) -> None:
        tid = self.tenant_id
        t = created + 3 * TPS
        inc: Dict[str, Any] = {
            "@odata.type": "#microsoft.graph.security.incident",
            "id": inc_id,
            "incidentWebUrl": f"https://security.microsoft.com/incidents/{inc_id}?tid={tid}",
            "tenantId": tid,
            "redirectIncidentId": None,
            "displayName": f"Incident {inc_id}",
            "description": None,
            "summary": None,
            "createdDateTime": format_ticks(created),
            "lastUpdateDateTime": format_ticks(t),
            "assignedTo": None,
            "lastModifiedBy": "Automation",
            "classification": "unknown",
            "determination": "unknown",
            "status": "active",
            "severity": severity,
            "priorityScore": 50,
            "resolvingComment": None,
            "customTags": [],
            "systemTags": [],
            "comments": [],
        }
        self.incident_versions.append(make_version("incident", inc, t))
