"""Place one Defender event in the Defender XDR stack, from the event alone.

``place(record)`` takes one Splunk record (field -> str or list of str, as splunklib gives them)
and returns the contract's lineage fields (see ``OUTPUT_FIELDS``). It never raises: whatever
cannot be read is left empty and ``lineage_warning`` says why.

Shapes are recognised from a small table (``SHAPES``): first by ``sourcetype``, then by the
resource named in this add-on's ``source`` (``ms_graph://<tenant>/security/...``), then by the
parsed event's ``@odata.type``, then as a Defender streaming API record (``category``
``AdvancedHunting-<Table>``), then by the keys it carries. Values are read from fields Splunk
already extracted; ``_raw`` is parsed (once) only when one of them is missing.

Every rule looks at VALUES: a field that is present but empty decides nothing. In a real chunk
every record carries every column of the chunk (splunkd sends the union), so an Event Hub record
beside Graph alerts arrives with an empty ``serviceSource`` column, and beside legacy incidents
with an empty ``incidentName``; neither makes it an alert or an incident.

Streaming API records (Event Hub or Storage, e.g. sourcetypes ``ms:defender:eventhub`` and
``mscs:azure:eventhub``) sit at layer ``hunting`` with ``hunting_table`` from ``category`` and
``tenant_id`` from the envelope's ``tenantId``; their columns are read from ``properties``. A
body of several records (``{"records": [...]}``, an Event Hub message that was not split) is
placed from its FIRST streaming record; when a later record names another table, alert or
tenant, ``lineage_warning`` says so (split the body at index time to place every record).

``lineage_path`` is top-down, levels joined by `` > ``; an unknown level is ``?``:

* alert (detection layer): ``incident:31337 > microsoftDefenderForEndpoint > antivirus > alert:da63...``
* hunting row: the alert path of the row's ``AlertId``, then ``hunting`` (``hunting:<input>``
  when this add-on's ``source`` names the input)
* incident: ``incident:31337``; with expanded alerts, then each service the incident holds with
  its detection sources in brackets, services separated by `` | ``, all sorted:
  ``incident:31337 > microsoftDefenderForEndpoint [antivirus, microsoftDefenderForEndpoint] |
  microsoftDefenderForOffice365 [microsoftDefenderForOffice365]``
* merged incident (status ``redirected``): the surviving incident is named first,
  ``incident:42 (merged from 41)``; ``incident_id`` is 42 and ``incident_id_original`` 41.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Mapping, Optional, Protocol, Sequence, Set, Tuple

from defender_lineage_core import taxonomy

OUTPUT_FIELDS: Tuple[str, ...] = (
    "lineage_layer",
    "lineage_depth",
    "lineage_path",
    "detection_source",
    "detection_source_label",
    "service_source",
    "service_source_label",
    "tenant_id",
    "alert_id",
    "incident_id",
    "incident_id_original",
    "hunting_table",
    "lineage_warning",
)

LAYER_DEPTH: Mapping[str, str] = {"hunting": "0", "detection": "1", "service": "2", "incident": "3"}
SOURCE_SCHEME = "ms_graph://"
UNKNOWN_LEVEL = "?"
MAX_WARNING_VALUE = 80
TENANT_KEYS: Tuple[str, ...] = ("tenantId", "aadTenantId", "azureTenantId", "TenantId")
# Id keys whose documented value is a list of ids (legacy Graph alert ``incidentIds``: String
# collection): their first id is taken. Any other id given as a list is not an id.
LIST_ID_KEYS = frozenset(("incidentIds",))


class _JsonInt(str):
    """A JSON integer from ``_raw``, kept as its JSON text: ids are keyed by that text (``31337``),
    as the inputs and the incident store key them, and no digit limit applies (Python 3.11+ refuses
    int() of more than 4300 digits)."""


class _JsonNumber(str):
    """A JSON number that is not an integer (``1e3``, ``1e400``, ``NaN``), kept as its JSON text: a
    value, but never an id (``float`` would invent ``1000.0``, ``inf`` or ``nan``)."""


# One decoder for every event: json.loads with hooks would build a new decoder per call.
_DECODER = json.JSONDecoder(parse_int=_JsonInt, parse_float=_JsonNumber, parse_constant=_JsonNumber)


def _loads(raw: Any) -> Any:
    return _DECODER.decode(raw.decode("utf-8") if isinstance(raw, bytes) else raw)


class IncidentLookup(Protocol):
    """Seam for the incident store (a later issue): follows merges the event itself cannot see."""

    def surviving_incident(self, tenant_id: str, incident_id: str) -> Optional[str]:
        """The incident ``incident_id`` was merged into, or None if it was not merged or is unknown."""
        ...


@dataclass(frozen=True)
class Shape:
    """How to read one kind of event. Keys are tried in order; dotted keys reach into objects."""

    name: str
    layer: str
    sourcetypes: Tuple[str, ...] = ()
    odata_type: str = ""
    alert_id: Tuple[str, ...] = ()
    incident_id: Tuple[str, ...] = ()
    service: Tuple[str, ...] = ()
    detection: Tuple[str, ...] = ()
    redirect: Tuple[str, ...] = ()
    alerts: str = ""
    table: Tuple[str, ...] = ()  # the advanced-hunting table, when the event names it
    # Streaming API records: recognised by this ``category`` prefix, never by sourcetype alone
    # (``mscs:azure:eventhub`` carries every Azure log, not only Defender's).
    category_prefix: str = ""


GRAPH_ALERT = Shape(
    "graph_alert",
    "detection",
    ("ms:defender:graph:alert",),
    "#microsoft.graph.security.alert",
    alert_id=("id",),
    incident_id=("incidentId",),
    service=("serviceSource",),
    detection=("detectionSource",),
)
GRAPH_INCIDENT = Shape(
    "graph_incident",
    "incident",
    ("ms:defender:graph:incident",),
    "#microsoft.graph.security.incident",
    incident_id=("id",),
    redirect=("redirectIncidentId",),
    alerts="alerts",
)
GRAPH_HUNTING = Shape(
    "graph_hunting",
    "hunting",
    ("ms:defender:graph:hunting",),
    alert_id=("AlertId",),
    incident_id=("IncidentId",),
    service=("ServiceSource",),
    detection=("DetectionSource",),
    table=("HuntingTable",),  # added by this add-on's defender_hunting input (hunting.py)
)
LEGACY_INCIDENT = Shape(
    "m365d_incident",
    "incident",
    ("ms365:defender:incident",),
    incident_id=("incidentId",),
    redirect=("redirectIncidentId",),
    alerts="alerts",
)
LEGACY_INCIDENT_ALERT = Shape(
    "m365d_incident_alert",
    "detection",
    ("ms365:defender:incident:alerts",),
    alert_id=("alertId", "id"),
    incident_id=("incidentId",),
    service=("serviceSource",),
    detection=("detectionSource",),
)
LEGACY_MDE_ALERT = Shape(
    "mde_alert",
    "detection",
    ("ms:defender:atp:alerts",),
    alert_id=("id", "alertId"),
    incident_id=("incidentId",),
    service=("serviceSource",),
    detection=("detectionSource",),
)
LEGACY_GRAPH_ALERT = Shape(
    "graph_security_alert",
    "detection",
    ("GraphSecurityAlert",),
    "#microsoft.graph.alert",
    alert_id=("id",),
    incident_id=("incidentIds",),
    service=("vendorInformation.provider",),
)

# The Defender streaming API's envelope (learn.microsoft.com "Stream Microsoft Defender XDR events
# to Azure Event Hubs": time, tenantId, operationName, category ``AdvancedHunting-<Table>``,
# properties = the advanced-hunting row). Its sourcetypes are Splunk's Microsoft Security add-on
# and Microsoft Cloud Services add-on; any other sourcetype is recognised by the same values.
STREAMING = Shape(
    "defender_streaming",
    "hunting",
    ("ms:defender:eventhub", "mscs:azure:eventhub"),
    alert_id=("properties.AlertId",),
    incident_id=("properties.IncidentId",),
    service=("properties.ServiceSource",),
    detection=("properties.DetectionSource",),
    category_prefix="AdvancedHunting-",
)

SHAPES: Tuple[Shape, ...] = (
    GRAPH_ALERT,
    GRAPH_INCIDENT,
    GRAPH_HUNTING,
    LEGACY_INCIDENT,
    LEGACY_INCIDENT_ALERT,
    LEGACY_MDE_ALERT,
    LEGACY_GRAPH_ALERT,
    STREAMING,
)
# A sourcetype decides alone only for shapes without a value test (category_prefix).
_BY_SOURCETYPE: Dict[str, Shape] = {st.lower(): s for s in SHAPES for st in s.sourcetypes if not s.category_prefix}
STREAMING_CATEGORY = STREAMING.category_prefix.lower()
RECORDS_KEY = "records"
_BY_ODATA_TYPE: Dict[str, Shape] = {s.odata_type.lower(): s for s in SHAPES if s.odata_type}
_BY_SOURCE_RESOURCE: Tuple[Tuple[str, Shape], ...] = (
    ("security/alerts_v2", GRAPH_ALERT),
    ("security/incidents", GRAPH_INCIDENT),
    ("security/runhuntingquery", GRAPH_HUNTING),
)


class _Event:
    """One record plus its ``_raw`` JSON, parsed lazily and at most once."""

    __slots__ = ("_json", "_parsed", "hunting_table", "record", "warnings")

    def __init__(self, record: Mapping[str, Any]) -> None:
        self.record = record
        self.warnings: List[str] = []
        self.hunting_table = ""
        self._parsed = False
        self._json: Optional[Mapping[str, Any]] = None

    @property
    def json(self) -> Optional[Mapping[str, Any]]:
        if not self._parsed:
            self._parsed = True
            self._json = self._parse_raw()
        return self._json

    def _parse_raw(self) -> Optional[Mapping[str, Any]]:
        raw = first_value(self.record.get("_raw"))
        if not raw:
            return None
        if not isinstance(raw, (str, bytes)):
            raw = str(raw)
        try:
            value = _loads(raw)
        except ValueError as error:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
            self.warnings.append(f"unparseable _raw: {_short(str(error))}")
            return None
        except RecursionError:
            self.warnings.append("unparseable _raw: nested too deeply")
            return None
        if not isinstance(value, dict):
            self.warnings.append(f"unparseable _raw: JSON {type(value).__name__}, not an object")
            return None
        return value

    def use_json(self, data: Mapping[str, Any]) -> None:
        """Read ``_raw`` keys from ``data`` (one record of a ``records`` wrapper) from now on."""
        self._parsed = True
        self._json = data

    def has_value(self, key: str) -> bool:
        """Whether ``key`` holds a value (extracted or in ``_raw``): an empty column, ``null``, an
        empty object or list holds none."""
        if _text(self.record.get(key)):
            return True
        data = self.json
        if data is None:
            return False
        value = _dig(data, key)
        if isinstance(value, (dict, list)):
            return bool(value)
        return bool(_clean(value))

    def field(self, key: str) -> str:
        """A field Splunk extracted, else the same key in ``_raw``. Empty when absent or null."""
        value = _text(self.record.get(key))
        if value:
            return value
        data = self._json if self._parsed else self.json
        if data is None:
            return ""
        return _text(data.get(key) if key in data or "." not in key else _dig(data, key))

    def raw_field(self, key: str) -> str:
        data = self.json
        if data is None:
            return ""
        return _text(_dig(data, key))

    def first_of(self, keys: Sequence[str]) -> str:
        for key in keys:
            value = self.field(key)
            if value:
                return value
        return ""

    def id_of(self, keys: Sequence[str]) -> str:
        """The first id among ``keys``: a field Splunk extracted, else a JSON string or integer in
        ``_raw`` (integers as their JSON text). Anything else there (a fraction, ``NaN``, a boolean,
        a list, an object) is not an id: left empty, and a warning names it."""
        record = self.record
        for key in keys:
            value = _text(record.get(key))
            if value:
                return value
            data = self._json if self._parsed else self.json
            if data is None:
                continue
            raw = data.get(key) if key in data or "." not in key else _dig(data, key)
            if type(raw) is str:  # the usual JSON string id: what _raw_id would say, without the calls
                value = raw.strip()
                if value and value != "null":
                    return value
                continue
            value = self._raw_id(key, raw)
            if value:
                return value
        return ""

    def _raw_id(self, key: str, value: Any) -> str:
        if isinstance(value, list) and key in LIST_ID_KEYS:
            value = first_value(value)
        if value is None or (isinstance(value, str) and not isinstance(value, _JsonNumber)):
            return _clean(value)
        self.warnings.append(f"{key} is not a string or integer id ({_json_kind(value)}): left empty")
        return ""


def first_value(value: Any) -> Any:
    """The first non-empty item of a multivalue field, or the value itself."""
    if isinstance(value, (list, tuple)):
        for item in value:
            if item is not None and item != "":
                return item
        return None
    return value


def _json_kind(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return _short(str(value))


def _text(value: Any) -> str:
    """``_clean(first_value(value))``: a plain string (by far the usual value) without the calls."""
    if type(value) is str:
        text = value.strip()
        return "" if text == "null" else text
    if value is None:
        return ""
    return _clean(first_value(value))


def _clean(value: Any) -> str:
    # Splunk's JSON extraction turns a JSON null into the text "null"; no id or enum is "null".
    if value is None or isinstance(value, (dict, list, bool)):
        return ""
    text = str(value).strip()
    return "" if text == "null" else text


def _dig(data: Mapping[str, Any], key: str) -> Any:
    if key in data or "." not in key:
        return data.get(key)
    value: Any = data
    for part in key.split("."):
        if not isinstance(value, dict):
            return None
        value = value.get(part)
    return value


def _short(text: str) -> str:
    text = text.replace("\n", " ")
    return text if len(text) <= MAX_WARNING_VALUE else text[: MAX_WARNING_VALUE - 3] + "..."


def _source_parts(source: str) -> Tuple[str, str]:
    """(tenant, resource path) from ``ms_graph://<tenant>/<resource>``; empty strings otherwise."""
    if not source.startswith(SOURCE_SCHEME):
        return "", ""
    tenant, _, resource = source[len(SOURCE_SCHEME) :].partition("/")
    return tenant.strip(), resource


def recognise(event: _Event) -> Optional[Shape]:
    """Which shape an event has: sourcetype, then source, then @odata.type, then a streaming
    record's category, then the keys it carries with a value."""
    sourcetype = _text(event.record.get("sourcetype")).lower()
    shape = _BY_SOURCETYPE.get(sourcetype)
    if shape is not None:
        return shape
    _, resource = _source_parts(_text(event.record.get("source")))
    resource = resource.lower()
    for prefix, candidate in _BY_SOURCE_RESOURCE:
        if resource.startswith(prefix):
            return candidate
    odata_type = event.field("@odata.type").lower()
    if odata_type in _BY_ODATA_TYPE:
        return _BY_ODATA_TYPE[odata_type]
    event.hunting_table = _streaming_table(event)
    if event.hunting_table:
        return STREAMING
    return _recognise_by_keys(event)


def _streaming_table(event: _Event) -> str:
    """The advanced-hunting table a streaming API record names (``AdvancedHunting-<Table>``), or
    "". A ``records`` wrapper is read from its first streaming record: the event's JSON becomes
    that record, and the other records are compared with it (``_compare_records``)."""
    category = event.field("category")
    if not category:
        data = event.json
        records = data.get(RECORDS_KEY) if data is not None else None
        if not isinstance(records, list):
            return ""
        streaming = [r for r in records if isinstance(r, dict) and _table_of(_clean(r.get("category")))]
        if not streaming:
            return ""
        event.use_json(streaming[0])
        _compare_records(event, streaming)
        category = _clean(streaming[0].get("category"))
    return _table_of(category)


def _table_of(category: str) -> str:
    if category[: len(STREAMING_CATEGORY)].lower() != STREAMING_CATEGORY:
        return ""
    return category[len(STREAMING_CATEGORY) :].strip()


def _compare_records(event: _Event, records: Sequence[Mapping[str, Any]]) -> None:
    if len(records) < 2:
        return
    differ = []
    for label, read in (
        ("tables", lambda r: _table_of(_clean(r.get("category")))),
        ("alerts", lambda r: _clean(_dig(r, "properties.AlertId"))),
        ("tenants", lambda r: _clean(r.get("tenantId"))),
    ):
        if len({read(r) for r in records}) > 1:
            differ.append(label)
    if differ:
        event.warnings.append(
            f"records body of {len(records)} streaming records naming different {', '.join(differ)}: "
            "placed from the first"
        )


# Keys whose VALUE marks a shape (never their mere presence: see the module docstring).
_KEY_RULES: Tuple[Tuple[Tuple[str, ...], Shape], ...] = (
    (("AlertId", "DetectionSource", "ServiceSource"), GRAPH_HUNTING),
    (("vendorInformation.provider", "azureTenantId"), LEGACY_GRAPH_ALERT),
    (("incidentName",), LEGACY_INCIDENT),
    (("alertId",), LEGACY_INCIDENT_ALERT),
    (("aadTenantId",), LEGACY_MDE_ALERT),
    (("serviceSource", "detectionSource"), GRAPH_ALERT),
    (("redirectIncidentId", "incidentWebUrl"), GRAPH_INCIDENT),
)


def _recognise_by_keys(event: _Event) -> Optional[Shape]:
    for keys, shape in _KEY_RULES:
        if any(event.has_value(key) for key in keys):
            return shape
    return None


def _tenant(event: _Event) -> str:
    tenant = event.id_of(TENANT_KEYS)
    if tenant:
        return tenant
    source_tenant, _ = _source_parts(_text(event.record.get("source")))
    return source_tenant


def _hunting_level(event: _Event) -> str:
    _, resource = _source_parts(_text(event.record.get("source")))
    parts = resource.split("/")
    if len(parts) >= 3 and parts[1].lower() == "runhuntingquery" and parts[2]:
        return "hunting:" + parts[2]
    return "hunting"


def _unknown_warning(kind: str, resolution: taxonomy.Resolution) -> Optional[str]:
    if resolution.via == "unknown":
        return f"unknown {kind} {_short(resolution.raw.strip())!r}"
    if resolution.value == "unknownFutureValue":
        return f"{kind} is unknownFutureValue (collect with Prefer: include-unknown-enum-members)"
    return None


_Sources = Tuple[taxonomy.Resolution, taxonomy.Resolution, Tuple[str, ...]]
# (service, detection) as read -> their resolutions and warnings. A search's events name a handful of
# pairs, so each is resolved once; bounded, because hostile data could name a new pair per event.
_RESOLVED: Dict[Tuple[str, str], _Sources] = {}
MAX_RESOLVED = 4096


def _resolve_sources(
    service_raw: str, detection_raw: str, warnings: List[str]
) -> Tuple[taxonomy.Resolution, taxonomy.Resolution]:
    pair = (service_raw, detection_raw)
    known = _RESOLVED.get(pair)
    if known is None:
        if len(_RESOLVED) >= MAX_RESOLVED:
            _RESOLVED.clear()
        known = _RESOLVED[pair] = _resolve_pair(service_raw, detection_raw)
    if known[2]:
        warnings.extend(known[2])
    return known[0], known[1]


def _resolve_pair(service_raw: str, detection_raw: str) -> _Sources:
    detection = taxonomy.canonical_detection(detection_raw)
    service = taxonomy.canonical_service(service_raw)
    if service.via == "absent":
        service = taxonomy.inferred_service(detection.value if detection.known else None)
    warnings = []
    for kind, resolution in (("serviceSource", service), ("detectionSource", detection)):
        warning = _unknown_warning(kind, resolution)
        if warning:
            warnings.append(warning)
    return service, detection, tuple(warnings)


def _level(prefix: str, value: str) -> str:
    return f"{prefix}{value}" if value else UNKNOWN_LEVEL


def _alert_path(incident: str, service: str, detection: str, alert: str) -> str:
    if not (incident or service or detection or alert):
        return ""
    return " > ".join(
        (
            _level("incident:", incident),
            service or UNKNOWN_LEVEL,
            detection or UNKNOWN_LEVEL,
            _level("alert:", alert),
        )
    )


def _fill_sources(result: Dict[str, str], service: taxonomy.Resolution, detection: taxonomy.Resolution) -> None:
    result["service_source"] = service.value
    result["service_source_label"] = service.label
    result["detection_source"] = detection.value
    result["detection_source_label"] = detection.label


def _place_alert(event: _Event, shape: Shape, result: Dict[str, str], incidents: Optional[IncidentLookup]) -> None:
    service, detection = _resolve_sources(
        event.first_of(shape.service), event.first_of(shape.detection), event.warnings
    )
    _fill_sources(result, service, detection)
    result["alert_id"] = event.id_of(shape.alert_id)
    incident = event.id_of(shape.incident_id)
    survivor = _survivor(incidents, result["tenant_id"], incident, event.warnings)
    if survivor:
        result["incident_id_original"] = incident
        incident = survivor
    result["incident_id"] = incident
    path = _alert_path(incident, service.value, detection.value, result["alert_id"])
    if shape.layer == "hunting" and path:
        path += " > " + _hunting_level(event)
    result["lineage_path"] = path


def _survivor(incidents: Optional[IncidentLookup], tenant: str, incident: str, warnings: List[str]) -> str:
    if incidents is None or not incident:
        return ""
    try:
        survivor = incidents.surviving_incident(tenant, incident)
    except Exception as error:  # the store is best-effort; an event must still pass
        warnings.append(f"incident lookup failed: {_short(str(error))}")
        return ""
    return survivor if survivor and survivor != incident else ""


def _incident_alerts(event: _Event, shape: Shape) -> List[Mapping[str, Any]]:
    data = event.json
    alerts = data.get(shape.alerts) if data is not None else None
    if not isinstance(alerts, list):
        return []
    return [a for a in alerts if isinstance(a, dict)]


def _held_sources(alerts: List[Mapping[str, Any]], warnings: List[str]) -> str:
    """``service [detection, ...] | ...`` for the alerts an incident holds, sorted."""
    held: Dict[str, Set[str]] = {}
    for alert in alerts:
        service, detection = _resolve_sources(
            _clean(alert.get("serviceSource")), _clean(alert.get("detectionSource")), warnings
        )
        detections = held.setdefault(service.value or UNKNOWN_LEVEL, set())
        detections.add(detection.value or UNKNOWN_LEVEL)
    groups = [f"{s} [{', '.join(sorted(d))}]" for s, d in sorted(held.items())]
    return " | ".join(groups)


def _is_redirected(event: _Event) -> bool:
    return event.field("status").lower() == "redirected"


def _place_incident(event: _Event, shape: Shape, result: Dict[str, str], incidents: Optional[IncidentLookup]) -> None:
    own = event.id_of(shape.incident_id)
    target = event.id_of(shape.redirect) if _is_redirected(event) else ""
    if not target:
        target = _survivor(incidents, result["tenant_id"], own, event.warnings)
    if target and target != own:
        result["incident_id"] = target
        result["incident_id_original"] = own
        path = f"incident:{target} (merged from {own or UNKNOWN_LEVEL})"
    else:
        result["incident_id"] = own
        path = f"incident:{own}" if own else ""
    alerts = _incident_alerts(event, shape)
    held = _held_sources(alerts, event.warnings) if alerts else ""
    if held:
        path = f"{path or UNKNOWN_LEVEL} > {held}"
    result["lineage_path"] = path


_PLACERS: Mapping[str, Callable[[_Event, Shape, Dict[str, str], Optional[IncidentLookup]], None]] = {
    "detection": _place_alert,
    "hunting": _place_alert,
    "incident": _place_incident,
}


def _place(event: _Event, result: Dict[str, str], incidents: Optional[IncidentLookup]) -> None:
    shape = recognise(event)
    if shape is None:
        event.warnings.append("unrecognised event: not a Defender alert, incident or hunting row")
        return
    result["lineage_layer"] = shape.layer
    result["lineage_depth"] = LAYER_DEPTH[shape.layer]
    result["tenant_id"] = _tenant(event)
    result["hunting_table"] = event.hunting_table or (event.first_of(shape.table) if shape.table else "")
    _PLACERS[shape.layer](event, shape, result, incidents)


def place(record: Mapping[str, Any], incidents: Optional[IncidentLookup] = None) -> Dict[str, str]:
    """The contract's lineage fields for one record; every field present, empty where unknown.

    ``incidents`` is the seam for the incident store: when given, alert and incident ids are
    followed to the incident they were merged into.
    """
    result = dict.fromkeys(OUTPUT_FIELDS, "")
    # dict first: isinstance against typing.Mapping costs more than a whole field lookup.
    event = _Event(record if type(record) is dict or isinstance(record, Mapping) else {})
    try:
        _place(event, result, incidents)
    except Exception as error:  # a bug must not stop the search; say so on the event
        event.warnings.append(f"lineage failed: {type(error).__name__}: {_short(str(error))}")
    if event.warnings:
        result["lineage_warning"] = "; ".join(_dedupe(event.warnings))
    return result


def _dedupe(items: List[str]) -> List[str]:
    return list(dict.fromkeys(items))
